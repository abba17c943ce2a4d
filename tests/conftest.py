"""Shared fixtures: fresh random inputs every run (the seed is printed, so a failure can be
replayed with POSERT_TEST_SEED=<seed>), and the float64 references of every kernel."""

from __future__ import annotations

import os
import secrets

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    seed = int(os.environ.get("POSERT_TEST_SEED", secrets.randbits(32)))
    print(f"POSERT_TEST_SEED={seed}")
    return np.random.default_rng(seed)
