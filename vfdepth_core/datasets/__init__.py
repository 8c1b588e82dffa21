"""Surround-view datasets: DDAD (DGP format), nuScenes, and the project's synthetic world.

Every loader returns the sample dict of docs/ARCHITECTURE.md (see :mod:`vfdepth_core.datasets.common`).

    ds = build_dataset(cfg, "train")            # cfg: vfdepth_core.config.Config
    loader = DataLoader(ds, batch_size=2, collate_fn=collate_skip_broken)

``data.dataset``: ``ddad`` -> :class:`~vfdepth_core.datasets.ddad.DDADDataset` on ``data.data_path``
(ddad.json); ``nuscenes`` -> :class:`~vfdepth_core.datasets.nuscenes.NuScenesDataset` on the dataroot
``data.data_path`` with ``data.version``; ``synthetic`` -> a drive made by ``vfdepth synth`` in DDAD layout
(``data.data_path`` = its ddad.json), with the synthetic rig's self-occlusion masks from ``<root>/masks``
unless ``data.mask_path`` says otherwise.

Train split: ``training.frame_ids`` with colour jitter; val/test: frame 0 only (every sample, also those
without neighbours), no jitter; LIDAR depth when the split's requirements name ``gt_depth``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from vfdepth_core.datasets.common import (DatasetError, Problem, SurroundDataset, collate_skip_broken)

__all__ = ["DatasetError", "Problem", "SurroundDataset", "build_dataset", "collate_skip_broken", "check_dataset"]


def build_dataset(cfg, split: str, frame_ids: Optional[Sequence[int]] = None, skip_broken: bool = False) -> SurroundDataset:
    """The dataset named by ``cfg.data.dataset`` for `split` ('train', 'val' or 'test')."""
    kind = cfg.data.dataset
    if kind == "ddad":
        from vfdepth_core.datasets.ddad import ddad_from_config

        return ddad_from_config(cfg, split, frame_ids=frame_ids, skip_broken=skip_broken)
    if kind == "synthetic":
        from vfdepth_core.datasets.ddad import ddad_from_config

        mask_path = cfg.data.mask_path
        if mask_path is None:
            cand = Path(cfg.data.data_path).parent / "masks"
            mask_path = str(cand) if cand.is_dir() else None
        return ddad_from_config(cfg, split, frame_ids=frame_ids, mask_path=mask_path, skip_broken=skip_broken)
    if kind == "nuscenes":
        from vfdepth_core.datasets.nuscenes import nuscenes_from_config

        return nuscenes_from_config(cfg, split, frame_ids=frame_ids, skip_broken=skip_broken)
    raise DatasetError(f"unknown data.dataset '{kind}' (use ddad, nuscenes or synthetic)")


def check_dataset(cfg, splits: Sequence[str] = ("train", "val"), check_pixels: bool = True) -> list:
    """Every broken sample of the configured dataset, as a list of Problem (empty = all readable).
    Structural errors (missing dataset file, calibration, camera folder) still raise DatasetError."""
    problems = []
    for split in splits:
        problems += build_dataset(cfg, split).scan(check_pixels=check_pixels)
    return problems
