"""Dataset -> bag converters: the real DDAD sample and a synthetic nuScenes-layout drive, read back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bag_helpers import decode_all, read_all
from vfdepth_core.geometry import resize_intrinsics
from vfdepth_ros import conversions as cv
from vfdepth_ros.bag import common as C
from vfdepth_ros.bag import convert
from vfdepth_ros.bag.info import summarize

DDAD_CAMS = [c.lower() for c in convert.DDAD_CAMERAS]


def _ddad_scene(ddad_sample: Path):
    meta = json.loads((ddad_sample / "ddad.json").read_text())
    scene_json = ddad_sample / meta["scene_splits"]["1"]["filenames"][0]
    scene = json.loads(scene_json.read_text())
    calib = json.loads((scene_json.parent / "calibration" / f"{scene['samples'][0]['calibration_key']}.json").read_text())
    data = {d["key"]: d for d in scene["data"]}
    samples = [{data[k]["id"]["name"]: data[k] for k in s["datum_keys"]} for s in scene["samples"]]
    return scene_json, calib, samples


@pytest.fixture(scope="module")
def ddad_bag(ddad_sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddad") / "ddad.mcap"
    rec = convert.ddad_recording(ddad_sample / "ddad.json", "val", 0)
    counts = convert.write_recording(rec, out, resize="320x200", progress=False)
    return out, counts


def test_ddad_bag_topics_types_counts(ddad_bag):
    out, counts = ddad_bag
    s = summarize(out)
    types = {t.topic: t.msgtype for t in s.topics}
    expected = {"/tf_static": "tf2_msgs/msg/TFMessage", "/tf": "tf2_msgs/msg/TFMessage",
                "gt/odom": "nav_msgs/msg/Odometry", "lidar/points": "sensor_msgs/msg/PointCloud2"}
    for cam in DDAD_CAMS:
        expected[f"{cam}/image_raw"] = "sensor_msgs/msg/Image"
        expected[f"{cam}/camera_info"] = "sensor_msgs/msg/CameraInfo"
    assert types == expected
    n = {t.topic: t.count for t in s.topics}
    assert all(n[f"{c}/image_raw"] == 3 and n[f"{c}/camera_info"] == 3 for c in DDAD_CAMS)
    assert n["/tf_static"] == 1 and n["lidar/points"] == 3
    assert n["gt/odom"] == n["/tf"] == 6  # ego pose at each image set and each LIDAR sweep
    latched = {t.topic for t in s.topics if t.latched}
    assert latched == {"/tf_static"}


def test_ddad_bag_stamps_intrinsics_tf(ddad_bag, ddad_sample):
    from vfdepth_core.datasets.ddad import DDADDataset

    out, _ = ddad_bag
    scene_json, calib, samples = _ddad_scene(ddad_sample)
    ds = DDADDataset(ddad_sample / "ddad.json", "val", DDAD_CAMS, 200, 320, frame_ids=(0,))
    loader_stamps = [[int(v) for v in ds[i]["stamp_ns"][0]] for i in range(len(ds))]
    msgs = read_all(out)
    # stamps: the dataset's (same rule as the DDAD loader), header == log time, time-ordered
    for n, cam in enumerate(DDAD_CAMS):
        imgs = decode_all(out, f"{cam}/image_raw")
        assert [cv.stamp_to_ns(m.header.stamp) for m in imgs] == [s[n] for s in loader_stamps]
        assert [t for t, _ in msgs[f"{cam}/image_raw"]] == [s[n] for s in loader_stamps]
        assert all(m.encoding == "rgb8" and (m.height, m.width) == (200, 320) for m in imgs)
        assert all(m.header.frame_id == f"{cam}_optical_frame" for m in imgs)
        # intrinsics: the calibration's, scaled to the written image size
        i = calib["names"].index(cam.upper())
        ci = calib["intrinsics"][i]
        K0 = torch.tensor([[ci["fx"], 0, ci["cx"]], [0, ci["fy"], ci["cy"]], [0, 0, 1]], dtype=torch.float64)
        K = resize_intrinsics(K0, (1216, 1936), (200, 320)).numpy()
        infos = decode_all(out, f"{cam}/camera_info")
        assert all(np.allclose(np.asarray(m.k).reshape(3, 3), K) and (m.height, m.width) == (200, 320) for m in infos)
        assert np.allclose(np.asarray(infos[0].p).reshape(3, 4)[:, :3], K)
    # /tf_static: base_link -> camera = the calibration's vehicle-from-camera
    (tf_static,) = decode_all(out, "/tf_static")
    by_child = {ts.child_frame_id: ts for ts in tf_static.transforms}
    assert set(by_child) == {f"{c}_optical_frame" for c in DDAD_CAMS} | {"lidar"}
    for cam in DDAD_CAMS:
        ts = by_child[f"{cam}_optical_frame"]
        assert ts.header.frame_id == "base_link"
        expected = convert._dgp_pose(calib["extrinsics"][calib["names"].index(cam.upper())])
        assert np.allclose(cv.transform_to_matrix(ts), expected, atol=1e-9)
    # gt/odom: first = identity; at image stamps T_odom_base = T_world_ego0^-1 T_world_ego
    odoms = decode_all(out, "gt/odom")
    assert np.allclose(cv.odometry_to_matrix(odoms[0]), np.eye(4), atol=1e-9)
    assert all(m.header.frame_id == "odom" and m.child_frame_id == "base_link" for m in odoms)
    E01 = convert._dgp_pose(calib["extrinsics"][calib["names"].index("CAMERA_01")])
    T_we = [convert._dgp_pose(s["CAMERA_01"]["datum"]["image"]["pose"]) @ np.linalg.inv(E01) for s in samples]
    by_stamp = {cv.stamp_to_ns(m.header.stamp): cv.odometry_to_matrix(m) for m in odoms}
    for k, s in enumerate(loader_stamps):
        assert np.allclose(by_stamp[s[0]], np.linalg.inv(T_we[0]) @ T_we[k], atol=1e-6)
    moved = np.linalg.norm(by_stamp[loader_stamps[-1][0]][:3, 3])
    assert 1.0 < moved < 10.0  # the sample moves about 1.27 m per sample
    tfs = decode_all(out, "/tf")
    assert all(m.transforms[0].header.frame_id == "odom" and m.transforms[0].child_frame_id == "base_link" for m in tfs)
    # LIDAR: the .npz points, frame lidar, float32 x, y, z, intensity
    clouds = decode_all(out, "lidar/points")
    first = np.load(ddad_sample / "000000" / samples[0]["LIDAR"]["datum"]["point_cloud"]["filename"])["data"]
    pts = cv.pointcloud2_to_xyzi(clouds[0])
    assert clouds[0].header.frame_id == "lidar" and [f.name for f in clouds[0].fields] == ["x", "y", "z", "intensity"]
    assert np.allclose(pts, first.astype(np.float32))


def test_ddad_compressed_keeps_jpeg_bytes_and_sqlite3(ddad_sample, tmp_path):
    out = tmp_path / "ddad_db"
    rec = convert.ddad_recording(ddad_sample / "ddad.json", "val", 0, cameras=["CAMERA_01"], lidar=False)
    convert.write_recording(rec, out, storage="sqlite3", compressed=True, progress=False)
    assert (out / "metadata.yaml").is_file() and list(out.glob("*.db3"))
    msgs = decode_all(out, "camera_01/image_raw/compressed")
    _, _, samples = _ddad_scene(ddad_sample)
    files = [ddad_sample / "000000" / s["CAMERA_01"]["datum"]["image"]["filename"] for s in samples]
    assert [bytes(np.asarray(m.data, np.uint8)) for m in msgs] == [f.read_bytes() for f in files]
    assert all(m.format == "jpeg" for m in msgs)
    info = decode_all(out, "camera_01/camera_info")[0]
    assert (info.height, info.width) == (1216, 1936)


@pytest.fixture(scope="module")
def nusc_drive(tmp_path_factory):
    synthetic = pytest.importorskip("vfdepth_core.datasets.synthetic")
    drive = synthetic.make_drive("nuscenes", frames=3, height=48, width=80, seed=3)
    root = tmp_path_factory.mktemp("nusc")
    synthetic.write_nuscenes([drive], root, version="v1.0-mini", keyframe_every=2)
    return drive, root


def test_synthetic_nuscenes_layout_to_bag(nusc_drive, tmp_path):
    drive, root = nusc_drive
    from nuscenes.nuscenes import NuScenes

    nusc = NuScenes("v1.0-mini", str(root), verbose=False)
    scene = nusc.scene[0]["name"]
    out = tmp_path / "nusc.mcap"
    rec = convert.nuscenes_recording(root, "v1.0-mini", scene)
    convert.write_recording(rec, out, compressed=True, progress=False)
    n = {t.topic: t.count for t in summarize(out).topics}
    cams = [c.lower() for c in convert.NUSC_CAMERAS]
    F = len(drive.frames)
    for i, cam in enumerate(cams):
        assert n[f"{cam}/image_raw/compressed"] == F and n[f"{cam}/camera_info"] == F
        info = decode_all(out, f"{cam}/camera_info")[0]
        assert np.allclose(np.asarray(info.k).reshape(3, 3), drive.K[i], atol=1e-6)
        img = decode_all(out, f"{cam}/image_raw/compressed")[0]
        assert img.format == "png"
        assert np.array_equal(convert._decode(bytes(np.asarray(img.data, np.uint8)), cam), drive.frames[0].images[i])
    assert n["lidar/points"] == F and n["gt/odom"] == F
    (tf_static,) = decode_all(out, "/tf_static")
    by_child = {ts.child_frame_id: cv.transform_to_matrix(ts) for ts in tf_static.transforms}
    for i, cam in enumerate(cams):
        assert np.allclose(by_child[f"{cam}_optical_frame"], drive.T_ego_cam[i], atol=1e-6)
    odoms = decode_all(out, "gt/odom")
    T0 = drive.frames[0].T_world_ego
    for m, fr in zip(odoms, drive.frames):
        assert cv.stamp_to_ns(m.header.stamp) == fr.stamp_ns // 1000 * 1000  # nuScenes stores microseconds
        assert np.allclose(cv.odometry_to_matrix(m), np.linalg.inv(T0) @ fr.T_world_ego, atol=1e-5)


def test_synthetic_drive_to_bag_raw_images(nusc_drive, tmp_path):
    from vfdepth_ros.bag.synth_adapter import recording_from_drive

    drive, _ = nusc_drive
    out = tmp_path / "syn.mcap"
    convert.write_recording(recording_from_drive(drive), out, progress=False)
    imgs = decode_all(out, "cam_back/image_raw")
    assert len(imgs) == len(drive.frames)
    for m, fr in zip(imgs, drive.frames):
        assert cv.stamp_to_ns(m.header.stamp) == fr.stamp_ns
        assert np.array_equal(cv.image_to_array(m), fr.images[5])
    pts = cv.pointcloud2_to_xyzi(decode_all(out, "lidar/points")[0])
    assert np.allclose(pts, drive.frames[0].lidar)
