"""The paper's per-camera baseline (``model.depth_model/pose_model: 'fsm'``): every camera on its own.

Depth: the shared ResNet-18 encoder and a U-Net decoder with skip connections (the Monodepth2 layout:
decoder widths 256, 128, 64, 32, 16 from 1/32 scale up to full resolution, ELU 3x3 convs with reflect
padding, nearest x2 upsampling, sigmoid disparity at full resolution). Pose: a ResNet-18 on the two
frames of one camera stacked on channels and a pose head on its 1/32 features (1x1 squeeze to 256,
two 3x3 convs, 1x1 to 6, spatial mean, x0.01), run for every camera with shared weights, so each
camera gets its own motion; the pose-consistency loss (``loss.pose_loss_coeff``) ties them together.
There is no voxel volume, so no depth at virtual views.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vfdepth_core.nn.encoder import ResNetEncoder, conv_block
from vfdepth_core.nn.pose import TRANSLATION_LIMIT_M, PoseHead

DECODER_WIDTHS = (16, 32, 64, 128, 256)  # at scales 1/1, 1/2, 1/4, 1/8, 1/16 (the last stage starts from 1/32)


class SkipDepthDecoder(nn.Module):
    """Five upsampling stages with encoder skips; sigmoid disparity at the input resolution."""

    def __init__(self, enc_channels=ResNetEncoder.num_ch_enc, widths=DECODER_WIDTHS):
        super().__init__()
        self.pre = nn.ModuleList()
        self.post = nn.ModuleList()
        cin = enc_channels[-1]
        for i in range(4, -1, -1):
            self.pre.append(conv_block(cin, widths[i], 3, act="elu"))
            skip = enc_channels[i - 1] if i > 0 else 0
            self.post.append(conv_block(widths[i] + skip, widths[i], 3, act="elu"))
            cin = widths[i]
        self.dispconv = conv_block(widths[0], 1, 3, act=None)

    def forward(self, feats: List[Tensor]) -> Tensor:
        x = feats[-1]
        for k, i in enumerate(range(4, -1, -1)):
            x = F.interpolate(self.pre[k](x), scale_factor=2, mode="nearest")
            if i > 0:
                x = torch.cat([x, feats[i - 1]], 1)
            x = self.post[k](x)
        return torch.sigmoid(self.dispconv(x))


class MonoDepthNet(nn.Module):
    """Per-camera depth: images (B, N, 3, H, W) in [0, 1] -> disparity (B, N, 1, H, W) in (0, 1)."""

    def __init__(self, weights_path: Optional[str] = None, weights_init: bool = True):
        super().__init__()
        self.encoder = ResNetEncoder(1, weights_path, weights_init)
        self.decoder = SkipDepthDecoder()
        self.channels_last = False

    def forward(self, images: Tensor) -> Tensor:
        B, N, _, H, W = images.shape
        if H % 32 or W % 32:
            raise ValueError(f"the per-camera depth net needs image sides divisible by 32, got {H}x{W}")
        x = images.flatten(0, 1)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        disp = self.decoder(self.encoder(x))
        return disp.reshape(B, N, 1, H, W)


class MonoPoseNet(nn.Module):
    """Per-camera motion from two frames (B, N, 3, H, W) in temporal order (early, late).

    Returns axis-angle (B, N, 3) and translation (B, N, 3) (clamped to +-4 m) of T_clate_cearly per camera.
    """

    def __init__(self, weights_path: Optional[str] = None, weights_init: bool = True, translation_scale: float = 0.01):
        super().__init__()
        self.encoder = ResNetEncoder(2, weights_path, weights_init)
        self.pose_head = PoseHead(ResNetEncoder.num_ch_enc[-1], 256, stride=1, translation_scale=translation_scale)
        self.channels_last = False

    def forward(self, early: Tensor, late: Tensor) -> Tuple[Tensor, Tensor]:
        B, N = early.shape[:2]
        x = torch.cat([early, late], 2).flatten(0, 1)  # (B*N, 6, H, W)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        axis_angle, translation = self.pose_head(self.encoder(x)[-1])
        translation = translation.clamp(-TRANSLATION_LIMIT_M, TRANSLATION_LIMIT_M)
        return axis_angle.reshape(B, N, 3), translation.reshape(B, N, 3)
