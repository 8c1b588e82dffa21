"""Labels, mosaics, the paper's six-camera layout, LIDAR points over images and the novel-view grid."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from vfdepth_core.viz.colorbar import depth_colorbar, with_colorbar
from vfdepth_core.viz.colors import (DEFAULT_DEPTH_CMAP, ArrayLike, _check_range, _depth2d, _normalize, _np,
                                     colorize_depth, colormap_lut, depth_range, to_uint8_rgb)

PAPER_LAYOUT_ORDER: Tuple[int, ...] = (1, 0, 2, 3, 5, 4)
"""Indices into cameras ordered (front, front-left, front-right, back-left, back-right, back) that give
the paper's 2x3 layout: front-left, front, front-right / back-left, back, back-right."""


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
