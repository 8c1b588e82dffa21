"""The toy six-camera rig that the ROS tests, the node benchmark and the fault injection publish.

DDAD camera names; cameras 1 m out from the vehicle origin and 1.6 m up, yawed 0, 60, -60, 120, -120,
180 deg (front, front-left, front-right, back-left, back-right, back) and looking outwards; fx = fy = 0.8 W,
principal point at the image centre; textured frames whose pattern moves with the frame number.
numpy/torch only (no rclpy), so scripts can build inputs before they start ROS.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

from vfdepth_core import geometry
from vfdepth_core.config import DDAD_CAMERAS

CAMERAS = DDAD_CAMERAS
YAWS_DEG = (0.0, 60.0, -60.0, 120.0, -120.0, 180.0)
IMG_HW = (96, 144)


def rig_K(hw: Tuple[int, int] = IMG_HW) -> np.ndarray:
    """Intrinsics (3, 3) of every camera at image size hw = (H, W)."""
    H, W = hw
    return np.array([[0.8 * W, 0.0, (W - 1) / 2], [0.0, 0.8 * W, (H - 1) / 2], [0.0, 0.0, 1.0]])


def rig_extrinsics() -> List[np.ndarray]:
    """T_ego_cam (4, 4) float64 per camera, in CAMERAS order."""
    out = []
    for yaw in YAWS_DEG:
        a = np.deg2rad(yaw)
        out.append(geometry.mounted_camera_pose(np.cos(a), np.sin(a), 1.6, 0.0, 0.0, yaw).numpy())
    return out


def frame_image(k: int, c: int, hw: Tuple[int, int] = IMG_HW) -> np.ndarray:
    """Deterministic (H, W, 3) uint8 RGB image of camera c at frame k (a stripe pattern moving with k)."""
    H, W = hw
    yy, xx = np.mgrid[0:H, 0:W]
    r = (127 + 120 * np.sin((xx + 3 * k) / (4.0 + c))).astype(np.uint8)
    g = (127 + 120 * np.cos((yy + 2 * k) / 5.0)).astype(np.uint8)
    b = ((xx * 7 + yy * 3 + 40 * c) % 256).astype(np.uint8)
    return np.stack([r, g, b], axis=2)


def frame_images(k: int, hw: Tuple[int, int] = IMG_HW, n: int = 6) -> List[np.ndarray]:
    """frame_image of the first n cameras at frame k."""
    return [frame_image(k, c, hw) for c in range(n)]
