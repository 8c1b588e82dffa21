"""Checkpoints that carry their config: save atomically, load with plain-data unpickling only.

    save_checkpoint(path, model, cfg, optimizer, scheduler, step=1000, epoch=3)
    ck = load_checkpoint(path, map_location="cpu")
    ck["config"], ck["config_name"], ck["model"], ck["optimizer"], ck["scheduler"], ck["step"], ck["epoch"], ck["rng"]
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from vfdepth_core.config import Config, config_to_dict

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
REQUIRED_KEYS = ("config", "config_name", "model")


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not a vfdepth checkpoint; the message names the file."""


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, torch.nn.Module) else model


def rng_state() -> dict:
    """The torch/CUDA/numpy/python RNG states as plain data (tensors, ints, tuples)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": (name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Optional[dict]) -> None:
    """Restore what :func:`rng_state` captured (missing parts are skipped)."""
    if not state:
        return
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "python" in state:
        py = state["python"]
        random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _remove_orphaned_temp_files(p: Path) -> None:
    """Delete temp files of `p` left by saves that were killed part-way (their writer is gone)."""
    for tmp in p.parent.glob(f".{p.name}.tmp*"):
        suffix = tmp.name[len(f".{p.name}.tmp"):]
        if suffix.isdigit() and int(suffix) != os.getpid() and not _pid_alive(int(suffix)):
            try:
                tmp.unlink()
                logger.info("removed %s, left by a checkpoint save that was killed", tmp)
            except OSError:
                pass


def save_checkpoint(path: str | Path, model: torch.nn.Module, cfg: Config, optimizer=None, scheduler=None,
                    step: int = 0, epoch: int = 0, extra: Optional[dict] = None,
                    averaged: Optional[dict] = None) -> Path:
    """Write model (+ optimizer/scheduler) state and the config to `path` atomically (temp file + os.replace).

    `averaged`: a weight average (training.ema_decay) to store as "model", the weights to predict with;
    the model's own weights then go to "model_train" (what a resumed run continues from).

    `extra` must hold plain data (numbers, strings, lists, dicts, tensors): checkpoints load with
    ``weights_only=True``.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format_version": FORMAT_VERSION,
        "config": config_to_dict(cfg),
        "config_name": cfg.name,
        "model": averaged if averaged is not None else _unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "step": int(step),
        "epoch": int(epoch),
        "rng": rng_state(),
        "extra": extra or {},
    }
    if averaged is not None:
        state["model_train"] = _unwrap(model).state_dict()
    _remove_orphaned_temp_files(p)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    logger.info("saved checkpoint %s (step %d, epoch %d)", p, step, epoch)
    return p


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; raises CheckpointError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p} (pass the .pt file written by training)")
    try:
        ck = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for truncated/foreign files
        raise CheckpointError(f"{p}: not a readable vfdepth checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(ck, dict) or any(k not in ck for k in REQUIRED_KEYS):
        raise CheckpointError(f"{p}: not a vfdepth checkpoint (needs keys {', '.join(REQUIRED_KEYS)})")
    for k, default in (("optimizer", None), ("scheduler", None), ("step", 0), ("epoch", 0), ("rng", None),
                       ("extra", {})):
        ck.setdefault(k, default)
    return ck


__all__ = ["CheckpointError", "load_checkpoint", "restore_rng", "rng_state", "save_checkpoint"]
