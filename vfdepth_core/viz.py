"""Pictures of depth, errors, camera mosaics and trajectories, as uint8 RGB arrays (numpy + matplotlib).

Nothing here imports torch or ROS. Inputs may be numpy arrays or anything ``np.asarray`` accepts;
tensors are converted duck-typed (``.detach().cpu().numpy()``) without importing torch.

Depth colours
-------------
* ``colorize_depth`` maps **near = bright, far = dark** (``magma``: near is pale yellow, far is
  near-black), the convention of the self-supervised depth papers (monodepth2, PackNet, VFDepth).
* The colour position is linear in **inverse depth** by default (``scale="inverse"``), again like those
  papers: it spends the colour range on the near field where depth is well resolved. ``vmin`` (metres)
  maps to the bright end of the colormap and ``vmax`` (metres) to the dark end exactly.
* Colour bars (``depth_colorbar``) are always labelled in **metres**, placed on the same
  inverse-depth axis, so the ticks are not evenly spaced.
* Invalid pixels (``<= 0``, NaN, inf, or outside a given mask) get ``INVALID_COLOR`` (neutral grey,
  a colour magma never produces).

Layout of six cameras
---------------------
``surround_layout`` arranges six cameras the way the VFDepth paper shows them:
front-left, front, front-right on the top row and back-left, back, back-right below. Datasets list
their cameras front, front-left, front-right, back-left, back-right, back (DDAD ``camera_01, 05, 06,
07, 08, 09``; nuScenes ``cam_front, cam_front_left, ...``), hence ``PAPER_LAYOUT_ORDER``; for other rigs
``surround_order_from_extrinsics`` derives the order from the cameras' viewing directions.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

log = logging.getLogger(__name__)

INVALID_COLOR: Tuple[int, int, int] = (128, 128, 128)
"""Colour of pixels without a depth value (0, NaN, inf, masked out)."""

DEFAULT_DEPTH_CMAP = "magma"
DEFAULT_ERROR_CMAP = "inferno"

PAPER_LAYOUT_ORDER: Tuple[int, ...] = (1, 0, 2, 3, 5, 4)
"""Indices into cameras ordered (front, front-left, front-right, back-left, back-right, back) that give
the paper's 2x3 layout: front-left, front, front-right / back-left, back, back-right."""

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


# --------------------------------------------------------------------------------------------------
# matplotlib rendering (Agg, no pyplot state)

def _figure(w_px: int, h_px: int, dpi: int = 100):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w_px / dpi, h_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _render(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.ascontiguousarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])


def _depth_ticks(vmin: float, vmax: float, scale: str, max_ticks: int = 7) -> List[float]:
    """Round metre values between vmin and vmax, spread over the colour axis of `scale`."""
    cands = sorted({float(m * 10 ** e) for e in range(-2, 5) for m in (1, 2, 5)})
    cands = [c for c in cands if vmin <= c <= vmax]
    ticks = [vmin] + cands + [vmax]
    pos = _normalize(np.asarray(ticks), vmin, vmax, scale)
    chosen: List[float] = []
    chosen_pos: List[float] = []
    min_gap = 1.0 / (max_ticks + 1)
    # Keep both ends, then round values that are not crowded.
    order = [0, len(ticks) - 1] + list(range(1, len(ticks) - 1))
    for i in order:
        if all(abs(pos[i] - p) >= min_gap for p in chosen_pos):
            chosen.append(ticks[i])
            chosen_pos.append(float(pos[i]))
    return sorted(chosen)


def _fmt_m(v: float) -> str:
    if v >= 10:
        return f"{v:.0f} m"
    if v >= 1:
        return f"{v:.1f} m".replace(".0 m", " m")
    return f"{v:.2f} m"


def colorbar_image(height: int, vmin: float, vmax: float, cmap: str = DEFAULT_DEPTH_CMAP, scale: str = "inverse",
                   label: str = "depth", ticks: Optional[Sequence[float]] = None, tick_fmt=None,
                   width: int = 0) -> np.ndarray:
    """Vertical colour bar (height, width, 3) uint8 with labelled ticks, white background.

    scale 'inverse' | 'linear' (depth bars): vmin (near, bright end) at the top, vmax at the bottom,
    ticks in metres at their position on that axis. scale 'error': vmin..vmax linear, vmax at the top.
    Ticks/labels: `ticks` values (default: round numbers), formatted with `tick_fmt(value) -> str`.
    """
    height = int(height)
    if height < 40:
        raise ValueError(f"height must be >= 40 pixels for a readable colour bar, got {height}")
    if scale != "error":
        _check_range(vmin, vmax)
    elif not vmax > vmin:
        raise ValueError(f"need vmin < vmax, got vmin={vmin}, vmax={vmax}")
    fs = float(np.clip(height / 22.0, 7.0, 13.0))
    if width <= 0:
        width = int(fs * 7.5) + 24
    fig = _figure(width, height)
    bar_w = max(8, int(fs * 1.4))
    top_pad, bot_pad = (fs * 2.2 + 4 if label else fs * 0.8 + 2), fs * 0.8 + 2
    ax = fig.add_axes((4 / width, bot_pad / height, bar_w / width, 1 - (top_pad + bot_pad) / height))
    lut = colormap_lut(cmap)
    # t increases upwards (origin='lower'): top = t=1.
    grad = lut[np.linspace(0, len(lut) - 1, 256).round().astype(int)][:, None, :]
    if scale == "error":
        grad_img, pos_fn = grad, (lambda v: (np.asarray(v, float) - vmin) / (vmax - vmin))
        tick_vals = list(ticks) if ticks is not None else list(np.linspace(vmin, vmax, 6))
        fmt = tick_fmt or (lambda v: f"{v:.2f}".rstrip("0").rstrip(".") if v else "0")
    else:
        grad_img, pos_fn = grad, (lambda v: _normalize(np.asarray(v, float), vmin, vmax, scale))
        tick_vals = list(ticks) if ticks is not None else _depth_ticks(vmin, vmax, scale, max(3, height // 40))
        fmt = tick_fmt or _fmt_m
    ax.imshow(grad_img, aspect="auto", origin="lower", extent=(0, 1, 0, 1), interpolation="nearest")
    ax.set_xticks([])
    ax.yaxis.tick_right()
    pos = [float(p) for p in np.atleast_1d(pos_fn(tick_vals))]
    ax.set_yticks(pos)
    ax.set_yticklabels([fmt(v) for v in tick_vals], fontsize=fs)
    ax.set_ylim(0, 1)
    ax.tick_params(length=3, pad=2)
    if label:
        fig.text(2 / width, 1 - 2 / height, label, ha="left", va="top", fontsize=fs)
    return _render(fig)


def depth_colorbar(height: int, vmin: float, vmax: float, cmap: str = DEFAULT_DEPTH_CMAP, scale: str = "inverse",
                   label: str = "depth", width: int = 0) -> np.ndarray:
    """Colour bar for ``colorize_depth`` output: (height, w, 3) uint8, near/bright on top, ticks in metres."""
    return colorbar_image(height, vmin, vmax, cmap=cmap, scale=scale, label=label, width=width)


def error_colorbar(height: int, vmax: float = 0.5, cmap: str = DEFAULT_ERROR_CMAP, label: str = "abs rel",
                   width: int = 0) -> np.ndarray:
    """Colour bar for ``colorize_error`` output: 0 at the bottom, vmax (and above) at the top."""
    return colorbar_image(height, 0.0, vmax, cmap=cmap, scale="error", label=label, width=width)


def with_colorbar(image: ArrayLike, bar: np.ndarray, gap: int = 4, background: int = 255) -> np.ndarray:
    """Place a colour bar (h, w, 3) to the right of an image of the same height."""
    img = to_uint8_rgb(image)
    if bar.shape[0] != img.shape[0]:
        raise ValueError(f"colour bar height {bar.shape[0]} must equal the image height {img.shape[0]}")
    sep = np.full((img.shape[0], gap, 3), background, np.uint8)
    return np.concatenate([img, sep, bar], axis=1)


def depth_with_colorbar(depth_or_image: ArrayLike, vmin: Optional[float] = None, vmax: Optional[float] = None,
                        cmap: str = DEFAULT_DEPTH_CMAP, scale: str = "inverse", label: str = "depth") -> np.ndarray:
    """A depth map (H, W) metres (colourised here) or an already coloured image / mosaic (H, W, 3) with a
    metre colour bar on its right. For a coloured image give the vmin/vmax it was coloured with."""
    arr = _np(depth_or_image)
    is_depth = arr.ndim == 2 or (arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]) and arr.dtype != np.uint8)
    if is_depth:
        if vmin is None or vmax is None:
            auto = depth_range(arr)
            vmin, vmax = (auto[0] if vmin is None else vmin), (auto[1] if vmax is None else vmax)
        img = colorize_depth(arr, vmin, vmax, cmap=cmap, scale=scale)
    else:
        if vmin is None or vmax is None:
            raise ValueError("depth_with_colorbar: give vmin and vmax (metres) for an already coloured image")
        img = to_uint8_rgb(arr)
    return with_colorbar(img, depth_colorbar(img.shape[0], float(vmin), float(vmax), cmap=cmap, scale=scale,
                                             label=label))


# --------------------------------------------------------------------------------------------------
# text, mosaics, points

_FONT_CACHE: Dict[int, Any] = {}


def _font(size: int):
    """A TrueType font at `size` px (matplotlib's bundled DejaVu Sans via Pillow, a matplotlib dependency)."""
    if size not in _FONT_CACHE:
        from matplotlib import font_manager
        from PIL import ImageFont

        path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))
        _FONT_CACHE[size] = ImageFont.truetype(path, size)
    return _FONT_CACHE[size]


def draw_label(image: ArrayLike, text: str, xy: Tuple[int, int] = (0, 0), size: int = 0,
               color: Sequence[int] = (255, 255, 255), box: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """Copy of `image` with `text` in a filled box whose top-left corner is `xy` (pixels)."""
    from PIL import Image, ImageDraw

    img = to_uint8_rgb(image)
    if not text:
        return img.copy()
    size = size or int(np.clip(img.shape[0] / 14, 9, 22))
    font = _font(size)
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    m = max(2, size // 5)
    x, y = xy
    draw.rectangle((x, y, x + (x1 - x0) + 2 * m, y + (y1 - y0) + 2 * m), fill=tuple(int(c) for c in box))
    draw.text((x + m - x0, y + m - y0), text, font=font, fill=tuple(int(c) for c in color))
    return np.asarray(pil)


def mosaic(images: Union[ArrayLike, Sequence[ArrayLike]], ncols: int = 3, labels: Optional[Sequence[str]] = None,
           pad: int = 4, background: int = 255, label_size: int = 0) -> np.ndarray:
    """Tile images row-major into a grid: (rows*(H+pad)+pad, ncols*(W+pad)+pad, 3) uint8.

    images: a list of (H, W, 3)/(H, W)/(3, H, W) arrays or one (N, H, W, 3) array. Tiles of different
    sizes are placed top-left in cells of the largest size. Tile i sits at row i // ncols, column
    i % ncols, its top-left pixel at (pad + row*(H+pad), pad + col*(W+pad)). labels: one text per tile
    drawn at its top-left corner ('' or None = none).
    """
    imgs = [to_uint8_rgb(im) for im in (list(images) if not isinstance(images, np.ndarray) else images)]
    if not imgs:
        raise ValueError("mosaic needs at least one image")
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    if labels is not None and len(labels) != len(imgs):
        raise ValueError(f"labels has {len(labels)} entries for {len(imgs)} images")
    H = max(im.shape[0] for im in imgs)
    W = max(im.shape[1] for im in imgs)
    ncols = min(ncols, len(imgs))
    rows = math.ceil(len(imgs) / ncols)
    out = np.full((rows * (H + pad) + pad, ncols * (W + pad) + pad, 3), background, np.uint8)
    for i, im in enumerate(imgs):
        if labels is not None and labels[i]:
            im = draw_label(im, str(labels[i]), size=label_size)
        r, c = divmod(i, ncols)
        y, x = pad + r * (H + pad), pad + c * (W + pad)
        out[y:y + im.shape[0], x:x + im.shape[1]] = im
    return out


def depth_mosaic(depths_m: ArrayLike, vmin: float, vmax: float, ncols: int = 3) -> np.ndarray:
    """Depth maps (N, H, W) or (N, 1, H, W) metres -> one mosaic of their colourings (``colorize_depth``)."""
    return mosaic([colorize_depth(d, vmin=vmin, vmax=vmax) for d in _np(depths_m)], ncols=ncols)


def surround_order_from_extrinsics(T_ego_cam: ArrayLike) -> Tuple[int, ...]:
    """Indices of six cameras in the paper's layout order (front-left, front, front-right, back-left, back,
    back-right), from their viewing directions. T_ego_cam (6, 4, 4), camera -> vehicle (x fwd, y left)."""
    T = _np(T_ego_cam).astype(np.float64)
    if T.shape != (6, 4, 4):
        raise ValueError(f"T_ego_cam must have shape (6, 4, 4), got {T.shape}")
    axis = T[:, :3, 2]  # optical axis (camera z) in the vehicle frame
    by_forward = np.argsort(-axis[:, 0], kind="stable")
    front, back = by_forward[:3], by_forward[3:]
    left_first = lambda idx: sorted(idx, key=lambda i: -axis[i, 1])  # noqa: E731  (y left)
    return tuple(int(i) for i in list(left_first(front)) + list(left_first(back)))


def surround_layout(images: Union[ArrayLike, Sequence[ArrayLike]], order: Optional[Sequence[int]] = PAPER_LAYOUT_ORDER,
                    labels: Optional[Sequence[str]] = None, pad: int = 4, background: int = 255,
                    label_size: int = 0) -> np.ndarray:
    """Six camera images in the paper's 2x3 layout (front-left, front, front-right / back-left, back, back-right).

    images: six images in dataset order; order: for each layout slot the index of the image to put
    there (default ``PAPER_LAYOUT_ORDER`` for datasets ordered front, front-left, front-right, back-left,
    back-right, back; ``surround_order_from_extrinsics`` for other rigs; None = as given).
    labels: per input image (dataset order), e.g. camera names; reordered with the images.
    """
    imgs = list(images) if not isinstance(images, np.ndarray) else [im for im in images]
    if order is None:
        order = list(range(len(imgs)))
    if sorted(order) != list(range(len(imgs))):
        raise ValueError(f"order must be a permutation of 0..{len(imgs) - 1}, got {list(order)}")
    lab = [labels[i] for i in order] if labels is not None else None
    return mosaic([imgs[i] for i in order], ncols=3, labels=lab, pad=pad, background=background,
                  label_size=label_size)


def overlay_points(image: ArrayLike, uv: ArrayLike, depth_m: ArrayLike, vmin: Optional[float] = None,
                   vmax: Optional[float] = None, cmap: str = DEFAULT_DEPTH_CMAP, scale: str = "inverse",
                   radius: int = 1, dim: float = 0.0) -> np.ndarray:
    """Draw sparse points (e.g. LIDAR) on a copy of an image, coloured like ``colorize_depth``.

    uv (P, 2) pixel coordinates (x right, y down, centres at integers), depth_m (P,) metres. Points outside
    the image or with depth <= 0 are skipped; nearer points are drawn over farther ones. radius: square
    half-size in pixels. dim: darken the background by this fraction (0..1) so points stand out.
    """
    img = to_uint8_rgb(image).copy()
    if dim:
        img = (img.astype(np.float32) * (1.0 - float(dim))).astype(np.uint8)
    uv = _np(uv).astype(np.float64).reshape(-1, 2) if _np(uv).size else np.zeros((0, 2))
    d = _np(depth_m).astype(np.float64).reshape(-1)
    if len(uv) != len(d):
        raise ValueError(f"uv has {len(uv)} points but depth_m has {len(d)}")
    H, W = img.shape[:2]
    u, v = np.rint(uv[:, 0]).astype(np.int64), np.rint(uv[:, 1]).astype(np.int64)
    keep = np.isfinite(d) & (d > 0) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
    u, v, d = u[keep], v[keep], d[keep]
    if d.size == 0:
        return img
    if vmin is None or vmax is None:
        auto = depth_range(d)
        vmin, vmax = (auto[0] if vmin is None else vmin), (auto[1] if vmax is None else vmax)
    _check_range(float(vmin), float(vmax))
    lut = colormap_lut(cmap)
    col = lut[np.rint(_normalize(d, float(vmin), float(vmax), scale) * (len(lut) - 1)).astype(np.intp)]
    far_first = np.argsort(-d, kind="stable")
    u, v, col = u[far_first], v[far_first], col[far_first]
    r = int(radius)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            uu, vv = u + dx, v + dy
            ok = (uu >= 0) & (uu < W) & (vv >= 0) & (vv < H)
            img[vv[ok], uu[ok]] = col[ok]  # later (nearer) points win on duplicates
    return img


# --------------------------------------------------------------------------------------------------
# trajectories, animations, novel views

def plot_trajectory(est_xyz: Optional[ArrayLike], gt_xyz: Optional[ArrayLike] = None,
                    path: Optional[Union[str, Path]] = None, title: str = "trajectory (top-down)",
                    labels: Tuple[str, str] = ("estimate", "ground truth"), size_px: Tuple[int, int] = (640, 560),
                    dpi: int = 100) -> np.ndarray:
    """Top-down plot (x right, y up, equal axes) of an estimated and/or ground-truth trajectory.

    est_xyz, gt_xyz: (T, 3) or (T, 2) positions in metres in one world frame (align them first).
    Start is marked with a circle, end with a square. Returns the picture (H, W, 3) uint8 and, when
    `path` is given, also writes it there (PNG).
    """
    tracks = []
    for name, xyz, color in ((labels[1], gt_xyz, "#444444"), (labels[0], est_xyz, "#d62728")):
        if xyz is None:
            continue
        a = _np(xyz).astype(np.float64)
        if a.ndim != 2 or a.shape[1] not in (2, 3) or len(a) == 0:
            raise ValueError(f"{name} positions must have shape (T, 3) or (T, 2) with T >= 1, got {a.shape}")
        tracks.append((name, a[:, :2], color))
    if not tracks:
        raise ValueError("plot_trajectory needs est_xyz or gt_xyz")
    fig = _figure(*size_px, dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    for name, xy, color in tracks:
        ls = "--" if name == labels[1] else "-"
        ax.plot(xy[:, 0], xy[:, 1], ls, color=color, lw=1.8, label=name)
        ax.plot(xy[0, 0], xy[0, 1], "o", color=color, ms=7, mfc="white", mew=1.8)
        ax.plot(xy[-1, 0], xy[-1, 1], "s", color=color, ms=7)
    ax.plot([], [], "o", color="k", mfc="white", label="start")
    ax.plot([], [], "s", color="k", label="end")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    fig.tight_layout()
    img = _render(fig)
    if path is not None:
        write_png(path, img)
    return img


def write_png(path: Union[str, Path], image: ArrayLike) -> Path:
    """Write an (H, W, 3) image as PNG, creating the parent folder."""
    from PIL import Image

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8_rgb(image)).save(p, optimize=True)
    return p


def write_gif(frames: Union[ArrayLike, Sequence[ArrayLike]], path: Union[str, Path], fps: float = 5.0,
              loop: int = 0) -> Path:
    """Write frames (T, H, W, 3) as an animated GIF (or MP4 when the suffix is .mp4 and imageio-ffmpeg is
    installed; it is not a dependency). All frames must have the same size."""
    import imageio.v3 as iio

    seq = [to_uint8_rgb(f) for f in (list(frames) if not isinstance(frames, np.ndarray) else frames)]
    if not seq:
        raise ValueError("write_gif needs at least one frame")
    if any(f.shape != seq[0].shape for f in seq):
        raise ValueError(f"all frames must have the same shape, got {sorted({f.shape for f in seq})}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix.lower() == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError as exc:
            raise ValueError(f"{p}: writing MP4 needs the optional package imageio-ffmpeg; "
                             "write a .gif instead or `pip install imageio-ffmpeg`") from exc
        iio.imwrite(p, np.stack(seq), fps=fps, codec="libx264", plugin="FFMPEG")
        return p
    iio.imwrite(p, np.stack(seq), extension=".gif", plugin="pillow", duration=1000.0 / fps, loop=loop)
    return p


def novel_view_sweep(depths: Union[ArrayLike, Sequence[Sequence[ArrayLike]]], row_labels: Sequence[str],
                     col_labels: Union[Sequence[str], Sequence[Sequence[str]]], vmin: Optional[float] = None,
                     vmax: Optional[float] = None, cmap: str = DEFAULT_DEPTH_CMAP, scale: str = "inverse",
                     pad: int = 4, colorbar: bool = True, title: str = "") -> np.ndarray:
    """Grid of depth maps synthesized at virtual cameras swept over one parameter per row (the paper's
    novel-view figure): rows e.g. roll / pitch / yaw / focal length, columns the swept values.

    depths: (R, C, H, W) metres, or R lists of C (H, W) maps (rows may differ in length).
    row_labels: R names ('yaw'); col_labels: C value texts shared by all rows ('-10°'), or one list per
    row. Every tile is labelled '<row> <col>'. One shared metre colour bar (vmin/vmax default: robust
    range over all tiles) is added on the right. Returns (H', W', 3) uint8.
    """
    rows = [list(r) for r in depths] if not isinstance(depths, np.ndarray) else [list(r) for r in depths]
    if len(row_labels) != len(rows):
        raise ValueError(f"row_labels has {len(row_labels)} entries for {len(rows)} rows")
    per_row = (col_labels if col_labels and not isinstance(col_labels[0], str) else [col_labels] * len(rows))
    for r, (row, cl) in enumerate(zip(rows, per_row)):
        if len(cl) != len(row):
            raise ValueError(f"row {r} ('{row_labels[r]}') has {len(row)} depth maps but {len(cl)} column labels")
    flat = [_depth2d("depths[...]", d) for row in rows for d in row]
    if vmin is None or vmax is None:
        auto = depth_range(flat)
        vmin, vmax = (auto[0] if vmin is None else vmin), (auto[1] if vmax is None else vmax)
    ncols = max(len(r) for r in rows)
    tiles: List[Optional[np.ndarray]] = []
    labels: List[str] = []
    k = 0
    for rl, row, cl in zip(row_labels, rows, per_row):
        for c in range(ncols):
            if c < len(row):
                tiles.append(colorize_depth(flat[k], vmin, vmax, cmap=cmap, scale=scale))
                labels.append(f"{rl} {cl[c]}".strip())
                k += 1
            else:
                tiles.append(None)
                labels.append("")
    H = max(t.shape[0] for t in tiles if t is not None)
    W = max(t.shape[1] for t in tiles if t is not None)
    blank = np.full((H, W, 3), 255, np.uint8)
    grid = mosaic([t if t is not None else blank for t in tiles], ncols=ncols, labels=labels, pad=pad)
    if title:
        tsize = max(12, H // 7)
        head = np.full((tsize + 10, grid.shape[1], 3), 255, np.uint8)
        head = draw_label(head, title, (pad, 2), size=tsize, color=(0, 0, 0), box=(255, 255, 255))
        grid = np.concatenate([head, grid], axis=0)
    if colorbar:
        grid = with_colorbar(grid, depth_colorbar(grid.shape[0], float(vmin), float(vmax), cmap=cmap, scale=scale),
                             gap=0)
    return grid


__all__ = [
    "DEFAULT_DEPTH_CMAP",
    "DEFAULT_ERROR_CMAP",
    "INVALID_COLOR",
    "PAPER_LAYOUT_ORDER",
    "abs_rel_error",
    "colorbar_image",
    "colorize_depth",
    "colorize_error",
    "colormap_lut",
    "depth_colorbar",
    "depth_mosaic",
    "depth_range",
    "depth_with_colorbar",
    "draw_label",
    "error_colorbar",
    "mosaic",
    "novel_view_sweep",
    "overlay_points",
    "plot_trajectory",
    "surround_layout",
    "surround_order_from_extrinsics",
    "to_uint8_rgb",
    "with_colorbar",
    "write_gif",
    "write_png",
]
