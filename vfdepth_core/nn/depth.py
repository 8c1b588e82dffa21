"""VFDepth depth network: shared encoder -> volumetric fusion -> per-view ray features -> skip-less decoder."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vfdepth_core import geometry as geo
from vfdepth_core.nn.encoder import FeatureAggregator, ResNetEncoder, conv_block
from vfdepth_core.nn.fusion import VolumetricFusion, VoxelLookup, sample_volume_along_rays


class DepthDecoder(nn.Module):
    """Three upsampling stages without skips (in_dim -> 64 -> 32 -> 16), sigmoid disparity at 8x the input size.

    Each stage: 3x3 conv + ELU, nearest x2 upsampling, 3x3 conv + ELU; then a 3x3 conv to one channel.
    """

    def __init__(self, in_dim: int = 128, channels=(64, 32, 16)):
        super().__init__()
        stages = []
        cin = in_dim
        for c in channels:
            stages.append(nn.ModuleList([conv_block(cin, c, 3, act="elu"), conv_block(c, c, 3, act="elu")]))
            cin = c
        self.stages = nn.ModuleList(stages)
        self.dispconv = conv_block(cin, 1, 3, act=None)

    def forward(self, x: Tensor) -> Tensor:
        for pre, post in self.stages:
            x = post(F.interpolate(pre(x), scale_factor=2, mode="nearest"))
        return torch.sigmoid(self.dispconv(x))


class FusedDepthNet(nn.Module):
    """Depth network of VFDepth. Use :meth:`encode`, :meth:`fuse`, :meth:`decode_views` (the model drives them)."""

    def __init__(self, grid: geo.VoxelGrid, *, fusion_feat_in_dim: int = 256, voxel_pre_dim: int = 64,
                 proj_d_bins: int = 50, weights_path: Optional[str] = None, weights_init: bool = True):
        super().__init__()
        self.encoder = ResNetEncoder(1, weights_path, weights_init)
        self.aggregate = FeatureAggregator(fusion_feat_in_dim)
        self.fusion = VolumetricFusion(grid, fusion_feat_in_dim, voxel_pre_dim, mode="depth")
        self.reduce_dim = nn.Sequential(conv_block(voxel_pre_dim * proj_d_bins, 256, 3),
                                        conv_block(256, ResNetEncoder.num_ch_enc[2], 3))
        self.decoder = DepthDecoder(ResNetEncoder.num_ch_enc[2])

    def encode(self, images: Tensor) -> Tensor:
        """images (B, N, 3, H, W) in [0, 1] -> aggregated features (B, N, C, H/8, W/8)."""
        B, N = images.shape[:2]
        f = self.aggregate(self.encoder(images.flatten(0, 1)))
        return f.reshape(B, N, *f.shape[1:])

    def fuse(self, feats: Tensor, lk: VoxelLookup) -> Tensor:
        """features (B, N, C, h, w) -> volume (B, voxel_pre_dim, X, Y, Z)."""
        return self.fusion(feats, lk)

    def decode_views(self, volume: Tensor, ray_grid: Tensor, num_views: int) -> Tensor:
        """volume + ray grid (B, V*D, h, w, 3) -> sigmoid disparity (B, V, 1, 8h, 8w)."""
        B = volume.shape[0]
        x = self.reduce_dim(sample_volume_along_rays(volume, ray_grid, num_views))
        disp = self.decoder(x)
        return disp.reshape(B, num_views, *disp.shape[1:])
