"""VFDepth depth network: shared encoder -> volumetric fusion -> per-view ray features -> skip-less decoder."""

from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vfdepth_core import geometry as geo
from vfdepth_core.nn.encoder import FeatureAggregator, ResNetEncoder, conv_block
from vfdepth_core.nn.fusion import (RayLookup, VolumetricFusion, VoxelLookup, WeightCache, depth_major_weight,
                                    gather_rays, sample_volume_along_rays)


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
        self.proj_d_bins = proj_d_bins
        self.channels_last = False  # set by VFDepth.set_channels_last (inputs converted, weights converted there)
        self._wcache = WeightCache()

    def encode(self, images: Tensor) -> Tensor:
        """images (B, N, 3, H, W) in [0, 1] -> aggregated features (B, N, C, H/8, W/8)."""
        B, N = images.shape[:2]
        x = images.flatten(0, 1)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        f = self.aggregate(self.encoder(x))
        return f.reshape(B, N, *f.shape[1:])

    def fuse(self, feats: Tensor, lk: VoxelLookup) -> Tensor:
        """features (B, N, C, h, w) -> volume (B, voxel_pre_dim, X, Y, Z)."""
        return self.fusion(feats, lk)

    def decode_views(self, volume: Tensor, ray_grid: Tensor, num_views: int) -> Tensor:
        """volume + ray grid (B, V*D, h, w, 3) -> sigmoid disparity (B, V, 1, 8h, 8w)."""
        B = volume.shape[0]
        x = sample_volume_along_rays(volume, ray_grid, num_views)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        disp = self.decoder(self.reduce_dim(x))
        return disp.reshape(B, num_views, *disp.shape[1:])

    def decode_rays(self, volume: Tensor, lookups: List[RayLookup], dense: bool = False) -> Tensor:
        """The fast path of :meth:`decode_views`: precomputed trilinear gathers (reflect padding folded in,
        depth-major channels_last layout, the first conv's weight permuted to match) -> (B, V, 1, 8h, 8w),
        views of all look-ups concatenated. dense=True: exportable 8-corner gathers instead of embedding_bag."""
        B = volume.shape[0]
        conv0 = self.reduce_dim[0][0]
        w0 = self._wcache.get(conv0.weight, lambda w: depth_major_weight(w, self.proj_d_bins))
        disps = []
        for rl in lookups:
            x = gather_rays(volume, rl, dense=dense)
            x = F.leaky_relu(F.conv2d(x, w0, conv0.bias), 0.1)
            disp = self.decoder(self.reduce_dim[1](x))
            disps.append(disp.reshape(B, rl.num_views, *disp.shape[1:]))
        return disps[0] if len(disps) == 1 else torch.cat(disps, 1)
