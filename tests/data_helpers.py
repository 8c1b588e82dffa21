"""Test-only helpers for the dataset tests: tiny synthetic drives (cached per process) written to disk."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import numpy as np

from vfdepth_core.config import DDAD_CAMERAS, NUSCENES_CAMERAS

DDAD_CAMS = list(DDAD_CAMERAS)
NUSC_CAMS = list(NUSCENES_CAMERAS)


@functools.lru_cache(maxsize=None)
def tiny_drive(rig: str, frames: int = 6, height: int = 64, width: int = 96, seed: int = 1):
    """A small rendered drive (cached: tests must not modify it)."""
    import torch

    from vfdepth_core.datasets.synthetic import make_drive

    torch.set_num_threads(1)
    return make_drive(rig, frames=frames, height=height, width=width, seed=seed)


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def relative_depth_error(sparse: np.ndarray, dense: np.ndarray) -> np.ndarray:
    """|sparse - dense| / dense at pixels where both are valid."""
    m = (sparse > 0) & (dense > 0)
    return np.abs(sparse[m] - dense[m]) / dense[m]
