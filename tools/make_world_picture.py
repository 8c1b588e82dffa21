#!/usr/bin/env python3
"""Render a few scenes of a synthetic world (six cameras + ground-truth depth each) into one PNG.

    .venv/bin/python tools/make_world_picture.py                    # docs/images/varied_world.png
    .venv/bin/python tools/make_world_picture.py --world default --out /tmp/default_world.png
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from make_readme_images import _heading, _save, _stack
from vfdepth_core import viz
from vfdepth_core.datasets.synthetic import DDAD_RIG, generate_world, render_cameras
from vfdepth_core.datasets.synthetic.drive import FRAME_RATE_HZ, SPEED_MPS, ego_pose

ROOT = Path(__file__).resolve().parent.parent


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", choices=("default", "varied"), default="varied")
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 9, 12], help="one scene per seed")
    ap.add_argument("--time", type=float, default=3.0, help="time along each drive (s)")
    ap.add_argument("--height", type=int, default=112)
    ap.add_argument("--width", type=int, default=192)
    ap.add_argument("--out", default=str(ROOT / "docs" / "images" / "varied_world.png"))
    ap.add_argument("--max-kb", type=int, default=290, help="quantize the PNG to 256 colours above this size")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    hw = (args.height, args.width)
    K, T_ego_cam, mask = DDAD_RIG.K(hw), DDAD_RIG.T_ego_cam, DDAD_RIG.masks(hw)
    order = viz.surround_order_from_extrinsics(T_ego_cam)
    t_s = round(args.time * FRAME_RATE_HZ) / FRAME_RATE_HZ
    parts = []
    for seed in args.seeds:
        world = generate_world(seed, length_m=(t_s + 2.0) * SPEED_MPS, variety=args.world)
        images, depth = render_cameras(world, world.boxes_at(t_s), ego_pose(world, t_s), K, T_ego_cam, hw, mask)
        rgb = viz.surround_layout(list(images), order=order)
        dm = viz.surround_layout([viz.colorize_depth(d, 1.0, 80.0) for d in depth], order=order)
        row = _stack([rgb, dm], gap=2)
        parts += [_heading(f"{args.world} world, seed {seed}, t = {t_s:.1f} s: six cameras and exact depth "
                           "(1-80 m, near = bright)", row.shape[1], size=13), row]
    img = _stack(parts)
    img = viz.with_colorbar(img, viz.depth_colorbar(img.shape[0], 1.0, 80.0), gap=0)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    _save(Path(args.out), img, args.max_kb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
