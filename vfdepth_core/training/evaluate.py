"""The depth evaluation loop shared by train.py's validation and eval.py, and the best per-pixel prior of a
split (the learning benchmark's and the demo's baseline)."""

from __future__ import annotations

import time
from typing import List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from vfdepth_core.config import with_overrides
from vfdepth_core.metrics import (DepthMetricAccumulator, constant_depth_baseline, per_pixel_prior,
                                  valid_depth_mask)
from vfdepth_core.training.distributed import batch_to_device
from vfdepth_core.training.optim import autocast


@torch.no_grad()
def predict_batch_depth(model, batch: dict, use_mask: bool = True) -> torch.Tensor:
    """Depth (B, N, 1, H, W) metres of frame 0 of a collated batch with a VFDepth model (eval mode)."""
    core = model.module if hasattr(model, "module") else model
    images = batch["image"][:, 0]
    mask = batch.get("mask") if use_mask else None
    disp, _ = core.predict_depth(images, batch["K"], batch["T_ego_cam"], mask)
    return core.to_depth(disp, batch["K"])


@torch.no_grad()
def evaluate_depth_model(model, loader, camera_names: Sequence[str], device: str, min_depth: float,
                         max_depth: float, max_samples: Optional[int] = None, on_batch=None,
                         keep_gt: bool = False, amp: str = "none", unit: str = "batch", median: str = "lower") -> dict:
    """Run `model` over `loader` and aggregate the paper's metrics (see vfdepth_core.metrics; `unit` and
    `median` are eval.eval_unit and eval.eval_median).

    on_batch(batch, depth, errors_by_scaling) is called per batch (visualisation, saving).
    keep_gt: also return ``gt_values`` (list per sample-camera of 1-D float32 valid GT) for baselines.
    Returns the accumulator result plus ``seconds`` and, with keep_gt, ``gt_values``.
    """
    was_training = model.training
    model.eval()
    acc = DepthMetricAccumulator(camera_names, min_depth, max_depth, unit=unit, median=median)
    gt_values: List[np.ndarray] = []
    t0 = time.perf_counter()
    seen = 0
    try:
        for batch in loader:
            if batch is None:
                continue
            if "depth_gt" not in batch:
                raise ValueError("the validation split returns no depth_gt; add gt_depth to data.val_requirements")
            if max_samples is not None and seen >= max_samples:
                break
            batch = batch_to_device(batch, device)
            with autocast(device, amp):
                depth = predict_batch_depth(model, batch).float()
            gt = batch["depth_gt"].float()
            mask = batch.get("mask")
            errs = acc.update(depth, gt, mask)
            if keep_gt:
                valid = valid_depth_mask(gt, mask, min_depth, max_depth)
                for b in range(gt.shape[0]):
                    for n in range(gt.shape[1]):
                        gt_values.append(gt[b, n][valid[b, n]].cpu().numpy().astype(np.float32))
            if on_batch is not None:
                on_batch(batch, depth, errs)
            seen += gt.shape[0]
    finally:
        model.train(was_training)
    res = acc.result()
    res["seconds"] = time.perf_counter() - t0
    if keep_gt:
        res["gt_values"] = gt_values
    return res


def split_gt_prior(cfg, split: str = "train") -> dict:
    """The best per-pixel prior of a split (the training scenes, for a baseline): per camera and pixel, the
    depth minimising abs_rel over the split's GT at the network's resolution (valid pixels as the
    protocol: eval range and self-occlusion mask; :func:`vfdepth_core.metrics.per_pixel_prior`).
    Returns ``prior`` (N, H, W) float64 tensor, metres, pixels never measured filled with ``fallback_m``
    (the best constant of the split's GT), ``samples`` and ``pixels_never_measured``."""
    from vfdepth_core.datasets import build_dataset, collate_skip_broken

    reqs = "(gt_pose, gt_depth, mask)"
    cfg_gt = with_overrides(cfg, [f"data.train_requirements={reqs}", f"data.val_requirements={reqs}"])
    ds = build_dataset(cfg_gt, split, frame_ids=(0,), skip_broken=True)
    gts, valids = [], []
    for batch in DataLoader(ds, batch_size=1, shuffle=False, collate_fn=collate_skip_broken):
        if batch is None:
            continue
        gt = batch["depth_gt"][:, :, 0].float()
        valid = valid_depth_mask(gt, None if batch.get("mask") is None else batch["mask"][:, :, 0],
                                 cfg.eval.eval_min_depth, cfg.eval.eval_max_depth)
        gts.append(gt.numpy().astype(np.float32))
        valids.append(valid.numpy())
    if not gts:
        raise ValueError(f"split {split!r} of {cfg.data.data_path} has no sample with depth GT: no per-pixel prior")
    g, v = np.concatenate(gts), np.concatenate(valids)
    prior = per_pixel_prior(g, v, per_image_dims=2)  # (S, N, H, W): the protocol averages per image
    fallback = constant_depth_baseline(g[v])["abs_rel_optimal"]["value_m"]
    filled = np.where(np.isfinite(prior), prior, fallback)
    return {"prior": torch.from_numpy(filled), "fallback_m": fallback, "samples": int(g.shape[0]),
            "pixels_never_measured": int((~np.isfinite(prior)).sum())}
