#!/usr/bin/env python3
"""Learning benchmark: does VFDepth learn metric depth on the synthetic DDAD-rig world?

    python benchmarks/learning.py                      # the benchmark run: 55 min on 2 CPU threads
    python benchmarks/learning.py --minutes 5 --scenes 3 --frames 30   # a quick look
    python benchmarks/learning.py --paper_objective    # the paper's loss weights, full resolution only
    python benchmarks/learning.py --world varied       # the varied world (training/README.md)

1. Generates training scenes and separate held-out scenes with ``vfdepth synth`` (DDAD rig, 192x320).
2. Trains ``training/configs/synthetic/synthetic_cpu.yaml`` through the real ``training/train.py`` for
   ``--minutes`` (validation on a few held-out samples every ``--val_every`` steps: the learning curve).
3. Evaluates the final checkpoint on every held-out sample (the paper's protocol) and prints metric and
   median-scaled abs_rel / d1 next to the best constant-depth predictor and the best per-pixel prior of
   the training scenes' GT (per camera and pixel, the depth minimising abs_rel) on the same pixels, with
   the ratio network / prior; and the ego motion of the held-out drives (metric relative translation and
   rotation errors between consecutive samples, ATE and drift of each drive chained into a trajectory).
   The learning curve shows the ego-motion error of the validation subset during training as well.

Writes ``results/learning/``: ``learning.json`` (all numbers), ``learning_curve.png``, the run folder
``run/`` (checkpoints, TensorBoard, train/val logs) and ``train.log``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

logger = logging.getLogger("vfdepth.bench.learning")

CONFIG = ROOT / "training" / "configs" / "synthetic" / "synthetic_cpu.yaml"

# What the benchmark trains with on top of synthetic_cpu.yaml (all self-supervised, beyond the paper where
# they differ from it; training/README.md has the runs behind each):
# - 128x224 instead of 192x320: 3 s instead of 5 s a step on this 2-core CPU; focal_length_scale
#   300 x 224/320 = 210 keeps 192x320's depth range and initial depth;
# - spatial and spatio-temporal weights 0.3 instead of 0.03/0.1 (the metric scale holds);
# - the photometric pyramid, three levels (x2, x4, x8: near objects move ~50 px a frame in the side cameras);
# - learning rate 3e-4 instead of 1e-4, falling linearly over the time budget, and a weight average
#   (EMA 0.99) as the result;
# - the pose head's translation at x1 instead of x0.01: with the paper's scale the random-init pose net
#   reached 14 % of the true motion after 350 steps and 41 % after 1,050, and the temporal term pulled
#   the depth down to that scale (median gt/prediction 1.86, abs_rel 0.28 -> 0.41).
# - the ego motion refined by photometric alignment through the predicted depth (inference only: the
#   validation curve and the held-out score; the pose network alone is scored beside it): the pose net
#   of these short runs outputs nearly the same motion for every pair (training/README.md, "Ego motion").
# --paper_objective leaves them all out; --set overrides any of them.
BENCH_SETS = ("training.height=128", "training.width=224", "training.focal_length_scale=210",
              "loss.spatio_coeff=0.3", "loss.spatio_tempo_coeff=0.3", "loss.photo_pyramid=3",
              "training.learning_rate=0.0003", "training.lr_schedule=linear", "model.pose_translation_scale=1.0",
              "training.ema_decay=0.99", "model.pose_refine_iterations=6")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=55.0, help="training wall time (default 55)")
    ap.add_argument("--scenes", type=int, default=8, help="scenes to generate, held-out ones included")
    ap.add_argument("--val_scenes", type=int, default=2, help="held-out scenes (never trained on)")
    ap.add_argument("--frames", type=int, default=60, help="frames per scene (10 Hz)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--world", choices=("default", "varied"), default="default",
                    help="synthetic world: 'default' (the regular street) or 'varied' (per-scene layouts a "
                         "per-pixel prior cannot guess; vfdepth synth --world)")
    ap.add_argument("--speed", choices=("constant", "varied"), default="constant",
                    help="ego speed of the generated drives: 'constant' (10 m/s) or 'varied' (about 5-15 m/s, "
                         "changing within a drive: a pose net that learnt one constant motion scores badly; "
                         "vfdepth synth --speed)")
    ap.add_argument("--data_dir", default=None,
                    help="generated world (default input_data/learning_synthetic, + _varied for --world varied, "
                         "+ _varied_speed for --speed varied)")
    ap.add_argument("--out", default=str(ROOT / "results" / "learning"))
    ap.add_argument("--config_file", default=str(CONFIG))
    ap.add_argument("--set", action="append", default=[],
                    help="extra config overrides for training (after the benchmark's own: " + ", ".join(BENCH_SETS) + ")")
    ap.add_argument("--paper_objective", action="store_true",
                    help="train without the benchmark's overrides (the paper's loss weights, full resolution only, fp32)")
    ap.add_argument("--val_every", type=int, default=50, help="validate every N steps during training")
    ap.add_argument("--val_samples", type=int, default=12, help="held-out samples per validation during training")
    ap.add_argument("--resume", action="store_true", help="continue the run in <out>/run")
    ap.add_argument("--eval_only", action="store_true", help="only evaluate <out>/run/checkpoints/latest.pt")
    ap.add_argument("--eval_weights", choices=("saved", "train"), default="saved",
                    help="the checkpoint's weights to score: 'saved' (its model: the weight average when "
                         "training.ema_decay is set) or 'train' (the optimizer's own weights)")
    ap.add_argument("--pose_refine_iterations", type=int, default=6,
                    help="held-out ego motion is scored for the pose network alone and, when > 0, refined by this "
                         "many photometric alignment iterations per level (model.pose_refine_iterations, beyond "
                         "the paper; 0 = the network's only)")
    ap.add_argument("--check_objective", action="store_true",
                    help="only score the losses at the true depth/motion against wrong ones, then exit")
    ap.add_argument("--device", default=None,
                    help="torch device of the training and the held-out scoring (default: CUDA when available, "
                         "else the CPU)")
    ap.add_argument("--threads", type=int,
                    default=int(os.environ.get("VFDEPTH_BENCH_THREADS", str(min(2, os.cpu_count() or 1)))),
                    help="torch CPU threads for training (default 2, or 1 on a one-core machine)")
    args = ap.parse_args(argv)
    args.set = ([] if args.paper_objective else list(BENCH_SETS)) + list(args.set)
    if args.data_dir is None:
        suffix = ("" if args.world == "default" else "_" + args.world) + \
                 ("" if args.speed == "constant" else "_" + args.speed + "_speed")
        args.data_dir = str(ROOT / "input_data" / ("learning_synthetic" + suffix))
    return args


def generate(args) -> Path:
    data = Path(args.data_dir)
    ds_json = data / "ddad.json"
    if ds_json.exists():
        logger.info("using the existing synthetic world %s", ds_json)
        return ds_json
    cmd = [sys.executable, "-m", "vfdepth_ros.cli", "synth", "--rig", "ddad", "--scenes", str(args.scenes),
           "--val-scenes", str(args.val_scenes), "--frames", str(args.frames), "--height", "192", "--width", "320",
           "--seed", str(args.seed), "--out", str(data), "--threads", str(args.threads), "--world", args.world, "--speed", args.speed]
    logger.info("generating: %s", " ".join(cmd))
    subprocess.run(cmd, check=True, cwd=ROOT)
    return ds_json


def train(args, ds_json: Path, run_dir: Path) -> None:
    cmd = [sys.executable, str(ROOT / "training" / "train.py"), "--config_file", args.config_file,
           "--run_dir", str(run_dir), "--no_progress",
           "--set", f"data.data_path={ds_json}",
           "--set", f"training.max_minutes={args.minutes}",
           "--set", "training.num_epochs=1000",
           "--set", f"training.val_every_steps={args.val_every}",
           "--set", "training.val_every_epochs=0",
           "--set", f"eval.eval_max_samples={args.val_samples}",
           "--set", "training.checkpoint_minutes=5"]
    for s in args.set:
        cmd += ["--set", s]
    if args.device:
        cmd += ["--device", args.device]
    if args.resume:
        cmd.append("--resume")
    else:
        cmd.append("--overwrite")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    logger.info("training: %s", " ".join(cmd))
    with open(Path(args.out) / "train.log", "a") as log:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise SystemExit(f"training failed (exit {rc}); see {Path(args.out) / 'train.log'}")


DEPTH_BIN_EDGES_M = (0.0, 3.0, 5.0, 10.0, 20.0, 40.0, 200.0)


class DepthBinBreakdown:
    """Where the metric abs_rel comes from, by ground-truth depth: each point weighs 1 / (its image's valid
    points x images), so the bins' contributions add up to the mean of per-image abs_rel (the protocol's
    mean when every camera has the same number of evaluated samples)."""

    def __init__(self, min_depth: float, max_depth: float, edges=DEPTH_BIN_EDGES_M):
        import numpy as np

        self.min_depth, self.max_depth, self.edges = min_depth, max_depth, tuple(edges)
        k = len(self.edges) - 1
        self.weight, self.contrib, self.points = np.zeros(k), np.zeros(k), np.zeros(k, dtype=np.int64)
        self.log_ratios = [[] for _ in range(k)]
        self.images = 0

    def __call__(self, batch, depth, _errors) -> None:
        import numpy as np

        from vfdepth_core.metrics import _LOG_FLOOR_M, valid_depth_mask

        gt = batch["depth_gt"].float()
        valid = valid_depth_mask(gt, batch.get("mask"), self.min_depth, self.max_depth)
        pred = depth.float().clamp(max(self.min_depth, _LOG_FLOOR_M), self.max_depth)  # as the protocol clamps
        for b in range(gt.shape[0]):
            for n in range(gt.shape[1]):
                g = gt[b, n][valid[b, n]].cpu().numpy().astype(np.float64)
                if g.size == 0:
                    continue
                pr = pred[b, n][valid[b, n]].cpu().numpy().astype(np.float64)
                self.images += 1
                idx = np.clip(np.searchsorted(self.edges, g, side="right") - 1, 0, len(self.weight) - 1)
                ar = np.abs(pr - g) / g
                np.add.at(self.weight, idx, 1.0 / g.size)
                np.add.at(self.contrib, idx, ar / g.size)
                np.add.at(self.points, idx, 1)
                lr = np.log(g / pr)
                for k in range(len(self.weight)):
                    sel = lr[idx == k]
                    if sel.size:
                        self.log_ratios[k].append(sel[:: max(1, sel.size // 200)])  # a thinned sample for the median

    def result(self) -> list:
        import numpy as np

        rows = []
        n = max(1, self.images)
        for k in range(len(self.weight)):
            share = self.weight[k] / n
            lr = np.concatenate(self.log_ratios[k]) if self.log_ratios[k] else np.zeros(0)
            rows.append({"range_m": [self.edges[k], self.edges[k + 1]], "points": int(self.points[k]),
                         "share": float(share), "abs_rel": float(self.contrib[k] / self.weight[k]) if self.weight[k] else None,
                         "contribution": float(self.contrib[k] / n),
                         "median_ratio_gt_pred": float(np.exp(np.median(lr))) if lr.size else None})
        return rows


def format_bins(rows: list, prior_rows: list | None = None) -> str:
    """The by-depth table; with ``prior_rows`` (the per-pixel prior's breakdown) its abs_rel beside."""
    head = f"{'GT depth':>12s} {'share':>7s} {'abs_rel':>8s} {'adds':>7s} {'gt/pred':>8s}"
    lines = [head + (f" {'prior':>8s} {'adds':>7s}" if prior_rows else "")]
    for i, r in enumerate(rows):
        lo, hi = r["range_m"]
        ar = "-" if r["abs_rel"] is None else f"{r['abs_rel']:.3f}"
        mr = "-" if r["median_ratio_gt_pred"] is None else f"{r['median_ratio_gt_pred']:.2f}"
        line = f"{f'{lo:g}-{hi:g} m':>12s} {r['share']:7.1%} {ar:>8s} {r['contribution']:7.3f} {mr:>8s}"
        if prior_rows:
            p = prior_rows[i]
            line += f" {'-' if p['abs_rel'] is None else format(p['abs_rel'], '.3f'):>8s} {p['contribution']:7.3f}"
        lines.append(line)
    return "\n".join(lines)


class PriorScorer:
    """An ``on_batch`` hook: scores a fixed per-pixel depth (N, H, W) on the same held-out pixels as the
    network (the protocol's metric and median scaling, and the by-depth breakdown), then calls ``then``."""

    def __init__(self, prior, cameras, min_depth: float, max_depth: float, then=None):
        from vfdepth_core.metrics import DepthMetricAccumulator

        self.prior, self.then = prior, then
        self.acc = DepthMetricAccumulator(cameras, min_depth, max_depth)
        self.bins = DepthBinBreakdown(min_depth, max_depth)

    def __call__(self, batch, depth, errors) -> None:
        gt = batch["depth_gt"].float()
        pred = self.prior[None, :, None].to(gt).expand_as(gt)
        self.acc.update(pred, gt, batch.get("mask"))
        self.bins(batch, pred, None)
        if self.then is not None:
            self.then(batch, depth, errors)

    def result(self) -> dict:
        return {**self.acc.result(), "depth_bins": self.bins.result()}


def evaluate(args, ds_json: Path, run_dir: Path) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from vfdepth_core.checkpoint import load_checkpoint
    from vfdepth_core.config import config_from_dict, with_overrides
    from vfdepth_core.datasets import build_dataset, collate_skip_broken
    from vfdepth_core.metrics import constant_baseline_protocol
    from vfdepth_core.model import VFDepth
    from vfdepth_core.training.evaluate import evaluate_depth_model, split_gt_prior

    torch.set_num_threads(max(1, args.threads))
    ck = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    cfg = with_overrides(config_from_dict(ck["config"], "checkpoint", ck["config_name"]),
                         [f"data.data_path={ds_json}", "eval.eval_max_samples=None"])
    model = VFDepth(cfg, load_imagenet=False)
    if args.eval_weights == "train" and "model_train" not in ck:
        raise SystemExit("--eval_weights train: this checkpoint has no separate training weights (no "
                         "training.ema_decay); its model is the only one")
    model.load_state_dict(ck["model_train"] if args.eval_weights == "train" else ck["model"])
    device = eval_device(args)
    model.to(device)
    ds = build_dataset(cfg, "val")
    loader = DataLoader(ds, batch_size=1, shuffle=False, collate_fn=collate_skip_broken)
    bins = DepthBinBreakdown(cfg.eval.eval_min_depth, cfg.eval.eval_max_depth)
    logger.info("per-pixel prior of the training scenes' GT")
    prior = split_gt_prior(cfg, "train")
    prior_scorer = PriorScorer(prior["prior"], list(cfg.data.cameras), cfg.eval.eval_min_depth,
                               cfg.eval.eval_max_depth, then=bins)
    res = evaluate_depth_model(model, loader, list(cfg.data.cameras), device, cfg.eval.eval_min_depth,
                               cfg.eval.eval_max_depth, keep_gt=True, on_batch=prior_scorer)
    base = constant_baseline_protocol(res.pop("gt_values"))
    prior_res = prior_scorer.result()
    prior_res.update({k: v for k, v in prior.items() if k != "prior"})
    return {"step": ck["step"], "epoch": ck["epoch"], "config": ck["config_name"], "eval": res, "constant": base,
            "depth_bins": bins.result(), "per_pixel_prior": prior_res,
            **evaluate_motion(cfg, model, args.pose_refine_iterations, device)}


def eval_device(args) -> str:
    import torch

    return args.device or ("cuda" if torch.cuda.is_available() else "cpu")


def evaluate_motion(cfg, model, refine_iterations: int, device: str = "cpu") -> dict:
    """Ego motion of the held-out drives: every consecutive pair (metric relative errors), and each drive
    chained into a trajectory (ATE, drift), see :mod:`vfdepth_core.odometry`. ``ego_motion_network``: the pose
    network alone (the paper); ``ego_motion``: refined by photometric alignment when refine_iterations > 0
    (else the network's); ``ego_motion_constant``: the best constant motion of the training drives (a
    predictor that ignores the images) on the same pairs."""
    from torch.utils.data import DataLoader

    from vfdepth_core.config import with_overrides
    from vfdepth_core.datasets import build_dataset, collate_skip_broken
    from vfdepth_core.odometry import (MOTION_FRAME_IDS, best_constant_motion, constant_motion_result,
                                       dataset_motions, evaluate_motion_model, training_steps)

    cfg = with_overrides(cfg, ["data.val_requirements=(gt_pose, mask)", "data.train_requirements=(gt_pose, mask)"])
    ds = build_dataset(cfg, "val", frame_ids=MOTION_FRAME_IDS)
    loader = DataLoader(ds, batch_size=1, shuffle=False, collate_fn=collate_skip_broken)
    T_const = best_constant_motion(training_steps(cfg))
    out = {"ego_motion_constant": constant_motion_result(T_const, dataset_motions(ds))}
    model.cfg = with_overrides(model.cfg, [f"model.pose_refine_iterations={max(0, refine_iterations)}"])
    logger.info("ego motion of the held-out drives: the pose network%s",
                f" alone and refined ({refine_iterations} iterations per level)" if refine_iterations > 0 else "")
    res = evaluate_motion_model(model, loader, device)
    out["ego_motion_network"] = res.pop("network", res)  # the network's own motion, from the same pass
    out["ego_motion"] = res
    out["pose_refine_iterations"] = refine_iterations
    return out


def dense_depth_at(image_paths, hw):
    """The renderer's dense depth (1, N, 1, H, W) of the images at `image_paths`, resized to hw = (H, W) as the
    dataset resizes the images (the whole frame, pixel centres kept: nearest-exact); holes (sky) at 150 m.
    A message (str) instead when a depth file is missing."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    dense = []
    for p in image_paths:
        dp = Path(p.replace("/rgb/", "/depth/")).with_suffix(".npz")
        if not dp.exists():
            return f"no dense depth next to {p} (generated with --no-depth?)"
        dense.append(np.load(dp)["depth"])
    d = torch.from_numpy(np.stack(dense))[:, None].float()  # (N, 1, H0, W0): the renderer's size
    d = torch.where(torch.isfinite(d) & (d > 0), d, torch.full_like(d, 150.0)).clamp(0.5, 150.0)
    if tuple(d.shape[-2:]) != tuple(hw):
        d = F.interpolate(d, size=tuple(hw), mode="nearest-exact")
    return d[None]


def objective_check(ds_json: Path, indices=(10, 100), overrides=()) -> dict:
    """Is the self-supervised objective lowest at the true depth and motion? (warps, masks, metric scale)

    Scores the training losses of a few training samples with the renderer's exact dense depth and the
    ground-truth ego motion, then with that depth scaled x2 / x0.5, a constant 10 m, and no motion.
    """
    import torch
    from torch.utils.data import default_collate

    from vfdepth_core import losses
    from vfdepth_core.config import load_config
    from vfdepth_core.datasets import build_dataset
    from vfdepth_core.model import ModelOutputs

    cfg = load_config(CONFIG, [f"data.data_path={ds_json}", "training.color_jitter=[0, 0, 0, 0]", *overrides])
    ds = build_dataset(cfg, "train")
    out = {}
    for idx in indices:
        if idx >= len(ds):
            continue
        b = default_collate([ds[idx]])
        d = dense_depth_at(ds.refs[idx].frames[0].image_paths, (cfg.training.height, cfg.training.width))
        if isinstance(d, str):
            return {"skipped": d}
        T_we = b["T_world_ego"][0].double()
        T_ec = b["T_ego_cam"].double()
        fid = {f: i for i, f in enumerate(cfg.training.frame_ids)}
        T_gt = {}
        for f in (-1, 1):
            T_egosrc_egotgt = torch.linalg.inv(T_we[fid[f]]) @ T_we[fid[0]]
            T_gt[f] = (torch.linalg.inv(T_ec) @ T_egosrc_egotgt[None, None] @ T_ec).float()
        ident = {f: torch.eye(4).expand(1, T_ec.shape[1], 4, 4).clone() for f in (-1, 1)}

        def score(depth, motion):
            o = ModelOutputs(disp=torch.full_like(depth, 0.5), depth=depth, T_src_tgt=motion)
            with torch.no_grad():
                _, terms = losses.compute_losses(b, o, cfg)
            return {k: round(float(v), 4) for k, v in terms.items() if k != "smooth"}

        out[str(idx)] = {"gt_depth_gt_motion": score(d, T_gt), "gt_depth_x2": score(d * 2, T_gt),
                         "gt_depth_x0.5": score(d * 0.5, T_gt), "constant_10m": score(torch.full_like(d, 10.0), T_gt),
                         "gt_depth_no_motion": score(d, ident)}
    return out


def plot_curve(run_dir: Path, out_png: Path, base: dict | None, prior: dict | None = None) -> list:
    """learning_curve.png from the run's val_log.jsonl: abs_rel and d1 (with the best constant and the
    per-pixel prior as lines) and, when validation logged it, the ego-motion error during training."""
    rows = []
    p = run_dir / "val_log.jsonl"
    if p.exists():
        rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    if not rows:
        return rows
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    ego = [(r["step"], r["ego_motion"]) for r in rows if r.get("ego_motion")]
    fig, axes = plt.subplots(1, 3 if ego else 2, figsize=(16 if ego else 11, 4))
    for ax, key, title in ((axes[0], "abs_rel", "abs_rel (lower is better)"), (axes[1], "d1", "d < 1.25 (higher is better)")):
        ax.plot(steps, [r["metric"][key] for r in rows], "o-", label="metric")
        ax.plot(steps, [r["median"][key] for r in rows], "s-", label="median-scaled")
        if base is not None:
            ax.axhline(base["metric"][key], color="r", ls="--", label=f"best constant ({base['metric']['value_m']:.1f} m)")
            ax.axhline(base["median"][key], color="gray", ls=":", label="constant, median-scaled")
        if prior is not None and prior["metric"]["mean"][key] is not None:
            ax.axhline(prior["metric"]["mean"][key], color="purple", ls="-.", label="per-pixel prior (all held-out)")
        ax.set_xlabel("training step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if ego:
        ax = axes[2]
        ax.plot([s for s, _ in ego], [e.get("rel_trans_err_pct") for _, e in ego], "o-", color="C2",
                label="relative translation error (%)")
        net = [(r["step"], r["ego_motion_network"]) for r in rows if r.get("ego_motion_network")]
        if net:  # the validation refined the motion: the pose network's own error beside it
            ax.plot([s for s, _ in net], [e.get("rel_trans_err_pct") for _, e in net], "^:", color="C2",
                    alpha=0.6, label="translation error, pose network alone (%)")
        ax.set_ylabel("% of the true step")
        ax.set_xlabel("training step")
        ax.set_title("ego motion (held-out subset, metric)")
        ax.grid(alpha=0.3)
        ax2 = ax.twinx()
        ax2.plot([s for s, _ in ego], [e.get("rel_rot_err_deg_per_m") for _, e in ego], "s--", color="C3",
                 label="rotation error (deg/m)")
        ax2.set_ylabel("deg/m")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=8)
    fig.suptitle("VFDepth on held-out synthetic scenes (validation subset during training)")
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return rows


def pick_ego(overall: dict) -> dict:
    return {k: overall.get(k) for k in ("rel_trans_err_pct", "rel_rot_err_deg_per_m", "rpe_rot_deg", "scale_ratio",
                                        "ate_rmse_m", "drift_pct", "path_length_m")}


def summarize(res: dict) -> dict:
    """The benchmark's headline numbers: network, best constant, per-pixel prior (with the ratio of the
    network's metric abs_rel to the prior's) and ego motion of the held-out drives."""
    m, md = res["eval"]["metric"]["mean"], res["eval"]["median"]["mean"]
    cm, cmd = res["constant"]["metric"], res["constant"]["median"]
    pm = res["per_pixel_prior"]["metric"]["mean"]
    ego = (res.get("ego_motion") or {}).get("overall") or {}
    pick = ("abs_rel", "d1", "rmse")
    return {
        "held_out_samples": res["eval"]["samples"],
        "steps": res["step"],
        "metric": {k: m[k] for k in pick},
        "median_scaled": {k: md[k] for k in pick},
        "constant_metric": {"value_m": cm["value_m"], **{k: cm[k] for k in pick}},
        "constant_median_scaled": {k: cmd[k] for k in pick},
        "per_pixel_prior": {k: pm[k] for k in pick},
        "ratio_to_prior_abs_rel": (m["abs_rel"] / pm["abs_rel"]) if m["abs_rel"] and pm["abs_rel"] else None,
        "median_ratio_mean": (res["eval"].get("median_ratio") or {}).get("mean"),
        "abs_rel_by_gt_depth": res["depth_bins"],
        "ego_motion": pick_ego(ego),
        "ego_motion_network": pick_ego((res.get("ego_motion_network") or {}).get("overall") or {}),
        "ego_motion_constant": pick_ego((res.get("ego_motion_constant") or {}).get("overall") or {}),
        "pose_refine_iterations": res.get("pose_refine_iterations", 0),
        "target_metric_abs_rel": 0.20,
        "meets_target": m["abs_rel"] is not None and m["abs_rel"] <= 0.20,
        "target_ego_motion": {"rel_trans_err_pct": 5.0, "rel_rot_err_deg_per_m": 0.5},
    }


def print_summary(res: dict, summary: dict) -> None:
    from vfdepth_core.metrics import format_depth_table
    from vfdepth_core.odometry import format_motion_table

    print(format_depth_table(res["eval"], "metric"))
    print(format_depth_table(res["eval"], "median"))
    print(f"\nheld-out samples: {summary['held_out_samples']}, training steps: {summary['steps']}")
    print(f"{'':24s} {'abs_rel':>8s} {'d1':>8s} {'rmse':>8s}")
    cm = summary["constant_metric"]
    for name, row in (("VFDepth metric", summary["metric"]), ("VFDepth median-scaled", summary["median_scaled"]),
                      (f"constant {cm['value_m']:.1f} m", cm),
                      ("constant median-scaled", summary["constant_median_scaled"]),
                      ("per-pixel prior (train)", summary["per_pixel_prior"])):
        print(f"{name:24s} {row['abs_rel']:8.3f} {row['d1']:8.3f} {row['rmse']:8.3f}")
    r = summary["ratio_to_prior_abs_rel"]
    print(f"network / per-pixel prior, metric abs_rel: {'n/a' if r is None else format(r, '.2f')} (below 1 = the network "
          "learnt more than the prior)")
    print(f"median ratio gt/pred (1 = right scale): {summary['median_ratio_mean']}")
    print("\nmetric abs_rel by ground-truth depth (share of points, abs_rel there, what it adds to the mean; the "
          "per-pixel prior's beside):")
    print(format_bins(res["depth_bins"], res["per_pixel_prior"]["depth_bins"]))
    ego = res.get("ego_motion") or {}
    if ego:
        print(f"\nego motion of the held-out drives ({ego['samples']} consecutive pairs; metric, no scale alignment; "
              "ATE after SE(3) alignment of each drive)")
        print(format_motion_table(ego))
        rows = (("pose network alone", summary["ego_motion_network"]), ("best constant motion", summary["ego_motion_constant"]))
        if summary.get("pose_refine_iterations"):
            rows = ((f"refined ({summary['pose_refine_iterations']} it./level)", summary["ego_motion"]),) + rows
        print(f"\n{'overall':28s} {'trans %':>8s} {'deg/m':>7s} {'est/gt':>6s} {'ATE m':>6s}")
        for name, r in rows:
            f = lambda v, spec: "n/a" if v is None else format(v, spec)  # noqa: E731
            print(f"{name:28s} {f(r['rel_trans_err_pct'], '8.2f')} {f(r['rel_rot_err_deg_per_m'], '7.3f')} "
                  f"{f(r['scale_ratio'], '6.2f')} {f(r['ate_rmse_m'], '6.2f')}")


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run_dir = out / "run"
    t0 = time.time()
    ds_json = generate(args)
    if args.check_objective:
        res = objective_check(ds_json, overrides=args.set)
        for idx, rows in res.items():
            print(f"training sample {idx}:")
            for name, terms in (rows.items() if isinstance(rows, dict) else []):
                print(f"  {name:22s} " + " ".join(f"{k} {v:.4f}" for k, v in terms.items()))
        from vfdepth_core.training.files import write_json

        write_json(out / "objective_check.json", res)
        return 0
    if not args.eval_only:
        train(args, ds_json, run_dir)
    res = evaluate(args, ds_json, run_dir)
    rows = plot_curve(run_dir, out / "learning_curve.png", res["constant"], res["per_pixel_prior"])
    summary = {**summarize(res), "training_overrides": list(args.set), "weights": args.eval_weights}
    from vfdepth_core.training.files import write_json

    out_name = "learning.json" if args.eval_weights == "saved" else "learning_train_weights.json"
    write_json(out / out_name, {"summary": summary, "full": res, "curve": rows,
                                "wall_s": time.time() - t0, "args": vars(args)})
    print_summary(res, summary)
    print(f"results: {out / out_name}, curve: {out / 'learning_curve.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
