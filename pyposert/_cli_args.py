"""Shared pieces of the command lines: argparse types for numeric options (so a bad value is
an argparse usage error, exit 2, naming the option) and the one-line error message."""

from __future__ import annotations

import argparse
import math
from typing import Callable

__all__ = ["count", "frame_size", "one_line", "positive_float"]


def count(minimum: int) -> Callable[[str], int]:
    """argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def frame_size(text: str) -> tuple[int, int]:
    """argparse type: "HxW" (e.g. 720x1280) -> (h, w), both >= 1."""
    h, sep, w = text.lower().partition("x")
    try:
        size = (int(h), int(w))
    except ValueError:
        size = (0, 0)
    if not sep or min(size) < 1:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH in pixels, e.g. 720x1280, got {text!r}")
    return size


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (some list one reason per line)."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__
