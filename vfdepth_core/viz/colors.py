"""Depth and error colours: array conversion, colormap look-up, robust depth ranges (see the package docstring)."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

INVALID_COLOR: Tuple[int, int, int] = (128, 128, 128)
"""Colour of pixels without a depth value (0, NaN, inf, masked out)."""

DEFAULT_DEPTH_CMAP = "magma"
DEFAULT_ERROR_CMAP = "inferno"

ArrayLike = Any


# --------------------------------------------------------------------------------------------------
# helpers

def _np(x: ArrayLike) -> np.ndarray:
    """numpy view of an array-like; torch tensors are detached and moved to the CPU (duck-typed)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _depth2d(name: str, depth: ArrayLike) -> np.ndarray:
    d = _np(depth).astype(np.float64, copy=False)
    if d.ndim == 3 and 1 in (d.shape[0], d.shape[-1]):
        d = d.reshape(d.shape[1:] if d.shape[0] == 1 else d.shape[:2])
    if d.ndim != 2:
        raise ValueError(f"{name} must have shape (H, W) (or (1, H, W) / (H, W, 1)), got {_np(depth).shape}")
    return d


def to_uint8_rgb(image: ArrayLike) -> np.ndarray:
    """(H, W, 3) uint8 RGB from (H, W, 3) / (3, H, W) / (H, W) images, uint8 or float in [0, 1]."""
    img = _np(image)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = np.moveaxis(img, 0, -1)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] not in (3, 4):
        raise ValueError(f"image must have shape (H, W, 3), (3, H, W) or (H, W), got {_np(image).shape}")
    img = img[..., :3]
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    if np.issubdtype(img.dtype, np.floating):
        return (np.clip(np.nan_to_num(img), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.clip(img, 0, 255).astype(np.uint8)


def colormap_lut(cmap: str = DEFAULT_DEPTH_CMAP, n: int = 256) -> np.ndarray:
    """(n, 3) uint8 look-up table of a matplotlib colormap, entry 0 = colormap start."""
    import matplotlib

    cm = matplotlib.colormaps[cmap].resampled(n)
    return (cm(np.arange(n))[:, :3] * 255.0 + 0.5).astype(np.uint8)


def _valid_depth(d: np.ndarray, mask: Optional[ArrayLike] = None) -> np.ndarray:
    valid = np.isfinite(d) & (d > 0)
    if mask is not None:
        m = _depth2d("mask", mask)
        if m.shape != d.shape:
            raise ValueError(f"mask must have the depth's shape {d.shape}, got {m.shape}")
        valid &= m > 0
    return valid


def depth_range(depths: Union[ArrayLike, Sequence[ArrayLike]], lo_pct: float = 1.0,
                hi_pct: float = 99.0) -> Tuple[float, float]:
    """(vmin, vmax) metres over the valid pixels of one or more depth maps (percentiles, robust to outliers).

    Use one range for all cameras of a frame so their colours compare. Returns (1, 100) when nothing is valid.
    """
    arrs = depths if isinstance(depths, (list, tuple)) else [depths]
    vals = [a[np.isfinite(a) & (a > 0)] for a in (_np(x).astype(np.float64, copy=False) for x in arrs)]
    v = np.concatenate([x.ravel() for x in vals]) if vals else np.zeros(0)
    if v.size == 0:
        return 1.0, 100.0
    vmin, vmax = float(np.percentile(v, lo_pct)), float(np.percentile(v, hi_pct))
    if not vmax > vmin:
        vmax = vmin * 1.01 + 1e-3
    return vmin, vmax


def _normalize(d: np.ndarray, vmin: float, vmax: float, scale: str) -> np.ndarray:
    """Colour position t in [0, 1]: vmax -> 0, vmin -> 1 (near = high t)."""
    if scale == "inverse":
        inv = 1.0 / np.where(d > 0, d, np.inf)
        t = (inv - 1.0 / vmax) / (1.0 / vmin - 1.0 / vmax)
    elif scale == "linear":
        t = (vmax - d) / (vmax - vmin)
    else:
        raise ValueError(f"scale must be 'inverse' or 'linear', got {scale!r}")
    return np.clip(np.nan_to_num(t, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def _check_range(vmin: float, vmax: float) -> None:
    if not (np.isfinite(vmin) and np.isfinite(vmax) and 0 < vmin < vmax):
        raise ValueError(f"need 0 < vmin < vmax (metres), got vmin={vmin}, vmax={vmax}")


# --------------------------------------------------------------------------------------------------
# depth and error colours

def colorize_depth(depth_m: ArrayLike, vmin: Optional[float] = None, vmax: Optional[float] = None,
                   cmap: str = DEFAULT_DEPTH_CMAP, scale: str = "inverse",
                   invalid_color: Sequence[int] = INVALID_COLOR, mask: Optional[ArrayLike] = None) -> np.ndarray:
    """Depth map (H, W) metres -> (H, W, 3) uint8 RGB, near = bright end of `cmap`, far = dark end.

    vmin/vmax: metres mapped exactly to the colormap's bright/dark ends (values outside are clipped);
    None = ``depth_range`` of this map. scale: 'inverse' (linear in 1/depth, default) or 'linear'.
    Pixels <= 0, non-finite, or where `mask` (H, W) is 0 get `invalid_color`.
    """
    d = _depth2d("depth_m", depth_m)
    valid = _valid_depth(d, mask)
    if vmin is None or vmax is None:
        auto = depth_range(np.where(valid, d, 0.0))
        vmin = auto[0] if vmin is None else vmin
        vmax = auto[1] if vmax is None else vmax
        if not vmax > vmin:
            vmax = vmin * 1.01 + 1e-3
    _check_range(float(vmin), float(vmax))
    lut = colormap_lut(cmap)
    t = _normalize(d, float(vmin), float(vmax), scale)
    out = lut[np.rint(t * (len(lut) - 1)).astype(np.intp)]
    out[~valid] = np.asarray(invalid_color, dtype=np.uint8)
    return out


def abs_rel_error(pred_m: ArrayLike, gt_m: ArrayLike, mask: Optional[ArrayLike] = None) -> np.ndarray:
    """Per-pixel |pred - gt| / gt (H, W) float64; NaN where gt is missing (<= 0, non-finite) or mask is 0."""
    pred = _depth2d("pred_m", pred_m)
    gt = _depth2d("gt_m", gt_m)
    if pred.shape != gt.shape:
        raise ValueError(f"pred_m {pred.shape} and gt_m {gt.shape} must have the same shape (resize first)")
    valid = _valid_depth(gt, mask) & np.isfinite(pred)
    err = np.full(gt.shape, np.nan)
    err[valid] = np.abs(pred[valid] - gt[valid]) / gt[valid]
    return err


def colorize_error(pred_m: ArrayLike, gt_m: ArrayLike, mask: Optional[ArrayLike] = None, vmax: float = 0.5,
                   kind: str = "abs_rel", cmap: str = DEFAULT_ERROR_CMAP,
                   invalid_color: Sequence[int] = INVALID_COLOR) -> np.ndarray:
    """Error map (H, W, 3) uint8: 0 error = dark end of `cmap`, >= vmax = bright end; no GT = invalid colour.

    kind: 'abs_rel' (|pred-gt|/gt, unitless, default vmax 0.5) or 'abs' (|pred-gt| in metres; give vmax
    in metres). Valid pixels: gt > 0 and finite, pred finite, `mask` (H, W) non-zero.
    """
    err = abs_rel_error(pred_m, gt_m, mask)
    if kind == "abs":
        err = err * _depth2d("gt_m", gt_m)
    elif kind != "abs_rel":
        raise ValueError(f"kind must be 'abs_rel' or 'abs', got {kind!r}")
    if not (np.isfinite(vmax) and vmax > 0):
        raise ValueError(f"vmax must be > 0, got {vmax}")
    lut = colormap_lut(cmap)
    valid = np.isfinite(err)
    t = np.clip(np.nan_to_num(err / vmax, nan=0.0), 0.0, 1.0)
    out = lut[np.rint(t * (len(lut) - 1)).astype(np.intp)]
    out[~valid] = np.asarray(invalid_color, dtype=np.uint8)
    return out
