"""Test helpers for the model area: a small surround rig, a tiny config, and an analytic textured room
rendered exactly (image + depth) so warps can be checked against ground truth."""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from vfdepth_core import geometry as geo
from vfdepth_core.config import Config, config_from_dict

SIX_YAWS_DEG = (0.0, 60.0, -60.0, 120.0, -120.0, 180.0)  # front, front-left, front-right, back-left, back-right, back
THREE_YAWS_DEG = (0.0, 60.0, -60.0)

# OpenCV camera axes expressed in the vehicle frame for a camera looking forward along +x:
# x_cam -> -y_ego, y_cam -> -z_ego, z_cam -> +x_ego.
_R_EGO_CAM_FWD = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]], dtype=torch.float64)


def make_rig(yaws_deg: Sequence[float] = SIX_YAWS_DEG, H: int = 64, W: int = 96, hfov_deg: float = 100.0,
             height_m: float = 1.5, radius_m: float = 1.0) -> Tuple[Tensor, Tensor]:
    """K (N, 3, 3) at H x W and T_ego_cam (N, 4, 4) float64 of cameras on a ring, each yawed about z."""
    fx = (W / 2) / math.tan(math.radians(hfov_deg) / 2)
    Ks, Ts = [], []
    for yaw in yaws_deg:
        Rz = geo.euler_to_rotmat(0.0, 0.0, yaw, degrees=True)
        R = Rz @ _R_EGO_CAM_FWD
        y = math.radians(yaw)
        t = torch.tensor([radius_m * math.cos(y), radius_m * math.sin(y), height_m], dtype=torch.float64)
        Ks.append(geo.intrinsics_matrix(fx, fx, (W - 1) / 2, (H - 1) / 2))
        Ts.append(geo.make_transform(R, t))
    return torch.stack(Ks), torch.stack(Ts)


def tiny_config(num_cams: int = 6, H: int = 64, W: int = 96, **overrides) -> Config:
    """A small CPU config: small voxel grid, few depth bins, narrow fusion features."""
    tree = {
        "model": {"voxel_size": [20, 20, 8], "voxel_unit_size": [2.0, 2.0, 1.0], "voxel_str_p": [-20.0, -20.0, -2.0],
                  "proj_d_bins": 4, "proj_d_str": 2.0, "proj_d_end": 20.0, "fusion_feat_in_dim": 32,
                  "voxel_pre_dim": [8], "weights_init": False},
        "data": {"cameras": [f"cam{i}" for i in range(num_cams)], "dataset": "synthetic"},
        "training": {"height": H, "width": W, "min_depth": 0.5, "max_depth": 80.0},
    }
    for dotted, value in overrides.items():
        section, key = dotted.split("__")
        tree.setdefault(section, {})[key] = value
    return config_from_dict(tree, "<tiny_config>")


# ---- analytic scene: the inside of a textured box room ------------------------------------------------

ROOM_MIN = (-12.0, -9.0, 0.0)
ROOM_MAX = (14.0, 10.0, 5.0)


def texture(p_world: Tensor) -> Tensor:
    """Smooth colour (*, 3, P) in [0.1, 0.9] of world points (*, 3, P): sums of sinusoids per channel."""
    x, y, z = p_world.unbind(-2)
    r = 0.5 + 0.2 * torch.sin(1.3 * x + 0.4 * z) * torch.cos(1.1 * y) + 0.15 * torch.sin(2.1 * (x + y + z))
    g = 0.5 + 0.2 * torch.cos(0.9 * y - 1.2 * z) * torch.sin(1.7 * x) + 0.15 * torch.cos(2.3 * (x - y))
    b = 0.5 + 0.2 * torch.sin(1.9 * z + 0.7 * x) * torch.cos(1.4 * y + 0.3 * x) + 0.15 * torch.sin(2.6 * (y - z))
    return torch.stack([r, g, b], -2).clamp(0.1, 0.9)


def render(K: Tensor, T_world_cam: Tensor, H: int, W: int) -> Tuple[Tensor, Tensor]:
    """Exact image (N, 3, H, W) and z-depth (N, 1, H, W) of cameras inside the room (float64 math)."""
    K = K.double()
    T = T_world_cam.double()
    N = K.shape[0]
    ones = torch.ones(N, 1, H, W, dtype=torch.float64)
    rays_cam = geo.backproject(ones, torch.linalg.inv(K))  # (N, 3, HW), z = 1
    d = T[:, :3, :3] @ rays_cam  # direction in world per unit of z-depth
    o = T[:, :3, 3:]  # (N, 3, 1)
    best = torch.full((N, H * W), float("inf"), dtype=torch.float64)
    for axis in range(3):
        for c in (ROOM_MIN[axis], ROOM_MAX[axis]):
            s = (c - o[:, axis]) / d[:, axis]
            s = torch.where(s > 1e-6, s, torch.full_like(s, float("inf")))
            best = torch.minimum(best, s)
    p = o + d * best[:, None]
    img = texture(p).reshape(N, 3, H, W)
    return img.float(), best.reshape(N, 1, H, W).float()


def ego_pose(x: float = 0.0, y: float = 0.0, yaw_deg: float = 0.0) -> Tensor:
    """T_world_ego (4, 4) float64 for a vehicle at (x, y) on the floor, yawed."""
    R = geo.euler_to_rotmat(0.0, 0.0, yaw_deg, degrees=True)
    return geo.make_transform(R, torch.tensor([x, y, 0.0], dtype=torch.float64))


def make_batch(num_cams: int = 6, H: int = 64, W: int = 96, batch: int = 1,
               motions: Sequence[Tuple[float, float, float]] = ((0.0, 0.0, 0.0), (-0.5, 0.0, -2.0), (0.6, 0.05, 3.0)),
               frame_ids: Sequence[int] = (0, -1, 1), mask: Optional[Tensor] = None) -> dict:
    """A collated batch (ARCHITECTURE sample dict + batch dim) of the room seen by the rig, with depth_gt."""
    yaws = SIX_YAWS_DEG if num_cams == 6 else THREE_YAWS_DEG[:num_cams]
    K, T_ego_cam = make_rig(yaws, H, W)
    frames, depth0, poses = [], None, []
    for (x, y, yaw) in motions[: len(frame_ids)]:
        T_we = ego_pose(x, y, yaw)
        img, depth = render(K, T_we[None] @ T_ego_cam, H, W)
        frames.append(img)
        poses.append(T_we)
        if depth0 is None:
            depth0 = depth
    image = torch.stack(frames)  # (F, N, 3, H, W)
    sample = {
        "image": image, "image_aug": image.clone(), "K": K.float(), "T_ego_cam": T_ego_cam.float(),
        "mask": torch.ones(num_cams, 1, H, W) if mask is None else mask, "depth_gt": depth0,
        "T_world_ego": torch.stack(poses),
    }
    return {k: torch.stack([v] * batch) for k, v in sample.items()}
