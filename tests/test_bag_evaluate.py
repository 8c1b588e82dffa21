"""evaluate-bag against known answers and against offline metric computation on the same frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bag_helpers import tiny_recording, write_outputs_bag
from vfdepth_core.metrics import DEPTH_METRICS, DepthMetricAccumulator, trajectory_errors
from vfdepth_ros.bag import common as C
from vfdepth_ros.bag import evaluate as E
from vfdepth_ros.bag.convert import CameraSpec, Event, Recording, write_recording


def _wall_recording(frames=3, depth_m=10.0, H=24, W=32):
    """One camera looking along the vehicle x axis at a wall x = depth_m + 1 (camera at x = 1): exact GT
    depth_m in every pixel the wall's LIDAR points hit; the vehicle stands still."""
    K = np.array([[20.0, 0, (W - 1) / 2], [0, 20.0, (H - 1) / 2], [0, 0, 1]])
    T_ego_cam = np.eye(4)
    T_ego_cam[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]
    T_ego_cam[:3, 3] = [1.0, 0.0, 1.5]
    y, z = np.meshgrid(np.linspace(-8, 8, 200), np.linspace(-4, 7, 120))
    wall = np.stack([np.full(y.size, 1.0 + depth_m), y.ravel(), z.ravel(), np.ones(y.size)], 1).astype(np.float32)
    t0 = 1_700_000_000_000_000_000
    ev = []
    for f in range(frames):
        t = t0 + f * 100_000_000
        ev += [Event(t, "ego", lambda: np.eye(4)), Event(t + 5_000_000, "lidar", lambda: wall),
               Event(t, "image", lambda: ("raw", np.zeros((H, W, 3), np.uint8)), 0)]
    return Recording([CameraSpec("front", K, H, W, T_ego_cam)], ev, np.eye(4), "wall"), K, t0


def test_known_answer_wall(tmp_path):
    rec, K, t0 = _wall_recording()
    inp = tmp_path / "in.mcap"
    write_recording(rec, inp, progress=False)
    H, W = 12, 16  # depth at half the input size: intrinsics from the depth camera_info
    from vfdepth_core.geometry import resize_intrinsics

    K2 = resize_intrinsics(torch.as_tensor(K), (24, 32), (H, W)).numpy()
    frames = [(t0 + f * 100_000_000, np.full((H, W), 11.0, np.float32), K2, "front_optical_frame") for f in range(3)]
    T_odom = [np.eye(4) for _ in range(3)]
    out = write_outputs_bag(tmp_path / "out.mcap", {"front": frames},
                            odom=[(t0 + f * 100_000_000, T) for f, T in enumerate(T_odom)])
    res = E.evaluate(inp, out)
    m, md = res["depth"]["metric"]["mean"], res["depth"]["median"]["mean"]
    assert m["abs_rel"] == pytest.approx(0.1, abs=1e-9)
    assert m["rmse"] == pytest.approx(1.0, abs=1e-9) and m["d1"] == 1.0
    assert md["abs_rel"] == pytest.approx(0.0, abs=1e-9)
    assert res["depth"]["matched_per_camera"] == {"front": 3}
    assert res["odometry"]["ate_rmse_m"] == pytest.approx(0.0, abs=1e-9)


def test_odometry_matches_trajectory_errors(tmp_path):
    inp = tmp_path / "in.mcap"
    write_recording(tiny_recording(frames=6), inp, progress=False)  # gt: 1 m per frame along x
    t0 = 1_700_000_000_000_000_000
    rng = np.random.default_rng(0)
    est, gt = [], []
    for f in range(6):
        G = np.eye(4)
        G[0, 3] = 1.0 * f
        T = G.copy()
        T[:3, 3] += rng.normal(scale=0.05, size=3)
        est.append((t0 + f * 100_000_000, T))
        gt.append(G)
    out = write_outputs_bag(tmp_path / "out.mcap", {}, odom=est)
    res = E.evaluate(inp, out)
    ref = trajectory_errors([T for _, T in est], gt, align="se3")
    for k in ("ate_rmse_m", "rpe_trans_m", "rpe_rot_deg", "path_length_m"):
        assert res["odometry"][k] == pytest.approx(ref[k], rel=1e-6, abs=1e-9)
    assert "depth" not in res


def test_ddad_evaluate_bag_equals_offline_metrics(ddad_sample, tmp_path):
    """Same frames scored twice: evaluate-bag (LIDAR from the bag, projected via tf_static/camera_info) vs
    vfdepth_core.metrics on the DDAD loader's own LIDAR depth GT. Predictions are smooth (GT densified x
    1.1 with noise), so sub-pixel differences in where a LIDAR point lands barely matter."""
    import cv2

    from vfdepth_core.datasets.ddad import DDADDataset
    from vfdepth_ros.bag import convert

    cams = [c.lower() for c in convert.DDAD_CAMERAS]
    inp = tmp_path / "ddad.mcap"
    convert.write_recording(convert.ddad_recording(ddad_sample / "ddad.json", "val", 0), inp, resize="320x200",
                            progress=False)
    ds = DDADDataset(ddad_sample / "ddad.json", "val", cams, 192, 320, frame_ids=(0,), with_depth=True,
                     gt_projection="nearest")  # evaluate-bag projects the bag's LIDAR to the nearest pixel
    acc = DepthMetricAccumulator(cams, 0.0, 200.0)
    rng = np.random.default_rng(0)
    depth = {c: [] for c in cams}
    for i in range(len(ds)):
        s = ds[i]
        preds = []
        for n, cam in enumerate(cams):
            g = s["depth_gt"][n, 0].numpy()
            dense = cv2.dilate(g, np.ones((9, 9), np.uint8))  # fill gaps with a nearby measurement
            dense = cv2.blur(np.where(dense > 0, dense, 20.0), (9, 9))
            pred = (dense * 1.1 * rng.uniform(0.95, 1.05, g.shape)).astype(np.float32)
            preds.append(pred)
            depth[cam].append((int(s["stamp_ns"][0, n]), pred, s["K"][n].numpy(), C.camera_frame(cam)))
        acc.update(torch.from_numpy(np.stack(preds))[None, :, None], s["depth_gt"][None], s["mask"][None])
    out = write_outputs_bag(tmp_path / "out.mcap", depth)
    res = E.evaluate(inp, out)
    ref = acc.result()
    for scaling in ("metric", "median"):
        for m in DEPTH_METRICS:
            a, b = res["depth"][scaling]["mean"][m], ref[scaling]["mean"][m]
            assert a == pytest.approx(b, rel=0.03, abs=0.005), (scaling, m, a, b)
        # camera_01 defines the ego pose in the bag, so its GT is exactly the loader's
        for m in DEPTH_METRICS:
            a = res["depth"][scaling]["per_camera"]["camera_01"][m]
            assert a == pytest.approx(ref[scaling]["per_camera"]["camera_01"][m], rel=1e-6, abs=1e-9)


def test_evaluate_bag_cli_json(tmp_path):
    from vfdepth_ros.cli import main

    rec, K, t0 = _wall_recording()
    inp = tmp_path / "in.mcap"
    write_recording(rec, inp, progress=False)
    out = write_outputs_bag(tmp_path / "out.mcap", {"front": [(t0, np.full((24, 32), 9.0, np.float32), K, "front_optical_frame")]})
    assert main(["evaluate-bag", str(inp), str(out), "--json", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["depth"]["metric"]["mean"]["abs_rel"] == pytest.approx(0.1)
