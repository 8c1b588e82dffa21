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

Modules: :mod:`.colors` (depth/error colours), :mod:`.colorbar` (metre colour bars), :mod:`.layout`
(mosaics, the six-camera layout, points, novel views), :mod:`.plots` (trajectories, PNG/GIF files); every
public name is importable from ``vfdepth_core.viz``.
"""

from __future__ import annotations

from vfdepth_core.viz.colorbar import (colorbar_image, depth_colorbar, depth_with_colorbar, error_colorbar,
                                       with_colorbar)
from vfdepth_core.viz.colors import (DEFAULT_DEPTH_CMAP, DEFAULT_ERROR_CMAP, INVALID_COLOR, abs_rel_error,
                                     colorize_depth, colorize_error, colormap_lut, depth_range, to_uint8_rgb)
from vfdepth_core.viz.layout import (PAPER_LAYOUT_ORDER, depth_mosaic, draw_label, mosaic, novel_view_sweep,
                                     overlay_points, surround_layout, surround_order_from_extrinsics)
from vfdepth_core.viz.plots import plot_trajectory, write_gif, write_png

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
