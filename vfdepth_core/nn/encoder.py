"""ResNet-18 image encoder (torchvision architecture) and the 1/8-scale multi-level feature aggregation."""

from __future__ import annotations

import logging
from typing import List, Optional

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from vfdepth_core.nn.pretrained import imagenet_state_dict, tile_first_conv

logger = logging.getLogger(__name__)

IMAGE_MEAN = 0.45
IMAGE_STD = 0.225


class ResNetEncoder(nn.Module):
    """ResNet-18 trunk without the classifier; `num_input_images` frames are stacked on channels.

    forward(x (B, 3*num_input_images, H, W) in [0, 1]) -> [f1 (64, H/2), f2 (64, H/4), f3 (128, H/8),
    f4 (256, H/16), f5 (512, H/32)]. Input is normalised (x - 0.45) / 0.225 inside.
    """

    num_ch_enc = (64, 64, 128, 256, 512)

    def __init__(self, num_input_images: int = 1, weights_path: Optional[str] = None, weights_init: bool = True):
        super().__init__()
        net = torchvision.models.resnet18(weights=None)
        self.num_input_images = num_input_images
        self.conv1 = (nn.Conv2d(3 * num_input_images, 64, kernel_size=7, stride=2, padding=3, bias=False)
                      if num_input_images != 1 else net.conv1)
        if num_input_images != 1:
            nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.bn1, self.relu, self.maxpool = net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        if weights_init:  # the paper: ImageNet (torchvision's cache, or model.weights_path); False = random init
            self.load_imagenet(imagenet_state_dict(weights_path))

    def load_imagenet(self, state: dict) -> None:
        """Load a torchvision resnet18 state dict (no fc); conv1 is tiled for stacked frames."""
        missing, unexpected = self.load_state_dict(tile_first_conv(state, self.num_input_images), strict=False)
        if missing or unexpected:
            from vfdepth_core.config import ConfigError

            raise ConfigError(f"ImageNet weights: not a resnet18 state dict (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}); fix model.weights_path or the torch hub cache file")

    def forward(self, x: Tensor) -> List[Tensor]:
        x = (x - IMAGE_MEAN) / IMAGE_STD
        f1 = self.relu(self.bn1(self.conv1(x)))
        f2 = self.layer1(self.maxpool(f1))
        f3 = self.layer2(f2)
        f4 = self.layer3(f3)
        f5 = self.layer4(f4)
        return [f1, f2, f3, f4, f5]


def conv_block(cin: int, cout: int, kernel_size: int = 3, stride: int = 1, act: Optional[str] = "lrelu") -> nn.Sequential:
    """Conv2d (bias, reflect padding) followed by LeakyReLU(0.1), ELU or nothing."""
    conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, bias=True,
                     padding_mode="reflect")
    if act == "lrelu":
        return nn.Sequential(conv, nn.LeakyReLU(0.1, inplace=True))
    if act == "elu":
        return nn.Sequential(conv, nn.ELU(inplace=True))
    return nn.Sequential(conv)


class FeatureAggregator(nn.Module):
    """Encoder levels 1/8, 1/16, 1/32 upsampled to 1/8, concatenated (896 ch), 1x1 conv -> out_dim."""

    def __init__(self, out_dim: int = 256, fusion_level: int = 2):
        super().__init__()
        self.fusion_level = fusion_level
        in_dim = sum(ResNetEncoder.num_ch_enc[fusion_level:])
        self.conv1x1 = conv_block(in_dim, out_dim, kernel_size=1)

    def forward(self, feats: List[Tensor]) -> Tensor:
        base = feats[self.fusion_level]
        hw = base.shape[-2:]
        ups = [base] + [F.interpolate(f, size=hw, mode="bilinear", align_corners=True)
                        for f in feats[self.fusion_level + 1:]]
        return self.conv1x1(torch.cat(ups, 1))
