"""End to end through the real entry points: training/train.py -> checkpoint -> training/eval.py, exact
resume, and one clear message + exit 2 for bad input. Tiny synthetic data (64x96), CPU."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from train_helpers import EVAL, TINY, TRAIN, load_script_module, make_tiny_dataset, run_script, step_records, tiny_args


@pytest.fixture(scope="module")
def data_json(tmp_path_factory):
    pytest.importorskip("vfdepth_core.datasets.synthetic")
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny_synth"))


@pytest.fixture(scope="module")
def straight_run(data_json, tmp_path_factory):
    """Two uninterrupted training steps."""
    run = tmp_path_factory.mktemp("straight")
    p = run_script(TRAIN, tiny_args(data_json, run, "--set", "training.max_steps=2", "--log_level", "DEBUG"))
    assert p.returncode == 0, p.stderr[-3000:]
    return run, p


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_train_writes_checkpoint_logs_and_config(straight_run):
    run, proc = straight_run
    ck = _load(run / "checkpoints" / "latest.pt")
    assert ck["step"] == 2 and ck["config_name"] == "synthetic_tiny"
    assert ck["optimizer"] is not None and ck["scheduler"] is not None
    assert ck["extra"]["batch_in_epoch"] == 2 and "0" in ck["extra"]["rng_by_rank"]
    assert (run / "config.yaml").is_file()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]  # the tiny config logs every step
    for r in rows:
        assert {"total", "reproj", "smooth", "lr", "samples_per_s"} <= set(r)
        assert math.isfinite(r["total"]) and r["lr"] == pytest.approx(1e-4)
    steps = step_records(proc.stderr)
    assert [s[1] for s in steps] == [1, 2]
    assert steps[0][3] != steps[1][3]  # parameters moved
    assert "stopping early at step 2: training.max_steps=2 reached" in proc.stderr
    assert not [ln for ln in proc.stderr.splitlines() if "Traceback" in ln]


def test_resume_continues_exactly(straight_run, data_json, tmp_path):
    """Stop after one step, resume: the second step gives bit-identical weights to the straight run."""
    run, _ = straight_run
    first = run_script(TRAIN, tiny_args(data_json, tmp_path, "--set", "training.max_steps=1"))
    assert first.returncode == 0, first.stderr[-3000:]
    assert _load(tmp_path / "checkpoints" / "latest.pt")["step"] == 1
    again = run_script(TRAIN, tiny_args(data_json, tmp_path, "--set", "training.max_steps=1"))
    assert again.returncode == 2 and "--resume" in again.stderr  # no silent overwrite of a run
    second = run_script(TRAIN, tiny_args(data_json, tmp_path, "--set", "training.max_steps=2", "--resume"))
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed" in second.stderr and "at step 1 (epoch 0, batch 1)" in second.stderr
    a = _load(tmp_path / "checkpoints" / "latest.pt")
    b = _load(run / "checkpoints" / "latest.pt")
    assert a["step"] == b["step"] == 2
    for k in b["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sb)


def test_eval_reads_checkpoint_and_writes_tables(straight_run, data_json, tmp_path):
    run, _ = straight_run
    out = tmp_path / "eval"
    p = run_script(EVAL, ["--config_file", TINY, "--weight_path", run / "checkpoints" / "latest.pt",
                          "--set", f"data.data_path={data_json}", "--set", "eval.syn_visualize=true",
                          "--set", "eval.eval_visualize=true", "--out_dir", out])
    assert p.returncode == 0, p.stderr[-3000:]
    for scaling in ("metric", "median"):
        assert scaling in p.stdout
    assert "camera_01" in p.stdout and "mean" in p.stdout and "abs_rel" in p.stdout
    res = json.loads((out / "metrics.json").read_text())
    assert res["step"] == 2 and res["samples"] == 5
    for scaling in ("metric", "median"):
        mean = res[scaling]["mean"]
        assert set(mean) == {"abs_rel", "sq_rel", "rmse", "rmse_log", "d1", "d2", "d3"}
        assert all(v is not None and math.isfinite(v) for v in mean.values())
        assert len(res[scaling]["per_camera"]) == 6
    csv_lines = (out / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("scaling,camera,abs_rel") and len(csv_lines) == 1 + 2 * 7
    syn = sorted((out / "syn_results").glob("sample_*/*.npy"))
    assert len(syn) == 6 * 4
    import numpy as np

    d = np.load(syn[0])
    assert d.shape == (64, 96) and np.isfinite(d).all() and (d > 0).all()
    assert list((out / "syn_results").glob("sample_*/*.png"))
    assert list((out / "vis").glob("*_depth.png")) and list((out / "vis").glob("*_abs_rel_error.png"))


def test_evaluate_bag_equals_eval_py_on_the_same_frames(straight_run, data_json, tmp_path):
    """eval.py's predictions (--save_depth) written as a node's outputs bag: `evaluate-bag` scores them
    against the LIDAR in the converted bag and must print the numbers eval.py printed."""
    pytest.importorskip("rosbags")
    import numpy as np

    from bag_helpers import write_outputs_bag
    from vfdepth_core.metrics import DEPTH_METRICS
    from vfdepth_ros.bag import common as C
    from vfdepth_ros.bag.convert import ddad_recording, write_recording
    from vfdepth_ros.bag.evaluate import EvalOptions, evaluate

    run, _ = straight_run
    out = tmp_path / "eval"
    p = run_script(EVAL, ["--config_file", TINY, "--weight_path", run / "checkpoints" / "latest.pt",
                          "--set", f"data.data_path={data_json}", "--out_dir", out, "--save_depth"])
    assert p.returncode == 0, p.stderr[-3000:]
    ref = json.loads((out / "metrics.json").read_text())
    files = sorted((out / "depth").glob("sample_*.npz"))
    assert len(files) == ref["samples"] == 5
    depth = {}
    for f in files:
        z = np.load(f)
        assert z["depth"].shape == (6, 64, 96) and (z["depth"] > 0).all()
        for n, cam in enumerate(z["cameras"]):
            depth.setdefault(str(cam), []).append((int(z["stamp_ns"][n]), z["depth"][n], z["K"][n],
                                                   C.camera_frame(str(cam))))
    inp = tmp_path / "val.mcap"
    write_recording(ddad_recording(data_json, "val", 0), inp, progress=False)
    outputs = write_outputs_bag(tmp_path / "out.mcap", depth)
    masks = data_json.parent / "masks"  # the synthetic world has the ego body masked, like DDAD
    res = evaluate(inp, outputs, EvalOptions(mask_path=str(masks)))
    assert sum(res["depth"]["matched_per_camera"].values()) == 5 * 6
    unmasked = evaluate(inp, outputs)  # scoring the body pixels too gives other numbers
    assert unmasked["depth"]["median"]["mean"]["abs_rel"] != pytest.approx(ref["median"]["mean"]["abs_rel"], rel=0.03)
    for scaling in ("metric", "median"):
        for m in DEPTH_METRICS:
            a, b = res["depth"][scaling]["mean"][m], ref[scaling]["mean"][m]
            assert a == pytest.approx(b, rel=0.03, abs=0.005), (scaling, m, a, b)


# ---- bad input: one line, exit 2, no traceback (in-process main() for speed) ---------------------------


@pytest.fixture(scope="module")
def train_mod():
    return load_script_module(TRAIN, "vfdepth_train_script")


def _expect_error(capsys, mod, argv, *needles):
    rc = mod.main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert rc == 2, err[-2000:]
    assert len(lines) == 1, err[-2000:]
    for n in needles:
        assert n in lines[0], lines[0]
    assert "Traceback" not in err


def test_missing_config_file(capsys, train_mod, tmp_path):
    _expect_error(capsys, train_mod, ["--config_file", tmp_path / "nope.yaml"], "config file not found", "nope.yaml")


def test_missing_dataset_path(capsys, train_mod, tmp_path):
    _expect_error(capsys, train_mod, tiny_args(tmp_path / "absent" / "ddad.json", tmp_path / "run"),
                  "data.data_path", "does not exist")


def test_config_for_another_dataset(capsys, train_mod, data_json, tmp_path):
    _expect_error(capsys, train_mod, tiny_args(data_json, tmp_path / "run", "--set", "data.dataset=nuscenes"),
                  "nuscenes", str(data_json))


def test_gt_depth_loss_without_gt_depth_in_training(capsys, train_mod, data_json, tmp_path):
    _expect_error(capsys, train_mod, tiny_args(data_json, tmp_path / "run", "--set", "loss.gt_depth_coeff=0.5"),
                  "gt_depth_coeff", "train_requirements")


def test_empty_dataset(capsys, train_mod, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "ddad.json").write_text(json.dumps({"scene_splits": {"0": {"filenames": []}, "1": {"filenames": []}}}))
    rc = train_mod.main([str(a) for a in tiny_args(empty / "ddad.json", tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "Traceback" not in err
    assert "ddad.json" in err


def test_incompatible_checkpoint(capsys, train_mod, straight_run, data_json, tmp_path):
    run, _ = straight_run
    _expect_error(capsys, train_mod,
                  tiny_args(data_json, tmp_path / "run", "--set", "model.proj_d_bins=4",
                            "--resume", run / "checkpoints" / "latest.pt"),
                  "incompatible", "model.proj_d_bins")


def test_eval_without_checkpoint(capsys, tmp_path):
    mod = load_script_module(EVAL, "vfdepth_eval_script")
    rc = mod.main(["--config_file", str(TINY), "--weight_path", str(tmp_path / "missing.pt")])
    err = capsys.readouterr().err
    assert rc == 2 and "missing.pt" in err and "Traceback" not in err


def test_progress_bar_with_a_time_budget_counts_the_steps_that_fit(data_json, tmp_path):
    """With training.max_minutes the bar's total follows the steps that fit in the minutes left, so its
    ETA is the time budget's, not that of num_epochs (which would say hours for a minutes-long run)."""
    args = [a for a in tiny_args(data_json, tmp_path, "--set", "training.max_minutes=0.15",
                                 "--set", "training.num_epochs=1000") if a != "--no_progress"]
    p = run_script(TRAIN, args)
    assert p.returncode == 0, p.stderr[-3000:]
    bars = re.findall(r"stops after 0\.15 min\):\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)", p.stderr)
    assert bars, p.stderr[-3000:]
    done, total = map(int, bars[-1])
    epoch_total = int(re.search(r"(\d+) steps/epoch x 1000 epochs", p.stderr).group(1)) * 1000
    assert 0 < done and total < epoch_total / 10, bars[-3:]
    assert total - done <= max(3, done // 5), bars[-3:]  # at the end the bar is (nearly) full


def test_linear_lr_schedule_follows_the_budget_and_resumes(data_json, tmp_path):
    """training.lr_schedule=linear: the rate falls from learning_rate to lr_final_fraction of it over
    max_steps (one value per step, logged), continues where it was after --resume, and the checkpoint
    keeps the training time that a max_minutes budget is counted in."""
    sets = ("--set", "training.lr_schedule=linear", "--set", "training.lr_final_fraction=0.2",
            "--set", "training.num_epochs=100")
    first = run_script(TRAIN, tiny_args(data_json, tmp_path, *sets, "--set", "training.max_steps=2"))
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_script(TRAIN, tiny_args(data_json, tmp_path, *sets, "--set", "training.max_steps=4", "--resume"))
    assert second.returncode == 0, second.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    lrs = {r["step"]: r["lr"] for r in rows}
    # steps 1-2 ran with a budget of 2 steps, steps 3-4 with 4: used = (step-1)/budget
    assert lrs[1] == pytest.approx(1e-4) and lrs[2] == pytest.approx(1e-4 * (1 - 0.8 * 0.5))
    assert lrs[3] == pytest.approx(1e-4 * (1 - 0.8 * 0.5)) and lrs[4] == pytest.approx(1e-4 * (1 - 0.8 * 0.75))
    ck = _load(tmp_path / "checkpoints" / "latest.pt")
    assert ck["step"] == 4 and ck["extra"]["train_seconds"] > 0


def test_lr_warmup_ramps_either_schedule_and_the_log_has_the_step_diagnostics(data_json, tmp_path):
    """training.lr_warmup_steps (beyond the paper): the first N steps run at (k/N) of the schedule's rate, then
    the schedule's own; every logged step carries the gradient norm and the size of the predicted motion."""
    for schedule in ("step", "linear"):
        run = tmp_path / schedule
        p = run_script(TRAIN, tiny_args(data_json, run, "--set", "training.lr_warmup_steps=2", "--set",
                                        f"training.lr_schedule={schedule}", "--set", "training.max_steps=3",
                                        "--set", "training.lr_final_fraction=0.4", "--set", "training.grad_clip_norm=0.5"))
        assert p.returncode == 0, p.stderr[-3000:]
        rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
        lrs = [r["lr"] for r in rows]
        plain = [1e-4] * 3 if schedule == "step" else [1e-4 * (1 - 0.6 * k / 3) for k in range(3)]
        assert lrs == pytest.approx([plain[0] / 2, plain[1], plain[2]], rel=1e-6), schedule
        for r in rows:
            assert r["grad_norm"] > 0 and math.isfinite(r["grad_norm"])
            assert 0 <= r["pose_t_m"] < 10 and 0 <= r["pose_rot_deg"] < 180


def test_unknown_lr_schedule_is_refused(capsys, train_mod, data_json, tmp_path):
    _expect_error(capsys, train_mod, tiny_args(data_json, tmp_path / "run", "--set", "training.lr_schedule=cosine"),
                  "training.lr_schedule", "'linear'")


def test_weight_average_is_what_a_checkpoint_hands_out_and_resumes_exactly(data_json, tmp_path):
    """training.ema_decay: "model" holds the weight average, "model_train" the optimizer's weights; a run
    stopped after one step and resumed ends with both bit-identical to an uninterrupted two-step run."""
    sets = ("--set", "training.ema_decay=0.9")
    straight, split = tmp_path / "straight", tmp_path / "split"
    p = run_script(TRAIN, tiny_args(data_json, straight, *sets, "--set", "training.max_steps=2"))
    assert p.returncode == 0, p.stderr[-3000:]
    p = run_script(TRAIN, tiny_args(data_json, split, *sets, "--set", "training.max_steps=1"))
    assert p.returncode == 0, p.stderr[-3000:]
    p = run_script(TRAIN, tiny_args(data_json, split, *sets, "--set", "training.max_steps=2", "--resume"))
    assert p.returncode == 0, p.stderr[-3000:]
    a, b = _load(split / "checkpoints" / "latest.pt"), _load(straight / "checkpoints" / "latest.pt")
    assert b["extra"]["ema_updates"] == 2 and "model_train" in b
    moved = [k for k in b["model"] if b["model"][k].is_floating_point()
             and not torch.equal(b["model"][k], b["model_train"][k])]
    assert moved  # the average lags the trained weights
    for part in ("model", "model_train"):
        for k in b[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)


def eval_still_pose_head(data_json, tmp_path, sets=()):
    """eval.py on a tiny model whose pose head is zeroed (it predicts no motion) -> (process, its
    metrics.json's ego_motion)."""
    from vfdepth_core.checkpoint import save_checkpoint
    from vfdepth_core.config import load_config
    from vfdepth_core.model import VFDepth

    sets = [f"data.data_path={data_json}", *sets]
    cfg = load_config(TINY, sets)
    torch.manual_seed(0)
    model = VFDepth(cfg, load_imagenet=False)
    head = model.pose_net.pose_head.pose2
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
    ckpt = save_checkpoint(tmp_path / "still.pt", model, cfg)
    out = tmp_path / "eval"
    args = ["--config_file", TINY, "--weight_path", ckpt, "--out_dir", out]
    for s in sets:
        args += ["--set", s]
    p = run_script(EVAL, args)
    assert p.returncode == 0, p.stderr[-3000:]
    return p, json.loads((out / "metrics.json").read_text())["ego_motion"]


def test_eval_scores_ego_motion_against_the_dataset_poses(data_json, tmp_path):
    """Known answer: a pose head zeroed to predict no motion has 100 % relative translation error and an
    estimated/true distance of 0, on the val drive's 4 consecutive pairs (5 frames), one scene."""
    import numpy as np

    p, ego = eval_still_pose_head(data_json, tmp_path)
    assert "ego motion between consecutive samples" in p.stdout and "overall" in p.stdout
    o = ego["overall"]
    assert ego["samples"] == 4 and o["steps"] == 4 and len(ego["per_scene"]) == 1
    assert o["rel_trans_err_pct"] == pytest.approx(100.0) and o["scale_ratio"] == pytest.approx(0.0)
    # the true path: the val drive's own poses (ddad.json scene 1) between consecutive frames
    assert o["path_length_m"] > 1.0 and np.isfinite(o["rpe_rot_deg"])
    # beside it, the mean step of the training drive scored on the same pairs (a constant predictor)
    c = ego["constant_motion"]
    assert c["steps"] == 4 and c["path_length_m"] == pytest.approx(o["path_length_m"])
    assert 0.0 <= c["rel_trans_err_pct"] < 100.0 and "best constant motion of the training split" in p.stdout
    assert ego["pose_refine_iterations"] == 0
    assert "network" not in ego  # nothing refined: the network's motion is the one scored


def test_eval_scores_the_pose_network_alone_beside_the_refined_motion(data_json, tmp_path):
    """With the photometric refinement on, the same pass also scores the pose network's own motion: a head
    zeroed to predict no motion is 100 % off there, whatever the refinement makes of it."""
    p, ego = eval_still_pose_head(data_json, tmp_path, ["model.pose_refine_iterations=2"])
    assert ego["pose_refine_iterations"] == 2
    net = ego["network"]["overall"]
    assert net["steps"] == ego["overall"]["steps"] == 4
    assert net["rel_trans_err_pct"] == pytest.approx(100.0) and net["scale_ratio"] == pytest.approx(0.0)
    assert net["path_length_m"] == pytest.approx(ego["overall"]["path_length_m"])
    assert "the pose network alone, before the refinement (2 iterations per level)" in p.stdout


def test_validation_during_training_logs_ego_motion(data_json, tmp_path):
    """val_every_steps: each val_log.jsonl row has the depth means and the ego-motion error of the subset."""
    run = tmp_path / "run"
    p = run_script(TRAIN, ["--config_file", TINY, "--run_dir", run, "--no_progress",
                           "--set", f"data.data_path={data_json}", "--set", "training.max_steps=2",
                           "--set", "training.val_every_steps=2", "--set", "training.val_every_epochs=0",
                           "--set", "eval.eval_max_samples=3"])
    assert p.returncode == 0, p.stderr[-3000:]
    rows = [json.loads(line) for line in (run / "val_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2]
    ego = rows[0]["ego_motion"]
    assert ego["rel_trans_err_pct"] > 0 and math.isfinite(ego["rel_rot_err_deg_per_m"]) and ego["scale_ratio"] >= 0
    assert "ego motion at step 2" in p.stderr
    assert "ego_motion_network" not in rows[0]  # no refinement: the network's motion is the one scored


def test_validation_with_refinement_also_logs_the_pose_network_alone(data_json, tmp_path):
    """model.pose_refine_iterations > 0: each val_log.jsonl row also has the pose network's own error (a
    refinement can hide a pose network that runs away), and the log line names it."""
    run = tmp_path / "run"
    p = run_script(TRAIN, ["--config_file", TINY, "--run_dir", run, "--no_progress",
                           "--set", f"data.data_path={data_json}", "--set", "training.max_steps=1",
                           "--set", "training.val_every_steps=1", "--set", "training.val_every_epochs=0",
                           "--set", "eval.eval_max_samples=2", "--set", "model.pose_refine_iterations=1"])
    assert p.returncode == 0, p.stderr[-3000:]
    row = json.loads((run / "val_log.jsonl").read_text().splitlines()[0])
    net, ego = row["ego_motion_network"], row["ego_motion"]
    assert set(net) == set(ego) and net["rel_trans_err_pct"] > 0 and math.isfinite(net["rel_rot_err_deg_per_m"])
    assert "(pose network alone: " in p.stderr
