"""Synthetic world: geometry truth, determinism, textures, and round trips through both on-disk formats."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.data_helpers import DDAD_CAMS, NUSC_CAMS, relative_depth_error, tiny_drive
from vfdepth_core import geometry
from vfdepth_core.config import PAPER_NEIGHBORS
from vfdepth_core.datasets.synthetic import DDAD_RIG, NUSCENES_RIG, write_ddad, write_nuscenes
from vfdepth_core.datasets.synthetic.drive import render_cameras
from vfdepth_core.datasets.synthetic.world import TEX_BRICK, Boxes, Mover, Road, World, make_textures


def _one_box_world(center, half, yaw=0.0) -> tuple:
    rng = np.random.default_rng(0)
    road = Road(rng, 10.0)
    f = lambda v: torch.tensor(np.asarray([v], dtype=np.float32))  # noqa: E731
    boxes = Boxes(f(center), f(half), f(yaw), torch.tensor([TEX_BRICK]), f([0.8, 0.5, 0.4]), f(4.0), f([0.0, 0.0]),
                  torch.tensor([0]))
    return World(road, boxes, [], make_textures(0, size=64)), boxes


def test_known_box_depth_at_expected_pixel():
    """A wall 20 m ahead of the front camera: depth 20 m (minus the camera's forward offset) at the pixel
    where the wall point projects, and the correct depth on the ground in front of it."""
    hw = (64, 96)
    K = DDAD_RIG.K(hw)[:1]
    T_ego_cam = np.eye(4)[None].copy()
    T_ego_cam[0, :3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]  # optical axis along vehicle x
    T_ego_cam[0, :3, 3] = [1.0, 0.0, 1.5]
    world, boxes = _one_box_world([21.0 + 0.5, 0.0, 5.0], [0.5, 30.0, 5.0])  # front face at x = 21 m
    images, depth = render_cameras(world, boxes, np.eye(4), K, T_ego_cam, hw)
    # a point on the face, 1 m left and 1 m above the camera -> its pixel
    p_ego = torch.tensor([[21.0], [1.0], [2.5]], dtype=torch.float64)
    p_cam = geometry.transform_points(geometry.invert_transform(torch.from_numpy(T_ego_cam[0])), p_ego)
    uv, z = geometry.project(torch.from_numpy(K[0]), p_cam)
    u, v = (int(round(float(x))) for x in uv[:, 0])
    assert abs(float(z) - 20.0) < 1e-9
    assert depth[0, v, u] == pytest.approx(20.0, abs=1e-3)
    # the whole upper half sees the wall at exactly 20 m (a plane facing the camera has constant depth)
    assert np.allclose(depth[0, :20], 20.0, atol=1e-3)
    # bottom row sees the ground: depth = height / slope of that ray
    v_b = hw[0] - 1
    ray = np.linalg.inv(K[0]) @ np.array([hw[1] / 2, v_b, 1.0])
    expected = 1.5 / ray[1]  # camera y is down: ground at y = 1.5 m in the camera frame
    assert depth[0, v_b, hw[1] // 2] == pytest.approx(expected, rel=1e-3)
    # textured, not flat: the wall has many distinct colours
    assert len(np.unique(images[0, :20].reshape(-1, 3), axis=0)) > 50


def test_rig_order_matches_the_paper_ring():
    for rig in (DDAD_RIG, NUSCENES_RIG):
        yaw = [math.degrees(math.atan2(T[1, 2], T[0, 2])) for T in rig.T_ego_cam]
        # front, front-left, front-right, back-left, back-right, back
        assert abs(yaw[0]) < 10 and 30 < yaw[1] < 80 and -80 < yaw[2] < -30
        assert 95 < yaw[3] < 150 and -150 < yaw[4] < -95 and abs(abs(yaw[5]) - 180) < 10
        for n, (a, b) in enumerate(PAPER_NEIGHBORS):  # neighbours are the adjacent cameras around the car
            for m in (a, b):
                diff = abs((yaw[n] - yaw[m] + 180) % 360 - 180)
                assert diff < 100
    assert DDAD_RIG.camera_names == ("CAMERA_01", "CAMERA_05", "CAMERA_06", "CAMERA_07", "CAMERA_08", "CAMERA_09")
    assert NUSCENES_RIG.camera_names[0] == "CAM_FRONT" and NUSCENES_RIG.camera_names[5] == "CAM_BACK"


def test_drive_structure_deterministic_and_textured():
    d = tiny_drive("ddad")
    from vfdepth_core.datasets.synthetic import make_drive

    a = make_drive("ddad", frames=2, height=32, width=48, seed=5)
    b = make_drive("ddad", frames=2, height=32, width=48, seed=5)
    c = make_drive("ddad", frames=2, height=32, width=48, seed=6)
    assert np.array_equal(a.frames[1].images, b.frames[1].images)
    assert np.array_equal(a.frames[1].lidar, b.frames[1].lidar)
    assert not np.array_equal(a.frames[1].images, c.frames[1].images)
    fr = d.frames[0]
    assert fr.images.shape == (6, 64, 96, 3) and fr.images.dtype == np.uint8
    assert fr.depth.shape == (6, 64, 96) and fr.depth.dtype == np.float32
    assert fr.lidar.shape[1] == 4 and len(fr.lidar) > 5000
    assert d.K.shape == (6, 3, 3) and d.T_ego_cam.shape == (6, 4, 4) and d.mask.shape == (6, 64, 96)
    assert d.mask[0].all() and not d.mask[5].all()  # front camera free, back camera sees the bumper
    # about 10 m/s at 10 Hz
    step = np.linalg.norm(d.frames[1].T_world_ego[:3, 3] - d.frames[0].T_world_ego[:3, 3])
    assert step == pytest.approx(1.0, rel=0.05)
    assert d.frames[1].stamp_ns - d.frames[0].stamp_ns == 100_000_000
    # every camera is textured: no large region of a single colour outside the body mask
    for n in range(6):
        px = fr.images[n][d.mask[n]]
        _, counts = np.unique(px, axis=0, return_counts=True)
        assert counts.max() < 0.05 * len(px)
    # the LIDAR sees the world the cameras see: its points' depth agrees with the dense depth
    from vfdepth_core.datasets.lidar import lidar_depth
    from vfdepth_core.datasets.poses import invert_np, transform_np

    sparse = lidar_depth(transform_np(invert_np(d.T_ego_cam[0]), fr.lidar[:, :3]), d.K[0], (64, 96))
    err = relative_depth_error(sparse, fr.depth[0])
    assert len(err) > 200 and np.median(err) < 0.02


def _check_round_trip(s, drive, frame_of, hw, tol_img=0.0):
    for fi, f in enumerate(frame_of):
        img = torch.from_numpy(drive.frames[f].images).permute(0, 3, 1, 2).float() / 255.0
        assert (s["image"][fi] - img).abs().max() <= tol_img + 1e-6
        assert np.allclose(s["T_world_ego"][fi].numpy(), drive.frames[f].T_world_ego, atol=1e-6)
        assert int(s["stamp_ns"][fi, 0]) == drive.frames[f].stamp_ns
    assert torch.allclose(s["K"], torch.from_numpy(drive.K).float(), atol=1e-4)
    assert torch.allclose(s["T_ego_cam"], torch.from_numpy(drive.T_ego_cam).float(), atol=1e-5)
    assert torch.equal(s["mask"][:, 0].bool(), torch.from_numpy(drive.mask))
    dense = drive.frames[frame_of[0]].depth
    sparse = s["depth_gt"][:, 0].numpy()
    inside = drive.mask
    err = relative_depth_error(np.where(inside, sparse, 0), dense)
    assert len(err) > 1000
    assert np.median(err) < 0.01
    assert (err < 0.05).mean() > 0.75  # the rest: LIDAR/camera parallax at depth edges, grazing ground


def test_round_trip_ddad_layout(tmp_path):
    drive = tiny_drive("ddad")
    write_ddad([drive], tmp_path / "ddad", splits=["train"])
    from vfdepth_core.datasets.ddad import DDADDataset

    ds = DDADDataset(tmp_path / "ddad" / "ddad.json", "train", DDAD_CAMS, 64, 96, with_depth=True,
                     mask_path=str(tmp_path / "ddad" / "masks"), gt_cache=str(tmp_path / "gt"))
    assert len(ds) == len(drive.frames) - 2
    _check_round_trip(ds[2], drive, (3, 2, 4), (64, 96))
    dense = np.load(sorted((tmp_path / "ddad" / "000000" / "depth" / "CAMERA_01").glob("*.npz"))[0])["depth"]
    assert np.array_equal(dense, drive.frames[0].depth[0])


def test_round_trip_nuscenes_layout(tmp_path):
    drive = tiny_drive("nuscenes", frames=6)
    write_nuscenes([drive], tmp_path / "nusc", version="v1.0-mini", splits=["train"], keyframe_every=2)
    from nuscenes.nuscenes import NuScenes

    nusc = NuScenes("v1.0-mini", str(tmp_path / "nusc"), verbose=False)
    assert len(nusc.sample) == 3 and len(nusc.scene) == 1
    from vfdepth_core.datasets.nuscenes import NuScenesDataset

    ds = NuScenesDataset(tmp_path / "nusc", "v1.0-mini", "train", NUSC_CAMS, 64, 96, with_depth=True,
                         mask_path=str(tmp_path / "nusc" / "masks"), gt_cache=str(tmp_path / "gt"), nusc=nusc)
    assert len(ds) == 2  # key frames 2 and 4 have sweeps on both sides; key frame 0 has no previous
    _check_round_trip(ds[0], drive, (2, 1, 3), (64, 96))


def test_build_dataset_synthetic_config(tmp_path):
    from vfdepth_core.config import load_config
    from vfdepth_core.datasets import build_dataset, check_dataset

    drive = tiny_drive("ddad")
    write_ddad([drive, drive], tmp_path / "syn", splits=["train", "val"])
    cfg = load_config(None, [f"data.data_path={tmp_path / 'syn' / 'ddad.json'}", "data.dataset=synthetic",
                             "training.height=64", "training.width=96", f"data.gt_cache={tmp_path / 'gt'}"])
    train, val = build_dataset(cfg, "train"), build_dataset(cfg, "val")
    assert len(train) == 4 and len(val) == 6
    s = val[0]
    assert s["image"].shape == (1, 6, 3, 64, 96) and "depth_gt" in s
    assert not bool((s["mask"] == 1).all())  # the synthetic rig's masks are used
    t = train[0]
    assert t["image"].shape[0] == 3 and not torch.equal(t["image"], t["image_aug"])
    assert check_dataset(cfg) == []
