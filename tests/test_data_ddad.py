"""DDAD loader on the real one-scene DDAD sample (skips when it is absent)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.data_helpers import DDAD_CAMS
from vfdepth_core import geometry
from vfdepth_core.datasets.ddad import DDADDataset
from vfdepth_core.datasets.poses import quat_pose_to_matrix

H, W = 192, 320


@pytest.fixture(scope="module")
def calib(ddad_sample):
    f = next((ddad_sample / "000000" / "calibration").glob("*.json"))
    return json.loads(f.read_text())


@pytest.fixture(scope="module")
def val_ds(ddad_sample, tmp_path_factory):
    return DDADDataset(ddad_sample / "ddad.json", "val", DDAD_CAMS, H, W, frame_ids=(0,), with_depth=True,
                       gt_cache=str(tmp_path_factory.mktemp("gt")))


def test_sample_counts_and_shapes(ddad_sample, tmp_path):
    train = DDADDataset(ddad_sample / "ddad.json", "train", DDAD_CAMS, H, W, color_jitter=(0.2, 0.2, 0.2, 0.05),
                        gt_cache=str(tmp_path))
    assert len(train) == 1  # 3 samples, only the middle one has both neighbours
    s = train[0]
    assert s["image"].shape == (3, 6, 3, H, W) and s["image"].dtype == torch.float32
    assert s["image_aug"].shape == s["image"].shape
    assert not torch.equal(s["image_aug"], s["image"])  # jittered
    assert 0.0 <= float(s["image"].min()) and float(s["image"].max()) <= 1.0
    assert s["K"].shape == (6, 3, 3) and s["T_ego_cam"].shape == (6, 4, 4)
    assert s["mask"].shape == (6, 1, H, W) and bool((s["mask"] == 1).all())
    assert s["T_world_ego"].shape == (3, 4, 4) and s["T_world_ego"].dtype == torch.float64
    assert s["stamp_ns"].shape == (3, 6) and s["stamp_ns"].dtype == torch.int64
    st = s["stamp_ns"][:, 0]
    assert st[1] < st[0] < st[2]  # frames 0, -1, +1
    assert "depth_gt" not in s
    # context frames are the neighbouring samples: the vehicle moved about 1.27 m between them
    step = np.linalg.norm(s["T_world_ego"][0, :3, 3] - s["T_world_ego"][1, :3, 3])
    assert 0.5 < step < 3.0


def test_intrinsics_are_the_calibration_scaled(val_ds, calib):
    s = val_ds[0]
    for n, cam in enumerate(DDAD_CAMS):
        i = calib["names"].index(cam.upper())
        c = calib["intrinsics"][i]
        K0 = geometry.intrinsics_matrix(c["fx"], c["fy"], c["cx"], c["cy"])
        K = geometry.resize_intrinsics(K0, (1216, 1936), (H, W)).float()
        assert torch.allclose(s["K"][n], K, atol=1e-3)
        e = calib["extrinsics"][i]
        assert torch.allclose(s["T_ego_cam"][n], torch.from_numpy(quat_pose_to_matrix(e["rotation"], e["translation"])).float(),
                              atol=1e-6)


def test_extrinsics_and_world_poses_consistent(ddad_sample, val_ds):
    scene = json.loads(next((ddad_sample / "000000").glob("scene_*.json")).read_text())
    data = {d["key"]: d for d in scene["data"]}
    for idx in range(len(val_ds)):
        s = val_ds[idx]
        sample = scene["samples"][idx]
        by_name = {data[k]["id"]["name"]: data[k] for k in sample["datum_keys"]}
        for n, cam in enumerate(DDAD_CAMS):
            p = by_name[cam.upper()]["datum"]["image"]["pose"]
            T_world_cam = quat_pose_to_matrix(p["rotation"], p["translation"])
            pred = s["T_world_ego"][0].numpy() @ s["T_ego_cam"][n].double().numpy()
            # the vehicle pose is the first camera's pose x its extrinsic^-1 (dgp's convention), at the image
            # stamp; the other cameras' poses sit within 1 cm of that rig (the LIDAR's pose is 4-5 cm away)
            assert np.linalg.norm(pred[:3, 3] - T_world_cam[:3, 3]) < (1e-6 if n == 0 else 0.015)
            assert np.allclose(pred[:3, :3], T_world_cam[:3, :3], atol=1e-6 if n == 0 else 1e-3)


def test_projected_lidar_depth_plausible(ddad_sample, tmp_path):
    ds = DDADDataset(ddad_sample / "ddad.json", "val", DDAD_CAMS, 1216, 1936, frame_ids=(0,), with_depth=True,
                     gt_cache=str(tmp_path))
    d = ds[1]["depth_gt"]
    assert d.shape == (6, 1, 1216, 1936)
    for n in range(6):
        v = d[n][d[n] > 0]
        assert 2000 < v.numel() < 60000, (n, v.numel())
        assert float(v.min()) > 0.5 and float(v.max()) < 300.0
        assert 3.0 < float(v.median()) < 80.0
    # the cache returns the same depth
    assert torch.equal(ds[1]["depth_gt"], d)
    assert any(tmp_path.rglob("*_CAMERA_01_1216x1936.npz"))


def test_ground_points_below_the_horizon(val_ds):
    """LIDAR points on the road project below the front camera's horizon, farther ones higher up."""
    s = val_ds[0]
    d = s["depth_gt"][0, 0]
    v, u = torch.nonzero(d > 0, as_tuple=True)
    near = d[v, u] < 10
    far = (d[v, u] > 30) & (d[v, u] < 60)
    assert near.any() and far.any()
    assert float(v[near].float().median()) > float(v[far].float().median())


def test_scan_finds_nothing_on_the_sample(val_ds):
    assert val_ds.scan() == []
