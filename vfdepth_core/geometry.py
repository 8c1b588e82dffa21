"""All of vfdepth's projection, back-projection, transform and voxel-grid math, in one place.

Frames
------
* Camera frame: OpenCV, x right, y down, z forward (metres).
* Vehicle frame ("ego", ROS ``base_link``): DDAD, x forward, y left, z up (metres).
* Transforms are 4x4 homogeneous matrices named ``T_<to>_<from>``: ``p_ego = T_ego_cam @ p_cam``,
  ``T_cam1_cam0 = T_cam1_ego @ T_ego_cam0``. Subscripts cancel when chained.
* Temporal motion: ``T_src_tgt`` maps points of the target (current) camera into the source (context)
  camera; a view-synthesis warp samples the source image at ``project(K_src, T_src_tgt @ p_tgt)``.

Pixels
------
Pixel centres sit at integer coordinates (u to the right, v down). Pixel coordinates are normalised
for ``grid_sample`` by ``2 u / (W - 1) - 1`` with ``align_corners=True``. Intrinsics are scaled to a
resized image with the half-pixel-correct rule ``c' = (c + 0.5) s - 0.5``, ``f' = f s``.

Shapes
------
Points are channel-first, ``(*, 3, P)``; any leading dims broadcast. Matrices are ``(*, 3, 3)`` or
``(*, 4, 4)``. Nothing here bakes in batch size, device or dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


class ShapeError(ValueError):
    """A tensor given to a public entry point has the wrong shape; the message names the argument."""


def check_shape(name: str, x: Tensor, tail: Sequence[Optional[int]], min_dims: Optional[int] = None) -> None:
    """Raise ShapeError unless `x` ends with `tail` (None matches any size)."""
    if not isinstance(x, Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    tail = tuple(tail)
    need = len(tail) if min_dims is None else max(min_dims, len(tail))
    ok = x.dim() >= need and all(t is None or s == t for s, t in zip(x.shape[x.dim() - len(tail):], tail))
    if not ok:
        want = "(*, " + ", ".join("?" if t is None else str(t) for t in tail) + ")"
        raise ShapeError(f"{name} must have shape {want}, got {tuple(x.shape)}")


def check_finite(name: str, x: Tensor) -> None:
    """Raise ValueError naming `name` if `x` holds NaN or inf."""
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf values")


# --------------------------------------------------------------------------------------------------
# Homogeneous transforms


def make_transform(R: Tensor, t: Tensor) -> Tensor:
    """4x4 transform from rotation (*, 3, 3) and translation (*, 3)."""
    check_shape("R", R, (3, 3))
    check_shape("t", t, (3,))
    lead = torch.broadcast_shapes(R.shape[:-2], t.shape[:-1])
    T = torch.zeros(*lead, 4, 4, dtype=R.dtype, device=R.device)
    T[..., :3, :3] = R
    T[..., :3, 3] = t
    T[..., 3, 3] = 1.0
    return T


def invert_transform(T: Tensor) -> Tensor:
    """Inverse of rigid transforms (*, 4, 4): T_a_b -> T_b_a, using R^T (exact for rotations)."""
    check_shape("T", T, (4, 4))
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    Rt = R.transpose(-1, -2)
    out = torch.zeros_like(T)
    out[..., :3, :3] = Rt
    out[..., :3, 3:] = -Rt @ t
    out[..., 3, 3] = 1.0
    return out


def compose(*Ts: Tensor) -> Tensor:
    """Chain transforms left to right: compose(T_a_b, T_b_c) = T_a_c."""
    out = Ts[0]
    for T in Ts[1:]:
        out = out @ T
    return out


def transform_points(T_b_a: Tensor, p_a: Tensor) -> Tensor:
    """Apply T_b_a (*, 4, 4) to points p_a (*, 3, P); returns p_b (*, 3, P)."""
    check_shape("T_b_a", T_b_a, (4, 4))
    check_shape("p_a", p_a, (3, None))
    return T_b_a[..., :3, :3] @ p_a + T_b_a[..., :3, 3:]


# --------------------------------------------------------------------------------------------------
# Rotations


def quat_to_rotmat(q_wxyz: Tensor) -> Tensor:
    """Unit quaternion (*, 4) ordered (w, x, y, z) -> rotation matrix (*, 3, 3). Normalises first."""
    check_shape("q_wxyz", q_wxyz, (4,))
    q = q_wxyz / q_wxyz.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    R = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    )
    return R.reshape(*q.shape[:-1], 3, 3)


def rotmat_to_quat(R: Tensor) -> Tensor:
    """Rotation matrix (*, 3, 3) -> unit quaternion (*, 4) as (w, x, y, z) with w >= 0."""
    check_shape("R", R, (3, 3))
    m = R
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    cands = torch.stack(
        [
            1 + trace,
            1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
            1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
            1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2],
        ],
        dim=-1,
    )
    best = cands.argmax(dim=-1, keepdim=True)
    s = torch.sqrt(cands.clamp_min(1e-12))  # 2 * |component|
    w = torch.stack(
        [
            s[..., 0] / 2,
            (m[..., 2, 1] - m[..., 1, 2]) / (2 * s[..., 1]),
            (m[..., 0, 2] - m[..., 2, 0]) / (2 * s[..., 2]),
            (m[..., 1, 0] - m[..., 0, 1]) / (2 * s[..., 3]),
        ],
        dim=-1,
    )
    x = torch.stack(
        [
            (m[..., 2, 1] - m[..., 1, 2]) / (2 * s[..., 0]),
            s[..., 1] / 2,
            (m[..., 0, 1] + m[..., 1, 0]) / (2 * s[..., 2]),
            (m[..., 0, 2] + m[..., 2, 0]) / (2 * s[..., 3]),
        ],
        dim=-1,
    )
    y = torch.stack(
        [
            (m[..., 0, 2] - m[..., 2, 0]) / (2 * s[..., 0]),
            (m[..., 0, 1] + m[..., 1, 0]) / (2 * s[..., 1]),
            s[..., 2] / 2,
            (m[..., 1, 2] + m[..., 2, 1]) / (2 * s[..., 3]),
        ],
        dim=-1,
    )
    z = torch.stack(
        [
            (m[..., 1, 0] - m[..., 0, 1]) / (2 * s[..., 0]),
            (m[..., 0, 2] + m[..., 2, 0]) / (2 * s[..., 1]),
            (m[..., 1, 2] + m[..., 2, 1]) / (2 * s[..., 2]),
            s[..., 3] / 2,
        ],
        dim=-1,
    )
    q = torch.stack([c.gather(-1, best).squeeze(-1) for c in (w, x, y, z)], dim=-1)
    q = q * torch.where(q[..., :1] < 0, -1.0, 1.0).to(q.dtype)
    return q / q.norm(dim=-1, keepdim=True)


def _skew(v: Tensor) -> Tensor:
    """Cross-product matrix (*, 3, 3) of vectors (*, 3)."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape[:-1], 3, 3)


def axis_angle_to_rotmat(rotvec: Tensor) -> Tensor:
    """Axis-angle vector (*, 3) in RADIANS (direction = axis, norm = angle) -> rotation (*, 3, 3).

    Rodrigues' formula with a Taylor expansion near zero, so it is smooth (and differentiable) at 0.
    """
    check_shape("rotvec", rotvec, (3,))
    theta2 = (rotvec * rotvec).sum(-1, keepdim=True).unsqueeze(-1)  # (*, 1, 1)
    theta = torch.sqrt(theta2.clamp_min(1e-24))
    small = theta2 < 1e-8
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-24))
    K = _skew(rotvec)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device).expand_as(K)
    return eye + a * K + b * (K @ K)


def rotmat_to_axis_angle(R: Tensor) -> Tensor:
    """Rotation (*, 3, 3) -> axis-angle vector (*, 3) in radians (via the quaternion, stable near pi)."""
    q = rotmat_to_quat(R)
    w = q[..., :1].clamp(-1.0, 1.0)
    v = q[..., 1:]
    sin_half = v.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(sin_half, w)
    scale = torch.where(sin_half < 1e-8, 2.0 / w.clamp_min(1e-8), angle / sin_half.clamp_min(1e-12))
    return v * scale


def euler_to_rotmat(roll: Tensor | float, pitch: Tensor | float, yaw: Tensor | float, degrees: bool = True) -> Tensor:
    """Rotation (*, 3, 3) = Rz(yaw) @ Ry(pitch) @ Rx(roll) about the vehicle axes (x fwd, y left, z up).

    Angles are in DEGREES by default (the paper's `aug_angle` is in degrees; its released code fed them
    to a routine that expects radians).
    """
    r, p, y = (torch.as_tensor(a, dtype=torch.float64) if not isinstance(a, Tensor) else a for a in (roll, pitch, yaw))
    r, p, y = torch.broadcast_tensors(r, p, y)
    if degrees:
        r, p, y = (a * (math.pi / 180.0) for a in (r, p, y))
    cr, sr, cp, sp, cy, sy = torch.cos(r), torch.sin(r), torch.cos(p), torch.sin(p), torch.cos(y), torch.sin(y)
    one, zero = torch.ones_like(r), torch.zeros_like(r)
    Rx = torch.stack([one, zero, zero, zero, cr, -sr, zero, sr, cr], -1).reshape(*r.shape, 3, 3)
    Ry = torch.stack([cp, zero, sp, zero, one, zero, -sp, zero, cp], -1).reshape(*r.shape, 3, 3)
    Rz = torch.stack([cy, -sy, zero, sy, cy, zero, zero, zero, one], -1).reshape(*r.shape, 3, 3)
    return Rz @ Ry @ Rx


# OpenCV optical axes (x right, y down, z forward) in a body frame with x forward, y left, z up (ROS REP 103):
# the rotation T_body_optical of a camera whose body has roll = pitch = yaw = 0 (it looks along body +x).
R_BODY_OPTICAL = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]], dtype=torch.float64)


def mounted_camera_pose(x: float, y: float, z: float, roll: float, pitch: float, yaw: float,
                        degrees: bool = True) -> Tensor:
    """T_ego_cam (4, 4) float64 of the optical frame of a camera whose body sits at (x, y, z) in the vehicle
    frame, turned by roll/pitch/yaw (euler_to_rotmat); all angles zero looks along the vehicle's +x."""
    R = euler_to_rotmat(float(roll), float(pitch), float(yaw), degrees=degrees).double() @ R_BODY_OPTICAL
    return make_transform(R, torch.tensor([float(x), float(y), float(z)], dtype=torch.float64))


def pose_vec_to_transform(axis_angle: Tensor, translation: Tensor) -> Tensor:
    """(*, 3) axis-angle (rad) + (*, 3) translation (m) -> T (*, 4, 4) = [R | t]."""
    return make_transform(axis_angle_to_rotmat(axis_angle), translation)


# --------------------------------------------------------------------------------------------------
# Intrinsics, pixels, projection


def intrinsics_matrix(fx: Tensor | float, fy: Tensor | float, cx: Tensor | float, cy: Tensor | float,
                      skew: Tensor | float = 0.0) -> Tensor:
    """Pinhole K (*, 3, 3) from its entries (scalars or tensors of one shape)."""
    fx, fy, cx, cy, skew = torch.broadcast_tensors(
        *(torch.as_tensor(v, dtype=torch.float64) if not isinstance(v, Tensor) else v for v in (fx, fy, cx, cy, skew))
    )
    o, z = torch.ones_like(fx), torch.zeros_like(fx)
    return torch.stack([fx, skew, cx, z, fy, cy, z, z, o], -1).reshape(*fx.shape, 3, 3)


def scale_intrinsics(K: Tensor, sx: float | Tensor, sy: float | Tensor, half_pixel: bool = True) -> Tensor:
    """K (*, 3, 3) for an image resized by (sx, sy) = (W'/W, H'/H), half-pixel correct:
    f' = f s, c' = (c + 0.5) s - 0.5.

    half_pixel=False scales plainly, c' = c s: the released VFDepth code's rule for its 1/8-scale
    intrinsics (``model.feature_intrinsics: plain``, for imported checkpoints only).
    """
    check_shape("K", K, (3, 3))
    shift = 0.5 if half_pixel else 0.0
    K2 = K.clone()
    K2[..., 0, 0] = K[..., 0, 0] * sx
    K2[..., 0, 1] = K[..., 0, 1] * sx
    K2[..., 0, 2] = (K[..., 0, 2] + shift) * sx - shift
    K2[..., 1, 1] = K[..., 1, 1] * sy
    K2[..., 1, 2] = (K[..., 1, 2] + shift) * sy - shift
    return K2


def resize_intrinsics(K: Tensor, src_hw: Tuple[int, int], dst_hw: Tuple[int, int], half_pixel: bool = True) -> Tensor:
    """K for an image resized from src (H, W) to dst (H', W') (half_pixel: see :func:`scale_intrinsics`)."""
    return scale_intrinsics(K, dst_hw[1] / src_hw[1], dst_hw[0] / src_hw[0], half_pixel)


def resize_intrinsics_each(K: Tensor, src_hws: Sequence[Tuple[int, int]], dst_hw: Tuple[int, int]) -> Tensor:
    """K (*, N, 3, 3) of N cameras whose images, camera i's of size src_hws[i], are all resized to dst_hw."""
    hw = torch.as_tensor(src_hws, dtype=K.dtype, device=K.device).reshape(-1, 2)  # (N, 2)
    return scale_intrinsics(K, dst_hw[1] / hw[:, 1], dst_hw[0] / hw[:, 0])


def crop_intrinsics(K: Tensor, top: float, left: float) -> Tensor:
    """K (*, 3, 3) for the crop whose top-left pixel was (left, top) in the original image."""
    K2 = K.clone()
    K2[..., 0, 2] = K[..., 0, 2] - left
    K2[..., 1, 2] = K[..., 1, 2] - top
    return K2


def pixel_grid(H: int, W: int, device=None, dtype=torch.float32) -> Tensor:
    """Homogeneous pixel coordinates (3, H*W): rows (u, v, 1), row-major over the image."""
    v, u = torch.meshgrid(
        torch.arange(H, device=device, dtype=dtype), torch.arange(W, device=device, dtype=dtype), indexing="ij"
    )
    return torch.stack([u.reshape(-1), v.reshape(-1), torch.ones(H * W, device=device, dtype=dtype)], 0)


def backproject(depth: Tensor, K_inv: Tensor) -> Tensor:
    """Depth (*, 1, H, W) along the optical axis (z, metres) + K^-1 (*, 3, 3) -> points (*, 3, H*W)
    in the camera frame."""
    check_shape("depth", depth, (1, None, None))
    check_shape("K_inv", K_inv, (3, 3))
    H, W = depth.shape[-2:]
    pix = pixel_grid(H, W, device=depth.device, dtype=depth.dtype)
    rays = K_inv.to(depth.dtype) @ pix  # (*, 3, HW)
    return rays * depth.reshape(*depth.shape[:-3], 1, H * W)


def project(K: Tensor, p_cam: Tensor, eps: float = 1e-6) -> Tuple[Tensor, Tensor]:
    """Points (*, 3, P) in a camera frame -> pixels uv (*, 2, P) and depth z (*, 1, P).

    Points behind the camera (z <= eps) get finite but meaningless uv; use ``z > eps`` as validity.
    """
    check_shape("K", K, (3, 3))
    check_shape("p_cam", p_cam, (3, None))
    pix = K.to(p_cam.dtype) @ p_cam
    z = pix[..., 2:3, :]
    uv = pix[..., :2, :] / z.clamp_min(eps)
    return uv, p_cam[..., 2:3, :]


def normalize_pixels(uv: Tensor, H: int, W: int) -> Tensor:
    """Pixels (*, 2, P) -> grid_sample coordinates (*, P, 2) in [-1, 1], align_corners=True."""
    check_shape("uv", uv, (2, None))
    x = uv[..., 0, :] * (2.0 / max(W - 1, 1)) - 1.0
    y = uv[..., 1, :] * (2.0 / max(H - 1, 1)) - 1.0
    return torch.stack([x, y], dim=-1)


def in_image(uv: Tensor, z: Tensor, H: int, W: int, eps: float = 1e-3, margin_px: float = 1e-3) -> Tensor:
    """Validity (*, P) bool: in front of the camera (z > eps) and inside [0, W-1] x [0, H-1].

    `margin_px` absorbs round-off (K^-1 then K puts a border pixel at W-1+1e-12): border pixels stay valid.
    """
    u, v = uv[..., 0, :], uv[..., 1, :]
    m = margin_px
    return (z[..., 0, :] > eps) & (u >= -m) & (u <= W - 1 + m) & (v >= -m) & (v <= H - 1 + m)


def sample_image(img: Tensor, grid: Tensor, mode: str = "bilinear", padding_mode: str = "zeros") -> Tensor:
    """grid_sample with the project's pixel convention: img (B, C, H, W), grid (B, h, w, 2) in [-1, 1]."""
    return F.grid_sample(img, grid.to(img.dtype), mode=mode, padding_mode=padding_mode, align_corners=True)


def reprojection_grid(depth_tgt: Tensor, K_tgt_inv: Tensor, K_src: Tensor, T_src_tgt: Tensor,
                      src_hw: Optional[Tuple[int, int]] = None) -> Tuple[Tensor, Tensor]:
    """Where each target pixel lands in the source image.

    depth_tgt (B, 1, H, W) metres; K_tgt_inv, K_src (B, 3, 3); T_src_tgt (B, 4, 4).
    Returns grid (B, H, W, 2) for :func:`sample_image` and valid (B, 1, H, W) bool (in front, in image).
    """
    check_shape("depth_tgt", depth_tgt, (1, None, None), min_dims=4)
    B, _, H, W = depth_tgt.shape
    hs, ws = src_hw if src_hw is not None else (H, W)
    p_tgt = backproject(depth_tgt, K_tgt_inv)
    p_src = transform_points(T_src_tgt.to(p_tgt.dtype), p_tgt)
    uv, z = project(K_src, p_src)
    valid = in_image(uv, z, hs, ws).reshape(B, 1, H, W)
    grid = normalize_pixels(uv, hs, ws).reshape(B, H, W, 2)
    return grid, valid


def warp_image(src: Tensor, depth_tgt: Tensor, K_tgt: Tensor, K_src: Tensor, T_src_tgt: Tensor) -> Tuple[Tensor, Tensor]:
    """View synthesis: the source image (B, C, Hs, Ws) seen from the target camera.

    Returns the warped image (B, C, H, W) and its validity mask (B, 1, H, W) float.
    """
    check_shape("src", src, (None, None, None), min_dims=4)
    grid, valid = reprojection_grid(depth_tgt, torch.linalg.inv(K_tgt), K_src, T_src_tgt, src.shape[-2:])
    return sample_image(src, grid), valid.to(src.dtype)


# --------------------------------------------------------------------------------------------------
# Rig motion


def distribute_motion(T_c0src_c0tgt: Tensor, T_ego_cam: Tensor, ref_cam: int = 0) -> Tensor:
    """Spread one canonical motion of the reference camera to every camera of a rigid rig.

    T_c0src_c0tgt (B, 4, 4): motion in the reference camera's frame; T_ego_cam (B, N, 4, 4).
    Returns T_csrc_ctgt (B, N, 4, 4) = T_c_ego T_ego_c0 T T_c0_ego T_ego_c
    (the paper's E_c^-1 E_0 T E_0^-1 E_c with E = camera->vehicle).
    """
    check_shape("T_c0src_c0tgt", T_c0src_c0tgt, (4, 4))
    check_shape("T_ego_cam", T_ego_cam, (None, 4, 4), min_dims=4)
    T_ego_c0 = T_ego_cam[:, ref_cam : ref_cam + 1]
    T_c0_ego = invert_transform(T_ego_c0)
    T_cam_ego = invert_transform(T_ego_cam)
    return T_cam_ego @ T_ego_c0 @ T_c0src_c0tgt[:, None] @ T_c0_ego @ T_ego_cam


def camera_motion_to_ego(T_c0src_c0tgt: Tensor, T_ego_c0: Tensor) -> Tensor:
    """Reference-camera motion (*, 4, 4) -> vehicle motion T_egosrc_egotgt (*, 4, 4)."""
    return T_ego_c0 @ T_c0src_c0tgt @ invert_transform(T_ego_c0)


def ego_motion_to_camera(T_egosrc_egotgt: Tensor, T_ego_cam: Tensor) -> Tensor:
    """Vehicle motion (*, 4, 4) -> the same motion seen in a camera frame T_csrc_ctgt (*, 4, 4)."""
    return invert_transform(T_ego_cam) @ T_egosrc_egotgt @ T_ego_cam


# --------------------------------------------------------------------------------------------------
# Voxel grid


@dataclass(frozen=True)
class VoxelGrid:
    """An axis-aligned voxel grid in the vehicle frame (the paper's voxel_size/unit/str_p).

    size: voxels along (x, y, z); unit_m: voxel edge lengths (m); start_m: the grid's minimum corner (m).
    Voxels are ordered with x slowest, z fastest: flat index = (ix * ny + iy) * nz + iz.
    center_offset: where voxel i's centre sits, in voxels from start_m: start + (i + center_offset) unit.
    0.5 (default) puts start_m on the grid's corner; the released VFDepth code puts its first centre on
    start_m (0.0, ``model.voxel_center_offset``, for imported checkpoints).
    """

    size: Tuple[int, int, int]
    unit_m: Tuple[float, float, float]
    start_m: Tuple[float, float, float]
    center_offset: float = 0.5

    @property
    def num_voxels(self) -> int:
        return self.size[0] * self.size[1] * self.size[2]

    def centers(self, device=None, dtype=torch.float32) -> Tensor:
        """Voxel centres (3, X*Y*Z) in metres, vehicle frame, in flat-index order."""
        axes = [
            torch.arange(n, device=device, dtype=dtype) * u + s + self.center_offset * u
            for n, u, s in zip(self.size, self.unit_m, self.start_m)
        ]
        gx, gy, gz = torch.meshgrid(*axes, indexing="ij")
        return torch.stack([gx.reshape(-1), gy.reshape(-1), gz.reshape(-1)], 0)

    def point_to_index(self, p_ego: Tensor) -> Tuple[Tensor, Tensor]:
        """Points (*, 3, P) -> integer voxel indices (*, 3, P) and inside mask (*, P)."""
        start = torch.tensor(self.start_m, dtype=p_ego.dtype, device=p_ego.device)[:, None]
        unit = torch.tensor(self.unit_m, dtype=p_ego.dtype, device=p_ego.device)[:, None]
        size = torch.tensor(self.size, device=p_ego.device)[:, None]
        idx = torch.floor((p_ego - start) / unit - self.center_offset + 0.5).long()
        inside = ((idx >= 0) & (idx < size)).all(dim=-2)
        return idx, inside

    def normalize(self, p_ego: Tensor) -> Tensor:
        """Points (*, 3, P) -> grid_sample coordinates (*, P, 3) ordered (z, y, x)->(W, H, D) for a volume
        laid out (C, X, Y, Z) viewed as (C, D=X, H=Y, W=Z), align_corners=True over voxel centres."""
        start = torch.tensor(self.start_m, dtype=p_ego.dtype, device=p_ego.device)[:, None]
        unit = torch.tensor(self.unit_m, dtype=p_ego.dtype, device=p_ego.device)[:, None]
        size = torch.tensor(self.size, dtype=p_ego.dtype, device=p_ego.device)[:, None]
        cont = (p_ego - start) / unit - self.center_offset  # continuous index of voxel centres
        n = 2.0 * cont / (size - 1).clamp_min(1) - 1.0  # (*, 3, P) in x, y, z
        return n.flip(-2).transpose(-1, -2)


__all__ = [name for name in dir() if not name.startswith("_") and name not in ("annotations", "math", "torch", "F",
                                                                               "Tensor", "dataclass", "Optional",
                                                                               "Sequence", "Tuple")]


# --------------------------------------------------------------------------------------------------
# Sparse depth images (added for the datasets: LIDAR -> per-camera depth ground truth)


def points_to_depth_image(K: Tensor, p_cam: Tensor, H: int, W: int, min_depth_m: float = 1e-3) -> Tensor:
    """Sparse depth image (H, W) from points p_cam (3, P) in a camera frame and K (3, 3) at H x W.

    Each point lands on its nearest pixel centre (round(u), round(v)); where several land on one pixel
    the nearest point wins. Pixels without a point are 0. Depth is z (metres along the optical axis).
    """
    check_shape("K", K, (3, 3))
    check_shape("p_cam", p_cam, (3, None))
    uv, z = project(K, p_cam)
    u = torch.round(uv[0])
    v = torch.round(uv[1])
    z = z[0]
    ok = (z > min_depth_m) & (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1) & torch.isfinite(z)
    flat = (v[ok] * W + u[ok]).long()
    out = torch.full((H * W,), float("inf"), dtype=p_cam.dtype, device=p_cam.device)
    out.scatter_reduce_(0, flat, z[ok], reduce="amin", include_self=True)
    out[torch.isinf(out)] = 0.0
    return out.reshape(H, W)


__all__.append("points_to_depth_image")


def fused_points(depth_m: Tensor, K: Tensor, T_ego_cam: Tensor, images: Tensor, decimation: int = 1,
                 max_depth_m: float = float("inf")) -> Tuple[Tensor, Tensor]:
    """All cameras' depth as one coloured cloud in the vehicle frame (float64 maths, on the host).

    depth_m (N, 1, H, W); K (N, 3, 3) at H x W; T_ego_cam (N, 4, 4); images (N, 3, H, W) float [0, 1];
    every `decimation`-th row and column; points with 0 < depth <= max_depth_m, camera by camera in
    row-major pixel order. Returns xyz (P, 3) float32 in the vehicle frame and rgb (P, 3) uint8."""
    depth_m = depth_m.detach().double().cpu()
    N, _, H, W = depth_m.shape
    p_cam = backproject(depth_m, torch.linalg.inv(K.detach().double().cpu()))  # (N, 3, H*W)
    p_ego = transform_points(T_ego_cam.detach().double().cpu(), p_cam)
    keep = torch.zeros(H, W, dtype=torch.bool)
    keep[::decimation, ::decimation] = True
    d = depth_m[:, 0]
    valid = (keep & torch.isfinite(d) & (d > 0) & (d <= max_depth_m)).reshape(N, H * W)
    rgb = (images.detach().float().cpu() * 255).round().clamp(0, 255).to(torch.uint8).flatten(2)  # (N, 3, H*W)
    return p_ego.transpose(1, 2)[valid].float(), rgb.transpose(1, 2)[valid]


__all__.append("fused_points")
