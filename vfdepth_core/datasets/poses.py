"""Poses in dataset files: DGP quaternion + translation records <-> 4x4 matrices, numpy transform helpers."""

from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

from vfdepth_core import geometry


def quat_pose_to_matrix(rotation: dict, translation: dict) -> np.ndarray:
    """DGP-style pose {qw,qx,qy,qz} + {x,y,z} -> 4x4 float64 (T_parent_child)."""
    q = torch.tensor([rotation["qw"], rotation["qx"], rotation["qy"], rotation["qz"]], dtype=torch.float64)
    t = torch.tensor([translation["x"], translation["y"], translation["z"]], dtype=torch.float64)
    return geometry.make_transform(geometry.quat_to_rotmat(q), t).numpy()


def matrix_to_quat_pose(T: np.ndarray) -> Tuple[dict, dict]:
    """4x4 -> DGP-style ({qw,qx,qy,qz}, {x,y,z})."""
    q = geometry.rotmat_to_quat(torch.from_numpy(np.asarray(T, dtype=np.float64)[:3, :3])).tolist()
    t = np.asarray(T, dtype=np.float64)[:3, 3].tolist()
    return ({"qw": q[0], "qx": q[1], "qy": q[2], "qz": q[3]}, {"x": t[0], "y": t[1], "z": t[2]})


def transform_np(T_b_a: np.ndarray, p_a: np.ndarray) -> np.ndarray:
    """Apply a 4x4 to points (P, 3) with the geometry module; returns (P, 3) float64."""
    p = torch.from_numpy(np.ascontiguousarray(p_a[:, :3], dtype=np.float64).T)
    return geometry.transform_points(torch.from_numpy(np.asarray(T_b_a, dtype=np.float64)), p).T.numpy()


def invert_np(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 (float64) via the geometry module."""
    return geometry.invert_transform(torch.from_numpy(np.asarray(T, dtype=np.float64))).numpy()
