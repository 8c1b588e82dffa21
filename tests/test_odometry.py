"""vfdepth_core.odometry: trajectory metrics with known answers and the odometry integrator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vfdepth_core import odometry as od


def _pose(yaw_deg=0.0, t=(0.0, 0.0, 0.0)):
    a = math.radians(yaw_deg)
    T = np.eye(4)
    T[:3, :3] = [[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]]
    T[:3, 3] = t
    return T


def _straight(n=11, step=1.0):
    return np.stack([_pose(0, (i * step, 0, 0)) for i in range(n)])


def _curve(n=12):
    """A drive along an arc: 1.5 m and 3 deg of yaw per step, slight climb."""
    T = [np.eye(4)]
    for _ in range(n - 1):
        T.append(T[-1] @ _pose(3.0, (1.5, 0.0, 0.02)))
    return np.stack(T)


def test_perfect_estimate_in_another_world_frame():
    gt = _curve()
    est = np.stack([_pose(40, (5, -3, 1)) @ T for T in gt])
    r = od.trajectory_errors(est, gt)
    assert r["ate_rmse_m"] < 1e-9 and r["ate_sim3_rmse_m"] < 1e-9 and r["sim3_scale"] == pytest.approx(1.0)
    assert r["rel_trans_err_pct"] < 1e-7 and r["rel_rot_err_deg_per_m"] < 1e-6
    assert r["drift_pct"] < 1e-7
    assert r["path_length_m"] == pytest.approx(11 * math.hypot(1.5, 0.02))


def test_pure_translation_scaled_copy():
    """Half the speed on a straight 10 m drive: 50 % relative error, Sim(3) finds scale 2 and no shape error."""
    gt, est = _straight(11, 1.0), _straight(11, 0.5)
    r = od.trajectory_errors(est, gt)
    assert r["rel_trans_err_pct"] == pytest.approx(50.0)
    assert r["rpe_trans_m"] == pytest.approx(0.5)
    assert r["rel_rot_err_deg_per_m"] == pytest.approx(0.0, abs=1e-9)
    assert r["est_path_length_m"] == pytest.approx(5.0)
    assert r["sim3_scale"] == pytest.approx(2.0) and r["ate_sim3_rmse_m"] < 1e-9
    # SE(3): centred positions -2.5..2.5 vs -5..5 -> errors |0.5 (i - 5)|
    e = 0.5 * np.abs(np.arange(11) - 5.0)
    assert r["ate_rmse_m"] == pytest.approx(math.sqrt((e**2).mean()))
    assert r["drift_pct"] == pytest.approx(50.0)  # ends 5 m short of 10 m
    seg = {s["length_m"]: s for s in r["segments"]}
    assert set(seg) == {10.0}  # only the distances the 10 m drive covers
    assert seg[10.0]["segments"] == 1 and seg[10.0]["trans_err_pct"] == pytest.approx(50.0)


def test_pure_rotation_error_per_step_and_per_metre():
    """A spurious 2 deg of yaw per 1 m step: 2 deg/step, 2 deg/m; no translation error per step."""
    gt = _straight(6, 1.0)
    est = [np.eye(4)]
    for _ in range(5):
        est.append(est[-1] @ _pose(2.0, (1.0, 0, 0)))
    r = od.trajectory_errors(np.stack(est), gt, align="none")
    assert r["rpe_rot_deg"] == pytest.approx(2.0)
    assert r["rel_rot_err_deg_per_m"] == pytest.approx(2.0)
    assert r["rpe_trans_m"] == pytest.approx(0.0, abs=1e-9)


def test_pure_rotation_in_place_has_no_per_metre_figures():
    gt = np.stack([_pose(10 * i) for i in range(4)])
    est = np.stack([_pose(12 * i) for i in range(4)])
    r = od.relative_pose_errors(od.relative_motions(est), od.relative_motions(gt))
    assert r["rpe_rot_deg"] == pytest.approx(2.0)
    assert r["rel_trans_err_pct"] is None and r["rel_rot_err_deg_per_m"] is None


def test_constant_offset_is_removed_by_alignment_but_not_by_none():
    gt = _curve()
    est = gt.copy()
    est[:, :3, 3] += [2.0, -1.0, 0.5]
    off = math.sqrt(4 + 1 + 0.25)
    assert od.absolute_trajectory_error(est, gt, "none")["ate_rmse_m"] == pytest.approx(off)
    assert od.absolute_trajectory_error(est, gt, "se3")["ate_rmse_m"] < 1e-9
    r = od.trajectory_errors(est, gt)
    assert r["rel_trans_err_pct"] < 1e-7 and r["drift_pct"] < 1e-7


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(20, 3))
    R = _pose(35)[:3, :3] @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0.0]])
    dst = (2.5 * (R @ src.T)).T + [1.0, 2.0, 3.0]
    R2, t2, s2 = od.umeyama_alignment(src, dst, with_scale=True)
    assert np.allclose(R2, R) and np.allclose(t2, [1, 2, 3]) and s2 == pytest.approx(2.5)


def test_segment_errors_known_answer():
    """40 m straight, 1 m steps, estimate 10 % long: every segment 10 % off; 50 m+ not reported."""
    gt, est = _straight(41, 1.0), _straight(41, 1.1)
    rows = od.segment_errors(est, gt, (10.0, 20.0, 50.0))
    assert [r["length_m"] for r in rows] == [10.0, 20.0]
    assert rows[0]["segments"] == 31 and rows[1]["segments"] == 21
    assert all(r["trans_err_pct"] == pytest.approx(10.0) for r in rows)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="equally long"):
        od.trajectory_errors(_straight(3), _straight(2))
    with pytest.raises(ValueError, match="4x4"):
        od.trajectory_errors(np.zeros((3, 3, 3)), np.zeros((3, 3, 3)))
    with pytest.raises(ValueError, match="align"):
        od.absolute_trajectory_error(_straight(3), _straight(3), "affine")


def test_torch_and_metrics_reexport_agree():
    from vfdepth_core.metrics import trajectory_errors

    gt = _curve()
    r = trajectory_errors([torch.from_numpy(T) for T in gt], gt)
    assert r["ate_rmse_m"] < 1e-9


def test_motion_accumulator_per_scene_and_overall():
    acc = od.MotionErrorAccumulator()
    gt = od.relative_motions(_straight(5, 1.0))  # 4 steps of 1 m
    acc.update("a", gt, gt)
    acc.update("b", od.relative_motions(_straight(5, 0.5)), gt)
    res = acc.result()
    assert res["per_scene"]["a"]["rel_trans_err_pct"] == pytest.approx(0.0, abs=1e-9)
    assert res["per_scene"]["b"]["rel_trans_err_pct"] == pytest.approx(50.0)
    assert res["per_scene"]["b"]["scale_ratio"] == pytest.approx(0.5)
    assert res["overall"]["rel_trans_err_pct"] == pytest.approx(25.0)
    assert res["overall"]["steps"] == 8
    # each scene chained into a trajectory: b ends 2 m short of 4 m
    assert res["per_scene"]["b"]["trajectory"]["drift_pct"] == pytest.approx(50.0)
    assert res["per_scene"]["a"]["trajectory"]["ate_rmse_m"] < 1e-9
    assert res["overall"]["drift_pct"] == pytest.approx(25.0)
    assert "overall" in od.format_motion_table(res)


# ------------------------------------------------------------------------------------------ integrator
def _stamps(n, dt_s=0.1, t0_ns=1_000_000_000):
    return [t0_ns + int(round(i * dt_s * 1e9)) for i in range(n)]


def test_integrator_reproduces_the_true_trajectory():
    gt = _curve(15)
    T_odom_gt = np.stack([np.linalg.inv(gt[0]) @ T for T in gt])
    rel = od.relative_motions(gt)
    integ = od.OdometryIntegrator(max_pose_gap_s=0.5)
    stamps = _stamps(len(gt))
    states = [integ.update(stamps[0])]
    for k in range(1, len(gt)):
        assert integ.motion_wanted(stamps[k])
        states.append(integ.update(stamps[k], torch.from_numpy(rel[k - 1])))
    assert [s.stamp_ns for s in states] == stamps  # one pose per image stamp
    assert np.abs(np.stack([s.T_odom_ego for s in states]) - T_odom_gt).max() < 1e-6
    # twist: 1.5 m and 3 deg per 0.1 s step, in the vehicle frame
    s = states[5]
    assert s.twist_linear_mps == pytest.approx([15.0, 0.0, 0.2])
    assert s.twist_angular_radps == pytest.approx([0, 0, math.radians(30.0)])
    assert states[0].twist_linear_mps is None and states[0].twist_covariance[0, 0] >= od.UNKNOWN_VARIANCE
    # covariance grows with distance travelled and is positive
    var = [s.pose_covariance[0, 0] for s in states]
    assert all(b > a for a, b in zip(var[1:], var[2:]))
    step = math.hypot(1.5, 0.02)  # sigma 10 % of the step + 1 mm, per 0.1 s
    assert states[-1].twist_covariance[0, 0] == pytest.approx(((0.1 * step + 1e-3) / 0.1) ** 2)
    assert states[-1].pose_covariance[0, 0] == pytest.approx(14 * (0.1 * step + 1e-3) ** 2)


def test_integrator_dropped_frame_counts_the_motion_once():
    gt = _straight(6, 1.0)
    stamps = _stamps(6)
    integ = od.OdometryIntegrator(max_pose_gap_s=0.5)
    integ.update(stamps[0])
    integ.update(stamps[1], od.relative_motions(gt[:2])[0])
    # frame 2 dropped: the pose net sees frames 1 and 3, a 2 m motion over 0.2 s
    assert integ.motion_wanted(stamps[3])
    s = integ.update(stamps[3], np.linalg.inv(gt[1]) @ gt[3])
    assert s.T_odom_ego[:3, 3] == pytest.approx([3.0, 0, 0])
    assert s.twist_linear_mps == pytest.approx([10.0, 0, 0])
    assert integ.steps == 2


def test_integrator_gap_holds_the_pose_and_grows_the_covariance():
    stamps = [0, 100_000_000, 900_000_000, 1_000_000_000]  # 0.8 s gap before the third frame
    integ = od.OdometryIntegrator(max_pose_gap_s=0.5)
    integ.update(stamps[0])
    a = integ.update(stamps[1], _pose(0, (1.0, 0, 0)))
    assert not integ.motion_wanted(stamps[2])
    b = integ.update(stamps[2], _pose(0, (8.0, 0, 0)))  # given anyway (too old): not integrated
    assert not b.used_motion and np.allclose(b.T_odom_ego, a.T_odom_ego)
    assert b.pose_covariance[0, 0] > a.pose_covariance[0, 0] + 0.5 and b.twist_linear_mps is None
    c = integ.update(stamps[3], _pose(0, (1.0, 0, 0)))
    assert c.T_odom_ego[0, 3] == pytest.approx(2.0) and integ.gaps == 1
    with pytest.raises(ValueError, match="not newer"):
        integ.update(stamps[3], _pose())
    integ.reset()
    assert np.allclose(integ.update(5).T_odom_ego, np.eye(4))


def test_best_constant_motion_and_its_score():
    """The constant-motion baseline: mean step of known motions, scored exactly on its own drive."""
    from vfdepth_core.odometry import best_constant_motion, constant_motion_result

    def step(yaw_deg, dx):
        c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
        T = np.eye(4)
        T[:2, :2] = [[c, -s], [s, c]]
        T[0, 3] = dx
        return T

    T = best_constant_motion([step(1.0, 0.9), step(-1.0, 1.1), step(3.0, 1.0)])
    np.testing.assert_allclose(T[:3, 3], [1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(np.degrees(np.arctan2(T[1, 0], T[0, 0])), 1.0, atol=1e-9)
    same = constant_motion_result(step(1.0, 1.0), {"a": [step(1.0, 1.0)] * 5})["overall"]
    assert same["rel_trans_err_pct"] < 1e-9 and same["rel_rot_err_deg_per_m"] < 1e-6
    off = constant_motion_result(step(0.0, 1.0), {"a": [step(2.0, 1.0)] * 4})["overall"]
    np.testing.assert_allclose(off["rpe_rot_deg"], 2.0, atol=1e-6)
    np.testing.assert_allclose(off["rel_rot_err_deg_per_m"], 2.0, atol=1e-6)


def test_training_steps_flattens_the_training_split(monkeypatch):
    """training_steps builds the training split with frames (0, -1) and returns every drive's steps in order."""
    from types import SimpleNamespace

    import vfdepth_core.datasets as datasets

    def at(x):
        return SimpleNamespace(T_world_ego=_pose(t=(x, 0.0, 0.0)))

    def ref(scene, x_prev, x_cur):
        return SimpleNamespace(scene=scene, frames={-1: at(x_prev), 0: at(x_cur)})

    lonely = SimpleNamespace(scene="a", frames={0: at(9.0)})  # no previous frame: no step
    fake = SimpleNamespace(refs=[ref("a", 0.0, 1.0), lonely, ref("b", 5.0, 7.0), ref("a", 1.0, 3.0)])
    calls = []
    monkeypatch.setattr(datasets, "build_dataset", lambda cfg, split, frame_ids: calls.append((cfg, split, frame_ids))
                        or fake)
    steps = od.training_steps("cfg")
    assert calls == [("cfg", "train", od.MOTION_FRAME_IDS)]
    np.testing.assert_allclose([T[0, 3] for T in steps], [1.0, 2.0, 2.0])  # drive a (in order), then b
    np.testing.assert_allclose(od.best_constant_motion(steps)[:3, 3], [5.0 / 3.0, 0.0, 0.0])
