"""Data loaders of a training run: the resumable training loader (every rank) and the depth and ego-motion
validation loaders (rank 0)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Optional

import torch
from torch.utils.data import DataLoader

from vfdepth_core.config import Config, ConfigError, with_overrides
from vfdepth_core.training import checks
from vfdepth_core.training.sampling import ResumableSampler, SeededSamples

logger = logging.getLogger(__name__)


def loader_workers(n: int) -> int:
    """Loader workers: the configured number, at most the CPUs this process may use."""
    avail = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(int(n), avail))


@dataclass
class TrainLoader:
    """The training split as one rank reads it: seeded samples, the resumable sampler, the loader's own
    generator (reseeded per epoch) and the loader."""

    samples: SeededSamples
    sampler: ResumableSampler
    generator: torch.Generator
    loader: DataLoader
    steps_per_epoch: int


def train_loader(cfg: Config, rank: int, world_size: int, pin_memory: bool) -> TrainLoader:
    """The training loader of this rank; ConfigError when the batch is larger than the rank's share."""
    from vfdepth_core.datasets import build_dataset, collate_skip_broken

    t = cfg.training
    train_ds = build_dataset(cfg, "train", skip_broken=True)
    checks.check_nonempty(train_ds, "train", cfg.data.data_path)
    samples = SeededSamples(train_ds, seed=t.seed)
    sampler = ResumableSampler(len(train_ds), seed=t.seed, rank=rank, world_size=world_size, shuffle=True)
    # The loader's own generator (reseeded per epoch) seeds its workers, so creating an iterator never
    # draws from the global RNG that a resumed run restores.
    generator = torch.Generator()
    loader = DataLoader(samples, batch_size=t.batch_size, sampler=sampler, generator=generator,
                        num_workers=loader_workers(t.num_workers), collate_fn=collate_skip_broken, drop_last=True,
                        pin_memory=pin_memory, persistent_workers=False)
    steps_per_epoch = sampler.per_epoch // t.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"training.batch_size {t.batch_size} is larger than this rank's share of the "
                          f"{len(train_ds)} training samples; lower the batch size")
    return TrainLoader(samples, sampler, generator, loader, steps_per_epoch)


def depth_val_loader(cfg: Config) -> Optional[DataLoader]:
    """Loader of the val split for depth validation, or None when validation is off, the split has no depth
    ground truth, or it cannot be built (a warning: validation is optional during training)."""
    from vfdepth_core.datasets import build_dataset, collate_skip_broken

    t = cfg.training
    if not ((t.val_every_epochs or t.val_every_steps) and "gt_depth" in cfg.data.val_requirements):
        return None
    try:
        val_ds = build_dataset(cfg, "val", skip_broken=True)
        if len(val_ds):
            return DataLoader(val_ds, batch_size=cfg.eval.eval_batch_size, shuffle=False,
                              num_workers=loader_workers(min(cfg.eval.eval_num_workers, t.num_workers)),
                              collate_fn=collate_skip_broken)
    except Exception as exc:  # noqa: BLE001 - validation is optional during training
        logger.warning("no validation during training: %s", exc)
    return None


def motion_val_loader(cfg: Config) -> Optional[DataLoader]:
    """Loader of the val split with each sample's previous frame (ego-motion validation), or None."""
    from vfdepth_core.datasets import build_dataset, collate_skip_broken
    from vfdepth_core.odometry import MOTION_FRAME_IDS

    try:
        ds = build_dataset(with_overrides(cfg, ["data.val_requirements=(gt_pose, mask)"]), "val",
                           frame_ids=MOTION_FRAME_IDS, skip_broken=True)
    except Exception as exc:  # noqa: BLE001 - validation is optional during training
        logger.warning("no ego-motion validation during training: %s", exc)
        return None
    if not len(ds):
        return None
    return DataLoader(ds, batch_size=cfg.eval.eval_batch_size, shuffle=False, collate_fn=collate_skip_broken)

