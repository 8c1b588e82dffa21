"""Files of a run folder: JSON written atomically (readers never see a partial file), JSON-lines logs and the
retention of per-epoch checkpoints."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, List, Tuple

import numpy as np
import torch


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write text through a temp file + os.replace, so readers never see a partial file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return p


def write_json(path: str | Path, obj: Any) -> Path:
    """Indented JSON, atomically; numpy/torch values as plain numbers or lists, non-finite floats as null."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return str(o)


def plain_json(obj: Any) -> Any:
    """A copy of nested dicts/lists/tuples with string keys, lists for tuples and None for non-finite floats."""
    if isinstance(obj, dict):
        return {str(k): plain_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_json(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def append_jsonl(path: str | Path, record: Any) -> None:
    """Append one JSON line (``train_log.jsonl``, ``val_log.jsonl``)."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


_EPOCH_CKPT = re.compile(r"epoch_(\d+)\.pt")


def prune_epoch_checkpoints(ckpt_dir: str | Path, keep_last: int, keep_every: int = 0) -> List[Path]:
    """Delete ``epoch_NNN.pt`` files in `ckpt_dir` except the newest `keep_last` (0 = keep all) and
    those of every `keep_every`-th epoch (NNN is the 0-based epoch: epochs K, 2K, ... are NNN = K-1, ...).
    Other files (latest.pt, best.pt) are never touched. Returns the deleted paths."""
    if keep_last <= 0:
        return []
    found = sorted((int(m.group(1)), p) for p in Path(ckpt_dir).iterdir() if (m := _EPOCH_CKPT.fullmatch(p.name)))
    doomed = [p for n, p in found[:-keep_last] if not (keep_every > 0 and (n + 1) % keep_every == 0)]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


def disk_use(folder: str | Path) -> Tuple[int, int]:
    """(number of files, bytes) directly in `folder`."""
    sizes = [p.stat().st_size for p in Path(folder).iterdir() if p.is_file()]
    return len(sizes), sum(sizes)
