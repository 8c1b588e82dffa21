"""Depth metrics: the paper's depth evaluation protocol (odometry errors: :mod:`vfdepth_core.odometry`).

Depth protocol (VFDepth / DDAD / nuScenes): the paper's code, point by point (training/README.md)
-----------------------------------------
* Ground truth is given at network resolution (the dataset projects LIDAR at height x width).
* Valid pixel: ``min_depth < gt < max_depth`` and inside the self-occlusion mask.
* The prediction is clamped to ``[max(min_depth, 1e-3), max_depth]`` (the lower bound keeps ``log``
  finite when ``min_depth`` is 0; the paper's predictions are never below 1e-3 m).
* "metric": the clamped prediction. "median": the clamped prediction multiplied by one ratio per camera,
  ``median(gt) / median(pred)`` over that camera's valid pixels, then clamped again. ``median="lower"``
  (the paper: ``torch.median``, the lower of the two middle values), ``"mean"`` (numpy's, beyond it).
* ``unit="batch"`` (the paper): per camera, the valid pixels of all images of an evaluation batch are
  pooled for the ratio and the seven errors, and a dataset score is the mean over batches (so it depends
  on ``eval_batch_size``). ``unit="image"`` (beyond the paper): per image, the mean over images.
* The "mean" row is the mean of the per-camera scores (the paper averages the cameras per batch, then the
  batches: the same number when every camera has valid pixels; a camera without any is skipped here).

Everything is computed in float64 on the input's device. Depth maps follow the project's shapes:
``(B, N, 1, H, W)`` metres, masks ``(B, N, 1, H, W)`` with 1 = valid.
"""

from __future__ import annotations

import logging
import math
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

logger = logging.getLogger(__name__)

DEPTH_METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "d1", "d2", "d3")
"""Metric names in the order of the paper's table."""

SCALINGS = ("metric", "median")
UNITS = ("batch", "image")
MEDIANS = ("lower", "mean")

_LOG_FLOOR_M = 1e-3


def _as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))


def depth_errors(gt: Tensor, pred: Tensor) -> Tensor:
    """The seven errors (DEPTH_METRICS order) between 1-D arrays of valid gt and pred depths (m), float64."""
    gt = _as_tensor(gt).double().reshape(-1)
    pred = _as_tensor(pred).double().reshape(-1)
    if gt.numel() == 0:
        return torch.full((len(DEPTH_METRICS),), float("nan"), dtype=torch.float64, device=gt.device)
    thresh = torch.maximum(gt / pred, pred / gt)
    d1 = (thresh < 1.25).double().mean()
    d2 = (thresh < 1.25**2).double().mean()
    d3 = (thresh < 1.25**3).double().mean()
    diff = gt - pred
    abs_rel = (diff.abs() / gt).mean()
    sq_rel = (diff**2 / gt).mean()
    rmse = torch.sqrt((diff**2).mean())
    rmse_log = torch.sqrt(((torch.log(gt) - torch.log(pred)) ** 2).mean())
    return torch.stack([abs_rel, sq_rel, rmse, rmse_log, d1, d2, d3])


def valid_depth_mask(gt: Tensor, mask: Optional[Tensor] = None, min_depth: float = 0.0,
                     max_depth: float = 200.0) -> Tensor:
    """Boolean mask of evaluable pixels: ``min_depth < gt < max_depth`` and ``mask > 0.5`` (any shape)."""
    valid = (gt > min_depth) & (gt < max_depth)
    if mask is not None:
        valid = valid & (mask > 0.5)
    return valid


def median_ratio(gt: Tensor, pred: Tensor, median: str = "lower") -> Tensor:
    """Median-scaling factor ``median(gt) / median(pred)`` of two 1-D arrays of valid depths.

    median: "lower" (the paper's ``torch.median``: the lower middle value of an even count) or "mean"
    (the average of the two middle values, like numpy)."""
    if median not in MEDIANS:
        raise ValueError(f"median must be one of {MEDIANS}, got {median!r}")
    gt = _as_tensor(gt).double().reshape(-1)
    pred = _as_tensor(pred).double().reshape(-1)
    if gt.numel() == 0:
        return torch.tensor(float("nan"), dtype=torch.float64, device=gt.device)
    m = torch.median if median == "lower" else _mean_median
    return m(gt) / m(pred)


def _mean_median(x: Tensor) -> Tensor:
    return torch.quantile(x, 0.5) if x.numel() < 16_000_000 else torch.median(x)


def evaluate_depth(pred: Tensor, gt: Tensor, mask: Optional[Tensor] = None, min_depth: float = 0.0,
                   max_depth: float = 200.0, scaling: str = "metric", unit: str = "image",
                   median: str = "lower") -> tuple[Tensor, Tensor]:
    """Per-camera errors of a batch, per image (``unit="image"``) or over the pooled batch (``"batch"``).

    pred, gt: ``(B, N, 1, H, W)`` metres (gt 0 = no measurement); mask: the same shape, 1 = valid.
    Returns ``errors (G, N, 7)`` float64 (NaN rows where a camera has no valid pixel) and the
    ``ratios (G, N)`` applied to the prediction (1 for "metric"); G = B per image, 1 per batch.
    """
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    pred = _as_tensor(pred)
    gt = _as_tensor(gt)
    if pred.dim() != 5 or pred.shape[2] != 1:
        raise ValueError(f"pred must have shape (B, N, 1, H, W), got {tuple(pred.shape)}")
    if gt.shape != pred.shape:
        raise ValueError(f"gt must have the shape of pred {tuple(pred.shape)}, got {tuple(gt.shape)}")
    if mask is not None:
        mask = _as_tensor(mask)
        if mask.shape != pred.shape:
            raise ValueError(f"mask must have the shape of pred {tuple(pred.shape)}, got {tuple(mask.shape)}")
    valid = valid_depth_mask(gt, mask, min_depth, max_depth)
    if unit == "batch":  # one group: the camera axis first, the batch's images pooled
        pred, gt, valid = (x.transpose(0, 1).unsqueeze(0) for x in (pred, gt, valid))
    G, N = pred.shape[:2]
    errors = torch.full((G, N, len(DEPTH_METRICS)), float("nan"), dtype=torch.float64, device=pred.device)
    ratios = torch.ones((G, N), dtype=torch.float64, device=pred.device)
    lo = max(min_depth, _LOG_FLOOR_M)
    for g_ in range(G):
        for n in range(N):
            v = valid[g_, n]
            g = gt[g_, n][v].double()
            if g.numel() == 0:
                ratios[g_, n] = float("nan")
                continue
            p = pred[g_, n][v].double().clamp(lo, max_depth)  # the paper clamps before the median
            if scaling == "median":
                r = median_ratio(g, p, median)
                ratios[g_, n] = r
                p = (p * r).clamp(lo, max_depth)
            errors[g_, n] = depth_errors(g, p)
    return errors, ratios


class DepthMetricAccumulator:
    """Aggregates per-camera depth errors over a dataset, for both scalings: the mean over evaluation
    units (``unit="batch"``, the paper: each update's batch; ``"image"``: each image) per camera."""

    def __init__(self, camera_names: Sequence[str], min_depth: float = 0.0, max_depth: float = 200.0,
                 scalings: Iterable[str] = SCALINGS, unit: str = "batch", median: str = "lower"):
        if unit not in UNITS or median not in MEDIANS:
            raise ValueError(f"unit must be one of {UNITS} and median one of {MEDIANS}, got {unit!r}, {median!r}")
        self.unit, self.median = unit, median
        self.camera_names = tuple(camera_names)
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.scalings = tuple(scalings)
        n = len(self.camera_names)
        self._sum = {s: np.zeros((n, len(DEPTH_METRICS))) for s in self.scalings}
        self._count = np.zeros(n, dtype=np.int64)
        self._ratios: List[np.ndarray] = []
        self.num_samples = 0

    def update(self, pred: Tensor, gt: Tensor, mask: Optional[Tensor] = None) -> Dict[str, np.ndarray]:
        """Add a batch ``(B, N, 1, H, W)``; returns its errors ``{scaling: (G, N, 7)}`` (G = B per image, 1 per batch)."""
        if pred.shape[1] != len(self.camera_names):
            raise ValueError(f"pred has {pred.shape[1]} cameras, the accumulator {len(self.camera_names)}")
        out = {}
        counted = None
        for s in self.scalings:
            err, ratios = evaluate_depth(pred, gt, mask, self.min_depth, self.max_depth, s, self.unit, self.median)
            err = err.cpu().numpy()
            ok = ~np.isnan(err[..., 0])  # (B, N)
            self._sum[s] += np.where(ok[..., None], err, 0.0).sum(axis=0)
            counted = ok
            if s == "median":
                self._ratios.append(ratios.cpu().numpy())
            out[s] = err
        if counted is not None:
            self._count += counted.sum(axis=0)
        self.num_samples += pred.shape[0]
        return out

    def result(self) -> dict:
        """``{scaling: {"per_camera": {cam: {metric: v}}, "mean": {metric: v}}, "samples": n, ...}``."""
        res: dict = {"samples": int(self.num_samples), "unit": self.unit, "median": self.median,
                     "valid_samples_per_camera": {c: int(k) for c, k in zip(self.camera_names, self._count)}}
        for s in self.scalings:
            with np.errstate(invalid="ignore", divide="ignore"):
                per_cam = self._sum[s] / self._count[:, None]
            have = self._count > 0
            mean = per_cam[have].mean(axis=0) if have.any() else np.full(len(DEPTH_METRICS), np.nan)
            res[s] = {
                "per_camera": {c: _row(per_cam[i]) for i, c in enumerate(self.camera_names)},
                "mean": _row(mean),
            }
        if self._ratios:
            r = np.concatenate(self._ratios, axis=0)
            res["median_ratio"] = {
                "per_camera": {c: _nan_to_none(float(np.nanmean(r[:, i]))) if np.isfinite(r[:, i]).any() else None
                               for i, c in enumerate(self.camera_names)},
                "mean": _nan_to_none(float(np.nanmean(r))) if np.isfinite(r).any() else None,
                "std": _nan_to_none(float(np.nanstd(r))) if np.isfinite(r).any() else None,
            }
        return res


def _nan_to_none(v: float) -> Optional[float]:
    return None if v is None or not math.isfinite(v) else v


def _row(values: np.ndarray) -> Dict[str, Optional[float]]:
    return {k: _nan_to_none(float(v)) for k, v in zip(DEPTH_METRICS, values)}


def format_depth_table(result: dict, scaling: str) -> str:
    """The paper's table for one scaling: one row per camera and a mean row, aligned for any camera name."""
    block = result[scaling]
    rows = list(block["per_camera"].items()) + [("mean", block["mean"])]
    w = max(len(scaling), *(len(str(name)) for name, _ in rows))
    head = f"{scaling:>{w}s} | " + " ".join(f"{m:>8s}" for m in DEPTH_METRICS)
    lines = [head, "-" * len(head)]
    for name, row in rows:
        cells = " ".join("     n/a" if row[m] is None else f"{row[m]:8.3f}" for m in DEPTH_METRICS)
        lines.append(f"{str(name):>{w}s} | {cells}")
    return "\n".join(lines)


def constant_depth_baseline(gt_values: np.ndarray) -> dict:
    """Errors of the best constant predictors on the same valid pixels (1-D gt, metres).

    Returns ``{"abs_rel": {...}, "median": {...}}``: the constant minimising abs_rel (a weighted median
    with weights 1/gt) and the plain median of gt, each with its value and all seven errors.
    """
    g = np.asarray(gt_values, dtype=np.float64).reshape(-1)
    if g.size == 0:
        raise ValueError("constant_depth_baseline needs at least one valid depth")
    order = np.argsort(g)
    gs = g[order]
    w = 1.0 / gs
    cw = np.cumsum(w)
    c_absrel = float(gs[np.searchsorted(cw, 0.5 * cw[-1])])
    c_med = float(np.median(g))
    out = {}
    for name, c in (("abs_rel_optimal", c_absrel), ("median", c_med)):
        e = depth_errors(torch.from_numpy(g), torch.full((g.size,), c, dtype=torch.float64)).numpy()
        out[name] = {"value_m": c, **_row(e)}
    return out


def constant_baseline_protocol(gt_per_image: Sequence[np.ndarray]) -> dict:
    """Best constant-depth predictors scored with the protocol's averaging (mean over sample-cameras).

    gt_per_image: one 1-D array of valid GT depths (m) per sample and camera (empty ones are skipped).
    Returns ``{"metric": {"value_m": c, <7 errors>}, "median": {<7 errors>}}``: "metric" is the single
    constant that minimises the protocol's mean abs_rel (a weighted median), "median" is what median
    scaling makes of any constant prediction (each image predicted at its own GT median).
    """
    arrs = [np.asarray(g, dtype=np.float64).reshape(-1) for g in gt_per_image]
    arrs = [g for g in arrs if g.size]
    if not arrs:
        raise ValueError("constant_baseline_protocol needs at least one non-empty GT array")
    vals = np.concatenate(arrs)
    weights = np.concatenate([np.full(g.size, 1.0 / g.size) for g in arrs]) / vals
    order = np.argsort(vals)
    cw = np.cumsum(weights[order])
    c = float(vals[order][np.searchsorted(cw, 0.5 * cw[-1])])
    metric = np.mean([depth_errors(torch.from_numpy(g), torch.full_like(torch.from_numpy(g), c)).numpy()
                      for g in arrs], axis=0)
    median = np.mean([depth_errors(torch.from_numpy(g), torch.full_like(torch.from_numpy(g), float(np.median(g))))
                      .numpy() for g in arrs], axis=0)
    return {"metric": {"value_m": c, **_row(metric)}, "median": _row(median), "images": len(arrs)}


def per_pixel_prior(gt: np.ndarray, valid: Optional[np.ndarray] = None, chunk: int = 65536,
                    per_image_dims: int = 0) -> np.ndarray:
    """The best per-pixel prior: for each pixel, the depth that minimises abs_rel over a stack of GT maps.

    gt: ``(S, *pixel_dims)`` metres, e.g. ``(S, N, H, W)`` for S samples of N cameras (0 or non-finite = no
    measurement); valid: optional boolean mask of the same shape. abs_rel sums ``|c - g| / g``, a
    weighted L1 in c with weights 1/g, so the minimiser is the weighted median of the pixel's valid
    GT values with weights 1/g (the lower one on a tie). per_image_dims > 0: the last that many pixel dims
    form one image (e.g. 2 for (H, W)) and the protocol's mean of per-image means is minimised instead:
    each point also weighs 1/(valid points of its image). Returns ``pixel_dims`` float64, NaN where a
    pixel never has valid GT.
    """
    g = np.asarray(gt)
    S = g.shape[0]
    flat_g = g.reshape(S, -1)
    full_valid = np.isfinite(g) & (g > 0) if valid is None else np.asarray(valid, dtype=bool)
    flat_valid = full_valid.reshape(S, -1)
    flat_w = None
    if per_image_dims:
        img_axes = tuple(range(g.ndim - per_image_dims, g.ndim))
        per_image = 1.0 / np.maximum(full_valid.sum(axis=img_axes, keepdims=True), 1)
        flat_w = np.broadcast_to(per_image, g.shape).reshape(S, -1)
    out = np.full(flat_g.shape[1], np.nan)
    for a in range(0, flat_g.shape[1], chunk):
        v = flat_g[:, a:a + chunk].astype(np.float64)
        ok = np.isfinite(v) & (v > 0) & flat_valid[:, a:a + chunk]
        v = np.where(ok, v, np.inf)
        order = np.argsort(v, axis=0, kind="stable")
        vs = np.take_along_axis(v, order, 0)
        w = np.where(np.isfinite(vs), 1.0 / vs, 0.0)
        if flat_w is not None:
            w = w * np.take_along_axis(flat_w[:, a:a + chunk], order, 0)
        cw = np.cumsum(w, axis=0)
        k = (cw < 0.5 * cw[-1:]).sum(axis=0)  # first index where the cumulative weight reaches half
        pick = np.take_along_axis(vs, np.minimum(k, S - 1)[None], 0)[0]
        out[a:a + chunk] = np.where(cw[-1] > 0, pick, np.nan)
    return out.reshape(g.shape[1:])


# Odometry errors live in vfdepth_core.odometry; re-exported here for the callers that score both.
from vfdepth_core.odometry import trajectory_errors  # noqa: E402


__all__ = [
    "DEPTH_METRICS",
    "SCALINGS",
    "DepthMetricAccumulator",
    "constant_baseline_protocol",
    "constant_depth_baseline",
    "depth_errors",
    "evaluate_depth",
    "format_depth_table",
    "median_ratio",
    "per_pixel_prior",
    "trajectory_errors",
    "valid_depth_mask",
]
