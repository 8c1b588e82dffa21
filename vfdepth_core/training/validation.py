"""Validation during training: depth metrics of the val split and, when it has poses, the ego motion between
its consecutive samples; written to TensorBoard, ``val_log.jsonl`` and the log."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import List, Optional

from torch.utils.data import DataLoader

from vfdepth_core.config import Config
from vfdepth_core.training.evaluate import evaluate_depth_model
from vfdepth_core.training.files import append_jsonl, plain_json
from vfdepth_core.training.summaries import nan_if_none as _f

logger = logging.getLogger(__name__)


def run_validation(model, loader: DataLoader, motion_loader: Optional[DataLoader], cameras: List[str], cfg: Config,
                   device: str, writer, run_dir: Path, step: int, epoch: int, t_start: float) -> dict:
    """Score `model` on the val loaders at `step`; returns the record appended to ``run_dir/val_log.jsonl``
    (step, epoch, metric and median-scaled means, median ratio, samples, elapsed_s since `t_start`, ego_motion)."""
    ev = cfg.eval
    res = evaluate_depth_model(model, loader, cameras, device, ev.eval_min_depth, ev.eval_max_depth,
                               max_samples=ev.eval_max_samples, amp=cfg.training.amp, unit=ev.eval_unit,
                               median=ev.eval_median)
    record = {"step": step, "epoch": epoch, "metric": res["metric"]["mean"], "median": res["median"]["mean"],
              "median_ratio": (res.get("median_ratio") or {}).get("mean"), "samples": res["samples"],
              "elapsed_s": time.monotonic() - t_start}
    for s in ("metric", "median"):
        for k, v in res[s]["mean"].items():
            if v is not None:
                writer.add_scalar(f"val_{s}/{k}", v, step)
    if motion_loader is not None:
        record.update(validate_motion(model, motion_loader, device, ev.eval_max_samples, writer, step))
    append_jsonl(run_dir / "val_log.jsonl", plain_json(record))
    m, md = res["metric"]["mean"], res["median"]["mean"]
    logger.info("validation at step %d: metric abs_rel %.3f d1 %.3f | median abs_rel %.3f d1 %.3f (%d samples, %.0f s)",
                step, _f(m["abs_rel"]), _f(m["d1"]), _f(md["abs_rel"]), _f(md["d1"]), res["samples"], res["seconds"])
    return record


MOTION_KEYS = ("rel_trans_err_pct", "rel_rot_err_deg_per_m", "rpe_rot_deg", "scale_ratio")


def validate_motion(model, loader: DataLoader, device: str, max_samples: Optional[int], writer, step: int) -> dict:
    """Ego-motion errors on the validation subset (metric, between consecutive samples), logged:
    ``{"ego_motion": row}`` and, when the model refines its motion (``model.pose_refine_iterations``),
    ``"ego_motion_network"``: the pose network's own motion on the same pairs (TensorBoard
    ``val_ego_motion_network/*``), so that a refinement cannot hide a pose network that runs away."""
    from vfdepth_core.odometry import evaluate_motion_model

    res = evaluate_motion_model(model, loader, device, max_samples)
    out = {}
    for name, r in (("ego_motion", res), ("ego_motion_network", res.get("network"))):
        if r is None:
            continue
        o = r.get("overall", {})
        row = out[name] = {k: o.get(k) for k in MOTION_KEYS}
        for k, v in row.items():
            if v is not None:
                writer.add_scalar(f"val_{name}/{k}", v, step)
    row, net = out["ego_motion"], out.get("ego_motion_network")  # res is a dict, never None
    logger.info("ego motion at step %d: relative translation error %.1f %%, rotation %.3f deg/m, est/gt %.2f%s",
                step, _f(row["rel_trans_err_pct"]), _f(row["rel_rot_err_deg_per_m"]), _f(row["scale_ratio"]),
                "" if net is None else
                f" (pose network alone: {_f(net['rel_trans_err_pct']):.1f} %, est/gt {_f(net['scale_ratio']):.2f})")
    return out
