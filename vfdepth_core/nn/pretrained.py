"""ImageNet ResNet-18 weights through torchvision's weights API and its cache (``$TORCH_HOME/hub/checkpoints``).

``model.weights_init: True`` (the paper) asks for ``ResNet18_Weights.IMAGENET1K_V1``: read from the torch hub
cache when there, else downloaded once (with a progress bar) into it. Offline without the file, one
:class:`ConfigError` names the file, the folder to put it in and the key that chooses random init.
``model.weights_path`` (beyond the paper) reads a local state-dict file instead of the cache.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Dict, Optional
from urllib.parse import urlparse

import torch
import torchvision
from torch import Tensor

logger = logging.getLogger(__name__)

IMAGENET_WEIGHTS = torchvision.models.ResNet18_Weights.IMAGENET1K_V1


def imagenet_cache_file() -> Path:
    """Where torchvision keeps the ImageNet ResNet-18 file: ``<torch.hub.get_dir()>/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(IMAGENET_WEIGHTS.url).path)


def _config_error(msg: str) -> Exception:
    from vfdepth_core.config import ConfigError

    return ConfigError(msg)


def imagenet_state_dict(weights_path: Optional[str] = None) -> Dict[str, Tensor]:
    """The ResNet-18 ImageNet state dict (``fc.*`` dropped) from `weights_path` or torchvision's cache/download."""
    if weights_path:
        p = Path(weights_path)
        if not p.is_file():
            raise _config_error(f"model.weights_path: file not found: {p} (give a torchvision resnet18 .pth file, "
                                f"or leave it unset to use torchvision's cache)")
        state = torch.load(p, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        source = str(p)
    else:
        cached = imagenet_cache_file()
        if not cached.is_file():
            logger.info("downloading ImageNet ResNet-18 weights %s to %s", IMAGENET_WEIGHTS.url, cached.parent)
        try:
            state = IMAGENET_WEIGHTS.get_state_dict(progress=True)
        except Exception as exc:  # offline (URLError), proxy, disk full, half-written file, ...
            raise _config_error(
                f"model.weights_init: cannot get the ImageNet ResNet-18 weights ({type(exc).__name__}: {exc}); "
                f"download {IMAGENET_WEIGHTS.url} and put it at {cached} (folder {cached.parent}, set by "
                f"TORCH_HOME), or set model.weights_init=false for random init") from None
        source = str(cached)
    logger.info("ImageNet ResNet-18 weights from %s", source)
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def tile_first_conv(state: Dict[str, Tensor], num_input_images: int) -> Dict[str, Tensor]:
    """conv1 for `num_input_images` stacked frames: the ImageNet kernel repeated per frame and divided by their count."""
    if num_input_images == 1 or "conv1.weight" not in state:
        return state
    w = state["conv1.weight"]
    return {**state, "conv1.weight": torch.cat([w] * num_input_images, 1) / num_input_images}
