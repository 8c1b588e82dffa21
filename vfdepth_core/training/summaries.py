"""What a training run shows besides its checkpoints: TensorBoard image summaries, the digests of DEBUG step
lines (data order and weights, to compare runs and ranks) and metric values for log lines."""

from __future__ import annotations

import hashlib
import logging

import torch

from vfdepth_core import viz

logger = logging.getLogger(__name__)


def image_summaries(writer, batch: dict, outputs, step: int, min_depth: float, max_depth: float) -> None:
    """Frame 0's cameras and the depth maps (predicted, ground truth, virtual view) of the batch's first sample
    as TensorBoard images; a failure is a warning (a summary must never stop training)."""
    views = {"depth/pred": outputs.depth, "depth/gt": batch.get("depth_gt"),
             "depth/virtual_view": getattr(outputs, "depth_aug", None)}
    try:
        writer.add_image("input/frame0", viz.mosaic(batch["image"][0, 0].detach().float().cpu().numpy()),
                         step, dataformats="HWC")
        for tag, depth in views.items():
            if depth is not None:
                mosaic = viz.depth_mosaic(depth[0].detach().float().cpu().numpy(), min_depth, max_depth)
                writer.add_image(tag, mosaic, step, dataformats="HWC")
    except Exception as exc:  # noqa: BLE001 - a summary must never stop training
        logger.warning("image summary failed: %s", exc)


def digest(*tensors: torch.Tensor) -> str:
    """Short SHA-1 of the tensors' bytes."""
    h = hashlib.sha1()
    for x in tensors:
        h.update(x.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def param_checksum(model: torch.nn.Module) -> float:
    """Sum of every parameter in float64."""
    with torch.no_grad():
        return float(sum(p.double().sum() for p in model.parameters()))


def nan_if_none(v) -> float:
    """A metric value for a %-format: NaN for a missing one."""
    return float("nan") if v is None else float(v)
