"""benchmarks/learning.py: the training overrides it applies (the benchmark itself runs for an hour: make learning)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("learning_bench", ROOT / "benchmarks" / "learning.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_overrides_come_first_and_user_sets_win(bench):
    args = bench.parse_args(["--set", "loss.photo_pyramid=1"])
    assert args.set[: len(bench.BENCH_SETS)] == list(bench.BENCH_SETS)
    assert args.set[-1] == "loss.photo_pyramid=1"  # applied last, so it wins
    assert bench.parse_args(["--paper_objective"]).set == []


def test_benchmark_overrides_make_a_valid_config(bench, tmp_path):
    from vfdepth_core.config import load_config

    cfg = load_config(bench.CONFIG, list(bench.BENCH_SETS))
    t = cfg.training
    assert cfg.loss.photo_pyramid == 3 and cfg.loss.spatio_coeff == 0.3 and t.lr_schedule == "linear"
    assert t.learning_rate == 3e-4
    # the smaller images keep 192x320's depth mapping: fx shrinks with the width, so does the focal scale
    assert (t.height, t.width) == (128, 224)
    assert t.focal_length_scale == pytest.approx(300.0 * t.width / 320)
    assert cfg.model.pose_translation_scale == 1.0 and t.ema_decay > 0
    paper = load_config(bench.CONFIG, [])  # what --paper_objective trains
    assert paper.loss.photo_pyramid == 0 and paper.loss.spatio_coeff == 0.03 and paper.loss.spatio_tempo_coeff == 0.1
    assert paper.model.pose_translation_scale == 0.01 and paper.training.ema_decay == 0.0
    assert paper.training.lr_schedule == "step" and (paper.training.height, paper.training.width) == (192, 320)
    assert paper.training.learning_rate == 1e-4


def test_depth_bin_breakdown_adds_up_to_the_metric_mean(bench):
    """Known answer: the bins' contributions sum to the protocol's metric abs_rel; a prediction 3x too far
    only on the near points puts the whole error in the nearest bin, with gt/pred 1/3 there."""
    import torch

    from vfdepth_core.metrics import DepthMetricAccumulator

    gt = torch.zeros(2, 2, 1, 4, 4)
    gt[..., :2, :] = 2.0   # near points (0-3 m bin)
    gt[..., 2:, :] = 15.0  # far points (10-20 m bin)
    gt[1, 1, 0, 3, 3] = 0.0  # one missing LIDAR point: that image has fewer points
    pred = gt.clone()
    pred[..., :2, :] = 6.0
    pred[gt == 0] = 7.0
    acc = DepthMetricAccumulator(["a", "b"], 0.0, 200.0, unit="image")  # the benchmark evaluates batches of 1
    acc.update(pred, gt)
    mean = acc.result()["metric"]["mean"]["abs_rel"]
    bins = bench.DepthBinBreakdown(0.0, 200.0)
    bins({"depth_gt": gt}, pred, None)
    rows = bins.result()
    assert sum(r["contribution"] for r in rows) == pytest.approx(mean)
    near, far = rows[0], rows[3]
    assert near["range_m"] == [0.0, 3.0] and near["abs_rel"] == pytest.approx(2.0)
    assert near["median_ratio_gt_pred"] == pytest.approx(1 / 3) and far["abs_rel"] == pytest.approx(0.0)
    assert far["median_ratio_gt_pred"] == pytest.approx(1.0) and rows[1]["points"] == 0
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert "0-3 m" in bench.format_bins(rows)


def test_prior_scorer_scores_a_fixed_depth_on_the_networks_pixels(bench):
    """Known answer: a prior of 2 m everywhere on GT of 2 m (near) and 15 m (far): abs_rel 0 near, 13/15 far,
    the mean over images is their average; the hook passes the batch on to the next one."""
    import torch

    gt = torch.zeros(1, 2, 1, 2, 2)
    gt[:, 0] = 2.0
    gt[:, 1] = 15.0
    gt[0, 1, 0, 1, 1] = 0.0  # no LIDAR there: not scored
    seen = []
    scorer = bench.PriorScorer(torch.full((2, 2, 2), 2.0, dtype=torch.float64), ["a", "b"], 0.0, 200.0,
                               then=lambda b, d, e: seen.append(d))
    scorer({"depth_gt": gt}, "network depth", None)
    res = scorer.result()
    assert res["metric"]["per_camera"]["a"]["abs_rel"] == pytest.approx(0.0)
    assert res["metric"]["per_camera"]["b"]["abs_rel"] == pytest.approx(13 / 15)
    assert res["metric"]["mean"]["abs_rel"] == pytest.approx(13 / 30)
    assert seen == ["network depth"]
    assert sum(r["contribution"] for r in res["depth_bins"]) == pytest.approx(13 / 30)
    rows = res["depth_bins"]
    assert "prior" in bench.format_bins(rows, rows)


def test_split_gt_prior_of_a_tiny_split(tmp_path):
    """The per-pixel prior of a split: one value per camera and pixel at the network's size; where a pixel
    was measured in one training sample only, it is that sample's depth."""
    import numpy as np
    import torch

    from train_helpers import TINY, make_tiny_dataset

    from vfdepth_core.config import load_config
    from vfdepth_core.datasets import build_dataset
    from vfdepth_core.training.evaluate import split_gt_prior

    data = make_tiny_dataset(tmp_path / "tiny", frames=3)
    cfg = load_config(TINY, [f"data.data_path={data}"])
    res = split_gt_prior(cfg, "train")
    prior = res["prior"]
    assert prior.shape == (6, cfg.training.height, cfg.training.width) and torch.isfinite(prior).all()
    assert res["samples"] == 3 and res["fallback_m"] > 0
    ds = build_dataset(load_config(TINY, [f"data.data_path={data}",
                                          "data.train_requirements=(gt_pose, gt_depth, mask)"]), "train", frame_ids=(0,))
    ev = cfg.eval
    gts = np.stack([ds[i]["depth_gt"][:, 0].numpy() for i in range(len(ds))])
    valid = np.stack([(ds[i]["mask"][:, 0].numpy() > 0.5) for i in range(len(ds))])
    valid &= (gts > ev.eval_min_depth) & (gts <= ev.eval_max_depth)
    once = valid.sum(0) == 1
    assert once.any()
    np.testing.assert_allclose(prior.numpy()[once], np.where(valid, gts, 0).max(0)[once], rtol=1e-6)
    never = valid.sum(0) == 0
    assert np.allclose(prior.numpy()[never], res["fallback_m"])


def test_learning_curve_has_the_ego_motion_panel(bench, tmp_path):
    """A val log with ego-motion rows gets a third panel (the picture is wider than the depth-only one)."""
    import json

    import imageio.v3 as iio

    run = tmp_path / "run"
    run.mkdir()
    depth = {"abs_rel": 0.3, "d1": 0.6}
    rows = [{"step": s, "metric": depth, "median": depth,
             "ego_motion": {"rel_trans_err_pct": 50.0 / s, "rel_rot_err_deg_per_m": 1.0 / s},
             "ego_motion_network": {"rel_trans_err_pct": 90.0 / s, "rel_rot_err_deg_per_m": 2.0 / s}} for s in (5, 10)]
    (run / "val_log.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert len(bench.plot_curve(run, tmp_path / "with.png", None)) == 2
    (run / "val_log.jsonl").write_text("\n".join(json.dumps({k: v for k, v in r.items() if not k.startswith("ego_motion")})
                                                 for r in rows))
    bench.plot_curve(run, tmp_path / "without.png", None)
    assert iio.imread(tmp_path / "with.png").shape[1] > iio.imread(tmp_path / "without.png").shape[1]


def test_objective_check_at_a_resolution_other_than_the_rendered_one(bench, tmp_path):
    """--check_objective at the benchmark's 128x224 on a world rendered at 192x320 used to crash (the dense
    depth kept the renderer's size). Here: rendered at 64x96, scored at 32x64 (another aspect ratio too); the
    true depth and motion must score better than no motion and a constant depth."""
    from data_helpers import tiny_drive
    from vfdepth_core.datasets.synthetic import write_ddad

    ds_json = write_ddad([tiny_drive("ddad")], tmp_path / "syn")
    res = bench.objective_check(ds_json, indices=(1,), overrides=["training.height=32", "training.width=64",
                                                                  f"data.gt_cache={tmp_path / 'gt'}"])
    rows = res["1"]
    truth = rows["gt_depth_gt_motion"]["total"]
    assert truth < rows["gt_depth_no_motion"]["total"] and truth < rows["constant_10m"]["total"]
    d = bench.dense_depth_at([str(p) for p in sorted((tmp_path / "syn").rglob("rgb/*/*.png"))[:1]], (32, 64))
    assert d.shape == (1, 1, 1, 32, 64) and float(d.min()) >= 0.5


def test_world_and_speed_choose_the_data_folder_and_reach_the_generator(bench, tmp_path, monkeypatch):
    """Each (world, speed) pair has its own generated folder, and the generator is asked for exactly that pair."""
    folders = {(w, s): Path(bench.parse_args(["--world", w, "--speed", s]).data_dir).name
               for w in ("default", "varied") for s in ("constant", "varied")}
    assert folders == {("default", "constant"): "learning_synthetic",
                       ("varied", "constant"): "learning_synthetic_varied",
                       ("default", "varied"): "learning_synthetic_varied_speed",
                       ("varied", "varied"): "learning_synthetic_varied_varied_speed"}
    calls = []
    monkeypatch.setattr(bench.subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    args = bench.parse_args(["--speed", "varied", "--data_dir", str(tmp_path / "w")])
    bench.generate(args)
    cmd = calls[0]
    assert cmd[cmd.index("--speed") + 1] == "varied" and cmd[cmd.index("--world") + 1] == "default"
    assert cmd[cmd.index("--out") + 1] == str(tmp_path / "w")


def test_device_reaches_the_training_and_defaults_to_cuda_when_present(bench, tmp_path, monkeypatch):
    """--device goes to train.py as it is; without it train.py picks for itself, and the held-out scoring
    runs where the training ran (CUDA when present, else the CPU)."""
    calls = []

    class Done:
        returncode = 0

    monkeypatch.setattr(bench.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or Done())
    for argv, expect in ((["--device", "cuda:1"], ["--device", "cuda:1"]), ([], None)):
        args = bench.parse_args(argv + ["--out", str(tmp_path)])
        bench.train(args, tmp_path / "ddad.json", tmp_path / "run")
        cmd = calls[-1]
        if expect:
            assert cmd[cmd.index("--device"):cmd.index("--device") + 2] == expect
        else:
            assert "--device" not in cmd
    assert bench.eval_device(bench.parse_args(["--device", "cpu"])) == "cpu"
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert bench.eval_device(bench.parse_args([])) == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.eval_device(bench.parse_args([])) == "cpu"
