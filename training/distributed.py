"""Distributed runs and the data order: the process group from torchrun's environment, the
per-(seed, rank, step) seeds, and the resumable batch sampler.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler


def step_seed(seed: int, rank: int, step: int) -> int:
    """A 63-bit seed per (seed, rank, step), so dropout noise is reproducible on resume."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, rank, step, 0x7A]).generate_state(1, np.uint64)[0] >> 1)


class StepBatchSampler(Sampler[list[int]]):
    """Batches of indices for steps start_step, start_step + 1, ... (endless).

    Epoch e is a permutation of range(n) from a generator seeded by (seed, e); each epoch holds
    n // (world * batch) steps; rank r takes positions [r*B, (r+1)*B) of every block of
    world * B indices (so every rank sees a disjoint shard, like DistributedSampler).
    The batch of a step depends only on (seed, n, world, batch, step): resuming at a step
    continues the same order.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int = 0, rank: int = 0, world: int = 1):
        self.n, self.batch, self.seed = int(n), int(batch_size), int(seed)
        self.start, self.rank, self.world = int(start_step), int(rank), int(world)
        self.per_epoch = self.n // (self.world * self.batch)
        if self.per_epoch < 1:
            raise ValueError(f"dataset of {n} pairs is smaller than one global batch ({world} x {batch_size})")

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start
        perm: list[int] = []
        epoch = -1
        while True:
            e, pos = divmod(step, self.per_epoch)
            if e != epoch:
                g = torch.Generator().manual_seed(step_seed(self.seed, 0, e) & 0x7FFFFFFFFFFF)
                perm = torch.randperm(self.n, generator=g).tolist()
                epoch = e
            base = pos * self.world * self.batch + self.rank * self.batch
            yield perm[base:base + self.batch]
            step += 1


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def init_distributed(device: str | None = None) -> Dist:
    """Process group from torchrun's environment (WORLD_SIZE > 1), else a single process.

    device: "cpu", "cuda" or None (CUDA when available). Distributed CUDA runs use nccl and one
    GPU per local rank; CPU runs use gloo.
    """
    want_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if want_cuda and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device on this machine")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=torch.device(device or ("cuda" if want_cuda else "cpu")))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if want_cuda else "gloo")
    if want_cuda:
        torch.cuda.set_device(local_rank)
        return Dist(rank, world, local_rank, torch.device("cuda", local_rank))
    # Share the cores: N processes each using every core would oversubscribe them.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    return Dist(rank, world, local_rank, torch.device("cpu"))


def mean_across(values: dict[str, float], d: Dist) -> dict[str, float]:
    if not d.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / d.world for k, v in zip(keys, t.tolist())}
