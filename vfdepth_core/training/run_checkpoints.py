"""A run's checkpoint files: which one ``--resume`` means, what a resumed run restores from it (weights,
optimizer, schedule, position in the data), and latest.pt / epoch_NNN.pt written with their retention."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Tuple

import torch

from vfdepth_core.config import Config, ConfigError
from vfdepth_core.training.files import disk_use, prune_epoch_checkpoints

logger = logging.getLogger(__name__)


def resume_checkpoint(resume: Optional[str], ckpt_dir: Path) -> Optional[Path]:
    """The checkpoint of ``--resume``: 'auto' = ``ckpt_dir/latest.pt`` (None, with a warning, before the run's
    first checkpoint), else the given path; None without ``--resume``."""
    if resume is None:
        return None
    p = ckpt_dir / "latest.pt" if resume == "auto" else Path(resume)
    if not p.exists():
        if resume == "auto":
            logger.warning("--resume: no checkpoint at %s yet; starting a new run", p)
            return None
    return p


def restore_training(ck: dict, path: Path, model: torch.nn.Module, optimizer, scheduler, learning_rate: float) -> None:
    """Load the weights to continue from, the optimizer and the schedule of checkpoint `ck` (read from `path`);
    ConfigError when the weights do not fit `model`."""
    try:
        # with a weight average, "model" is the average and "model_train" the weights to continue from
        model.load_state_dict(ck.get("model_train", ck["model"]))
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"checkpoint {path} does not fit this config's model ({first}); use the config it "
                          f"was trained with") from None
    if ck.get("optimizer"):
        optimizer.load_state_dict(ck["optimizer"])
        # the checkpoint's learning rate and schedule continue (an edited training.learning_rate does not
        # apply to a resumed run)
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", learning_rate)
    if ck.get("scheduler"):
        scheduler.load_state_dict(ck["scheduler"])


def resume_position(ck: dict, world_size: int) -> Tuple[int, int, int]:
    """(step, epoch, batch in the epoch) to continue from; the epoch's data order restarts (batch 0) when the
    run had another number of processes."""
    extra = ck.get("extra") or {}
    step = int(ck.get("step", 0))
    epoch = int(extra.get("epoch_in_progress", ck.get("epoch", 0)))
    batch_in_epoch = int(extra.get("batch_in_epoch", 0))
    if extra.get("world_size", world_size) != world_size:
        logger.warning("resuming a %s-process run with %d processes: the data order of the current epoch "
                       "restarts", extra.get("world_size"), world_size)
        batch_in_epoch = 0
    return step, epoch, batch_in_epoch


def write_run_checkpoints(ckpt_dir: Path, model: torch.nn.Module, cfg: Config, averaged: Optional[dict],
                          optimizer, scheduler, step: int, epoch: int, extra: dict,
                          per_epoch: Optional[int] = None) -> None:
    """latest.pt (everything to resume) and, with `per_epoch`, ``epoch_NNN.pt`` (weights only); then the
    retention of ``cfg.logging`` and a log line of the folder's disk use."""
    from vfdepth_core.checkpoint import save_checkpoint

    kw = dict(optimizer=optimizer, scheduler=scheduler, step=step, epoch=epoch, extra=extra)
    save_checkpoint(ckpt_dir / "latest.pt", model, cfg, averaged=averaged, **kw)
    if per_epoch is not None:  # weights only (as the paper's weights_N); latest.pt is the one to resume
        save_checkpoint(ckpt_dir / f"epoch_{per_epoch:03d}.pt", model, cfg, step=step,
                        epoch=epoch, extra={"last_val": extra.get("last_val", {})}, averaged=averaged)
    lg = cfg.logging
    prune_epoch_checkpoints(ckpt_dir, lg.keep_last_checkpoints, lg.keep_every_epochs)
    n, size = disk_use(ckpt_dir)
    logger.info("checkpoint disk use: %d files, %.1f MB in %s (keep_last_checkpoints %d, keep_every_epochs %d%s)",
                n, size / 1e6, ckpt_dir, lg.keep_last_checkpoints, lg.keep_every_epochs,
                ", best.pt" if lg.keep_best else "")
