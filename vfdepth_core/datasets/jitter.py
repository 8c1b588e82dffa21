"""Colour jitter (brightness, contrast, saturation, hue), one draw per camera for all its frames."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch


def draw_jitter(strengths: Sequence[float], generator: Optional[torch.Generator] = None) -> dict:
    """Random jitter factors like torchvision's ColorJitter: brightness/contrast/saturation factors in
    [1-s, 1+s], hue shift in [-h, h], and a random order of the four operations."""
    b, c, s, h = (float(x) for x in strengths)

    def u(lo: float, hi: float) -> float:
        return float(lo + (hi - lo) * torch.rand((), generator=generator))

    return {
        "brightness": u(max(0.0, 1 - b), 1 + b) if b > 0 else None,
        "contrast": u(max(0.0, 1 - c), 1 + c) if c > 0 else None,
        "saturation": u(max(0.0, 1 - s), 1 + s) if s > 0 else None,
        "hue": u(-h, h) if h > 0 else None,
        "order": torch.randperm(4, generator=generator).tolist(),
    }


_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _grey(img: torch.Tensor) -> torch.Tensor:
    return (0.299 * img[..., 0, :, :] + 0.587 * img[..., 1, :, :] + 0.114 * img[..., 2, :, :]).unsqueeze(-3)


def apply_jitter(img: torch.Tensor, params: dict) -> torch.Tensor:
    """Apply :func:`draw_jitter` factors to images (*, 3, H, W) in [0, 1].

    Brightness, contrast (towards the mean grey of each image) and saturation (towards its grey image)
    as torchvision defines them; hue as a rotation of the chroma plane in YIQ space by ``hue * 360``
    degrees (a linear 3x3 map: much faster than torchvision's HSV round trip, nearly the same result).
    """
    out = img
    for op in params["order"]:
        if op == 0 and params["brightness"] is not None:
            out = (out * params["brightness"]).clamp(0, 1)
        elif op == 1 and params["contrast"] is not None:
            mean = _grey(out).mean(dim=(-3, -2, -1), keepdim=True)
            out = (mean + params["contrast"] * (out - mean)).clamp(0, 1)
        elif op == 2 and params["saturation"] is not None:
            g = _grey(out)
            out = (g + params["saturation"] * (out - g)).clamp(0, 1)
        elif op == 3 and params["hue"] is not None:
            a = -params["hue"] * 2 * math.pi  # sign chosen to turn hues the way torchvision does
            rot = torch.tensor([[1.0, 0.0, 0.0], [0.0, math.cos(a), -math.sin(a)], [0.0, math.sin(a), math.cos(a)]])
            M = (_YIQ_TO_RGB @ rot @ _RGB_TO_YIQ).to(out.dtype)
            out = torch.einsum("ij,...jhw->...ihw", M, out).clamp(0, 1)
    return out
