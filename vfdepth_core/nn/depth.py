"""VFDepth depth network: shared encoder -> volumetric fusion -> per-view ray features -> skip-less decoder
(skips optional, beyond the paper)."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vfdepth_core import geometry as geo
from vfdepth_core.nn.encoder import FeatureAggregator, ResNetEncoder, conv_block
from vfdepth_core.nn.fusion import (RayLookup, VolumetricFusion, VoxelLookup, WeightCache, depth_major_weight,
                                    gather_rays, sample_volume_along_rays, train_layout)


class DepthDecoder(nn.Module):
    """Three upsampling stages (in_dim -> 64 -> 32 -> 16), sigmoid disparity at 8x the input size.

    Each stage: 3x3 conv + ELU, nearest x2 upsampling, 3x3 conv + ELU; then a 3x3 conv to one channel.
    The paper's decoder has no skips. ``skip_dims`` (beyond the paper, ``model.use_skips``): the first stages
    also take encoder features at their output scale (1/4, then 1/2), concatenated after the upsampling as in
    Monodepth2; views without images of their own (virtual views) get zeros there.
    """

    def __init__(self, in_dim: int = 128, channels=(64, 32, 16), skip_dims: Sequence[int] = ()):
        super().__init__()
        self.skip_dims = tuple(skip_dims)
        stages = []
        cin = in_dim
        for i, c in enumerate(channels):
            extra = self.skip_dims[i] if i < len(self.skip_dims) else 0
            stages.append(nn.ModuleList([conv_block(cin, c, 3, act="elu"), conv_block(c + extra, c, 3, act="elu")]))
            cin = c
        self.stages = nn.ModuleList(stages)
        self.dispconv = conv_block(cin, 1, 3, act=None)

    def forward(self, x: Tensor, skips: Optional[Sequence[Tensor]] = None) -> Tensor:
        """x (B, in_dim, h, w); skips: encoder features (B, skip_dims[i], 2**(i+1) h, 2**(i+1) w) or None."""
        for i, (pre, post) in enumerate(self.stages):
            x = F.interpolate(pre(x), scale_factor=2, mode="nearest")
            if i < len(self.skip_dims):
                s = skips[i] if skips is not None else x.new_zeros(x.shape[0], self.skip_dims[i], *x.shape[-2:])
                x = torch.cat([x, s.to(x.dtype)], 1)
            x = post(x)
        return torch.sigmoid(self.dispconv(x))


def _pad_skips(skips: Optional[List[Tensor]], B: int, num_views: int) -> Optional[List[Tensor]]:
    """Skip features of the first N views (B*N, C, h, w) -> (B*num_views, C, h, w), zeros for the rest."""
    if skips is None:
        return None
    out = []
    for s in skips:
        n = s.shape[0] // B
        if n == num_views:
            out.append(s)
            continue
        s = s.reshape(B, n, *s.shape[1:])
        pad = s.new_zeros(B, num_views - n, *s.shape[2:])
        out.append(torch.cat([s, pad], 1).flatten(0, 1))
    return out


class FusedDepthNet(nn.Module):
    """Depth network of VFDepth. Use :meth:`encode`, :meth:`fuse`, :meth:`decode_views` (the model drives them)."""

    def __init__(self, grid: geo.VoxelGrid, *, fusion_feat_in_dim: int = 256, voxel_pre_dim: int = 64,
                 proj_d_bins: int = 50, weights_path: Optional[str] = None, weights_init: bool = True,
                 use_skips: bool = False):
        super().__init__()
        self.encoder = ResNetEncoder(1, weights_path, weights_init)
        self.aggregate = FeatureAggregator(fusion_feat_in_dim)
        self.fusion = VolumetricFusion(grid, fusion_feat_in_dim, voxel_pre_dim, mode="depth")
        self.reduce_dim = nn.Sequential(conv_block(voxel_pre_dim * proj_d_bins, 256, 3),
                                        conv_block(256, ResNetEncoder.num_ch_enc[2], 3))
        # skips: encoder level 1 (1/4 scale) into the first stage, level 0 (1/2) into the second
        skip_dims = (ResNetEncoder.num_ch_enc[1], ResNetEncoder.num_ch_enc[0]) if use_skips else ()
        self.decoder = DepthDecoder(ResNetEncoder.num_ch_enc[2], skip_dims=skip_dims)
        self.proj_d_bins = proj_d_bins
        self.channels_last = False  # set by VFDepth.set_channels_last (inputs converted, weights converted there)
        self._wcache = WeightCache()

    @property
    def use_skips(self) -> bool:
        return bool(self.decoder.skip_dims)

    def encode(self, images: Tensor) -> Tensor:
        """images (B, N, 3, H, W) in [0, 1] -> aggregated features (B, N, C, H/8, W/8)."""
        return self.encode_with_skips(images)[0]

    def encode_with_skips(self, images: Tensor) -> Tuple[Tensor, Optional[List[Tensor]]]:
        """:meth:`encode` plus the decoder's skip features [(B*N, 64, H/4, W/4), (B*N, 64, H/2, W/2)]
        (None without ``use_skips``)."""
        B, N = images.shape[:2]
        x = images.flatten(0, 1)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        levels = self.encoder(x)
        f = self.aggregate(levels)
        skips = [levels[1], levels[0]] if self.use_skips else None
        return f.reshape(B, N, *f.shape[1:]), skips

    def fuse(self, feats: Tensor, lk: VoxelLookup) -> Tensor:
        """features (B, N, C, h, w) -> volume (B, voxel_pre_dim, X, Y, Z)."""
        return self.fusion(feats, lk)

    def decode_views(self, volume: Tensor, ray_grid: Tensor, num_views: int,
                     skips: Optional[List[Tensor]] = None) -> Tensor:
        """volume + ray grid (B, V*D, h, w, 3) -> sigmoid disparity (B, V, 1, 8h, 8w). skips (use_skips):
        :meth:`encode_with_skips`'s features of the first views (the cameras); the others get zeros."""
        B = volume.shape[0]
        x = sample_volume_along_rays(volume, ray_grid, num_views)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        disp = self.decoder(self.reduce_dim(x), _pad_skips(skips, B, num_views))
        return disp.reshape(B, num_views, *disp.shape[1:])

    def decode_rays(self, volume: Tensor, lookups: List[RayLookup], dense: bool = False,
                    skips: Optional[List[Tensor]] = None) -> Tensor:
        """The fast path of :meth:`decode_views`: precomputed trilinear gathers (reflect padding folded in,
        depth-major channels_last layout, the first conv's weight permuted to match) -> (B, V, 1, 8h, 8w),
        views of all look-ups concatenated. dense=True: exportable 8-corner gathers instead of embedding_bag.
        skips (use_skips): the features of the first look-up's views (the cameras); other look-ups get zeros."""
        B = volume.shape[0]
        conv0 = self.reduce_dim[0][0]
        w0 = self._wcache.get(conv0.weight, lambda w: depth_major_weight(w, self.proj_d_bins))
        disps = []
        for i, rl in enumerate(lookups):
            x = train_layout(gather_rays(volume, rl, dense=dense))
            x = F.leaky_relu(F.conv2d(x, w0, conv0.bias), 0.1)
            disp = self.decoder(self.reduce_dim[1](x), skips if i == 0 else None)
            disps.append(disp.reshape(B, rl.num_views, *disp.shape[1:]))
        return disps[0] if len(disps) == 1 else torch.cat(disps, 1)
