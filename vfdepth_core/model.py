"""VFDepth: the depth and pose networks driven together on a surround-view batch.

    model = VFDepth(cfg)
    out = model(batch)          # batch = a collated dataset sample dict (docs/ARCHITECTURE.md)
    out.depth                   # (B, N, 1, H, W) metres
    out.T_src_tgt[-1]           # (B, N, 4, 4) camera motion, frame-0 points -> frame -1 camera

Rig look-ups are cached in ``model.rig_cache`` (set ``model.rig_cache.enabled = False`` to rebuild them
every call).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vfdepth_core import geometry as geo
from vfdepth_core.config import Config, ConfigError
from vfdepth_core.nn.baseline import MonoDepthNet, MonoPoseNet
from vfdepth_core.nn.depth import FusedDepthNet
from vfdepth_core.nn.fusion import (RayLookup, RigCache, VoxelLookup, build_ray_grid, build_ray_lookup,
                                    build_voxel_lookup)
from vfdepth_core.nn.pose import FusedPoseNet
from vfdepth_core.pose_refine import refine_network_motion

logger = logging.getLogger(__name__)

FEATURE_STRIDE = 8  # fusion happens on 1/8-scale features (fusion_level 2)


@dataclass
class ModelOutputs:
    """What :meth:`VFDepth.forward` returns. Shapes: B batch, N cameras, H x W network resolution.

    disp (B, N, 1, H, W): sigmoid output in [0, 1]; depth (B, N, 1, H, W) metres.
    T_src_tgt[f] (B, N, 4, 4): per-camera motion, frame-0 camera points -> frame-f camera.
    T_c0src_c0tgt[f] (B, 4, 4): the canonical (reference camera) motion; T_egosrc_egotgt[f] (B, 4, 4) the
    vehicle motion. With aug_depth: T_ego_cam_aug (B, N, 4, 4) perturbed extrinsics and disp_aug/depth_aug
    decoded at those views (intrinsics unchanged).
    """

    disp: Tensor
    depth: Tensor
    T_src_tgt: Dict[int, Tensor] = field(default_factory=dict)
    T_c0src_c0tgt: Dict[int, Tensor] = field(default_factory=dict)
    T_egosrc_egotgt: Dict[int, Tensor] = field(default_factory=dict)
    T_ego_cam_aug: Optional[Tensor] = None
    disp_aug: Optional[Tensor] = None
    depth_aug: Optional[Tensor] = None


def fp32_geometry(t: Tensor):
    """Autocast switched off: camera geometry (projections, pose matrices) stays in fp32 under bf16/fp16."""
    return torch.autocast(device_type=t.device.type, enabled=False)


def _geometry_in_fp32(fn):
    """Method decorator: the method (a geometry look-up built from K, its first argument) runs without autocast."""

    @functools.wraps(fn)
    def wrapper(self, K, *args, **kwargs):
        with fp32_geometry(K):
            return fn(self, K, *args, **kwargs)

    return wrapper


def disp_to_depth(disp: Tensor, K: Tensor, min_depth: float, max_depth: float, focal_length_scale: float) -> Tensor:
    """Sigmoid disparity (B, N, 1, H, W) -> metric depth: 1 / (1/max + (1/min - 1/max) disp) * fx / scale."""
    min_disp, max_disp = 1.0 / max_depth, 1.0 / min_depth
    scaled = min_disp + (max_disp - min_disp) * disp.float()
    fx = K[..., 0, 0].to(scaled.dtype)[..., None, None, None]
    return fx / (scaled * focal_length_scale)


def augment_extrinsics(T_ego_cam: Tensor, aug_angle_deg: Tuple[float, float, float],
                       generator: Optional[torch.Generator] = None) -> Tensor:
    """Randomly rotate every camera about the vehicle origin: T_ego_cam (B, N, 4, 4) -> perturbed copy.

    aug_angle is in DEGREES (roll, pitch, yaw about the vehicle x, y, z axes); each angle is drawn
    uniformly from [-a/2, a/2], the released code's range. (The released code fed these degree values to
    a routine that expects radians; we convert them.)
    """
    B, N = T_ego_cam.shape[:2]
    r = torch.rand(B, N, 3, generator=generator, dtype=torch.float64).to(T_ego_cam.device) - 0.5
    ang = r * torch.tensor(aug_angle_deg, dtype=torch.float64, device=T_ego_cam.device)
    R = geo.euler_to_rotmat(ang[..., 0], ang[..., 1], ang[..., 2], degrees=True).to(T_ego_cam.dtype)
    T_rot = geo.make_transform(R, torch.zeros(B, N, 3, dtype=T_ego_cam.dtype, device=T_ego_cam.device))
    return T_rot @ T_ego_cam


class VFDepth(nn.Module):
    """Depth net + pose net of VFDepth (Kim et al., NeurIPS 2022), configured by ``cfg.model``/``cfg.training``.

    ``load_imagenet=False`` skips the ImageNet weights file (used when a checkpoint is loaded next).
    """

    def __init__(self, cfg: Config, load_imagenet: bool = True):
        super().__init__()
        m, t = cfg.model, cfg.training
        if m.depth_model == "fsm" and t.aug_depth:
            raise ConfigError("training.aug_depth needs model.depth_model 'fusion': the per-camera 'fsm' baseline "
                              "has no voxel volume to decode other viewpoints from")
        if m.fusion_level != 2:
            raise ConfigError(f"model.fusion_level: only 2 (the paper's VFDepth) is implemented, got {m.fusion_level}")
        if m.num_layers != 18:
            raise ConfigError(f"model.num_layers: only 18 (ResNet-18) is implemented, got {m.num_layers}")
        if tuple(t.scales) != (0,):
            raise ConfigError(f"training.scales: only (0,) is implemented (the paper's setting), got {t.scales}")
        self.cfg = cfg
        self.grid = geo.VoxelGrid(tuple(m.voxel_size), tuple(m.voxel_unit_size), tuple(m.voxel_str_p),
                                  m.voxel_center_offset)
        wp = m.weights_path if load_imagenet else None
        wi = m.weights_init and load_imagenet
        self.fused_depth, self.fused_pose = m.depth_model == "fusion", m.pose_model == "fusion"
        if self.fused_depth:
            self.depth_net = FusedDepthNet(self.grid, fusion_feat_in_dim=m.fusion_feat_in_dim,
                                           voxel_pre_dim=m.voxel_pre_dim[-1], proj_d_bins=m.proj_d_bins,
                                           weights_path=wp, weights_init=wi, use_skips=m.use_skips)
        else:
            self.depth_net = MonoDepthNet(weights_path=wp, weights_init=wi)
        if self.fused_pose:
            self.pose_net = FusedPoseNet(self.grid, fusion_feat_in_dim=m.fusion_feat_in_dim, weights_path=wp,
                                         weights_init=wi, translation_scale=m.pose_translation_scale,
                                         translation_limit_m=m.pose_translation_limit_m)
        else:
            self.pose_net = MonoPoseNet(weights_path=wp, weights_init=wi, translation_scale=m.pose_translation_scale)
        if m.init_depth_m is not None:
            self._init_disparity_bias(m.init_depth_m, t.min_depth, t.max_depth)
        self.rig_cache = RigCache()
        self.height, self.width = t.height, t.width
        self.depth_bins = torch.linspace(m.proj_d_str, m.proj_d_end, m.proj_d_bins)
        # Fast path (default): precomputed trilinear ray gathers with the reflect padding folded in and
        # zero-copy volume/BEV layouts. False = the reference formulation (grid_sample, explicit padding).
        self.fast = True
        self.channels_last = False

    @torch.no_grad()
    def _init_disparity_bias(self, depth_m: float, min_depth: float, max_depth: float) -> None:
        """Bias the last decoder conv so the sigmoid starts at the disparity of `depth_m` (fx/focal scale = 1)."""
        lo, hi = 1.0 / max_depth, 1.0 / min_depth
        s = min(max((1.0 / depth_m - lo) / (hi - lo), 1e-4), 1 - 1e-4)
        conv = self.depth_net.decoder.dispconv[0]
        conv.bias.fill_(math.log(s / (1.0 - s)))

    def set_fast(self, enabled: bool) -> "VFDepth":
        """Switch between the fast path and the reference formulation (identical outputs up to float error)."""
        self.fast = bool(enabled)
        self.pose_net.fast = self.fast
        return self

    def set_channels_last(self, enabled: bool = True) -> "VFDepth":
        """Convert 4-D conv weights and activations to channels_last (NHWC) memory (faster oneDNN/cuDNN
        kernels; parameter values, names and counts unchanged)."""
        fmt = torch.channels_last if enabled else torch.contiguous_format
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                mod.weight.data = mod.weight.data.contiguous(memory_format=fmt)
        self.channels_last = self.depth_net.channels_last = self.pose_net.channels_last = bool(enabled)
        return self

    # ---- rig look-ups -----------------------------------------------------------------------------

    def _feat_geometry(self, K: Tensor, hw: Tuple[int, int]) -> Tuple[Tensor, int, int]:
        """K at the feature stride. The same K object (unchanged) gives the same K8 object back, so the
        rig cache recognises a repeated calibration by identity (no hashing, no device sync)."""
        H, W = hw
        h, w = H // FEATURE_STRIDE, W // FEATURE_STRIDE
        memo = getattr(self, "_k8_memo", None)
        if memo is not None and memo[0] is K and memo[1] == K._version and memo[2] == (H, W):
            return memo[3], h, w
        K8 = geo.resize_intrinsics(K, (H, W), (h, w), half_pixel=self.cfg.model.feature_intrinsics == "half_pixel")
        if not (torch.is_grad_enabled() and K.requires_grad):
            self._k8_memo = (K, K._version, (H, W), K8)
        return K8, h, w

    @_geometry_in_fp32
    def voxel_lookup(self, K: Tensor, T_ego_cam: Tensor, mask: Optional[Tensor],
                     hw: Tuple[int, int]) -> Optional[VoxelLookup]:
        """Cached voxel -> pixel look-up for K (B, N, 3, 3) at image size hw, T_ego_cam, mask (B, N, 1, H, W);
        None for the per-camera baseline (no volume)."""
        if not (self.fused_depth or self.fused_pose):
            return None
        K8, h, w = self._feat_geometry(K, hw)
        m = self.cfg.model
        mask8 = None
        if mask is not None:
            resize = dict(mode="area") if m.mask_resize == "area" else dict(mode="bilinear", align_corners=True)
            mask8 = F.interpolate(mask.flatten(0, 1).float(), size=(h, w), **resize).reshape(*mask.shape[:2], 1, h, w)
        extra = (h, w, str(K.device), str(K.dtype))
        return self.rig_cache.get("voxels", (K8, T_ego_cam, mask8), extra,
                                  lambda: build_voxel_lookup(self.grid, K8, T_ego_cam, mask8, h, w, m.voxel_depth_scale,
                                                             m.overlap_pair_order, m.voxel_border_margin_px))

    @_geometry_in_fp32
    def ray_grid(self, K: Tensor, T_ego_cam: Tensor, hw: Tuple[int, int], cache: bool = True) -> Tensor:
        """Cached ray sample grid (B, N*D, H/8, W/8, 3) of views with K (B, N, 3, 3) at hw and T_ego_cam."""
        K8, h, w = self._feat_geometry(K, hw)

        def build():
            return build_ray_grid(self.grid, K8, T_ego_cam, h, w, self.depth_bins.to(K.device))

        if not cache:
            return build()
        return self.rig_cache.get("rays", (K8, T_ego_cam), (h, w, str(K.device), str(K.dtype)), build)

    @_geometry_in_fp32
    def ray_lookup(self, K: Tensor, T_ego_cam: Tensor, hw: Tuple[int, int], cache: bool = True) -> RayLookup:
        """Cached trilinear ray look-up (:class:`RayLookup`) of views with K (B, V, 3, 3) at hw and T_ego_cam."""
        K8, h, w = self._feat_geometry(K, hw)

        def build():
            rays = build_ray_grid(self.grid, K8, T_ego_cam, h, w, self.depth_bins.to(K.device))
            return build_ray_lookup(self.grid, rays, K.shape[1])

        if not cache:
            return build()
        return self.rig_cache.get("raylookup", (K8, T_ego_cam), (h, w, str(K.device), str(K.dtype)), build)

    # ---- networks ---------------------------------------------------------------------------------

    def to_depth(self, disp: Tensor, K: Tensor) -> Tensor:
        """Sigmoid disparity (B, N, 1, H, W) + K at H x W -> depth in metres."""
        t = self.cfg.training
        return disp_to_depth(disp, K, t.min_depth, t.max_depth, t.focal_length_scale)

    def predict_depth(self, images: Tensor, K: Tensor, T_ego_cam: Tensor, mask: Optional[Tensor] = None,
                      extra_views: Optional[Tuple[Tensor, Tensor]] = None,
                      lookup: Optional[VoxelLookup] = None, cache_extra: bool = True) -> Tuple[Tensor, Optional[Tensor]]:
        """Disparity of the N cameras and, optionally, of extra views decoded from the same volume.

        images (B, N, 3, H, W) in [0, 1]; K (B, N, 3, 3) at H x W; T_ego_cam (B, N, 4, 4); mask (B, N, 1, H, W).
        extra_views: (K_v (B, V, 3, 3) at H x W, T_ego_v (B, V, 4, 4)). Returns disp (B, N, 1, H, W) and
        disp of the extra views (B, V, 1, H, W) or None. cache_extra=False for one-off (random) views.
        """
        B, N, _, H, W = images.shape
        if not self.fused_depth:
            if extra_views is not None:
                raise ConfigError("virtual views need model.depth_model 'fusion': the per-camera 'fsm' baseline "
                                  "has no voxel volume to decode them from")
            return self.depth_net(images), None
        lk = lookup if lookup is not None else self.voxel_lookup(K, T_ego_cam, mask, (H, W))
        feats, skips = self.depth_net.encode_with_skips(images)
        if self.fast:
            volume = self.depth_net.fusion(feats, lk)
            rls = [self.ray_lookup(K, T_ego_cam, (H, W))]
            if extra_views is not None:
                rls.append(self.ray_lookup(extra_views[0], extra_views[1], (H, W), cache=cache_extra))
            disp = self.depth_net.decode_rays(volume, rls, skips=skips)
            return disp[:, :N], (disp[:, N:] if extra_views is not None else None)
        volume = self.depth_net.fusion(feats, lk, reference=True)
        grid = self.ray_grid(K, T_ego_cam, (H, W))
        n_views = N
        if extra_views is not None:
            Kv, Tv = extra_views
            grid = torch.cat([grid, self.ray_grid(Kv, Tv, (H, W), cache=cache_extra)], 1)
            n_views += Kv.shape[1]
        disp = self.depth_net.decode_views(volume, grid, n_views, skips=skips)
        return disp[:, :N], (disp[:, N:] if extra_views is not None else None)

    def predict_pose(self, images_early: Tensor, images_late: Tensor, K: Tensor, T_ego_cam: Tensor,
                     mask: Optional[Tensor] = None, lookup: Optional[VoxelLookup] = None) -> Tensor:
        """Reference-camera motion T_clate_cearly (B, 4, 4) from two frames (B, N, 3, H, W) in temporal order.
        (The per-camera baseline: camera 0's own motion.)"""
        if not self.fused_pose:
            return self.predict_camera_poses(images_early, images_late)[:, 0]
        H, W = images_early.shape[-2:]
        lk = lookup if lookup is not None else self.voxel_lookup(K, T_ego_cam, mask, (H, W))
        axis_angle, translation = self.pose_net(images_early, images_late, lk)
        with fp32_geometry(axis_angle):
            return geo.pose_vec_to_transform(axis_angle.float(), translation.float())

    def refine_pose(self, T_c0cur_c0prev: Tensor, depth_cur: Tensor, images_prev: Tensor, images_cur: Tensor,
                    K: Tensor, T_ego_cam: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """:meth:`predict_pose`'s motion prev -> cur (B, 4, 4) refined by direct photometric alignment through
        the current frame's depth (B, N, 1, H, W) when ``model.pose_refine_iterations`` > 0 (beyond the
        paper; inference only), else returned as it is."""
        with fp32_geometry(depth_cur):
            return refine_network_motion(self.cfg.model, T_c0cur_c0prev, depth_cur.float(), images_prev.float(),
                                         images_cur.float(), K.float(), T_ego_cam.float(), mask)

    def predict_camera_poses(self, images_early: Tensor, images_late: Tensor) -> Tensor:
        """Per-camera baseline: every camera's own motion T_clate_cearly (B, N, 4, 4)."""
        axis_angle, translation = self.pose_net(images_early, images_late)
        B, N = axis_angle.shape[:2]
        with fp32_geometry(axis_angle):
            T = geo.pose_vec_to_transform(axis_angle.float().flatten(0, 1), translation.float().flatten(0, 1))
        return T.reshape(B, N, 4, 4)

    def forward(self, inputs: dict) -> ModelOutputs:
        """inputs: a collated sample batch (image_aug (B, F, N, 3, H, W), K, T_ego_cam, mask)."""
        images = inputs.get("image_aug", inputs.get("image"))
        geo.check_shape("inputs['image_aug']", images, (None, None, 3, None, None), min_dims=6)
        K, T = inputs["K"], inputs["T_ego_cam"]
        geo.check_shape("inputs['K']", K, (images.shape[2], 3, 3), min_dims=4)
        geo.check_shape("inputs['T_ego_cam']", T, (images.shape[2], 4, 4), min_dims=4)
        mask = inputs.get("mask")
        frame_ids = tuple(self.cfg.training.frame_ids)
        idx = {f: i for i, f in enumerate(frame_ids)}
        H, W = images.shape[-2:]
        lk = self.voxel_lookup(K, T, mask, (H, W))

        aug = None
        if self.cfg.training.aug_depth:
            T_aug = augment_extrinsics(T, self.cfg.training.aug_angle)
            aug = (K, T_aug)
        disp, disp_aug = self.predict_depth(images[:, idx[0]], K, T, mask, aug, lookup=lk, cache_extra=False)
        out = ModelOutputs(disp=disp, depth=self.to_depth(disp, K))
        if aug is not None:
            out.T_ego_cam_aug, out.disp_aug, out.depth_aug = aug[1], disp_aug, self.to_depth(disp_aug, K)

        for f in frame_ids:
            if f == 0:
                continue
            early, late = (images[:, idx[f]], images[:, idx[0]]) if f < 0 else (images[:, idx[0]], images[:, idx[f]])
            if not self.fused_pose:  # per-camera baseline: each camera's own motion
                T_late_early = self.predict_camera_poses(early, late)
                with fp32_geometry(T_late_early):
                    T_src_tgt = geo.invert_transform(T_late_early) if f < 0 else T_late_early
                    out.T_src_tgt[f] = T_src_tgt
                    out.T_c0src_c0tgt[f] = T_c0src_c0tgt = T_src_tgt[:, 0]
                    out.T_egosrc_egotgt[f] = geo.camera_motion_to_ego(T_c0src_c0tgt, T[:, 0].to(T_c0src_c0tgt.dtype))
                continue
            # frames go in temporal order; invert to get frame-0 -> frame-f
            T_late_early = self.predict_pose(early, late, K, T, lookup=lk)
            with fp32_geometry(T_late_early):
                T_c0src_c0tgt = geo.invert_transform(T_late_early) if f < 0 else T_late_early
                out.T_c0src_c0tgt[f] = T_c0src_c0tgt
                out.T_src_tgt[f] = geo.distribute_motion(T_c0src_c0tgt, T.to(T_c0src_c0tgt.dtype))
                out.T_egosrc_egotgt[f] = geo.camera_motion_to_ego(T_c0src_c0tgt, T[:, 0].to(T_c0src_c0tgt.dtype))
        return out

    def num_parameters(self) -> Dict[str, int]:
        """Parameter counts per block (depth net, pose net and their parts)."""
        c = lambda mod: sum(p.numel() for p in mod.parameters())  # noqa: E731
        d, p = self.depth_net, self.pose_net
        if not (self.fused_depth and self.fused_pose):
            return {"depth_net": c(d), "depth.encoder": c(d.encoder), "depth.decoder": c(d.decoder),
                    "pose_net": c(p), "pose.encoder": c(p.encoder),
                    "pose.pose_head": c(p.pose_head) if hasattr(p, "pose_head") else 0, "total": c(self)}
        return {
            "depth_net": c(d), "depth.encoder": c(d.encoder), "depth.conv1x1": c(d.aggregate),
            "depth.fusion_overlap": c(d.fusion.conv_overlap), "depth.fusion_single": c(d.fusion.conv_single),
            "depth.reduce_dim": c(d.reduce_dim), "depth.decoder": c(d.decoder),
            "pose_net": c(p), "pose.encoder": c(p.encoder), "pose.conv1x1": c(p.aggregate),
            "pose.reduce_dim": c(p.reduce_dim), "pose.pose_head": c(p.pose_head), "total": c(self),
        }
