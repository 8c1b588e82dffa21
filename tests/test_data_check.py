"""`train.py --check_data` / `vfdepth check-data`: every file a config reads, checked before a long run, on the
real DDAD sample and on broken copies of it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from train_helpers import TRAIN, load_script_module
from vfdepth_core.config import load_config
from vfdepth_core.datasets.check import check_data

ROOT = Path(__file__).resolve().parents[1]
DDAD_CONFIG = ROOT / "training" / "configs" / "ddad" / "ddad_surround_fusion.yaml"


def _cfg(data_json: Path):
    return load_config(DDAD_CONFIG, [f"data.data_path={data_json}", "model.weights_init=false"])


@pytest.fixture
def ddad_copy(ddad_sample, tmp_path):
    dst = tmp_path / "ddad"
    shutil.copytree(ddad_sample, dst, ignore=shutil.ignore_patterns("depth_cache"))
    return dst


def _scene(root: Path):
    meta = json.loads((root / "ddad.json").read_text())
    scene_json = root / meta["scene_splits"]["1"]["filenames"][0]
    return scene_json.parent, json.loads(scene_json.read_text())


def _datum_file(root: Path, sample_idx: int, name: str) -> Path:
    scene_dir, scene = _scene(root)
    data = {d["key"]: d for d in scene["data"]}
    for k in scene["samples"][sample_idx]["datum_keys"]:
        d = data[k]
        if d["id"]["name"] == name:
            datum = d["datum"]
            return scene_dir / (datum["image"] if "image" in datum else datum["point_cloud"])["filename"]
    raise KeyError(name)


def test_intact_sample_checks_clean(ddad_sample):
    report = check_data(_cfg(ddad_sample / "ddad.json"), progress=False)
    # 3 samples, only the middle one has both neighbours: train reads its frames -1, 0, +1; val (the paper's
    # dgp index keeps samples with context only) its frame 0 and LIDAR
    assert report.ok, report.summary()
    assert report.samples == {"train": 1, "val": 1}
    assert report.files == {"train": 18, "val": 7}
    assert "OK" in report.summary() and "train: 1 samples, 18 files checked, 0 problem(s)" in report.summary()


def test_missing_image_and_truncated_lidar_are_named(ddad_copy):
    img = _datum_file(ddad_copy, 2, "CAMERA_05")  # the train sample's +1 context frame
    img.unlink()
    lidar = _datum_file(ddad_copy, 1, "LIDAR")
    lidar.write_bytes(lidar.read_bytes()[:1000])
    report = check_data(_cfg(ddad_copy / "ddad.json"), progress=False)
    assert not report.ok
    by_path = {}
    for p in report.problems:
        by_path.setdefault(p.path, set()).add(p.split)
    assert by_path == {str(img): {"train"}, str(lidar): {"val"}}
    text = report.summary()
    assert f"image not found: {img}" in text and str(lidar) in text and "truncated" in text and "FAILED" in text


def test_truncated_image_found_without_decoding(ddad_copy):
    img = _datum_file(ddad_copy, 1, "CAMERA_01")
    img.write_bytes(img.read_bytes()[:-5000])
    report = check_data(_cfg(ddad_copy / "ddad.json"), splits=("val",), progress=False)
    assert [p.path for p in report.problems] == [str(img)] and "truncated" in report.problems[0].message


def test_calibration_without_a_camera_fails_the_split(ddad_copy):
    scene_dir, _ = _scene(ddad_copy)
    calib = next((scene_dir / "calibration").glob("*.json"))
    c = json.loads(calib.read_text())
    i = c["names"].index("CAMERA_09")
    for key in ("names", "intrinsics", "extrinsics"):
        del c[key][i]
    calib.write_text(json.dumps(c))
    report = check_data(_cfg(ddad_copy / "ddad.json"), progress=False)
    assert set(report.split_errors) == {"train", "val"} and not report.ok
    assert str(calib) in report.split_errors["val"] and "CAMERA_09" in report.split_errors["val"]
    assert str(calib) in report.summary()


def test_train_py_check_data_exit_status(ddad_copy, ddad_sample, capsys):
    train = load_script_module(TRAIN, "train_check_data")
    args = ["--config_file", str(DDAD_CONFIG), "--check_data", "--no_progress", "--set"]
    assert train.main(args + [f"data.data_path={ddad_sample / 'ddad.json'}"]) == 0
    assert "OK" in capsys.readouterr().out
    img = _datum_file(ddad_copy, 1, "CAMERA_06")
    img.unlink()
    assert train.main(args + [f"data.data_path={ddad_copy / 'ddad.json'}"]) == 1
    assert str(img) in capsys.readouterr().out
    assert train.main(args + [f"data.data_path={ddad_copy / 'nope.json'}"]) == 2  # one clear line
    assert "data.data_path" in capsys.readouterr().err


def test_vfdepth_check_data_decode(ddad_sample, capsys):
    from vfdepth_ros.cli import main

    rc = main(["check-data", "--config_file", str(DDAD_CONFIG), "--set", f"data.data_path={ddad_sample / 'ddad.json'}",
               "--set", "eval.eval_all_samples=true", "--splits", "val", "--decode", "--no_progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "val: 3 samples, 21 files checked" in out and "train" not in out
