"""Test-only helpers for the training tests: a tiny synthetic dataset and script runners."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "training" / "train.py"
EVAL = REPO / "training" / "eval.py"
TINY = REPO / "training" / "configs" / "synthetic" / "synthetic_tiny.yaml"


def make_tiny_dataset(out: Path, frames: int = 5, hw: Tuple[int, int] = (64, 96)) -> Path:
    """Two synthetic DDAD-rig drives (train, val) at 64x96 written in the DGP layout; returns ddad.json."""
    import torch

    from vfdepth_core.datasets.synthetic import make_drive, write_ddad

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and immune to a busy machine
    try:
        drives = [make_drive("ddad", frames=frames, height=hw[0], width=hw[1], seed=s) for s in (0, 1)]
        return write_ddad(drives, out, splits=["train", "val"])
    finally:
        torch.set_num_threads(threads)


def script_env() -> Dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return env


def run_script(script: Path, args: Sequence[str], timeout: float = 400.0, prefix: Sequence[str] = ()) -> subprocess.CompletedProcess:
    """Run a training script as users do (a new Python process); stdout+stderr captured as text."""
    cmd = [sys.executable, *prefix, str(script), *map(str, args)]
    return subprocess.run(cmd, cwd=REPO, env=script_env(), capture_output=True, text=True, timeout=timeout)


def tiny_args(data_json: Path, run_dir: Path, *extra: str) -> List[str]:
    return ["--config_file", str(TINY), "--run_dir", str(run_dir), "--no_progress",
            "--set", f"data.data_path={data_json}", "--set", "training.val_every_epochs=0", *extra]


STEP_RE = re.compile(r"rank (\d+) step (\d+) samples \[([\d, ]*)\] param_checksum ([-+0-9.e]+)")


def step_records(log: str) -> List[Tuple[int, int, List[int], float]]:
    """(rank, step, sample indices, parameter checksum) from a --log_level DEBUG training log."""
    out = []
    for m in STEP_RE.finditer(log):
        idx = [int(v) for v in m.group(3).split(",") if v.strip()]
        out.append((int(m.group(1)), int(m.group(2)), idx, float(m.group(4))))
    return out


def load_script_module(path: Path, name: str):
    """Import training/train.py or eval.py as a module (for in-process main() calls)."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
