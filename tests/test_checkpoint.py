"""Checkpoint files: a save killed part-way leaves nothing that outlives the next save."""

from __future__ import annotations

import subprocess
import sys

import torch

from vfdepth_core.checkpoint import load_checkpoint, save_checkpoint
from vfdepth_core.config import load_config


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_orphaned_temp_file_is_removed_by_the_next_save(tmp_path):
    cfg = load_config(None)
    model = torch.nn.Linear(3, 2)
    target = tmp_path / "latest.pt"
    orphan = tmp_path / f".latest.pt.tmp{_dead_pid()}"
    orphan.write_bytes(b"half a checkpoint")
    other = tmp_path / ".other.pt.tmp1"  # another checkpoint's temp file is not ours to touch
    other.write_bytes(b"x")
    save_checkpoint(target, model, cfg, step=7)
    assert not orphan.exists()
    assert other.exists()
    assert load_checkpoint(target)["step"] == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.pt.tmp1", "latest.pt"]
