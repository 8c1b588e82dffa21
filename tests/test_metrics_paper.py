"""The paper's depth evaluation on a hand-made case: every number below follows from its definitions
(valid = 0 < gt < 200 inside the mask; prediction clamped to the range; torch.median's lower middle
value; per camera, the pixels of an evaluation batch pooled; cameras averaged, then batches)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vfdepth_core.metrics import DEPTH_METRICS, DepthMetricAccumulator, evaluate_depth, format_depth_table

# One batch of two images (a, b), two cameras, 1 x 4 pixels each. Camera 0:
#   a: gt [10, 20, 0, 200]  pred [5, 10, 7, 300]   -> valid 10, 20 (0 = no LIDAR; 200 is not < 200)
#   b: gt [40, 30, 0, 0]    pred [20, 450, 1, 1]   -> valid 40, 30; 450 clamped to 200
# pooled: gt [10, 20, 40, 30], pred [5, 10, 20, 200]. Camera 1: gt = pred = 10 everywhere (errors 0).
GT = [[[10, 20, 0, 200], [10] * 4], [[40, 30, 0, 0], [10] * 4]]
PRED = [[[5, 10, 7, 300], [10] * 4], [[20, 450, 1, 1], [10] * 4]]


def _t(x):
    return torch.tensor(x, dtype=torch.float32)[:, :, None, None, :]  # (B=2, N=2, 1, 1, 4)


def _paper_cam0():
    """The seven errors of camera 0 by hand, both scalings."""
    g = [10, 20, 40, 30]
    metric = [5, 10, 20, 200]
    # median: lower middle of gt (10, 20, 30, 40) = 20, of pred (5, 10, 20, 200) = 10 -> ratio 2
    median = [10, 20, 40, 200]  # 200 * 2 = 400 clamped back to 200

    def errs(p):
        n = 4
        th = [max(a / b, b / a) for a, b in zip(g, p)]
        return [sum(abs(a - b) / a for a, b in zip(g, p)) / n,
                sum((a - b) ** 2 / a for a, b in zip(g, p)) / n,
                math.sqrt(sum((a - b) ** 2 for a, b in zip(g, p)) / n),
                math.sqrt(sum((math.log(a) - math.log(b)) ** 2 for a, b in zip(g, p)) / n),
                sum(t < 1.25 for t in th) / n, sum(t < 1.25 ** 2 for t in th) / n, sum(t < 1.25 ** 3 for t in th) / n]

    return {"metric": errs(metric), "median": errs(median)}


def test_known_numbers():
    cam0 = _paper_cam0()
    assert cam0["metric"][0] == pytest.approx((0.5 + 0.5 + 0.5 + 170 / 30) / 4)
    assert cam0["median"][0] == pytest.approx((170 / 30) / 4)
    assert cam0["median"][4] == pytest.approx(0.75)


def test_paper_protocol_on_the_hand_made_batch():
    cam0 = _paper_cam0()
    acc = DepthMetricAccumulator(["cam_front", "cam_front_right"], 0.0, 200.0)  # defaults: the paper
    acc.update(_t(PRED), _t(GT))
    res = acc.result()
    for s in ("metric", "median"):
        for k, m in enumerate(DEPTH_METRICS):
            assert res[s]["per_camera"]["cam_front"][m] == pytest.approx(cam0[s][k], rel=1e-9), (s, m)
            want_cam1 = 1.0 if m.startswith("d") else 0.0
            assert res[s]["per_camera"]["cam_front_right"][m] == pytest.approx(want_cam1, abs=1e-12)
            assert res[s]["mean"][m] == pytest.approx((cam0[s][k] + want_cam1) / 2, rel=1e-9)
    assert res["median_ratio"]["per_camera"]["cam_front"] == pytest.approx(2.0)
    # a second, perfect batch: scores are means over batches
    acc.update(_t(GT).clamp(min=1), _t(GT).clamp(min=1))
    assert acc.result()["median"]["per_camera"]["cam_front"]["abs_rel"] == pytest.approx(cam0["median"][0] / 2)


def test_per_image_option_and_mean_median_differ_as_defined():
    # per image: a: ratio 10/5 = 2 -> exact; b: gt (30, 40) lower 30, pred (20, 200) lower 20 -> 1.5 ->
    # pred (30, 300 -> 200) vs gt (40, 30): abs_rel (10/40 + 170/30) / 2
    err, ratios = evaluate_depth(_t(PRED), _t(GT), None, 0.0, 200.0, "median", unit="image")
    assert ratios[:, 0].tolist() == pytest.approx([2.0, 1.5])
    assert err[0, 0, 0].item() == pytest.approx(0.0, abs=1e-12)
    assert err[1, 0, 0].item() == pytest.approx((10 / 40 + 170 / 30) / 2)
    # numpy's median pools to gt 25 / pred 15
    _, r = evaluate_depth(_t(PRED), _t(GT), None, 0.0, 200.0, "median", unit="batch", median="mean")
    assert r[0, 0].item() == pytest.approx(25 / 15)


def test_mask_excludes_pixels():
    mask = torch.ones(2, 2, 1, 1, 4)
    mask[1, 0, 0, 0, 1] = 0  # hide camera 0's 30 m pixel of image b (pred 450)
    err, _ = evaluate_depth(_t(PRED), _t(GT), mask, 0.0, 200.0, "metric", unit="batch")
    assert err[0, 0, 0].item() == pytest.approx(0.5)  # 10/5, 20/10, 40/20 all off by half


def test_table_aligns_any_camera_name():
    cams = ["cam_front", "cam_front_left", "cam_front_right", "cam_back_left", "cam_back_right", "cam_back"]
    acc = DepthMetricAccumulator(cams)
    acc.update(torch.full((1, 6, 1, 2, 2), 10.0), torch.full((1, 6, 1, 2, 2), 12.0))
    for s in ("metric", "median"):
        lines = format_depth_table(acc.result(), s).splitlines()
        assert len({line.index("|") for line in lines if "|" in line}) == 1, lines
        assert len({len(line) for line in lines}) == 1
        assert [line.split("|")[0].strip() for line in lines[2:]] == [*cams, "mean"]
    np.testing.assert_allclose(acc.result()["metric"]["mean"]["abs_rel"], 2 / 12)
