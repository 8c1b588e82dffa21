#!/usr/bin/env python3
"""Evaluate a VFDepth checkpoint with the paper's protocol (metric and median scaling, per camera + mean).

    python training/eval.py --config_file training/configs/ddad/ddad_surround_fusion.yaml
    python training/eval.py --config_file ... --weight_path results/ddad_surround_fusion/checkpoints/epoch_019.pt
    python training/eval.py --config_file .../ddad_surround_fusion_augdepth.yaml   # + novel-view depth

The model is built from the checkpoint's own config; the config file (and ``--set``) supply the data,
eval and output settings (``--use_file_config`` builds the model from the file instead, after checking
that it fits the checkpoint). Default weights: ``<data.log_dir>/<config name>/checkpoints/latest.pt``.

Writes ``results/<config name>/`` (``<data.log_dir>/<config name>/`` unless ``--out_dir``):
``metrics.json`` (depth, and ``ego_motion``: the predicted motion between consecutive samples against
the dataset's ego poses, per scene and overall), ``metrics.csv``, with ``eval.eval_visualize`` depth/error PNGs in ``vis/``, with
``--save_depth`` the raw predicted depth per sample in ``depth/``, and with
``training.aug_depth`` or ``eval.syn_visualize`` synthesized novel-view depth in ``syn_results/``
(colormap PNG + raw ``.npy`` metres per virtual view).
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from vfdepth_core import viz
from vfdepth_core.config import Config, ConfigError, config_from_dict, config_to_dict, load_config, with_overrides
from vfdepth_core.training.checks import check_checkpoint_compatible, check_dataset_kind, check_nonempty
from vfdepth_core.training.distributed import pick_device
from vfdepth_core.training.evaluate import evaluate_depth_model
from vfdepth_core.training.files import write_json

logger = logging.getLogger("vfdepth.eval")

# Sections of the file config that apply on top of the checkpoint's config (not the network's shape).
_RUNTIME_SECTIONS = ("data", "eval", "load", "logging", "ddp")
_RUNTIME_TRAINING_KEYS = ("min_depth", "max_depth", "focal_length_scale", "aug_depth", "aug_angle", "amp")

# Novel views of the synthesis sweep: yaw offsets (degrees) applied to every camera about the vehicle origin.
SYN_YAWS_DEG = (-20.0, -10.0, 10.0, 20.0)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Evaluate VFDepth (paper protocol).",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--config_file", required=True)
    ap.add_argument("--weight_path", default=None, help="checkpoint (.pt) written by train.py")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--out_dir", default=None, help="output folder (default results/<config name>)")
    ap.add_argument("--split", default="val", choices=("val", "test", "train"))
    ap.add_argument("--device", default=None)
    ap.add_argument("--use_file_config", action="store_true", help="build the model from --config_file")
    ap.add_argument("--save_depth", action="store_true",
                    help="also write every sample's predicted depth (metres, network size) with its intrinsics and "
                         "stamps to <out_dir>/depth/sample_NNNNN.npz (e.g. to compare with `vfdepth evaluate-bag`)")
    ap.add_argument("--log_level", default="INFO")
    return ap.parse_args(argv)


def merged_config(file_cfg: Config, ckpt_cfg: dict, name: str) -> Config:
    """The checkpoint's network config with the file's data/eval/output settings."""
    tree = dict(ckpt_cfg)
    f = config_to_dict(file_cfg)
    for sec in _RUNTIME_SECTIONS:
        tree[sec] = f[sec]
    tree["training"] = dict(tree.get("training", {}))
    for k in _RUNTIME_TRAINING_KEYS:
        tree["training"][k] = f["training"][k]
    return config_from_dict(tree, "checkpoint+config", name)


def syn_views(T_ego_cam: torch.Tensor, yaws_deg=SYN_YAWS_DEG) -> torch.Tensor:
    """(B, N, 4, 4) -> (B, N*len(yaws), 4, 4): every camera yawed about the vehicle origin."""
    from vfdepth_core import geometry as geo

    out = []
    for yaw in yaws_deg:
        R = geo.euler_to_rotmat(0.0, 0.0, float(yaw), degrees=True).to(T_ego_cam)
        T_rot = geo.make_transform(R, torch.zeros(3, dtype=T_ego_cam.dtype, device=T_ego_cam.device))
        out.append(T_rot @ T_ego_cam)
    return torch.stack(out, 2).flatten(1, 2)


def write_tables(res: dict, out_dir: Path, cameras: List[str]) -> None:
    from vfdepth_core.metrics import DEPTH_METRICS

    write_json(out_dir / "metrics.json", res)
    with open(out_dir / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scaling", "camera", *DEPTH_METRICS])
        for s in ("metric", "median"):
            for cam in [*cameras, "mean"]:
                row = res[s]["mean"] if cam == "mean" else res[s]["per_camera"][cam]
                w.writerow([s, cam, *["" if row[m] is None else f"{row[m]:.6f}" for m in DEPTH_METRICS]])


def run(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    from torch.utils.data import DataLoader

    from vfdepth_core.checkpoint import load_checkpoint
    from vfdepth_core.datasets import build_dataset, collate_skip_broken
    from vfdepth_core.metrics import format_depth_table
    from vfdepth_core.model import VFDepth

    file_cfg = load_config(args.config_file, args.set)
    weight = Path(args.weight_path) if args.weight_path else Path(file_cfg.data.log_dir) / file_cfg.name / "checkpoints" / "latest.pt"
    if not weight.exists():
        raise ConfigError(f"no checkpoint at {weight}; pass --weight_path (a .pt file written by training/train.py)")
    ck = load_checkpoint(weight, map_location="cpu")
    if args.use_file_config:
        check_checkpoint_compatible(ck.get("config"), file_cfg, str(weight))
        cfg = file_cfg
    else:
        try:
            cfg = merged_config(file_cfg, ck["config"], file_cfg.name)
        except ConfigError as exc:
            raise ConfigError(f"{weight}: its config does not load ({exc})") from None
        if args.set:
            cfg = with_overrides(cfg, args.set)
        check_checkpoint_compatible(ck.get("config"), cfg, str(weight))
    device = pick_device(0, (), args.device)
    check_dataset_kind(cfg.data.data_path, cfg.data.dataset, args.config_file)

    model = VFDepth(cfg, load_imagenet=False)
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"checkpoint {weight} does not fit the model of this config ({first})") from None
    model.to(device).eval()

    ds = build_dataset(cfg, args.split, skip_broken=True)
    check_nonempty(ds, args.split, cfg.data.data_path)
    loader = DataLoader(ds, batch_size=cfg.eval.eval_batch_size, shuffle=False,
                        num_workers=min(cfg.eval.eval_num_workers, len(os.sched_getaffinity(0))),
                        collate_fn=collate_skip_broken)
    out_dir = Path(args.out_dir) if args.out_dir else Path(cfg.data.log_dir) / file_cfg.name
    out_dir.mkdir(parents=True, exist_ok=True)
    cams = [str(c) for c in cfg.data.cameras]
    ev = cfg.eval
    do_syn = cfg.training.aug_depth or ev.syn_visualize
    syn_target = ev.syn_idx if ev.syn_idx is not None and 0 <= ev.syn_idx < len(ds) else 0
    counter = {"i": 0}
    f0 = list(getattr(ds, "frame_ids", (0,))).index(0)  # the target frame's index in the batch

    def on_batch(batch, depth, errs):
        for b in range(depth.shape[0]):
            i = counter["i"] + b
            if ev.eval_visualize:
                _write_vis(out_dir / "vis", i, batch, depth, b, cams, ev.eval_max_depth, cfg.training.min_depth)
            if args.save_depth:
                _write_depth(out_dir / "depth", i, batch, depth, b, cams, f0)
            if do_syn and i == syn_target:
                _write_syn(out_dir / "syn_results", i, model, batch, b, cams, cfg)
        counter["i"] += depth.shape[0]

    logger.info("evaluating %s (step %s) on %d %s samples of %s", weight, ck.get("step"), len(ds), args.split,
                cfg.data.data_path)
    res = evaluate_depth_model(model, loader, cams, device, ev.eval_min_depth, ev.eval_max_depth,
                                  max_samples=ev.eval_max_samples, on_batch=on_batch, amp=cfg.training.amp,
                                  unit=ev.eval_unit, median=ev.eval_median)
    res["checkpoint"] = str(weight)
    res["step"] = int(ck.get("step", 0))
    res["config_name"] = ck.get("config_name")
    res["split"] = args.split
    res["ego_motion"] = evaluate_ego_motion(model, cfg, args.split, device)
    write_tables(res, out_dir, cams)
    print(f"checkpoint {weight} (step {res['step']}), {res['samples']} {args.split} samples, "
          f"gt in ({ev.eval_min_depth}, {ev.eval_max_depth}) m, scored per {ev.eval_unit}"
          + (f" of {cfg.eval.eval_batch_size} images" if ev.eval_unit == "batch" else ""))
    print(format_depth_table(res, "metric"))
    print()
    print(format_depth_table(res, "median"))
    ratio = (res.get("median_ratio") or {}).get("mean")
    if ratio is not None:
        print(f"\nmean median ratio gt/pred: {ratio:.3f}")
    print_ego_motion(res["ego_motion"])
    print(f"\nwrote {out_dir / 'metrics.json'} and {out_dir / 'metrics.csv'}")
    if do_syn:
        print(f"novel-view depth in {out_dir / 'syn_results'}")
    return 0


def evaluate_ego_motion(model, cfg: Config, split: str, device: str) -> dict:
    """The canonical motion between consecutive samples of `split` against the dataset's ego poses (per
    scene and overall, :func:`vfdepth_core.odometry.evaluate_motion_model`); ``{"skipped": reason}`` when
    the split has no consecutive samples."""
    from torch.utils.data import DataLoader

    from vfdepth_core.datasets import build_dataset, collate_skip_broken
    from vfdepth_core.datasets.common import DatasetError
    from vfdepth_core.odometry import MOTION_FRAME_IDS, evaluate_motion_model

    reqs = "(gt_pose, mask)" if "mask" in cfg.data.val_requirements else "(gt_pose)"
    cfg_m = with_overrides(cfg, [f"data.val_requirements={reqs}", f"data.train_requirements={reqs}"])
    try:
        ds = build_dataset(cfg_m, split, frame_ids=MOTION_FRAME_IDS, skip_broken=True)
    except DatasetError as exc:
        return {"skipped": f"no ego-motion evaluation: {exc}"}
    if len(ds) == 0:
        return {"skipped": f"no {split} sample has a previous sample: no ego-motion evaluation"}
    loader = DataLoader(ds, batch_size=cfg.eval.eval_batch_size, shuffle=False, collate_fn=collate_skip_broken)
    logger.info("ego motion on %d consecutive %s sample pairs (pose refinement: %d iterations per level)", len(ds),
                split, cfg.model.pose_refine_iterations)
    res = evaluate_motion_model(model, loader, device, cfg.eval.eval_max_samples) or {"skipped": "no sample pairs"}
    if "skipped" not in res:
        res["pose_refine_iterations"] = cfg.model.pose_refine_iterations
        res["constant_motion"] = constant_motion_baseline(cfg_m, ds)
    return res


def constant_motion_baseline(cfg: Config, ds) -> dict:
    """The best constant motion of the training split (the mean step: what an image-blind pose net outputs)
    scored on `ds`'s pairs (all of them, whatever eval_max_samples); ``{"skipped": reason}`` without one."""
    from vfdepth_core.datasets.common import DatasetError
    from vfdepth_core.odometry import best_constant_motion, constant_motion_result, dataset_motions, training_steps

    try:
        train = training_steps(cfg)
    except DatasetError as exc:
        return {"skipped": f"no training split to take the mean step from ({exc})"}
    if not train:
        return {"skipped": "the training split has no consecutive samples"}
    return constant_motion_result(best_constant_motion(train), dataset_motions(ds)).get("overall", {})


def print_ego_motion(res: dict) -> None:
    """The ego-motion table under the depth tables (or why there is none)."""
    from vfdepth_core.odometry import format_motion_table

    if "skipped" in res:
        print(f"\n{res['skipped']}")
        return
    print(f"\nego motion between consecutive samples ({res['samples']} pairs; metric, no scale alignment; "
          "est/gt = estimated / true distance)")
    print(format_motion_table(res))
    n = (res.get("network") or {}).get("overall") or {}
    if n.get("rel_trans_err_pct") is not None:
        print(f"the pose network alone, before the refinement ({res['pose_refine_iterations']} iterations per level), "
              f"on the same pairs: {n['rel_trans_err_pct']:.2f} %, {n['rel_rot_err_deg_per_m']:.4f} deg/m, "
              f"est/gt {n['scale_ratio']:.2f}")
    c = res.get("constant_motion") or {}
    if c.get("rel_trans_err_pct") is not None:
        print(f"best constant motion of the training split on the same pairs (ignores the images): "
              f"{c['rel_trans_err_pct']:.2f} %, {c['rel_rot_err_deg_per_m']:.4f} deg/m")
    elif c.get("skipped"):
        print(c["skipped"])


def _write_depth(folder: Path, i: int, batch: dict, depth: torch.Tensor, b: int, cams: List[str], f0: int) -> None:
    """sample_NNNNN.npz: depth (N, H, W) float32 metres, K (N, 3, 3) at that size, stamp_ns (N,) of the
    target frame, cameras (N,)."""
    folder.mkdir(parents=True, exist_ok=True)
    stamps = batch["stamp_ns"][b]
    stamps = stamps[f0] if stamps.dim() == 2 else stamps  # (F, N) -> the target frame's (N,)
    np.savez(folder / f"sample_{i:05d}.npz", depth=depth[b, :, 0].float().cpu().numpy(),
             K=batch["K"][b, :, :3, :3].double().cpu().numpy(), stamp_ns=stamps.cpu().numpy().astype(np.int64),
             cameras=np.array(cams))


def _write_vis(folder: Path, i: int, batch: dict, depth: torch.Tensor, b: int, cams: List[str], max_d: float,
               min_d: float) -> None:
    pred = depth[b].float().cpu().numpy()
    gt = batch["depth_gt"][b, :, 0].cpu().numpy()
    err = [viz.colorize_error(pred[n, 0], gt[n], batch["mask"][b, n, 0].cpu().numpy()) for n in range(len(cams))]
    viz.write_png(folder / f"{i:05d}_rgb.png", viz.mosaic(batch["image"][b, 0].float().cpu().numpy(), 3))
    viz.write_png(folder / f"{i:05d}_depth.png", viz.depth_mosaic(pred, min_d, max_d, 3))
    viz.write_png(folder / f"{i:05d}_abs_rel_error.png", viz.mosaic(err, 3))


@torch.no_grad()
def _write_syn(folder: Path, i: int, model, batch: dict, b: int, cams: List[str], cfg: Config) -> None:
    """Depth decoded at yawed copies of every camera from the sample's volume (novel views)."""
    images = batch["image"][b:b + 1, 0]
    K = batch["K"][b:b + 1]
    T = batch["T_ego_cam"][b:b + 1]
    Tv = syn_views(T)
    Kv = K.repeat(1, len(SYN_YAWS_DEG), 1, 1)
    mask = batch["mask"][b:b + 1] if "mask" in batch else None
    _, disp_v = model.predict_depth(images, K, T, mask, extra_views=(Kv, Tv), cache_extra=False)
    depth_v = model.to_depth(disp_v, Kv)[0, :, 0].cpu().numpy()
    d = folder / f"sample_{i:05d}"
    d.mkdir(parents=True, exist_ok=True)
    t = cfg.training
    k = 0
    for yaw in SYN_YAWS_DEG:
        for cam in cams:
            stem = f"{cam}_yaw{yaw:+.0f}"
            np.save(d / f"{stem}.npy", depth_v[k].astype(np.float32))
            viz.write_png(d / f"{stem}.png",
                          viz.colorize_depth(depth_v[k], vmin=t.min_depth, vmax=cfg.eval.eval_max_depth))
            k += 1
    write_json(d / "views.json", {"yaws_deg": list(SYN_YAWS_DEG), "cameras": cams,
                                     "T_ego_cam_virtual": Tv[0].cpu().numpy().tolist(),
                                     "K": Kv[0].cpu().numpy().tolist()})


def main(argv: Optional[List[str]] = None) -> int:
    from vfdepth_core.checkpoint import CheckpointError
    from vfdepth_core.datasets.common import DatasetError
    from vfdepth_core.geometry import ShapeError

    try:
        return run(argv)
    except (ConfigError, DatasetError, CheckpointError, ShapeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
