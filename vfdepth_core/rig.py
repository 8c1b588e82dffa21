"""The camera rig as one value: camera names, intrinsics at each camera's own image size, extrinsics.

Equal calibration compares equal (``==``, hashable), so "has the rig changed?" is one comparison on
the host wherever it is asked (the :class:`vfdepth_core.inference.Predictor` keeps its device copies
of the rig while the rig stays equal). Frames and conventions: :mod:`vfdepth_core.geometry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch
from torch import Tensor

from vfdepth_core import geometry
from vfdepth_core.geometry import ShapeError


@dataclass(frozen=True, eq=False)
class Rig:
    """cameras (N names); K (N, 3, 3) for an image of image_hw[i] = (H, W); T_ego_cam (N, 4, 4) camera ->
    vehicle. K and T_ego_cam (numpy or torch) are stored as float64 CPU tensor copies (do not modify them)."""

    cameras: Tuple[str, ...]
    K: Tensor
    T_ego_cam: Tensor
    image_hw: Tuple[Tuple[int, int], ...]

    def __post_init__(self) -> None:
        N = len(self.cameras)
        K, T = (torch.tensor(np.asarray(x, dtype=np.float64)) for x in (self.K, self.T_ego_cam))
        hw = tuple((int(h), int(w)) for h, w in self.image_hw)
        for name, x, want in (("K", K, (N, 3, 3)), ("T_ego_cam", T, (N, 4, 4))):
            if tuple(x.shape) != want:
                raise ShapeError(f"Rig.{name} must have shape {want} for {N} cameras, got {tuple(x.shape)}")
        if len(hw) != N:
            raise ShapeError(f"Rig.image_hw must give (H, W) for each of the {N} cameras, got {len(hw)}")
        for name, v in (("cameras", tuple(map(str, self.cameras))), ("K", K), ("T_ego_cam", T), ("image_hw", hw)):
            object.__setattr__(self, name, v)

    def _key(self) -> tuple:
        return self.cameras, self.image_hw, self.K.numpy().tobytes(), self.T_ego_cam.numpy().tobytes()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rig) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def resized(self, hw: Tuple[int, int]) -> "Rig":
        """The rig with every camera's image resized to hw = (H', W') (K scaled half-pixel correct)."""
        K = geometry.resize_intrinsics_each(self.K, self.image_hw, tuple(hw))
        return Rig(self.cameras, K, self.T_ego_cam, (tuple(hw),) * len(self.cameras))


__all__ = ["Rig"]
