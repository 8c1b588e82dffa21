"""Bounded checkpoints (logging.keep_last_checkpoints / keep_every_epochs / keep_best): what stays on disk."""

from __future__ import annotations

import pytest
import torch

from train_helpers import TRAIN, make_tiny_dataset, run_script, tiny_args
from vfdepth_core.training.files import disk_use, prune_epoch_checkpoints
from vfdepth_core.config import ConfigError, load_config


def _touch(folder, names):
    for n in names:
        (folder / n).write_bytes(b"x" * 10)


def test_prune_keeps_last_n_every_kth_and_other_files(tmp_path):
    _touch(tmp_path, [f"epoch_{i:03d}.pt" for i in range(10)] + ["latest.pt", "best.pt", "epoch_x.pt"])
    removed = prune_epoch_checkpoints(tmp_path, keep_last=2, keep_every=3)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["best.pt", "epoch_002.pt", "epoch_005.pt", "epoch_008.pt", "epoch_009.pt", "epoch_x.pt",
                    "latest.pt"]
    assert len(removed) == 6
    assert disk_use(tmp_path) == (7, 70)
    assert prune_epoch_checkpoints(tmp_path, keep_last=0) == []  # 0 = keep all (the paper)
    assert prune_epoch_checkpoints(tmp_path, keep_last=1) != []
    assert sorted(p.name for p in tmp_path.glob("epoch_0*.pt")) == ["epoch_009.pt"]


def test_negative_keep_is_refused(tmp_path):
    from train_helpers import TINY

    with pytest.raises(ConfigError, match="keep_last_checkpoints"):
        load_config(TINY, overrides=["logging.keep_last_checkpoints=-1"])


@pytest.mark.slow
def test_many_epoch_run_leaves_only_the_kept_files_and_resumes(tmp_path):
    pytest.importorskip("vfdepth_core.datasets.synthetic")
    data = make_tiny_dataset(tmp_path / "data", frames=3)  # one training sample: one step per epoch
    run = tmp_path / "run"
    keep = ["--set", "logging.keep_last_checkpoints=2", "--set", "logging.keep_every_epochs=2",
            "--set", "training.val_every_epochs=1", "--set", "eval.eval_max_samples=1"]
    p = run_script(TRAIN, tiny_args(data, run, "--set", "training.num_epochs=5", *keep))
    assert p.returncode == 0, p.stderr[-3000:]
    ck = run / "checkpoints"
    assert sorted(f.name for f in ck.iterdir()) == ["best.pt", "epoch_001.pt", "epoch_003.pt", "epoch_004.pt",
                                                    "latest.pt"]
    assert "checkpoint disk use: 5 files" in p.stderr
    best = torch.load(ck / "best.pt", map_location="cpu", weights_only=True)
    latest = torch.load(ck / "latest.pt", map_location="cpu", weights_only=True)
    assert latest["extra"]["best_val"]["step"] == best["step"] <= latest["step"] == 5
    assert best["extra"]["last_val"]["metric"]["abs_rel"] == pytest.approx(latest["extra"]["best_val"]["abs_rel"])
    again = run_script(TRAIN, tiny_args(data, run, "--set", "training.num_epochs=6", "--resume", *keep))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed" in again.stderr
    assert sorted(f.name for f in ck.glob("epoch_*.pt")) == ["epoch_001.pt", "epoch_003.pt", "epoch_004.pt",
                                                             "epoch_005.pt"]
    assert torch.load(ck / "latest.pt", map_location="cpu", weights_only=True)["step"] == 6
