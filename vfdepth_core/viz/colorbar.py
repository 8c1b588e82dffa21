"""Colour bars in metres (or error units) beside depth and error pictures, rendered with matplotlib's Agg."""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from vfdepth_core.viz.colors import (DEFAULT_DEPTH_CMAP, DEFAULT_ERROR_CMAP, ArrayLike, _check_range, _np,
                                     _normalize, colorize_depth, colormap_lut, depth_range, to_uint8_rgb)


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
