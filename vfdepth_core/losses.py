"""Self-supervised losses of VFDepth as small functions, composed by :func:`compute_losses`.

Shapes: images (M, 3, H, W) with M = B*N (cameras folded into the batch) unless a name says otherwise;
per-pixel losses (M, 1, H, W); masks float, 1 = valid. All warps go through vfdepth_core.geometry.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from vfdepth_core import geometry as geo
from vfdepth_core.config import Config, camera_neighbors

SSIM_C1 = 0.01 ** 2
SSIM_C2 = 0.03 ** 2
IDENTITY_NOISE = 1e-5  # breaks ties between a static scene's reprojection and identity losses


# ---- photometric --------------------------------------------------------------------------------


def box3(x: Tensor) -> Tensor:
    """3x3 mean without padding (= avg_pool2d(x, 3, 1)) as a separable sum of shifted slices: (M, C, H-2, W-2).

    Several times faster than avg_pool2d on CPU for few-channel images, forward and backward."""
    r = x[..., :, :-2] + x[..., :, 1:-1] + x[..., :, 2:]
    return (r[..., :-2, :] + r[..., 1:-1, :] + r[..., 2:, :]) * (1.0 / 9.0)


def ssim_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Per-pixel (1 - SSIM) / 2 in [0, 1] over 3x3 windows (reflection padded): (M, C, H, W)."""
    x, y = F.pad(pred, (1, 1, 1, 1), mode="reflect"), F.pad(target, (1, 1, 1, 1), mode="reflect")
    mu_x, mu_y = box3(x), box3(y)
    sigma_x = box3(x * x) - mu_x ** 2
    sigma_y = box3(y * y) - mu_y ** 2
    sigma_xy = box3(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + SSIM_C1) * (2 * sigma_xy + SSIM_C2)
    den = (mu_x ** 2 + mu_y ** 2 + SSIM_C1) * (sigma_x + sigma_y + SSIM_C2)
    return ((1 - num / (den + 1e-8)) / 2).clamp(0, 1)


def photometric_loss(pred: Tensor, target: Tensor) -> Tensor:
    """0.85 * SSIM loss + 0.15 * L1, channel-averaged: (M, 3, H, W) x2 -> (M, 1, H, W)."""
    l1 = (pred - target).abs().mean(1, keepdim=True)
    return 0.85 * ssim_loss(pred, target).mean(1, keepdim=True) + 0.15 * l1


def masked_mean(loss: Tensor, mask: Tensor) -> Tensor:
    """sum(loss * mask) / sum(mask), safe for an empty mask."""
    return (loss * mask).sum() / (mask.sum() + 1e-8)


def masked_mean_per_camera(loss: Tensor, mask: Tensor, num_cams: int) -> Tensor:
    """Masked mean per camera (over batch and pixels), then averaged over cameras: (B*N, 1, H, W) inputs."""
    l = (loss * mask).reshape(-1, num_cams, *loss.shape[1:]).transpose(0, 1).flatten(1).sum(1)
    m = mask.expand_as(loss).reshape(-1, num_cams, *loss.shape[1:]).transpose(0, 1).flatten(1).sum(1)
    return (l / (m + 1e-8)).mean()


def auto_mask(reprojection: Tensor, identity: Tensor) -> Tensor:
    """1 where warping explains the target better than the unwarped source (static-pixel auto-mask)."""
    return (reprojection < identity).to(reprojection.dtype)


def intensity_align(warped: Tensor, warp_mask: Tensor, target: Tensor, target_mask: Tensor) -> Tensor:
    """Match the warped image's mean/std to the target's over their overlap (statistics not differentiated).

    Images whose overlap is empty are left as they are. Returns the aligned image times warp_mask.
    """
    with torch.no_grad():
        m = (warp_mask * target_mask).expand_as(warped)
        n = m.sum(dim=(1, 2, 3), keepdim=True)
        has = n > 0
        n = n.clamp_min(1.0)
        t_mean = (target * m).sum(dim=(1, 2, 3), keepdim=True) / n
        w_mean = (warped * m).sum(dim=(1, 2, 3), keepdim=True) / n
        t_std = (((target - t_mean) ** 2 * m).sum(dim=(1, 2, 3), keepdim=True) / n).sqrt()
        w_std = (((warped - w_mean) ** 2 * m).sum(dim=(1, 2, 3), keepdim=True) / n).sqrt()
        scale = torch.where(has, t_std / (w_std + 1e-8), torch.ones_like(t_std))
        shift = torch.where(has, t_mean - w_mean * scale, torch.zeros_like(t_mean))
    return (warped * scale + shift) * warp_mask


def edge_aware_smoothness(disp: Tensor, image: Tensor) -> Tensor:
    """Edge-aware first-order smoothness of mean-normalised disparity (M, 1, H, W), image (M, 3, H, W)."""
    d = disp / (disp.mean(dim=(2, 3), keepdim=True) + 1e-8)
    gx_d = (d[..., :, :-1] - d[..., :, 1:]).abs()
    gy_d = (d[..., :-1, :] - d[..., 1:, :]).abs()
    gx_i = (image[..., :, :-1] - image[..., :, 1:]).abs().mean(1, keepdim=True)
    gy_i = (image[..., :-1, :] - image[..., 1:, :]).abs().mean(1, keepdim=True)
    return (gx_d * torch.exp(-gx_i)).mean() + (gy_d * torch.exp(-gy_i)).mean()


def smoothness(disp: Tensor) -> Tensor:
    """Plain first-order smoothness of mean-normalised disparity (M, 1, H, W)."""
    d = disp / (disp.mean(dim=(2, 3), keepdim=True) + 1e-8)
    return (d[..., :, :-1] - d[..., :, 1:]).abs().mean() + (d[..., :-1, :] - d[..., 1:, :]).abs().mean()


# ---- warping ------------------------------------------------------------------------------------


def warp_with_mask(src: Tensor, src_mask: Tensor, depth_tgt: Tensor, K_tgt: Tensor, K_src: Tensor,
                   T_src_tgt: Tensor) -> Tuple[Tensor, Tensor]:
    """Source image seen from the target camera, and where that is valid (in view and unmasked in the source)."""
    grid, valid = geo.reprojection_grid(depth_tgt, torch.linalg.inv(K_tgt.float()), K_src, T_src_tgt,
                                        src.shape[-2:])
    warped = geo.sample_image(src, grid)
    src_valid = geo.sample_image(src_mask, grid, mode="nearest")
    return warped, valid.to(src.dtype) * src_valid


def warp_depth(depth_src: Tensor, src_mask: Tensor, K_src: Tensor, depth_tgt: Tensor, K_tgt: Tensor,
               T_tgt_src: Tensor, min_depth: float, max_depth: float) -> Tuple[Tensor, Tensor]:
    """Source depth re-expressed in the target camera and backward-warped to the target's pixels.

    Returns depth (M, 1, H, W) in the target frame (clamped to [min, max]) and its validity mask.
    """
    M, _, H, W = depth_src.shape
    p_tgt = geo.transform_points(T_tgt_src, geo.backproject(depth_src, torch.linalg.inv(K_src.float())))
    z_in_tgt = p_tgt[:, 2:3].reshape(M, 1, H, W)
    warped, valid = warp_with_mask(z_in_tgt, src_mask, depth_tgt, K_tgt, K_src, geo.invert_transform(T_tgt_src))
    in_range = ((warped > min_depth) & (warped < max_depth)).to(valid.dtype)
    return warped.clamp(min_depth, max_depth), valid * in_range


def _fold(x: Tensor) -> Tensor:
    return x.flatten(0, 1)


def _neighbor_slots(neighbors: Sequence[Sequence[int]], N: int, device) -> Sequence[Tuple[Tensor, Tensor]]:
    """Per neighbour slot k: (index of camera c's k-th neighbour (N,), present (N,) float)."""
    slots = max((len(nb) for nb in neighbors), default=0)
    out = []
    for k in range(slots):
        idx = torch.tensor([nb[k] if k < len(nb) else c for c, nb in enumerate(neighbors)], device=device)
        present = torch.tensor([1.0 if k < len(nb) else 0.0 for nb in neighbors], device=device)
        out.append((idx, present))
    return out


def neighbor_composite(images_f: Tensor, mask: Tensor, depth: Tensor, K: Tensor, T_ego_cam: Tensor,
                       neighbors: Sequence[Sequence[int]], T_motion: Optional[Tensor], target: Tensor,
                       target_mask: Tensor, align: bool) -> Tuple[Tensor, Tensor]:
    """Each camera rebuilt from its neighbours' images of one frame (B, N, 3, H, W).

    T_motion (B, N, 4, 4): frame-0 -> frame-f motion of each camera (None for the same instant).
    Returns the composite image (B*N, 3, H, W) (neighbours averaged where both see) and its coverage mask.
    """
    B, N = images_f.shape[:2]
    comp = torch.zeros_like(_fold(target))
    cover = torch.zeros_like(_fold(target_mask))
    T_cam_ego = geo.invert_transform(T_ego_cam)
    for idx, present in _neighbor_slots(neighbors, N, images_f.device):
        T_n_c = T_cam_ego[:, idx] @ T_ego_cam  # this camera's frame -> neighbour's frame, same instant
        if T_motion is not None:
            T_n_c = T_n_c @ T_motion  # frame-0 camera c -> frame-f camera c -> frame-f neighbour
        warped, wmask = warp_with_mask(_fold(images_f[:, idx]), _fold(mask[:, idx]), _fold(depth), _fold(K),
                                       _fold(K[:, idx]), _fold(T_n_c))
        wmask = wmask * present.repeat(B)[:, None, None, None]
        if align:
            warped = intensity_align(warped, wmask, _fold(target), _fold(target_mask))
        else:
            warped = warped * wmask
        comp = comp + warped
        cover = cover + wmask
    return comp / cover.clamp_min(1.0), cover.clamp(max=1.0)


# ---- loss terms ---------------------------------------------------------------------------------


def temporal_loss(images: Tensor, frame_ids: Sequence[int], mask: Tensor, depth: Tensor, K: Tensor,
                  T_src_tgt: Dict[int, Tensor], align: bool) -> Tuple[Tensor, Tensor]:
    """Per-pixel minimum reprojection loss over the context frames with auto-mask and self-occlusion mask.

    images (B, F, N, 3, H, W) in frame_ids order. Returns the loss and the auto-mask (B*N, 1, H, W).
    """
    N = images.shape[2]
    idx = {f: i for i, f in enumerate(frame_ids)}
    target, tmask = _fold(images[:, idx[0]]), _fold(mask)
    reproj, ident = [], []
    for f in frame_ids:
        if f == 0:
            continue
        src = _fold(images[:, idx[f]])
        warped, wmask = warp_with_mask(src, tmask, _fold(depth), _fold(K), _fold(K), _fold(T_src_tgt[f]))
        if align:
            warped = intensity_align(warped, wmask, target, tmask)
        reproj.append(photometric_loss(warped, target))
        ident.append(photometric_loss(src, target))
    reproj_min = torch.cat(reproj, 1).min(1, keepdim=True)[0]
    ident_min = torch.cat(ident, 1).min(1, keepdim=True)[0]
    ident_min = ident_min + IDENTITY_NOISE * torch.randn_like(ident_min)
    amask = auto_mask(reproj_min, ident_min) * tmask
    return masked_mean_per_camera(reproj_min, amask, N), amask


def spatial_loss(images: Tensor, frame_ids: Sequence[int], mask: Tensor, depth: Tensor, K: Tensor,
                 T_ego_cam: Tensor, neighbors, align: bool) -> Tensor:
    """Each camera rebuilt from its neighbours at the same instant (masked by coverage and self-occlusion)."""
    N = images.shape[2]
    i0 = list(frame_ids).index(0)
    target = images[:, i0]
    comp, cover = neighbor_composite(target, mask, depth, K, T_ego_cam, neighbors, None, target, mask, align)
    return masked_mean_per_camera(photometric_loss(comp, _fold(target)), cover * _fold(mask), N)


def spatio_temporal_loss(images: Tensor, frame_ids: Sequence[int], mask: Tensor, depth: Tensor, K: Tensor,
                         T_ego_cam: Tensor, T_src_tgt: Dict[int, Tensor], neighbors, reproj_mask: Tensor,
                         align: bool) -> Tensor:
    """Each camera rebuilt from its neighbours at t-1 / t+1: per-pixel minimum, union of masks."""
    N = images.shape[2]
    idx = {f: i for i, f in enumerate(frame_ids)}
    target = images[:, idx[0]]
    losses, masks = [], []
    for f in frame_ids:
        if f == 0:
            continue
        comp, cover = neighbor_composite(images[:, idx[f]], mask, depth, K, T_ego_cam, neighbors, T_src_tgt[f],
                                         target, mask, align)
        losses.append(photometric_loss(comp, _fold(target)))
        masks.append(cover * _fold(mask) * reproj_mask)
    loss = torch.cat(losses, 1).min(1, keepdim=True)[0]
    m = torch.cat(masks, 1).max(1, keepdim=True)[0]
    return masked_mean_per_camera(loss, m, N)


def depth_synthesis_losses(depth: Tensor, depth_aug: Tensor, disp_aug: Tensor, mask: Tensor, K: Tensor,
                           T_ego_cam: Tensor, T_ego_cam_aug: Tensor, neighbors, min_depth: float,
                           max_depth: float) -> Tuple[Tensor, Tensor]:
    """Consistency of depth decoded at perturbed views with the real views' depth warped there
    (|a - t| / (a + t), clamped to 1), and smoothness of the perturbed views' disparity."""
    B, N = depth.shape[:2]
    T_aug_ego = geo.invert_transform(T_ego_cam_aug)
    slots = list(_neighbor_slots(neighbors, N, depth.device))
    slots.append((torch.arange(N, device=depth.device), torch.ones(N, device=depth.device)))
    losses, masks = [], []
    for idx, present in slots:
        T_aug_src = T_aug_ego @ T_ego_cam[:, idx]
        d_warp, m = warp_depth(_fold(depth[:, idx]), _fold(mask[:, idx]), _fold(K[:, idx]), _fold(depth_aug),
                               _fold(K), _fold(T_aug_src), min_depth, max_depth)
        a = _fold(depth_aug)
        losses.append(((a - d_warp).abs() / (a + d_warp + 1e-8)).clamp(0, 1))
        masks.append(m * present.repeat(B)[:, None, None, None])
    con = masked_mean(torch.cat(losses, 0), torch.cat(masks, 0))
    return con, smoothness(_fold(disp_aug))


def downsample_for_level(images: Tensor, mask: Tensor, depth: Tensor, K: Tensor,
                         level: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Images (B, F, N, 3, H, W), mask and depth (B, N, 1, H, W) and K (B, N, 3, 3) at 1/2**level of the size:
    images and depth area-averaged (depth gradients reach every full-resolution pixel), a coarse pixel
    valid only where all its fine pixels are, K rescaled (half-pixel exact)."""
    H, W = images.shape[-2:]
    h, w = H >> level, W >> level

    def area(x: Tensor) -> Tensor:
        lead = x.shape[:-3]
        y = F.interpolate(x.reshape(-1, *x.shape[-3:]), size=(h, w), mode="area")
        return y.reshape(*lead, *y.shape[-3:])

    mask_l = (area(mask.float()) > 0.999).to(mask.dtype)
    return area(images), mask_l, area(depth), geo.resize_intrinsics(K, (H, W), (h, w))


def photometric_terms(images: Tensor, mask: Tensor, depth: Tensor, K: Tensor, T_ego_cam: Tensor,
                      T_src_tgt: Dict[int, Tensor], frame_ids: Sequence[int], neighbors,
                      cfg: Config) -> Tuple[Tensor, Dict[str, Tensor]]:
    """The temporal, spatial and spatio-temporal terms at one resolution: their weighted sum and the terms."""
    t, lc = cfg.training, cfg.loss
    N = images.shape[2]
    terms: Dict[str, Tensor] = {}
    total = images.new_zeros(())
    if len(frame_ids) > 1:
        reproj, amask = temporal_loss(images, frame_ids, mask, depth, K, T_src_tgt, t.intensity_align)
        terms["reproj"] = reproj
        total = total + reproj
    else:
        amask = _fold(mask)
    if t.spatio and N > 1:
        sp = spatial_loss(images, frame_ids, mask, depth, K, T_ego_cam, neighbors, t.intensity_align)
        terms["spatio"] = sp
        total = total + lc.spatio_coeff * sp
    if t.spatio_temporal and N > 1 and len(frame_ids) > 1:
        st = spatio_temporal_loss(images, frame_ids, mask, depth, K, T_ego_cam, T_src_tgt, neighbors, amask,
                                  t.intensity_align)
        terms["spatio_tempo"] = st
        total = total + lc.spatio_tempo_coeff * st
    return total, terms


def compute_losses(batch: dict, outputs, cfg: Config) -> Tuple[Tensor, Dict[str, Tensor]]:
    """Total VFDepth loss (averaged over cameras) and its detached terms, from a batch and ModelOutputs."""
    t, lc = cfg.training, cfg.loss
    images = batch["image"]
    B, _, N, _, H, W = images.shape
    K, T = batch["K"], batch["T_ego_cam"]
    mask = batch.get("mask")
    if mask is None:
        mask = torch.ones(B, N, 1, H, W, dtype=images.dtype, device=images.device)
    frame_ids = tuple(t.frame_ids)
    neighbors = camera_neighbors(cfg.data) if len(cfg.data.cameras) == N else tuple(
        ((i - 1) % N, (i + 1) % N) for i in range(N))
    depth, disp = outputs.depth.float(), outputs.disp.float()
    photo, terms = photometric_terms(images, mask, depth, K, T, outputs.T_src_tgt, frame_ids, neighbors, cfg)
    if lc.photo_pyramid > 0:
        coarse = []
        for level in range(1, lc.photo_pyramid + 1):
            imgs_l, mask_l, depth_l, K_l = downsample_for_level(images, mask, depth, K, level)
            p_l, _ = photometric_terms(imgs_l, mask_l, depth_l, K_l, T, outputs.T_src_tgt, frame_ids, neighbors, cfg)
            coarse.append(p_l)
        coarse_t = torch.stack(coarse)
        terms["photo_pyramid"] = coarse_t.mean()
        photo = (photo + coarse_t.sum()) / (lc.photo_pyramid + 1)
    total = photo
    smooth = edge_aware_smoothness(_fold(disp), _fold(images[:, frame_ids.index(0)]))
    terms["smooth"] = smooth
    total = total + lc.disparity_smoothness * smooth
    if t.aug_depth and outputs.depth_aug is not None:
        con, sm = depth_synthesis_losses(depth, outputs.depth_aug.float(), outputs.disp_aug.float(), mask, K, T,
                                         outputs.T_ego_cam_aug, neighbors, t.min_depth, t.max_depth)
        terms["depth_con"], terms["depth_sm"] = con, sm
        total = total + lc.depth_con_coeff * con + lc.depth_sm_coeff * sm
    if cfg.model.pose_model == "fsm" and lc.pose_loss_coeff > 0 and N > 1 and outputs.T_src_tgt:
        pc = pose_consistency_loss(outputs.T_src_tgt, T)
        terms["pose"] = pc
        total = total + lc.pose_loss_coeff * pc
    if lc.gt_depth_coeff > 0:
        gd = gt_depth_loss(depth, batch.get("depth_gt"), mask, t.max_depth)
        terms["gt_depth"] = gd
        total = total + lc.gt_depth_coeff * gd
    terms = {k: v.detach() for k, v in terms.items()}
    terms["total"] = total.detach()
    return total, terms


def rotmat_to_euler_xyz(R: Tensor) -> Tensor:
    """(*, 3, 3) -> angles (*, 3) (a, b, c) with R = Rx(a) Ry(b) Rz(c) (intrinsic XYZ), radians."""
    b = torch.asin(R[..., 0, 2].clamp(-1.0, 1.0))
    a = torch.atan2(-R[..., 1, 2], R[..., 2, 2])
    c = torch.atan2(-R[..., 0, 1], R[..., 0, 0])
    return torch.stack([a, b, c], -1)


def pose_consistency_loss(T_src_tgt: Dict[int, Tensor], T_ego_cam: Tensor) -> Tensor:
    """The per-camera baseline's pose consistency (Full Surround Monodepth): every camera's motion,
    moved into camera 0 through the extrinsics, should equal camera 0's. Per context frame: mean L2 of
    the translation difference + 10 x L2 of the XYZ Euler angle difference; averaged over the context
    frames, summed over cameras 1..N-1 and divided by N (the losses are averaged over cameras).

    T_src_tgt[f] (B, N, 4, 4) per-camera motions; T_ego_cam (B, N, 4, 4)."""
    from vfdepth_core import geometry as geo

    frames = sorted(T_src_tgt)
    first = T_src_tgt[frames[0]]
    T = T_ego_cam.to(first.dtype)
    N = T.shape[1]
    T_c0_cn = geo.invert_transform(T[:, :1]) @ T  # (B, N, 4, 4) camera n -> camera 0
    total = first.new_zeros(())
    for f in frames:
        M = T_src_tgt[f]
        aligned = T_c0_cn @ M @ geo.invert_transform(T_c0_cn)  # camera n's motion seen from camera 0
        ref = M[:, :1]
        t_diff = (ref[..., :3, 3] - aligned[:, 1:, :3, 3]).norm(dim=-1).mean(0)  # (N-1,)
        a_diff = (rotmat_to_euler_xyz(ref[..., :3, :3]) - rotmat_to_euler_xyz(aligned[:, 1:, :3, :3])).norm(dim=-1).mean(0)
        total = total + (t_diff + 10.0 * a_diff).sum()
    return total / len(frames) / N


def gt_depth_loss(depth: Tensor, gt: Optional[Tensor], mask: Tensor, max_depth: float) -> Tensor:
    """Mean |log depth - log gt| over pixels with ground truth in (0, max_depth] and mask > 0.5.

    depth, gt, mask (B, N, 1, H, W). Beyond the paper (``loss.gt_depth_coeff``); zero without valid pixels."""
    if gt is None:
        raise ValueError("loss.gt_depth_coeff > 0 needs ground-truth depth in the training batches: add gt_depth "
                         "to data.train_requirements (or set loss.gt_depth_coeff to 0)")
    gt = gt.to(depth)
    valid = ((gt > 0) & (gt <= max_depth) & (mask.to(depth) > 0.5)).to(depth)
    err = (torch.log(depth.clamp_min(1e-3)) - torch.log(gt.clamp_min(1e-3))).abs()
    return (err * valid).sum() / valid.sum().clamp_min(1.0)  # no host sync


__all__ = [
    "auto_mask", "compute_losses", "depth_synthesis_losses", "edge_aware_smoothness", "gt_depth_loss", "intensity_align",
    "masked_mean", "masked_mean_per_camera", "neighbor_composite", "photometric_loss", "pose_consistency_loss",
    "rotmat_to_euler_xyz", "smoothness",
    "spatial_loss", "spatio_temporal_loss", "ssim_loss", "temporal_loss", "warp_depth", "warp_with_mask",
]
