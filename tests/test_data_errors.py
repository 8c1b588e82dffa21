"""Bad input: every broken dataset file gives a DatasetError naming the file; scans report all at once."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from tests.data_helpers import DDAD_CAMS, tiny_drive
from vfdepth_core.datasets import collate_skip_broken
from vfdepth_core.datasets.common import DatasetError
from vfdepth_core.datasets.ddad import DDADDataset
from vfdepth_core.datasets.synthetic import write_ddad


@pytest.fixture()
def ddad_dir(tmp_path):
    write_ddad([tiny_drive("ddad")], tmp_path / "d", splits=["train"], write_depth=False)
    return tmp_path / "d"


def _ds(d, **kw):
    kw.setdefault("gt_cache", str(d.parent / "gt"))
    return DDADDataset(d / "ddad.json", "train", DDAD_CAMS, 32, 48, **kw)


def test_missing_camera_folder(ddad_dir):
    shutil.rmtree(ddad_dir / "000000" / "rgb" / "CAMERA_07")
    with pytest.raises(DatasetError, match=r"rgb/CAMERA_07 missing"):
        _ds(ddad_dir)


def test_missing_calibration(ddad_dir):
    f = next((ddad_dir / "000000" / "calibration").glob("*.json"))
    f.unlink()
    with pytest.raises(DatasetError, match=rf"calibration file not found: .*{f.name}"):
        _ds(ddad_dir)


def test_missing_dataset_file(tmp_path):
    with pytest.raises(DatasetError, match=r"not found: .*ddad.json"):
        _ds(tmp_path)


def test_unknown_camera_name(ddad_dir):
    with pytest.raises(DatasetError, match=r"unknown camera\(s\) \['CAMERA_42'\]"):
        DDADDataset(ddad_dir / "ddad.json", "train", ["camera_01", "camera_42"], 32, 48)


def test_scene_json_refers_to_absent_files_scan_reports_all(ddad_dir):
    imgs = sorted((ddad_dir / "000000" / "rgb" / "CAMERA_05").glob("*.png"))
    imgs[1].unlink()
    imgs[4].unlink()
    lidar = sorted((ddad_dir / "000000" / "point_cloud" / "LIDAR").glob("*.npz"))
    lidar[2].unlink()
    ds = _ds(ddad_dir, with_depth=True)
    problems = ds.scan()
    files = {p.file for p in problems}
    assert str(imgs[1]) in files and str(imgs[4]) in files and str(lidar[2]) in files
    assert all("not found" in p.message for p in problems)
    with pytest.raises(DatasetError, match=rf"image not found: .*{imgs[1].name}"):
        ds[0]  # frames 1, 0, 2: frame 1 is gone


def test_scene_json_datum_key_absent(ddad_dir):
    scene = next((ddad_dir / "000000").glob("scene_*.json"))
    js = json.loads(scene.read_text())
    js["samples"][0]["datum_keys"].append("deadbeef")
    scene.write_text(json.dumps(js))
    with pytest.raises(DatasetError, match=rf"{scene.name}: sample 0 refers to datum key deadbeef"):
        _ds(ddad_dir)


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_truncated_image_raises_or_is_skipped(ddad_dir, fmt):
    img = sorted((ddad_dir / "000000" / "rgb" / "CAMERA_01").glob("*.png"))[2]
    if fmt == "jpg":  # the same file as a JPEG, then truncated (DDAD ships JPEGs)
        from PIL import Image

        Image.open(img).save(img, format="JPEG", quality=95)
    data = img.read_bytes()
    img.write_bytes(data[: len(data) // 2])
    ds = _ds(ddad_dir)
    with pytest.raises(DatasetError, match=rf"image unreadable .*{img.name}"):
        ds[1]
    assert any(p.file == str(img) and "unreadable" in p.message for p in ds.scan())
    skipping = _ds(ddad_dir, skip_broken=True)
    batch = [skipping[i] for i in range(3)]  # samples 0..2 (frames 1..3) all use frame 2
    assert sum(b is None for b in batch) == 3 and skipping.num_broken == 3
    good = [skipping[3], None]
    out = collate_skip_broken(good)
    assert out["image"].shape[0] == 1
    assert collate_skip_broken([None, None]) is None


def test_broken_lidar_file(ddad_dir):
    f = sorted((ddad_dir / "000000" / "point_cloud" / "LIDAR").glob("*.npz"))[1]
    f.write_bytes(b"not a zip")
    ds = _ds(ddad_dir, with_depth=True, frame_ids=(0,))
    with pytest.raises(DatasetError, match=rf"LIDAR file unreadable: .*{f.name}"):
        ds[1]


def test_nuscenes_missing_table_and_map(tmp_path):
    from vfdepth_core.datasets.nuscenes import NuScenesDataset, open_nuscenes
    from vfdepth_core.datasets.synthetic import write_nuscenes

    root = tmp_path / "n"
    write_nuscenes([tiny_drive("nuscenes", frames=6)], root, "v1.0-mini", keyframe_every=2, write_depth=False)
    with pytest.raises(DatasetError, match=r"unknown camera channel\(s\) \['CAM_SIDE'\]"):
        NuScenesDataset(root, "v1.0-mini", "train", ["cam_front", "cam_side"], 32, 48)
    next((root / "maps").glob("*.png")).unlink()
    with pytest.raises(DatasetError, match=r"map mask"):
        open_nuscenes(root, "v1.0-mini")
    (root / "v1.0-mini" / "ego_pose.json").unlink()
    with pytest.raises(DatasetError, match=r"missing nuScenes table\(s\) ego_pose.json"):
        open_nuscenes(root, "v1.0-mini")


def test_synth_cli_generates_and_checks(tmp_path, capsys):
    from vfdepth_ros.cli import main

    out = tmp_path / "s"
    assert main(["synth", "--scenes", "2", "--frames", "3", "--height", "32", "--width", "64",
                 "--val-scenes", "1", "--out", str(out)]) == 0
    assert "frames/s" in capsys.readouterr().out
    js = json.loads((out / "ddad.json").read_text())
    assert len(js["scene_splits"]["0"]["filenames"]) == 1 and len(js["scene_splits"]["1"]["filenames"]) == 1
    assert main(["synth", "--check", "--out", str(out), "--height", "32", "--width", "64"]) == 0
    victim = sorted((out / "000001" / "rgb" / "CAMERA_09").glob("*.png"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    assert main(["synth", "--check", "--out", str(out), "--height", "32", "--width", "64"]) == 1
    text = capsys.readouterr().out
    assert victim.name in text and "1 problem(s)" in text
    assert torch.get_num_threads() >= 1
