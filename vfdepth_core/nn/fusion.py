"""Volumetric feature fusion: image features -> one voxel volume in the vehicle frame -> per-view features.

Rig look-ups (which voxel each camera sees, where, and the ray sample points of each view) depend only on
the calibration, the feature-map size, the device and the dtype. They are built once by
:func:`build_voxel_lookup` / :func:`build_ray_grid` and kept in a :class:`RigCache`, keyed by a hash of
the calibration tensors, so a fixed rig pays for them once.

Volume layout: ``(B, C, X, Y, Z)`` with the flat voxel index of :class:`vfdepth_core.geometry.VoxelGrid`
(x slowest, z fastest), x forward, y left, z up in the vehicle frame.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Hashable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vfdepth_core import geometry as geo

logger = logging.getLogger(__name__)

DEPTH_FEATURE_SCALE_M = 100.0  # the extra voxel channel is camera-frame depth / 100 m


# --------------------------------------------------------------------------------------------------
# Rig look-ups


@dataclass
class VoxelLookup:
    """Which voxels each camera sees, for one batch of rigs (B rigs of N cameras, features h x w).

    An *entry* is one (batch b, voxel v, camera n) with v visible in n; entries are sorted by (b, v, n).
    pix_idx (E, 4) long: the 4 bilinear neighbours as flat indices into features laid out (B*N*h*w, C);
    pix_w (E, 4): their weights; depth_feat (E, 1): camera-frame depth / 100 m; entry_voxel (E,): b*V + v;
    count (B*V,): cameras seeing each voxel. single_*: entries of voxels seen by exactly one camera;
    pair_first/second: the two entries of voxels seen by exactly two cameras, in canonical order
    (:func:`pair_order`), pair_voxel their flat voxel index.
    """

    batch: int
    num_cams: int
    h: int
    w: int
    num_voxels: int
    pix_idx: Tensor
    pix_w: Tensor
    depth_feat: Tensor
    entry_voxel: Tensor
    count: Tensor
    single_entry: Tensor
    single_voxel: Tensor
    pair_first: Tensor
    pair_second: Tensor
    pair_voxel: Tensor


def pair_order(T_ego_cam: Tensor, tol: float = 1e-6) -> Tensor:
    """(B, N, N) bool: True where camera i comes first in the overlap pair (i, j).

    A rig property, independent of how the cameras are listed: i comes first when camera j's optical
    axis is counter-clockwise (to the left, seen from above) of camera i's, i.e. the right-hand camera of
    the pair leads. Ties (parallel axes) fall back to the camera position (smaller y, then smaller x, then
    smaller z leads).
    """
    d = T_ego_cam[..., :3, 2]  # optical axis in the vehicle frame (B, N, 3)
    p = T_ego_cam[..., :3, 3]
    di, dj = d[:, :, None], d[:, None, :]
    cross_z = di[..., 0] * dj[..., 1] - di[..., 1] * dj[..., 0]
    key = torch.where(cross_z.abs() > tol, cross_z, torch.zeros_like(cross_z))
    for axis in (1, 0, 2):  # position tie-breaks: the other camera further left/forward/up -> i first
        diff = p[:, None, :, axis] - p[:, :, None, axis]
        key = torch.where(key == 0, torch.where(diff.abs() > tol, diff, torch.zeros_like(diff)), key)
    return key > 0


def build_voxel_lookup(grid: geo.VoxelGrid, K_feat: Tensor, T_ego_cam: Tensor, mask_feat: Optional[Tensor],
                       h: int, w: int) -> VoxelLookup:
    """Project every voxel centre into every camera at feature resolution.

    K_feat (B, N, 3, 3) intrinsics at h x w; T_ego_cam (B, N, 4, 4); mask_feat (B, N, 1, h, w) or None
    (1 = valid pixel). Valid = in front, inside the image, mask > 0.5 at the nearest pixel.
    """
    B, N = K_feat.shape[:2]
    dev = K_feat.device
    K = K_feat.float()
    T = T_ego_cam.float()
    V = grid.num_voxels
    centers = grid.centers(device=dev, dtype=torch.float32)  # (3, V)
    p_cam = geo.transform_points(geo.invert_transform(T), centers)  # (B, N, 3, V)
    uv, z = geo.project(K, p_cam)
    valid = geo.in_image(uv, z, h, w)  # (B, N, V)
    if mask_feat is not None:
        ui = uv[:, :, 0].round().clamp(0, w - 1).long()
        vi = uv[:, :, 1].round().clamp(0, h - 1).long()
        m = mask_feat.reshape(B, N, h * w).float().gather(2, vi * w + ui) > 0.5
        valid = valid & m
    vbn = valid.permute(0, 2, 1)  # (B, V, N): nonzero() then sorts entries by (b, v, n)
    b, v, n = vbn.nonzero(as_tuple=True)
    u = uv[b, n, 0, v]
    vv = uv[b, n, 1, v]
    depth = z[b, n, 0, v]
    x0 = u.floor().clamp(0, w - 1)
    y0 = vv.floor().clamp(0, h - 1)
    fx, fy = u - x0, vv - y0
    x0l, y0l = x0.long(), y0.long()
    x1l, y1l = (x0l + 1).clamp(max=w - 1), (y0l + 1).clamp(max=h - 1)
    base = (b * N + n) * (h * w)
    pix_idx = torch.stack([base + y0l * w + x0l, base + y0l * w + x1l, base + y1l * w + x0l, base + y1l * w + x1l], 1)
    pix_w = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], 1)
    entry_voxel = b * V + v
    count = vbn.sum(-1).reshape(-1)
    cnt_e = count[entry_voxel]
    single = (cnt_e == 1).nonzero(as_tuple=True)[0]
    pairs = (cnt_e == 2).nonzero(as_tuple=True)[0].reshape(-1, 2)  # consecutive: same (b, v), n ascending
    first, second = pairs[:, 0], pairs[:, 1]
    first_leads = pair_order(T)[b[first], n[first], n[second]]
    first, second = torch.where(first_leads, first, second), torch.where(first_leads, second, first)
    return VoxelLookup(
        batch=B, num_cams=N, h=h, w=w, num_voxels=V, pix_idx=pix_idx, pix_w=pix_w,
        depth_feat=(depth / DEPTH_FEATURE_SCALE_M)[:, None], entry_voxel=entry_voxel, count=count.float(),
        single_entry=single, single_voxel=entry_voxel[single], pair_first=first, pair_second=second,
        pair_voxel=entry_voxel[first],
    )


def build_ray_grid(grid: geo.VoxelGrid, K_feat: Tensor, T_ego_cam: Tensor, h: int, w: int,
                   depth_bins_m: Tensor) -> Tensor:
    """Sample points along every feature pixel's ray, as volume coordinates for grid_sample.

    K_feat (B, N, 3, 3) at h x w; T_ego_cam (B, N, 4, 4); depth_bins_m (D,) optical-axis depths.
    Returns (B, N*D, h, w, 3) in [-1, 1] (align_corners=True over voxel centres), views major, depth minor.
    """
    B, N = K_feat.shape[:2]
    D = depth_bins_m.numel()
    K_inv = torch.linalg.inv(K_feat.float())[:, :, None]  # (B, N, 1, 3, 3)
    depth = depth_bins_m.float().to(K_feat.device).view(1, 1, D, 1, 1, 1).expand(B, N, D, 1, h, w)
    p_cam = geo.backproject(depth, K_inv)  # (B, N, D, 3, h*w)
    p_ego = geo.transform_points(T_ego_cam.float()[:, :, None], p_cam)
    return grid.normalize(p_ego).reshape(B, N * D, h, w, 3)


def tensor_digest(*tensors: Optional[Tensor]) -> str:
    """A content hash of tensors (shape, dtype and values)."""
    h = hashlib.blake2b(digest_size=16)
    for t in tensors:
        if t is None:
            h.update(b"none")
            continue
        t = t.detach()
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class RigCache:
    """A small LRU store of rig look-ups keyed by (kind, calibration hash, sizes, device, dtype).

    Set ``enabled = False`` to rebuild every call (the results are identical; tests compare them).
    """

    def __init__(self, max_entries: int = 16):
        self.enabled = True
        self.max_entries = max_entries
        self._store: "OrderedDict[Hashable, object]" = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, kind: str, tensors: Sequence[Optional[Tensor]], extra: Hashable, build: Callable[[], object]):
        """Return the cached value for (kind, tensors, extra), building it with `build()` on a miss."""
        if not self.enabled:
            return build()
        key = (kind, tensor_digest(*tensors), extra)
        if key in self._store:
            self._store.move_to_end(key)
            self.hits += 1
            return self._store[key]
        self.misses += 1
        value = build()
        self._store[key] = value
        if len(self._store) > self.max_entries:
            self._store.popitem(last=False)
        return value

    def clear(self) -> None:
        self._store.clear()


# --------------------------------------------------------------------------------------------------
# Modules


def sample_entries(feats: Tensor, lk: VoxelLookup, entries: Optional[Tensor] = None) -> Tensor:
    """Bilinear feature of each entry plus its depth channel: feats (B, N, C, h, w) -> (E', C + 1)."""
    B, N, C, h, w = feats.shape
    flat = feats.permute(0, 1, 3, 4, 2).reshape(B * N * h * w, C)
    idx, wts, dch = lk.pix_idx, lk.pix_w, lk.depth_feat
    if entries is not None:
        idx, wts, dch = idx[entries], wts[entries], dch[entries]
    f = F.embedding_bag(idx, flat, per_sample_weights=wts.to(flat.dtype), mode="sum")
    return torch.cat([f, dch.to(f.dtype)], 1)


class VolumetricFusion(nn.Module):
    """Image features of all cameras -> voxel volume.

    mode 'depth': voxels seen by one camera -> Linear(C+1 -> out_dim) (a 1x1 conv), seen by two -> the
    canonically ordered pair concatenated -> Linear(2(C+1) -> out_dim), LeakyReLU(0.1), others 0.
    mode 'pose': features averaged over the cameras that see each voxel (C+1 channels, no weights).
    """

    def __init__(self, grid: geo.VoxelGrid, feat_dim: int, out_dim: int = 64, mode: str = "depth"):
        super().__init__()
        if mode not in ("depth", "pose"):
            raise ValueError(f"VolumetricFusion mode must be 'depth' or 'pose', got {mode!r}")
        self.grid = grid
        self.mode = mode
        self.feat_dim = feat_dim
        if mode == "depth":
            self.conv_overlap = nn.Sequential(nn.Linear(2 * (feat_dim + 1), out_dim), nn.LeakyReLU(0.1))
            self.conv_single = nn.Sequential(nn.Linear(feat_dim + 1, out_dim), nn.LeakyReLU(0.1))
            self.out_dim = out_dim
        else:
            self.out_dim = feat_dim + 1

    def forward(self, feats: Tensor, lk: VoxelLookup) -> Tensor:
        """feats (B, N, C, h, w) -> volume (B, out_dim, X, Y, Z)."""
        B = feats.shape[0]
        V = lk.num_voxels
        if self.mode == "depth":
            S, P = lk.single_entry.numel(), lk.pair_first.numel()
            ent = torch.cat([lk.single_entry, lk.pair_first, lk.pair_second])
            f = sample_entries(feats, lk, ent)
            single = self.conv_single(f[:S])
            pair = self.conv_overlap(torch.cat([f[S:S + P], f[S + P:]], 1))
            vals = torch.cat([single, pair.to(single.dtype)], 0)
            vol = vals.new_zeros(B * V, self.out_dim).index_copy(0, torch.cat([lk.single_voxel, lk.pair_voxel]), vals)
        else:
            f = sample_entries(feats, lk)
            vol = f.new_zeros(B * V, self.out_dim).index_add(0, lk.entry_voxel, f)
            vol = vol / lk.count.clamp_min(1.0).to(vol.dtype)[:, None]
        X, Y, Z = self.grid.size
        return vol.reshape(B, X, Y, Z, self.out_dim).permute(0, 4, 1, 2, 3)


def sample_volume_along_rays(volume: Tensor, ray_grid: Tensor, num_views: int) -> Tensor:
    """volume (B, C, X, Y, Z), ray_grid (B, V*D, h, w, 3) -> per-view features (B*V, C*D, h, w)."""
    B, C = volume.shape[:2]
    _, VD, h, w, _ = ray_grid.shape
    D = VD // num_views
    out = F.grid_sample(volume, ray_grid.to(volume.dtype), mode="bilinear", padding_mode="zeros",
                        align_corners=True)  # (B, C, V*D, h, w)
    out = out.reshape(B, C, num_views, D, h, w).permute(0, 2, 1, 3, 4, 5)
    return out.reshape(B * num_views, C * D, h, w)


def bev_from_volume(volume: Tensor) -> Tensor:
    """volume (B, C, X, Y, Z) -> bird's-eye view (B, C*Z, X, Y)."""
    B, C, X, Y, Z = volume.shape
    return volume.permute(0, 1, 4, 2, 3).reshape(B, C * Z, X, Y)
