"""Data order that a resumed run repeats exactly: a seeded sampler that can start mid-epoch, augmentation
seeded per sample, and the global seed."""

from __future__ import annotations

import random
from typing import Any, Iterator, List

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler


class ResumableSampler(Sampler[int]):
    """Seeded shuffling sampler, split across ranks like DistributedSampler, that can start mid-epoch.

    The order of epoch `e` depends only on (seed, e); ``set_position(e, k)`` makes the next iteration
    yield this rank's indices of epoch `e` from the k-th on.
    """

    def __init__(self, dataset_len: int, seed: int = 0, rank: int = 0, world_size: int = 1, shuffle: bool = True,
                 drop_last: bool = False):
        self._inner = DistributedSampler(range(dataset_len), num_replicas=world_size, rank=rank, shuffle=shuffle,
                                         seed=seed, drop_last=drop_last)
        self.epoch = 0
        self.start = 0

    def set_position(self, epoch: int, start: int = 0) -> None:
        self.epoch = int(epoch)
        self.start = int(start)
        self._inner.set_epoch(self.epoch)

    def set_epoch(self, epoch: int) -> None:
        self.set_position(epoch, 0)

    def epoch_indices(self) -> List[int]:
        return list(iter(self._inner))

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices()[self.start:])

    def __len__(self) -> int:
        return max(0, len(self._inner) - self.start)

    @property
    def per_epoch(self) -> int:
        return len(self._inner)


class SeededSamples(Dataset):
    """Wraps a dataset so each item's random augmentation depends only on (seed, epoch, index).

    The wrapped ``__getitem__`` runs under a forked torch/numpy/python RNG seeded from those three
    numbers, so colour jitter is the same whether or not training was resumed and whatever the number
    of loader workers, and the caller's RNG streams are left untouched.
    """

    def __init__(self, dataset: Dataset, seed: int = 0):
        self.dataset = dataset
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        s = (self.seed * 1_000_003 + self.epoch * 10_007 + int(index)) % (2**31 - 1)
        py_state = random.getstate()
        np_state = np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s)
            random.seed(s)
            np.random.seed(s)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)

    def __getattr__(self, name: str) -> Any:  # cameras, num_broken, ... of the wrapped dataset
        if name in ("dataset", "seed", "epoch"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (checkpoint RNG capture/restore lives in vfdepth_core.checkpoint)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
