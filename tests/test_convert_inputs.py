"""Malformed dataset files through the converters (`vfdepth bag from-ddad` / `from-nuscenes`) and the
training readers: one clear line naming the file, exit 2; byte-exact LIDAR sizes; the last key frame kept."""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from bag_helpers import one_line_error, tiny_nuscenes
from vfdepth_core.datasets.common import DatasetError
from vfdepth_ros.bag import convert
from vfdepth_ros.bag.info import summarize


@contextmanager
def _edited(path: Path, edit):
    """Temporarily replace `path` with edit(json) (a dict/list, or raw text when edit returns a str)."""
    orig = path.read_bytes()
    new = edit(json.loads(orig))
    path.write_text(new if isinstance(new, str) else json.dumps(new))
    try:
        yield path
    finally:
        path.write_bytes(orig)


@pytest.fixture(scope="module")
def ddad_copy(ddad_sample, tmp_path_factory):
    return Path(shutil.copytree(ddad_sample, tmp_path_factory.mktemp("ddad") / "ddad"))


def _scene_and_calib(root: Path):
    meta = json.loads((root / "ddad.json").read_text())
    scene_json = root / meta["scene_splits"]["1"]["filenames"][0]
    key = json.loads(scene_json.read_text())["samples"][0]["calibration_key"]
    return scene_json, scene_json.parent / "calibration" / f"{key}.json"


def _from_ddad(capsys, root: Path, tmp_path: Path, *extra: str) -> str:
    msg = one_line_error(capsys, "bag", "from-ddad", str(root / "ddad.json"), "--out", str(tmp_path / "d.mcap"),
                         "--no-progress", *extra)
    assert not (tmp_path / "d.mcap").exists()
    return msg


def _drop_camera(c: dict, cam: str) -> dict:
    i = c["names"].index(cam)
    return {k: [v for j, v in enumerate(c[k]) if j != i] for k in ("names", "intrinsics", "extrinsics")}


def test_ddad_malformed_files_one_line(ddad_copy, tmp_path, capsys):
    scene_json, calib = _scene_and_calib(ddad_copy)
    ddad_json = ddad_copy / "ddad.json"
    with _edited(ddad_json, lambda d: "{not json"):
        msg = _from_ddad(capsys, ddad_copy, tmp_path)
        assert str(ddad_json) in msg and "broken JSON" in msg
    with _edited(scene_json, lambda d: "[1, 2"):
        msg = _from_ddad(capsys, ddad_copy, tmp_path)
        assert str(scene_json) in msg and "broken JSON" in msg
    with _edited(calib, lambda c: {k: v for k, v in c.items() if k != "intrinsics"}):
        msg = _from_ddad(capsys, ddad_copy, tmp_path)
        assert str(calib) in msg and "'intrinsics'" in msg
    with _edited(calib, lambda c: {**c, "intrinsics": [{**e, "fx": "wide"} for e in c["intrinsics"]]}):
        msg = _from_ddad(capsys, ddad_copy, tmp_path)
        assert str(calib) in msg and "malformed intrinsics" in msg
    with _edited(calib, lambda c: _drop_camera(c, "CAMERA_05")):
        msg = _from_ddad(capsys, ddad_copy, tmp_path)
        assert str(calib) in msg and "CAMERA_05" in msg and "calibration file lacks" in msg
        assert "scene" not in msg.replace(str(calib), "")
    with _edited(scene_json, lambda s: {**s, "samples": [{**s["samples"][0], "datum_keys": 7}] + s["samples"][1:]}):
        msg = _from_ddad(capsys, ddad_copy, tmp_path)
        assert str(scene_json) in msg and "malformed DGP scene JSON" in msg
    with _edited(scene_json, lambda s: {k: v for k, v in s.items() if k != "data"}):
        msg = _from_ddad(capsys, ddad_copy, tmp_path)
        assert str(scene_json) in msg and "'data'" in msg


def test_ddad_lidar_shape_checked(ddad_copy, tmp_path, capsys):
    from vfdepth_core.datasets.ddad import read_lidar_npz

    scene_json, _ = _scene_and_calib(ddad_copy)
    lidar = sorted((scene_json.parent / "point_cloud" / "LIDAR").glob("*.npz"))[0]
    orig = lidar.read_bytes()
    try:
        for bad in (np.zeros(12, np.float32), np.zeros((4, 2), np.float32), np.array([["a", "b", "c", "d"]])):
            np.savez(lidar.with_suffix(""), data=bad)  # np.savez appends .npz
            with pytest.raises(DatasetError, match="numeric N x 4"):
                read_lidar_npz(str(lidar))
            msg = _from_ddad(capsys, ddad_copy, tmp_path, "--cameras", "CAMERA_01")
            assert str(lidar) in msg and "numeric N x 4" in msg
    finally:
        lidar.write_bytes(orig)


@pytest.fixture
def nusc_root(tmp_path):
    return tiny_nuscenes(tmp_path / "nusc", frames=3)


def _from_nusc(capsys, root: Path, *extra: str) -> str:
    out = root.parent / "n.mcap"
    msg = one_line_error(capsys, "bag", "from-nuscenes", str(root), "--scene", "scene-0000", "--out", str(out),
                         "--no-progress", *extra)
    assert not out.exists()
    return msg


def test_nuscenes_malformed_tables_one_line(nusc_root, capsys):
    tables = nusc_root / "v1.0-mini"
    cs = tables / "calibrated_sensor.json"
    with _edited(cs, lambda rows: [{k: v for k, v in r.items() if k != "camera_intrinsic"} for r in rows]):
        msg = _from_nusc(capsys, nusc_root)
        assert str(tables) in msg and "camera_intrinsic" in msg
    with _edited(cs, lambda rows: [{**r, "camera_intrinsic": [1, 2]} for r in rows]):
        msg = _from_nusc(capsys, nusc_root)
        assert "calibrated_sensor.json" in msg and "not 3x3" in msg
    with _edited(cs, lambda rows: [{**r, "camera_intrinsic": "wide"} for r in rows]):
        msg = _from_nusc(capsys, nusc_root)
        assert str(tables) in msg and "malformed nuScenes records" in msg
    sd = tables / "sample_data.json"
    with _edited(sd, lambda rows: "[{"):
        msg = _from_nusc(capsys, nusc_root)
        assert str(sd) in msg and "broken JSON" in msg
    with _edited(sd, lambda rows: [{**r, "timestamp": "late"} for r in rows]):
        msg = _from_nusc(capsys, nusc_root)
        assert str(tables) in msg and "Error" in msg


def test_truncated_pcd_bin_rejected_by_loader_and_converter(nusc_root, capsys):
    from vfdepth_core.datasets.nuscenes import read_pcd_bin

    sweep = sorted((nusc_root / "samples" / "LIDAR_TOP").glob("*.pcd.bin"))[0]
    assert read_pcd_bin(str(sweep)).shape == (3, 4)
    sweep.write_bytes(np.arange(260, dtype=np.float32).tobytes()[:1001])  # 50 whole points + 1 byte
    with pytest.raises(DatasetError, match="1001 bytes, not a multiple of 20"):
        read_pcd_bin(str(sweep))
    sweep.write_bytes(np.arange(12, dtype=np.float32).tobytes())  # 48 bytes: whole floats, not whole points
    with pytest.raises(DatasetError, match="48 bytes"):
        read_pcd_bin(str(sweep))
    msg = _from_nusc(capsys, nusc_root)
    assert str(sweep) in msg and "not a multiple of 20" in msg


def test_nuscenes_last_key_frame_cameras_kept(tmp_path):
    """Cameras fire after the LIDAR sweep that stamps a sample: the last sample's images must stay."""
    root = tiny_nuscenes(tmp_path / "nusc", frames=3)
    sd = root / "v1.0-mini" / "sample_data.json"
    rows = json.loads(sd.read_text())
    last_us = max(r["timestamp"] for r in rows)
    for r in rows:
        if r["timestamp"] == last_us and r["fileformat"] != "pcd":
            r["timestamp"] += 30_000  # 30 ms after the sample's (LIDAR) time
    sd.write_text(json.dumps(rows))
    rec = convert.nuscenes_recording(root, "v1.0-mini", "scene-0000")
    out = tmp_path / "n.mcap"
    convert.write_recording(rec, out, progress=False)
    n = {t.topic: t.count for t in summarize(out).topics}
    for cam in convert.NUSC_CAMERAS:
        assert n[f"{cam.lower()}/image_raw"] == 3, n
    assert n["lidar/points"] == 3 and n["gt/odom"] == 3
