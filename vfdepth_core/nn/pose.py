"""VFDepth pose network: two frames per camera -> averaged voxel features -> BEV -> one canonical motion."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from vfdepth_core import geometry as geo
from vfdepth_core.nn.encoder import FeatureAggregator, ResNetEncoder, conv_block
import torch.nn.functional as F

from vfdepth_core.nn.fusion import (VolumetricFusion, VoxelLookup, WeightCache, bev_from_volume,
                                    bev_from_volume_zmajor, depth_major_weight, train_layout)

TRANSLATION_LIMIT_M = 4.0


class PoseHead(nn.Module):
    """1x1 squeeze to 256 + ReLU, two stride-2 3x3 convs + ReLU, 1x1 conv to 6, spatial mean, x0.01
    (translation x `translation_scale`, the paper's 0.01 by default).

    forward(x (B, C, h, w)) -> axis-angle (B, 3) radians, translation (B, 3) metres.
    """

    def __init__(self, in_dim: int = 128, width: int = 256, stride: int = 2, translation_scale: float = 0.01):
        super().__init__()
        self.translation_scale = float(translation_scale)
        self.squeeze = nn.Conv2d(in_dim, width, 1)
        self.pose0 = nn.Conv2d(width, width, 3, stride, 1)
        self.pose1 = nn.Conv2d(width, width, 3, stride, 1)
        self.pose2 = nn.Conv2d(width, 6, 1)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        x = self.relu(self.squeeze(x))
        x = self.relu(self.pose0(x))
        x = self.relu(self.pose1(x))
        out = self.pose2(x).mean(dim=(2, 3))
        return 0.01 * out[:, :3], self.translation_scale * out[:, 3:]


class FusedPoseNet(nn.Module):
    """Canonical (reference camera) motion from two surround frames given in temporal order."""

    def __init__(self, grid: geo.VoxelGrid, *, fusion_feat_in_dim: int = 256, weights_path: Optional[str] = None,
                 weights_init: bool = True, translation_scale: float = 0.01,
                 translation_limit_m: float = TRANSLATION_LIMIT_M):
        super().__init__()
        self.translation_limit_m = float(translation_limit_m)  # 0 = no limit
        self.encoder = ResNetEncoder(2, weights_path, weights_init)
        self.aggregate = FeatureAggregator(fusion_feat_in_dim)
        self.fusion = VolumetricFusion(grid, fusion_feat_in_dim, mode="pose")
        bev_dim = (fusion_feat_in_dim + 1) * grid.size[2]
        self.reduce_dim = nn.Sequential(conv_block(bev_dim, 256, 3, stride=2),
                                        conv_block(256, ResNetEncoder.num_ch_enc[2], 3, stride=2))
        self.pose_head = PoseHead(ResNetEncoder.num_ch_enc[2], translation_scale=translation_scale)
        self.z_dim = grid.size[2]
        self.channels_last = False  # set by VFDepth.set_channels_last
        self.fast = True  # zero-copy z-major BEV (first conv's weight permuted to match); False = reference layout
        self._wcache = WeightCache()

    def forward(self, images_early: Tensor, images_late: Tensor, lk: VoxelLookup,
                dense_tables: Optional[dict] = None) -> Tuple[Tensor, Tensor]:
        """images (B, N, 3, H, W) of the earlier and later frame -> axis-angle (B, 3), translation (B, 3),
        the reference camera's motion T_clate_cearly (earlier-frame points -> later frame), each translation
        component clamped to +-translation_limit_m (model.pose_translation_limit_m; 0 = not clamped)."""
        B, N = images_early.shape[:2]
        x = torch.cat([images_early, images_late], 2).flatten(0, 1)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        f = self.aggregate(self.encoder(x))
        f = f.reshape(B, N, *f.shape[1:])
        if dense_tables is not None:  # exportable fixed-width gathers (ONNX)
            volume = self.fusion.forward_dense(f, lk, dense_tables)
        else:
            volume = self.fusion(f, lk, reference=not self.fast)
        if self.fast or dense_tables is not None:
            conv0 = self.reduce_dim[0][0]
            w0 = self._wcache.get(conv0.weight, lambda w: depth_major_weight(w, self.z_dim))
            x = train_layout(F.pad(bev_from_volume_zmajor(volume), (1, 1, 1, 1), mode="reflect"))
            x = F.leaky_relu(F.conv2d(x, w0, conv0.bias, stride=conv0.stride), 0.1)
            x = self.reduce_dim[1](x)
        else:
            bev = bev_from_volume(volume)
            x = self.reduce_dim(bev.contiguous(memory_format=torch.channels_last) if self.channels_last else bev)
        axis_angle, translation = self.pose_head(x)
        if self.translation_limit_m > 0:
            translation = translation.clamp(-self.translation_limit_m, self.translation_limit_m)
        return axis_angle, translation
