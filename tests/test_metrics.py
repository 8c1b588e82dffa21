"""Known-answer tests for vfdepth_core.metrics (the paper's depth protocol and trajectory errors)."""

import math

import numpy as np
import pytest
import torch

from vfdepth_core.metrics import (
    DEPTH_METRICS,
    DepthMetricAccumulator,
    constant_depth_baseline,
    depth_errors,
    evaluate_depth,
    format_depth_table,
    median_ratio,
    trajectory_errors,
    valid_depth_mask,
)


def _e(vals):
    return dict(zip(DEPTH_METRICS, [float(v) for v in vals]))


def test_depth_errors_known_values():
    gt = torch.tensor([10.0, 20.0])
    pred = torch.tensor([12.0, 10.0])
    e = _e(depth_errors(gt, pred))
    assert e["abs_rel"] == pytest.approx((2 / 10 + 10 / 20) / 2)
    assert e["sq_rel"] == pytest.approx((4 / 10 + 100 / 20) / 2)
    assert e["rmse"] == pytest.approx(math.sqrt((4 + 100) / 2))
    assert e["rmse_log"] == pytest.approx(math.sqrt((math.log(10 / 12) ** 2 + math.log(2) ** 2) / 2))
    # ratios 1.2 and 2.0: 1.2 < 1.25, while 2.0 exceeds 1.25**3 = 1.953 -> every delta is 0.5
    assert e["d1"] == pytest.approx(0.5)
    assert e["d2"] == pytest.approx(0.5)
    assert e["d3"] == pytest.approx(0.5)
    perfect = _e(depth_errors(gt, gt))
    assert perfect["abs_rel"] == 0 and perfect["rmse"] == 0 and perfect["d1"] == 1


def test_depth_errors_empty_is_nan():
    assert torch.isnan(depth_errors(torch.zeros(0), torch.zeros(0))).all()


def test_valid_mask_caps_and_occlusion():
    gt = torch.tensor([0.0, 5.0, 80.0, 80.5, 200.0])
    occ = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0])
    v = valid_depth_mask(gt, occ, min_depth=0.0, max_depth=80.0)
    assert v.tolist() == [False, True, False, False, False]  # the paper: gt < max_depth, strictly
    assert valid_depth_mask(gt, None, 0.0, 200.0).tolist() == [False, True, True, True, False]


def test_median_ratio_lower_middle_like_the_paper_or_mean():
    gt = torch.tensor([1.0, 2.0, 3.0, 4.0])
    pred = torch.tensor([1.0, 1.0, 1.0, 1.0])
    assert float(median_ratio(gt, pred)) == pytest.approx(2.0)  # torch.median: the lower middle value
    assert float(median_ratio(gt, pred, "mean")) == pytest.approx(2.5)


def _batch(gt_np, pred_np, mask_np=None):
    f = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))[None, :, None]  # noqa: E731
    return f(pred_np), f(gt_np), (None if mask_np is None else f(mask_np))


def test_median_scaling_per_camera_recovers_scale():
    rng = np.random.default_rng(0)
    gt = rng.uniform(2, 60, size=(2, 4, 5)).astype(np.float32)
    pred = gt.copy()
    pred[0] *= 0.5  # camera 0 at half scale
    pred[1] *= 3.0  # camera 1 at three times
    p, g, _ = _batch(gt, pred)
    err_metric, r_metric = evaluate_depth(p, g, scaling="metric", max_depth=200)
    err_med, ratios = evaluate_depth(p, g, scaling="median", max_depth=200)
    assert torch.allclose(ratios[0], torch.tensor([2.0, 1 / 3.0], dtype=torch.float64), atol=1e-6)
    assert torch.all(r_metric == 1)
    assert err_med[0, :, 0].abs().max() < 1e-6  # abs_rel 0 after median scaling
    assert err_med[0, :, 4].min() == 1.0
    assert err_metric[0, 0, 0] == pytest.approx(0.5, abs=1e-6)
    assert err_metric[0, 1, 0] == pytest.approx(2.0, abs=1e-6)


def test_prediction_clamped_to_max_depth_and_mask_respected():
    gt = np.array([[[10.0, 50.0, 0.0, 300.0]]], np.float32)  # (N=1, H=1, W=4)
    pred = np.array([[[10.0, 500.0, 7.0, 300.0]]], np.float32)
    mask = np.array([[[1.0, 1.0, 1.0, 1.0]]], np.float32)
    p, g, m = _batch(gt, pred, mask)
    err, _ = evaluate_depth(p, g, m, min_depth=0.0, max_depth=80.0)
    # valid: 10 and 50 (0 = no gt, 300 > cap); pred 500 clamped to 80 -> abs_rel (0 + 30/50)/2
    assert err[0, 0, 0].item() == pytest.approx(0.3)
    mask[0, 0, 1] = 0.0  # occlude the 50 m pixel
    p, g, m = _batch(gt, pred, mask)
    err, _ = evaluate_depth(p, g, m, min_depth=0.0, max_depth=80.0)
    assert err[0, 0, 0].item() == pytest.approx(0.0)


def test_camera_without_valid_pixels_is_nan_and_not_counted():
    gt = np.zeros((2, 1, 3), np.float32)
    gt[0] = 10.0
    pred = np.full((2, 1, 3), 12.0, np.float32)
    p, g, _ = _batch(gt, pred)
    err, _ = evaluate_depth(p, g)
    assert torch.isnan(err[0, 1]).all() and not torch.isnan(err[0, 0]).any()
    acc = DepthMetricAccumulator(["a", "b"])
    acc.update(p, g)
    res = acc.result()
    assert res["valid_samples_per_camera"] == {"a": 1, "b": 0}
    assert res["metric"]["per_camera"]["b"]["abs_rel"] is None
    assert res["metric"]["mean"]["abs_rel"] == pytest.approx(0.2)  # mean over cameras that have data
    assert "n/a" in format_depth_table(res, "metric")


def test_accumulator_is_mean_over_samples_per_camera():
    acc = DepthMetricAccumulator(["front", "back"], max_depth=200)
    # sample 1: abs_rel cam0 = 0.1, cam1 = 0.0 ; sample 2: cam0 = 0.3 (over 2 pixels), cam1 = 0.2
    gt1 = np.array([[[10.0]], [[10.0]]], np.float32)
    pr1 = np.array([[[11.0]], [[10.0]]], np.float32)
    gt2 = np.array([[[10.0, 10.0]], [[10.0, 10.0]]], np.float32)
    pr2 = np.array([[[13.0, 13.0]], [[12.0, 12.0]]], np.float32)
    acc.update(*_batch(gt1, pr1)[:2])
    p2, g2, _ = _batch(gt2, pr2)
    acc.update(p2, g2)
    res = acc.result()
    assert res["samples"] == 2
    assert res["metric"]["per_camera"]["front"]["abs_rel"] == pytest.approx(0.2)
    assert res["metric"]["per_camera"]["back"]["abs_rel"] == pytest.approx(0.1)
    assert res["metric"]["mean"]["abs_rel"] == pytest.approx(0.15)
    # median scaling makes these constant-ratio predictions exact
    assert res["median"]["mean"]["abs_rel"] == pytest.approx(0.0, abs=1e-9)
    table = format_depth_table(res, "median")
    assert "front" in table and "mean" in table and "abs_rel" in table


def test_evaluate_depth_rejects_bad_shapes():
    with pytest.raises(ValueError, match="pred"):
        evaluate_depth(torch.ones(1, 2, 3, 4), torch.ones(1, 2, 3, 4))
    with pytest.raises(ValueError, match="gt"):
        evaluate_depth(torch.ones(1, 2, 1, 3, 4), torch.ones(1, 2, 1, 3, 5))
    with pytest.raises(ValueError, match="scaling"):
        evaluate_depth(torch.ones(1, 2, 1, 3, 4), torch.ones(1, 2, 1, 3, 4), scaling="mean")


def test_constant_baseline():
    g = np.array([1.0, 2.0, 4.0, 100.0])
    base = constant_depth_baseline(g)
    c = base["abs_rel_optimal"]["value_m"]
    # brute force over candidate constants
    cands = np.linspace(0.5, 120, 5000)
    best = min(np.mean(np.abs(g - x) / g) for x in cands)
    assert base["abs_rel_optimal"]["abs_rel"] <= best + 1e-9
    assert c in g
    assert base["median"]["value_m"] == pytest.approx(3.0)


def _pose(yaw_deg, t):
    a = math.radians(yaw_deg)
    T = np.eye(4)
    T[:3, :3] = [[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]]
    T[:3, 3] = t
    return T


def test_trajectory_errors_perfect_after_rigid_alignment():
    gt = [_pose(5 * i, [i * 1.0, 0.2 * i * i, 0.0]) for i in range(8)]
    # the same trajectory expressed in another world frame
    W = _pose(30, [5.0, -3.0, 1.0])
    est = [W @ T for T in gt]
    r = trajectory_errors(est, gt)
    assert r["ate_rmse_m"] < 1e-9
    assert r["rpe_trans_m"] < 1e-9 and r["rpe_rot_deg"] < 1e-6
    assert r["rel_trans_err_pct"] < 1e-7
    assert r["num_poses"] == 8
    none = trajectory_errors(est, gt, align="none")
    assert none["ate_rmse_m"] > 1.0


def test_trajectory_errors_known_scale_error():
    gt = [_pose(0, [i * 2.0, 0, 0]) for i in range(5)]  # 8 m straight
    est = [_pose(0, [i * 1.0, 0, 0]) for i in range(5)]  # half speed
    r = trajectory_errors(est, gt, align="se3")
    assert r["path_length_m"] == pytest.approx(8.0)
    assert r["rpe_trans_m"] == pytest.approx(1.0)
    assert r["rel_trans_err_pct"] == pytest.approx(50.0)
    assert r["rel_rot_err_deg_per_m"] == pytest.approx(0.0, abs=1e-9)
    # positions centred: est -2..2 vs gt -4..4 -> errors 2,1,0,1,2
    assert r["ate_rmse_m"] == pytest.approx(math.sqrt((4 + 1 + 0 + 1 + 4) / 5))
    s = trajectory_errors(est, gt, align="sim3")
    assert s["align_scale"] == pytest.approx(2.0)
    assert s["ate_rmse_m"] < 1e-9
    assert s["rel_trans_err_pct"] == pytest.approx(50.0)  # relative errors are metric: never scaled


def test_trajectory_errors_rotation_error_per_metre():
    gt = [_pose(0, [i * 1.0, 0, 0]) for i in range(3)]
    est = [_pose(2 * i, [i * 1.0, 0, 0]) for i in range(3)]  # 2 deg spurious yaw per step
    r = trajectory_errors(est, gt, align="none")
    assert r["rpe_rot_deg"] == pytest.approx(2.0)
    assert r["rel_rot_err_deg_per_m"] == pytest.approx(2.0)
    with pytest.raises(ValueError):
        trajectory_errors(est, gt[:2])
    tr = trajectory_errors([torch.from_numpy(T) for T in gt], gt)
    assert tr["ate_rmse_m"] < 1e-9


def test_constant_baseline_protocol_minimises_mean_abs_rel():
    from vfdepth_core.metrics import constant_baseline_protocol

    rng = np.random.default_rng(1)
    imgs = [rng.uniform(3, 40, size=n) for n in (5, 50, 17)] + [np.zeros(0)]
    res = constant_baseline_protocol(imgs)
    assert res["images"] == 3

    def score(c):
        return np.mean([np.mean(np.abs(g - c) / g) for g in imgs if g.size])

    best = min(score(c) for c in np.linspace(1, 50, 4000))
    assert res["metric"]["abs_rel"] == pytest.approx(score(res["metric"]["value_m"]))
    assert res["metric"]["abs_rel"] <= best + 1e-9
    expect_med = np.mean([np.mean(np.abs(g - np.median(g)) / g) for g in imgs if g.size])
    assert res["median"]["abs_rel"] == pytest.approx(expect_med)


def test_per_pixel_prior_known_answer():
    """Per pixel the abs_rel-optimal depth: the weighted median of its valid GT with weights 1/gt."""
    from vfdepth_core.metrics import per_pixel_prior

    gt = np.zeros((4, 1, 2, 2))
    gt[:, 0, 0, 0] = [1.0, 2.0, 4.0, 0.0]   # weights 1, .5, .25: half of 1.75 is reached at 1 m
    gt[:, 0, 0, 1] = [10.0, 2.0, 2.0, 2.0]  # weights .1, .5, .5, .5: at 2 m
    gt[:, 0, 1, 0] = [5.0, 0.0, 0.0, 0.0]   # one measurement
    # pixel (1, 1): never measured -> NaN
    prior = per_pixel_prior(gt)
    assert prior.shape == (1, 2, 2)
    assert prior[0, 0, 0] == 1.0 and prior[0, 0, 1] == 2.0 and prior[0, 1, 0] == 5.0
    assert np.isnan(prior[0, 1, 1])
    # a mask removes the 1 m value: then 2 m (weights .5, .25)
    valid = gt > 0
    valid[0, 0, 0, 0] = False
    assert per_pixel_prior(gt, valid)[0, 0, 0] == 2.0


def test_per_pixel_prior_minimises_abs_rel_per_pixel():
    from vfdepth_core.metrics import per_pixel_prior

    rng = np.random.default_rng(3)
    gt = rng.uniform(2.0, 60.0, size=(9, 3, 5))
    gt[rng.random(gt.shape) < 0.2] = 0.0
    prior = per_pixel_prior(gt, chunk=4)  # several chunks
    for i in range(3):
        for j in range(5):
            g = gt[:, i, j][gt[:, i, j] > 0]
            cost = [np.abs(c - g).__truediv__(g).sum() for c in g]
            assert np.abs(prior[i, j] - g).__truediv__(g).sum() == pytest.approx(min(cost))


def test_per_pixel_prior_per_image_weighting_minimises_the_protocol_mean():
    """per_image_dims=2: each point weighs 1/(gt x valid points of its image), the minimiser of the protocol's
    mean of per-image abs_rel means; a pixel of a sparse image then counts more than one of a dense image."""
    from vfdepth_core.metrics import per_pixel_prior

    gt = np.zeros((2, 1, 1, 4))
    gt[0, 0, 0, :] = [10.0, 10.0, 10.0, 10.0]  # a dense image: 4 valid points, each weighs 1/(10*4)
    gt[1, 0, 0, 0] = 5.0                       # a sparse image: 1 valid point, weighs 1/5
    plain = per_pixel_prior(gt)
    weighted = per_pixel_prior(gt, per_image_dims=2)
    assert plain[0, 0, 0] == 5.0 and weighted[0, 0, 0] == 5.0  # 1/5 outweighs 1/10 either way
    gt[1, 0, 0, 0] = 20.0                      # now 1/20 vs 1/10 plain, but 1/20 vs 1/40 per image
    assert per_pixel_prior(gt)[0, 0, 0] == 10.0
    assert per_pixel_prior(gt, per_image_dims=2)[0, 0, 0] == 20.0
    # brute force over the candidates: the protocol mean of per-image means is minimal at the prior
    rng = np.random.default_rng(5)
    g = rng.uniform(2.0, 40.0, size=(6, 2, 3, 3))
    g[rng.random(g.shape) < 0.5] = 0.0
    prior = per_pixel_prior(g, per_image_dims=2)
    ok = g > 0

    def protocol(pred):
        return np.mean([np.mean(np.abs(pred[n][ok[s, n]] - g[s, n][ok[s, n]]) / g[s, n][ok[s, n]])
                        for s in range(6) for n in range(2) if ok[s, n].any()])

    for n, i, j in [(0, 0, 0), (1, 2, 1), (0, 1, 2)]:
        for c in g[:, n, i, j][ok[:, n, i, j]]:
            trial = prior.copy()
            trial[n, i, j] = c
            assert protocol(prior) <= protocol(trial) + 1e-12
