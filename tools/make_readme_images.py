#!/usr/bin/env python3
"""Render the README's pictures into docs/images/ from the project's synthetic world.

    .venv/bin/python tools/make_readme_images.py                      # ground truth only (default)
    .venv/bin/python tools/make_readme_images.py --checkpoint ckpt.pt # adds the model's predictions

Pictures:
* ``surround_depth.png``: the six cameras of the DDAD-like rig in the paper's layout, and their depth
  (ground truth; plus the model's prediction with --checkpoint), one shared metre colour bar.
* ``error_map.png``: front camera image, ground-truth depth, a depth estimate and its abs-rel error map.
  Without --checkpoint the estimate is the flat-ground prior (each pixel's ray intersected with the road
  plane z = 0 of the vehicle frame), an honest baseline whose errors are easy to read: right on the road,
  wrong on buildings and cars. With --checkpoint it is the model's prediction.
* ``novel_view_sweep.png``: depth at virtual cameras swept in roll, pitch, yaw and focal length around
  the front camera (the paper's novel-view figure). Without --checkpoint these are exact ground-truth
  renders of the synthetic world at those virtual cameras; with it, the model's synthesized depth.

A model with random weights predicts nothing meaningful, so the defaults use ground truth and say so in
the captions (README "Visualization").
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch

from vfdepth_core import geometry, viz
from vfdepth_core.datasets.synthetic import RIGS, generate_world, render_cameras
from vfdepth_core.datasets.synthetic.drive import FRAME_RATE_HZ, SPEED_MPS, ego_pose

ROOT = Path(__file__).resolve().parent.parent

log = logging.getLogger("make_readme_images")

SWEEP = (
    ("roll", [-20.0, -10.0, 0.0, 10.0, 20.0], "{:+.0f}°"),
    ("pitch", [-10.0, -5.0, 0.0, 5.0, 10.0], "{:+.0f}°"),
    ("yaw", [-40.0, -20.0, 0.0, 20.0, 40.0], "{:+.0f}°"),
    ("focal", [0.6, 0.8, 1.0, 1.25, 1.5], "x{:.2f}"),
)


def flat_ground_depth(K: np.ndarray, T_ego_cam: np.ndarray, hw: Tuple[int, int], max_m: float = 200.0) -> np.ndarray:
    """Depth (N, H, W) m of the road plane z = 0 (vehicle frame) along each pixel's ray; 0 above the horizon."""
    H, W = hw
    Kt = torch.from_numpy(K).double()
    T = torch.from_numpy(T_ego_cam).double()
    ones = torch.ones(K.shape[0], 1, H, W, dtype=torch.float64)
    p_cam = geometry.backproject(ones, torch.linalg.inv(Kt))  # (N, 3, HW), points at camera depth 1
    p_ego = geometry.transform_points(T, p_cam)  # (N, 3, HW)
    c_z = T[:, 2, 3][:, None]
    dz = p_ego[:, 2] - c_z  # height change per unit camera depth
    depth = torch.where(dz < -1e-6, -c_z / dz, torch.zeros_like(dz))
    depth = torch.where(depth > max_m, torch.zeros_like(depth), depth)
    return depth.reshape(-1, H, W).float().numpy()


def sweep_cameras(K0: np.ndarray, T0: np.ndarray) -> Tuple[np.ndarray, np.ndarray, List[str], List[List[str]]]:
    """Virtual cameras around one camera (K0 (3,3), T0 = T_ego_cam (4,4)): rotations about the vehicle
    axes at the camera's position (roll about x forward, pitch about y left, yaw about z up), and the
    focal length scaled about the principal point. Returns K (V,3,3), T (V,4,4), row and column labels."""
    Ks, Ts, rows, cols = [], [], [], []
    for name, values, fmt in SWEEP:
        rows.append(name)
        cols.append([fmt.format(v) for v in values])
        for v in values:
            K, T = K0.copy(), T0.copy()
            if name == "focal":
                K[0, 0] *= v
                K[1, 1] *= v
            else:
                ang = {"roll": (v, 0.0, 0.0), "pitch": (0.0, v, 0.0), "yaw": (0.0, 0.0, v)}[name]
                R = geometry.euler_to_rotmat(*ang, degrees=True).numpy()
                T[:3, :3] = R @ T0[:3, :3]
            Ks.append(K)
            Ts.append(T)
    return np.stack(Ks), np.stack(Ts), rows, cols


def _save(path: Path, img: np.ndarray, max_kb: int) -> Path:
    """PNG, palette-quantized when the full-colour file is larger than max_kb."""
    from PIL import Image

    viz.write_png(path, img)
    if path.stat().st_size > max_kb * 1024:
        Image.fromarray(img).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            path, optimize=True)
    log.info("wrote %s (%d x %d, %.0f KB)", path, img.shape[1], img.shape[0], path.stat().st_size / 1024)
    return path


def _stack(parts: List[np.ndarray], gap: int = 6) -> np.ndarray:
    """Stack images vertically, left-aligned, on white."""
    W = max(p.shape[1] for p in parts)
    rows = []
    for i, p in enumerate(parts):
        row = np.full((p.shape[0], W, 3), 255, np.uint8)
        row[:, : p.shape[1]] = p
        rows.append(row)
        if i < len(parts) - 1:
            rows.append(np.full((gap, W, 3), 255, np.uint8))
    return np.concatenate(rows, axis=0)


def _heading(text: str, width: int, size: int = 15) -> np.ndarray:
    strip = np.full((size + 12, width, 3), 255, np.uint8)
    return viz.draw_label(strip, text, (2, 2), size=size, color=(0, 0, 0), box=(255, 255, 255))


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"), help="output folder")
    ap.add_argument("--checkpoint", default="", help="trained checkpoint: also show the model's predictions")
    ap.add_argument("--seed", type=int, default=3, help="synthetic world seed")
    ap.add_argument("--time", type=float, default=2.0, help="time along the drive (s)")
    ap.add_argument("--height", type=int, default=144)
    ap.add_argument("--width", type=int, default=240)
    ap.add_argument("--max-kb", type=int, default=300, help="quantize a PNG to 256 colours above this size")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    rig = RIGS["ddad"]
    hw = (args.height, args.width)
    K, T_ego_cam, mask = rig.K(hw), rig.T_ego_cam, rig.masks(hw)
    world = generate_world(args.seed, length_m=(args.time + 2.0) * SPEED_MPS)
    t_s = round(args.time * FRAME_RATE_HZ) / FRAME_RATE_HZ
    T_world_ego = ego_pose(world, t_s)
    boxes = world.boxes_at(t_s)
    log.info("rendering the six cameras at %dx%d", hw[1], hw[0])
    images, depth = render_cameras(world, boxes, T_world_ego, K, T_ego_cam, hw, mask)
    names = [str(c).lower() for c in rig.camera_names]
    order = viz.surround_order_from_extrinsics(T_ego_cam)
    slots = ("front-left", "front", "front-right", "back-left", "back", "back-right")
    role = {cam: slot for slot, cam in zip(slots, order)}  # order[k] = camera shown in slot k
    labels = [f"{names[i]} ({role[i]})" for i in range(len(names))]

    predictor = None
    if args.checkpoint:
        from vfdepth_core.inference import Predictor, VirtualCamera

        predictor = Predictor.from_checkpoint(args.checkpoint)

    # 1. surround mosaic: images + depth with one colour bar (metres)
    vmin, vmax = viz.depth_range(list(depth), 5, 99)
    vmin, vmax = max(vmin, 1.0), min(vmax, 120.0)
    rgb_m = viz.surround_layout(list(images), order=order, labels=labels)
    depth_tiles = [viz.colorize_depth(d, vmin, vmax) for d in depth]
    parts = [_heading("six cameras (DDAD-like rig, synthetic world)", rgb_m.shape[1]), rgb_m,
             _heading("ground-truth depth (near = bright, grey = no depth: sky and own vehicle)", rgb_m.shape[1])]
    depth_m = viz.surround_layout(depth_tiles, order=order, labels=labels)
    parts.append(viz.with_colorbar(depth_m, viz.depth_colorbar(depth_m.shape[0], vmin, vmax), gap=0))
    pred = None
    if predictor is not None:
        p = predictor.predict(images.transpose(0, 3, 1, 2)[None], K[None], T_ego_cam[None])
        pred = p.depth[0, :, 0].cpu().numpy()
        pm = viz.surround_layout([viz.colorize_depth(d, vmin, vmax) for d in pred], order=order, labels=labels)
        parts += [_heading(f"predicted depth ({Path(args.checkpoint).name})", rgb_m.shape[1]),
                  viz.with_colorbar(pm, viz.depth_colorbar(pm.shape[0], vmin, vmax), gap=0)]
    _save(out / "surround_depth.png", _stack(parts), args.max_kb)

    # 2. error map of the front camera
    front = order[1]
    if pred is not None:
        est_name = "predicted depth"
        est = pred[front]
        gt = depth[front]
        if est.shape != gt.shape:  # the network's resolution; compare at it (nearest-neighbour GT)
            ys = np.linspace(0, gt.shape[0] - 1, est.shape[0]).round().astype(int)
            xs = np.linspace(0, gt.shape[1] - 1, est.shape[1]).round().astype(int)
            gt = gt[np.ix_(ys, xs)]
    else:
        est_name = "flat-ground prior"
        est = flat_ground_depth(K[front:front + 1], T_ego_cam[front:front + 1], hw)[0]
        gt = depth[front]
    covered = est > 0  # the flat-ground prior has no depth above the horizon: score only where it has
    err = viz.abs_rel_error(est, gt, mask=covered)
    tiles = [images[front] if images[front].shape[:2] == gt.shape else viz.to_uint8_rgb(images[front]),
             viz.colorize_depth(gt, vmin, vmax), viz.colorize_depth(est, vmin, vmax),
             viz.colorize_error(est, gt, mask=covered)]
    mean = float(np.nanmean(err)) if np.isfinite(err).any() else float("nan")
    grid = viz.mosaic(tiles, ncols=2, labels=[f"{names[front]} image", "ground truth", est_name,
                                              f"abs rel error (mean {mean:.2f})"])
    half = grid.shape[0] // 2
    dbar = viz.depth_colorbar(half, vmin, vmax)
    ebar = viz.error_colorbar(grid.shape[0] - half, 0.5, label="abs rel")
    w = max(dbar.shape[1], ebar.shape[1])
    pad_w = lambda b: np.concatenate([b, np.full((b.shape[0], w - b.shape[1], 3), 255, np.uint8)], 1)  # noqa: E731
    bars = np.concatenate([pad_w(dbar), pad_w(ebar)], axis=0)
    _save(out / "error_map.png", viz.with_colorbar(grid, bars, gap=0), args.max_kb)

    # 3. novel-view sweep around the front camera
    sh = (hw[0] * 2 // 3, hw[1] * 2 // 3)
    K_small = geometry.resize_intrinsics(torch.from_numpy(K[front]), hw, sh).numpy()
    Kv, Tv, rows, cols = sweep_cameras(K_small, T_ego_cam[front])
    if predictor is not None:
        from vfdepth_core.inference import VirtualCamera

        net_hw = tuple(p.depth.shape[-2:])
        Kv_net = geometry.resize_intrinsics(torch.from_numpy(Kv), sh, net_hw).float()
        vp = predictor.predict(images.transpose(0, 3, 1, 2)[None], K[None], T_ego_cam[None],
                               virtual=VirtualCamera(Kv_net, torch.from_numpy(Tv).float()))
        vdepth = vp.virtual_depth[0, :, 0].cpu().numpy()
        title = f"synthesized depth at virtual cameras around {names[front]} ({Path(args.checkpoint).name})"
    else:
        log.info("rendering %d virtual cameras at %dx%d", len(Kv), sh[1], sh[0])
        _, vdepth = render_cameras(world, boxes, T_world_ego, Kv, Tv, sh)
        title = f"ground-truth depth at virtual cameras around {names[front]} (rendered)"
    n = len(SWEEP[0][1])
    sweep = viz.novel_view_sweep([list(vdepth[r * n:(r + 1) * n]) for r in range(len(rows))], rows, cols,
                                 vmin=vmin, vmax=vmax, title=title)
    _save(out / "novel_view_sweep.png", sweep, args.max_kb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
