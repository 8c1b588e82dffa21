"""Photometric refinement of the canonical ego motion (beyond the paper: ``model.pose_refine_iterations``).

The pose network's motion is the starting point; the refinement then finds the rigid rig motion that best
warps the previous frame's six images onto the current ones through the current frame's predicted depth
(direct image alignment: robust Gauss-Newton / Levenberg-Marquardt on six parameters, coarse to fine).
The network is not run again: the cost is a few warps of the images per iteration.

Conventions: ``T_prev_cur`` is the reference camera's motion that maps current-frame points into the
previous frame (the ``T_src_tgt`` of the losses with target = current frame); the correction ``xi`` =
(axis-angle, translation) multiplies it from the left, in the reference camera's frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from vfdepth_core import geometry as geo

# Finite-difference steps of the Jacobian: radians for the rotation, metres for the translation.
FD_STEP = (1e-4, 1e-4, 1e-4, 1e-3, 1e-3, 1e-3)
HUBER_DELTA = 0.04  # intensity units ([0, 1] images): residuals beyond it count linearly (occlusions, movers)
MIN_VALID_FRACTION = 0.05  # fewer valid pixels than this: keep the network's motion


@dataclass
class RefineResult:
    """The refined motion (B, 4, 4), and the robust photometric cost before and after (finest level, (B,))."""

    T_prev_cur: Tensor
    cost_before: Tensor
    cost_after: Tensor


def _level(imgs: Tensor, depth: Tensor, K: Tensor, mask: Optional[Tensor], factor: int):
    """Images (M, C, H, W), depth (M, 1, H, W), K (M, 3, 3), mask -> the same at 1/factor (area resize)."""
    if factor == 1:
        return imgs, depth, K, mask
    H, W = imgs.shape[-2:]
    h, w = max(H // factor, 4), max(W // factor, 4)
    imgs = F.interpolate(imgs, size=(h, w), mode="area")
    depth = F.interpolate(depth, size=(h, w), mode="nearest")
    mask = F.interpolate(mask, size=(h, w), mode="area") if mask is not None else None
    return imgs, depth, geo.resize_intrinsics(K, (H, W), (h, w)), mask


class _Warp:
    """Residuals of one pyramid level: previous image warped into the current view minus the current one.

    The current frame's points are back-projected once; the images are compared in grey (the channel mean:
    sampling is linear, so this equals the mean over channels of the colour residuals)."""

    def __init__(self, cur: Tensor, prev: Tensor, depth: Tensor, K: Tensor, mask: Optional[Tensor],
                 T_ego_cam: Tensor):
        self.cur, self.prev = cur.mean(1, keepdim=True), prev.mean(1, keepdim=True)
        self.K = K
        self.points = geo.backproject(depth, torch.linalg.inv(K))  # (M, 3, H*W) in the current cameras
        self.hw = tuple(prev.shape[-2:])
        self.mask = (mask > 0.5).to(cur.dtype).reshape(len(cur), -1) if mask is not None else None
        self.T_ego_cam = T_ego_cam  # (B, N, 4, 4)
        self.B, self.N = T_ego_cam.shape[:2]

    def __call__(self, T_prev_cur: Tensor) -> Tuple[Tensor, Tensor]:
        """T (B, 4, 4) -> residuals (B, N*H*W) and validity weights (B, N*H*W)."""
        T_cams = geo.distribute_motion(T_prev_cur, self.T_ego_cam).flatten(0, 1)
        uv, z = geo.project(self.K, geo.transform_points(T_cams, self.points))
        H, W = self.hw
        v = geo.in_image(uv, z, H, W).to(self.cur.dtype).reshape(len(self.cur), -1)
        grid = geo.normalize_pixels(uv, H, W).reshape(len(self.cur), *self.cur.shape[-2:], 2)
        r = (geo.sample_image(self.prev, grid) - self.cur).reshape(len(self.cur), -1)
        if self.mask is not None:
            v = v * self.mask
        return r.reshape(self.B, -1), v.reshape(self.B, -1)


def _apply(xi: Tensor, T: Tensor) -> Tensor:
    return geo.pose_vec_to_transform(xi[:, :3], xi[:, 3:]) @ T


def _robust_cost(r: Tensor, v: Tensor) -> Tensor:
    """Mean Huber cost over valid pixels, (B,)."""
    a = r.abs()
    huber = torch.where(a <= HUBER_DELTA, 0.5 * a * a, HUBER_DELTA * (a - 0.5 * HUBER_DELTA))
    return (huber * v).sum(1) / v.sum(1).clamp_min(1.0)


def _gauss_newton(warp: _Warp, T: Tensor, iterations: int) -> Tensor:
    """Levenberg-Marquardt iterations on one level; returns the improved T (B, 4, 4)."""
    B = T.shape[0]
    lam = torch.full((B, 1, 1), 1e-3, dtype=T.dtype, device=T.device)
    steps = torch.tensor(FD_STEP, dtype=T.dtype, device=T.device)
    r, v = warp(T)
    cost = _robust_cost(r, v)
    for _ in range(iterations):
        eye = torch.eye(6, dtype=T.dtype, device=T.device)
        J = torch.stack([(warp(_apply((steps[k] * eye[k]).expand(B, 6), T))[0] - r) / steps[k] for k in range(6)],
                        -1)  # (B, P, 6)
        w = v * torch.clamp(HUBER_DELTA / r.abs().clamp_min(1e-12), max=1.0)  # IRLS Huber weights
        Jw = J * w[..., None]
        H = Jw.transpose(1, 2) @ J  # (B, 6, 6)
        g = (Jw * r[..., None]).sum(1)  # (B, 6)
        diag = torch.diagonal(H, dim1=1, dim2=2).clamp_min(1e-9)
        for _ in range(4):  # raise the damping until the step lowers the cost
            A = H + lam * torch.diag_embed(diag)
            xi = -torch.linalg.solve(A, g[..., None])[..., 0]
            T_new = _apply(xi, T)
            r_new, v_new = warp(T_new)
            cost_new = _robust_cost(r_new, v_new)
            better = (cost_new < cost) & (v_new.mean(1) >= MIN_VALID_FRACTION)
            keep = better[:, None, None]
            T = torch.where(keep, T_new, T)
            r = torch.where(better[:, None], r_new, r)
            v = torch.where(better[:, None], v_new, v)
            cost = torch.where(better, cost_new, cost)
            lam = torch.where(keep, lam * 0.3, lam * 10.0)
            if bool(better.all()):
                break
    return T


@torch.no_grad()
def refine_motion(T_prev_cur: Tensor, depth_cur: Tensor, images_prev: Tensor, images_cur: Tensor, K: Tensor,
                  T_ego_cam: Tensor, mask: Optional[Tensor] = None, iterations: int = 6, levels: int = 3,
                  max_width: int = 320, other_starts: Sequence[Tensor] = ()) -> RefineResult:
    """Refine the reference camera's motion T_prev_cur (B, 4, 4) by direct photometric alignment.

    depth_cur (B, N, 1, H, W) metres of the current frame; images (B, N, 3, H, W) in [0, 1] at the
    depth's size; K (B, N, 3, 3) for that size; T_ego_cam (B, N, 4, 4); mask (B, N, 1, H, W) 1 = valid
    pixel. Images wider than `max_width` are first shrunk by an integer factor; then `levels` pyramid
    levels (x4, x2, x1 of that for 3) get `iterations` Levenberg-Marquardt steps each. `other_starts`: more
    motions (B, 4, 4) to start from where one costs less than T_prev_cur on the coarsest level (e.g. no
    motion, when the network's motion is far off). A result whose cost at the finest level is not lower than
    the input's is replaced by the input, per item.
    """
    geo.check_shape("depth_cur", depth_cur, (None, 1, None, None), min_dims=5)
    B, N, _, H, W = depth_cur.shape
    dt = torch.float32
    T0 = T_prev_cur.to(dt)
    cur = images_cur.to(dt).flatten(0, 1)
    prev = images_prev.to(dt).flatten(0, 1)
    depth = depth_cur.to(dt).flatten(0, 1)
    Km = K.to(dt).flatten(0, 1)
    m = mask.to(dt).expand(B, N, 1, H, W).flatten(0, 1) if mask is not None else None
    T_ec = T_ego_cam.to(dt)
    base = max(1, -(-W // max(int(max_width), 1)))

    def warp_at(factor: int) -> _Warp:
        c, d, k, mm = _level(cur, depth, Km, m, factor)
        return _Warp(c, _level(prev, depth, Km, None, factor)[0], d, k, mm, T_ec)

    finest = warp_at(base)
    cost_before = _robust_cost(*finest(T0))
    T = T0
    if other_starts:
        coarse = warp_at(base * 2 ** (max(int(levels), 1) - 1))
        best = _robust_cost(*coarse(T0))
        for S in other_starts:
            S = S.to(dt).expand_as(T0)
            c = _robust_cost(*coarse(S))
            T = torch.where((c < best)[:, None, None], S, T)
            best = torch.minimum(best, c)
    for lvl in reversed(range(max(int(levels), 1))):
        T = _gauss_newton(finest if lvl == 0 else warp_at(base * 2 ** lvl), T, int(iterations))
    cost_after = _robust_cost(*finest(T))
    worse = ~(cost_after < cost_before)
    T = torch.where(worse[:, None, None], T0, T)
    cost_after = torch.where(worse, cost_before, cost_after)
    return RefineResult(T.to(T_prev_cur.dtype), cost_before, cost_after)


def refine_network_motion(model_cfg, T_c0cur_c0prev: Tensor, depth_cur: Tensor, images_prev: Tensor,
                          images_cur: Tensor, K: Tensor, T_ego_cam: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """The pose network's motion T_c0cur_c0prev (B, 4, 4) refined as ``model_cfg`` (a ModelConfig) says:
    unchanged when ``pose_refine_iterations`` is 0 (the paper)."""
    if model_cfg.pose_refine_iterations <= 0:
        return T_c0cur_c0prev
    res = refine_motion(geo.invert_transform(T_c0cur_c0prev.float()), depth_cur, images_prev, images_cur, K,
                        T_ego_cam, mask, model_cfg.pose_refine_iterations, model_cfg.pose_refine_levels,
                        model_cfg.pose_refine_max_width,
                        other_starts=[torch.eye(4, device=depth_cur.device)[None]])  # no motion: for a lost pose net
    return geo.invert_transform(res.T_prev_cur).to(T_c0cur_c0prev.dtype)


__all__ = ["RefineResult", "refine_motion", "refine_network_motion"]
