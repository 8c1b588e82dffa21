#!/usr/bin/env python3
"""How well does a prior without images do on the learning benchmark's world? (the bar a network must clear)

    python benchmarks/prior_check.py                       # default world, seed 7, 8 scenes, 2 held out
    python benchmarks/prior_check.py --world varied        # the varied world
    python benchmarks/prior_check.py --world varied --gt dense --frame_step 3   # fast look, no files

The **per-pixel prior** predicts, for each camera and pixel, the depth that minimises abs_rel over the
training scenes' ground truth there (the weighted median of the GT values with weights 1/GT); pixels
without training GT get the best training constant. The **best constant** is the benchmark's: the one
constant that minimises the held-out scenes' protocol abs_rel (it has seen the held-out GT). Both are
scored on the held-out scenes' pixels with the paper's protocol (metrics.depth_errors per camera and
sample, then the mean).

Ground truth (``--gt``): ``lidar`` (default) is the benchmark's own: ``vfdepth synth`` writes the world
at 192x320 into ``--data_dir`` exactly as ``benchmarks/learning.py`` does (an existing folder is reused),
and the dataset projects LIDAR at ``--height`` x ``--width`` (128x224 like the benchmark), masks and
depth range as in training. ``dense`` renders the scenes straight at ``--height`` x ``--width`` and uses
the renderer's exact dense depth (every ``--frame_step``-th frame; nothing written): faster, and a
harsher test because every pixel counts.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CONFIG = ROOT / "training" / "configs" / "synthetic" / "synthetic_cpu.yaml"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", choices=("default", "varied"), default="default",
                    help="synthetic world variety (default: default, the learning benchmark's)")
    ap.add_argument("--seed", type=int, default=7, help="scene i uses seed + i (default 7, the benchmark's)")
    ap.add_argument("--scenes", type=int, default=8, help="scenes, held-out ones included (default 8)")
    ap.add_argument("--val_scenes", type=int, default=2, help="held-out scenes: the last ones (default 2)")
    ap.add_argument("--frames", type=int, default=60, help="frames per scene at 10 Hz (default 60)")
    ap.add_argument("--height", type=int, default=128, help="evaluation height (default 128, the benchmark's)")
    ap.add_argument("--width", type=int, default=224, help="evaluation width (default 224)")
    ap.add_argument("--gt", choices=("lidar", "dense"), default="lidar", help="ground truth (see above; default lidar)")
    ap.add_argument("--frame_step", type=int, default=1, help="--gt dense: use every N-th frame (default 1)")
    ap.add_argument("--data_dir", default=None,
                    help="--gt lidar: the generated world (default input_data/prior_<world>_s<seed>)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = ap.parse_args(argv)
    if not 0 < args.val_scenes < args.scenes:
        ap.error(f"--val_scenes must be between 1 and --scenes - 1 ({args.scenes - 1})")
    if args.frame_step < 1 or args.frames < 3:
        ap.error("--frame_step must be >= 1 and --frames >= 3")
    if args.data_dir is None:
        args.data_dir = str(ROOT / "input_data" / f"prior_{args.world}_s{args.seed}")
    return args


def fit_prior(gt: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The per-pixel prior (N, H, W) from training GT (S, N, H, W) and its valid mask: each pixel's depth
    minimising the training scenes' protocol abs_rel there (:func:`vfdepth_core.metrics.per_pixel_prior`,
    per-image weighting); pixels with no training GT get the prior of all training GT pooled."""
    from vfdepth_core.metrics import per_pixel_prior

    prior = per_pixel_prior(gt, valid, per_image_dims=2)
    fallback = per_pixel_prior(gt[valid][:, None])[0]
    return np.where(np.isfinite(prior), prior, fallback)


def score(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, min_depth: float, max_depth: float) -> dict:
    """Protocol mean (over sample-cameras with GT) of abs_rel and d1 of pred (N, H, W) against gt (S, N, H, W)."""
    import torch

    from vfdepth_core.metrics import _LOG_FLOOR_M, DEPTH_METRICS, depth_errors

    p = np.clip(pred, max(min_depth, _LOG_FLOOR_M), max_depth)
    rows = [depth_errors(torch.from_numpy(gt[s, n][valid[s, n]]), torch.from_numpy(p[n][valid[s, n]])).numpy()
            for s in range(gt.shape[0]) for n in range(gt.shape[1]) if valid[s, n].any()]
    m = np.mean(rows, axis=0)
    return {k: float(m[DEPTH_METRICS.index(k)]) for k in ("abs_rel", "d1", "rmse")}


def lidar_gt(args, split: str) -> tuple:
    """GT (S, N, H, W) float64 and valid mask of every sample of `split`, through the benchmark's dataset."""
    from tqdm import tqdm

    from vfdepth_core.config import load_config
    from vfdepth_core.datasets import build_dataset
    from vfdepth_core.metrics import valid_depth_mask

    from learning import generate  # the learning benchmark's own world generation (192x320, vfdepth synth)

    ds_json = generate(args)
    cfg = load_config(CONFIG, [f"data.data_path={ds_json}", f"training.height={args.height}",
                               f"training.width={args.width}", "data.train_requirements=(gt_pose, gt_depth, mask)"])
    ds = build_dataset(cfg, split, frame_ids=(0,))
    gts, valids = [], []
    for i in tqdm(range(len(ds)), desc=f"{split} GT", unit="sample"):
        s = ds[i]
        g = s["depth_gt"][:, 0].double()
        gts.append(g.numpy())
        valids.append(valid_depth_mask(g, s["mask"][:, 0], cfg.eval.eval_min_depth, cfg.eval.eval_max_depth).numpy())
    return np.stack(gts), np.stack(valids), (cfg.eval.eval_min_depth, cfg.eval.eval_max_depth)


def dense_gt(args, seeds) -> tuple:
    """Exact dense depth rendered at the evaluation size: (S, N, H, W) float64 and valid mask."""
    from tqdm import tqdm

    from vfdepth_core.config import load_config
    from vfdepth_core.datasets.synthetic import DDAD_RIG, generate_world, render_cameras
    from vfdepth_core.datasets.synthetic.drive import FRAME_RATE_HZ, SPEED_MPS, ego_pose

    ev = load_config(CONFIG, []).eval
    hw = (args.height, args.width)
    K, mask = DDAD_RIG.K(hw), DDAD_RIG.masks(hw)
    frames = range(1, args.frames - 1, args.frame_step)  # the frames a sample can centre on
    gts, valids = [], []
    bar = tqdm(total=len(seeds) * len(frames), desc="rendering", unit="frame")
    for seed in seeds:  # the drive make_drive renders, only the frames used
        world = generate_world(seed, length_m=args.frames / FRAME_RATE_HZ * SPEED_MPS, variety=args.world)
        for i in frames:
            t_s = i / FRAME_RATE_HZ
            _, d = render_cameras(world, world.boxes_at(t_s), ego_pose(world, t_s), K, DDAD_RIG.T_ego_cam, hw, mask)
            g = d.astype(np.float64)
            gts.append(g)
            valids.append(mask & (g > ev.eval_min_depth) & (g <= ev.eval_max_depth))
            bar.update(1)
    bar.close()
    return np.stack(gts), np.stack(valids), (ev.eval_min_depth, ev.eval_max_depth)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import torch

    from vfdepth_core.metrics import constant_baseline_protocol

    torch.set_num_threads(max(1, args.threads))
    t0 = time.time()
    if args.gt == "lidar":
        gt_tr, ok_tr, (lo, hi) = lidar_gt(args, "train")
        gt_va, ok_va, _ = lidar_gt(args, "val")
    else:
        n_train = args.scenes - args.val_scenes
        gt_tr, ok_tr, (lo, hi) = dense_gt(args, [args.seed + i for i in range(n_train)])
        gt_va, ok_va, _ = dense_gt(args, [args.seed + i for i in range(n_train, args.scenes)])
    prior = fit_prior(gt_tr, ok_tr)
    res = score(prior, gt_va, ok_va, lo, hi)
    const = constant_baseline_protocol([gt_va[s, n][ok_va[s, n]] for s in range(gt_va.shape[0])
                                        for n in range(gt_va.shape[1])])["metric"]
    print(f"world {args.world}, seed {args.seed}, {args.scenes} scenes ({args.val_scenes} held out), "
          f"{args.height}x{args.width}, GT {args.gt}: {len(gt_tr)} training and {len(gt_va)} held-out samples "
          f"({time.time() - t0:.0f} s)")
    print(f"{'held-out':28s} {'abs_rel':>8s} {'d1':>8s} {'rmse':>8s}")
    print(f"{'per-pixel prior':28s} {res['abs_rel']:8.3f} {res['d1']:8.3f} {res['rmse']:8.3f}")
    print(f"{'best constant ' + format(const['value_m'], '.1f') + ' m':28s} {const['abs_rel']:8.3f} "
          f"{const['d1']:8.3f} {const['rmse']:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
