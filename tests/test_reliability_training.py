"""Training faults: SIGKILL while a checkpoint is written, SIGKILL of training/train.py part-way and
--resume, and a corrupted image in the dataset. Tiny synthetic data (64x96), CPU, subprocesses.

* ``save_checkpoint`` is atomic (temp file + os.replace): a process killed at any moment leaves the
  previous ``latest.pt`` loadable;
* a run killed with SIGKILL (no handler runs) and resumed from its newest checkpoint reproduces the
  uninterrupted run's remaining steps bit for bit (parameter checksums per step and final weights);
* an unreadable image is reported, the sample skipped and counted, training goes on.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("vfdepth_core.model", reason="the model is not built yet")
from train_helpers import (REPO, TRAIN, make_tiny_dataset, run_script, script_env, step_records,  # noqa: E402
                           tiny_args)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def data_json(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("reliability_train_data"))


# ------------------------------------------------------------------------------ atomic checkpoint save

_SAVER = textwrap.dedent("""
    import sys, torch
    from vfdepth_core.checkpoint import save_checkpoint
    from vfdepth_core.config import load_config
    cfg = load_config(sys.argv[2])
    model = torch.nn.Sequential(*[torch.nn.Linear(512, 512) for _ in range(8)])  # ~8 MB per save
    step = 0
    while True:
        step += 1
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(step))
        save_checkpoint(sys.argv[1], model, cfg, step=step)
        print(step, flush=True)
""")


def test_sigkill_during_checkpoint_save_keeps_previous_loadable(tmp_path):
    """Kill a process that rewrites latest.pt in a loop at random moments (seeded): the file on disk is
    always a complete checkpoint whose weights match its step (never a torn mix)."""
    from vfdepth_core.checkpoint import load_checkpoint

    ckpt = tmp_path / "latest.pt"
    rng = random.Random(1234)
    last_step = 0
    for round_ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(ckpt), str(REPO / "training/configs/synthetic/"
                                                                                "synthetic_tiny.yaml")],
                                cwd=REPO, env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # wait for the first complete save of this process, then kill it at a random moment
            first = proc.stdout.readline()
            assert first.strip(), proc.stderr.read()
            time.sleep(rng.uniform(0.0, 0.6))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        ck = load_checkpoint(ckpt)
        step = ck["step"]
        assert step >= 1, f"round {round_}: step {step}"
        values = {float(v.flatten()[0]) for v in ck["model"].values()}
        assert values == {float(step)}, f"round {round_}: a torn checkpoint (weights {values}, step {step})"
        last_step = step
    assert last_step >= 1
    # Killed saves leave their temp files behind (named by pid); they never shadow latest.pt.
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "latest.pt"]
    assert all(name.startswith(".latest.pt.tmp") for name in leftovers), leftovers


# ------------------------------------------------------------------------------ SIGKILL + resume

STEPS = 5  # the tiny train split has 3 samples: two epochs, so the resume also crosses an epoch boundary


@pytest.fixture(scope="module")
def straight(data_json, tmp_path_factory):
    run = tmp_path_factory.mktemp("straight")
    p = run_script(TRAIN, tiny_args(data_json, run, "--set", f"training.max_steps={STEPS}", "--set",
                                    "training.num_epochs=2", "--log_level", "DEBUG"))
    assert p.returncode == 0, p.stderr[-3000:]
    recs = {s: c for r, s, _, c in step_records(p.stderr)}
    assert sorted(recs) == list(range(1, STEPS + 1)), p.stderr[-2000:]
    return run, recs


def test_sigkill_then_resume_reproduces_the_uninterrupted_run(straight, data_json, tmp_path):
    from vfdepth_core.checkpoint import load_checkpoint

    run_straight, recs_straight = straight
    args = tiny_args(data_json, tmp_path, "--set", f"training.max_steps={STEPS}", "--set", "training.num_epochs=2",
                     "--set", "training.checkpoint_minutes=0", "--log_level", "DEBUG")  # a checkpoint after every step
    cmd = [sys.executable, str(TRAIN), *map(str, args)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=script_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    seen = []
    try:
        deadline = time.monotonic() + 600
        for line in proc.stderr:  # SIGKILL as soon as step 2 is done (its checkpoint may be half written)
            seen.append(line)
            recs = step_records(line)
            if recs and recs[0][1] >= 2:
                os.kill(proc.pid, signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "training did not reach step 2"
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "".join(seen[-30:])
    ck = load_checkpoint(tmp_path / "checkpoints" / "latest.pt")  # whatever the kill interrupted, it loads
    k = ck["step"]
    assert 1 <= k <= 2, k
    before = {s: c for r, s, _, c in step_records("".join(seen))}
    for s in range(1, k + 1):
        assert before[s] == recs_straight[s]

    resumed = run_script(TRAIN, args + ["--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"at step {k} " in resumed.stderr
    after = {s: c for r, s, _, c in step_records(resumed.stderr)}
    assert sorted(after) == list(range(k + 1, STEPS + 1))
    for s in after:  # bit-identical parameter checksums to the run that was never killed
        assert after[s] == recs_straight[s], f"step {s}: {after[s]!r} != {recs_straight[s]!r}"
    a = load_checkpoint(tmp_path / "checkpoints" / "latest.pt")["model"]
    b = load_checkpoint(run_straight / "checkpoints" / "latest.pt")["model"]
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


# ------------------------------------------------------------------------------ corrupted image

def test_corrupted_image_is_reported_skipped_and_counted(data_json, tmp_path):
    """One truncated PNG in the train split: scan() names it, training skips the samples that need it
    (counted in the log) and finishes with the others."""
    import shutil

    from vfdepth_core.config import load_config
    from vfdepth_core.datasets import build_dataset, check_dataset

    root = tmp_path / "data"
    shutil.copytree(data_json.parent, root)
    js = root / data_json.name
    cfg = load_config(REPO / "training/configs/synthetic/synthetic_tiny.yaml", [f"data.data_path={js}"])
    ds = build_dataset(cfg, "train")
    ref = ds.refs[-1]
    victim = Path(ref.frames[1].image_paths[2])  # the +1 frame of the last sample only
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])
    problems = check_dataset(cfg, splits=("train",))
    assert [p.file for p in problems] == [str(victim)], problems
    assert "truncated or corrupt" in problems[0].message

    run = tmp_path / "run"
    p = run_script(TRAIN, tiny_args(js, run, "--set", "training.num_epochs=1"))
    assert p.returncode == 0, p.stderr[-3000:]
    assert "skipping broken sample" in p.stderr and str(victim) in p.stderr
    assert "(1 so far)" in p.stderr
    good = len(ds) - 1
    assert f"done: {good} steps" in p.stderr, p.stderr[-2000:]
