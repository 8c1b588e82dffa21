"""tools/behaviour_snapshot.py: a bag's messages become hashes and arrays keyed by stamp, and --compare
tells equal snapshots from different ones (exit 0/1) with the largest absolute difference."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from bag_helpers import write_outputs_bag

pytest.importorskip("rosbags")
pytest.importorskip("mcap")


@pytest.fixture(scope="module")
def snap(repo_root):
    spec = importlib.util.spec_from_file_location("behaviour_snapshot", repo_root / "tools" / "behaviour_snapshot.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _outputs_bag(path, depth_value: float):
    K = np.array([[50.0, 0, 39.5], [0, 50.0, 23.5], [0, 0, 1]])
    frames = [(t, np.full((48, 80), depth_value + t * 1e-9, np.float32), K, "camera_01_optical_frame")
              for t in (1_000_000_000, 1_100_000_000)]
    return write_outputs_bag(path, {"camera_01": frames})


def test_bag_snapshot_holds_the_decoded_depth_keyed_by_stamp(snap, tmp_path):
    bag = _outputs_bag(tmp_path / "a.mcap", 5.0)
    snap.snapshot_bag(bag, tmp_path / "snap" / "outputs", keep_log_time=False)
    summary = json.loads((tmp_path / "snap" / "outputs.json").read_text())
    assert summary["camera_01/depth"]["keys_ns"] == [1_000_000_000, 1_100_000_000]
    assert summary["camera_01/depth"]["strings"]["encoding"] == ["32FC1"]
    with np.load(tmp_path / "snap" / "outputs.npz") as z:
        depth = z["camera_01/depth/0001/image"]
        K = z["camera_01/depth/camera_info/0000/k"]
    assert depth.shape == (48, 80, 1) and depth.dtype == np.float32
    np.testing.assert_allclose(depth, 6.1, rtol=1e-6)
    np.testing.assert_allclose(K.reshape(3, 3)[0, 0], 50.0)


def test_compare_reports_equal_and_different_with_max_difference(snap, tmp_path, capsys):
    dirs = {}
    for name, value in (("a", 5.0), ("b", 5.0), ("c", 5.25)):
        dirs[name] = tmp_path / name
        snap.snapshot_bag(_outputs_bag(tmp_path / f"{name}.mcap", value), dirs[name] / "node" / "outputs",
                          keep_log_time=False)
    assert snap.main(["--compare", str(dirs["a"]), str(dirs["b"])]) == 0
    assert "EQUAL" in capsys.readouterr().out
    assert snap.main(["--compare", str(dirs["a"]), str(dirs["c"])]) == 1
    out = capsys.readouterr().out
    assert "DIFFERENT" in out and "camera_01/depth/0000/image" in out and "0.25" in out
    assert snap.main(["--compare", str(dirs["a"]), str(dirs["c"]), "--atol", "0.3"]) == 1  # the payload hash still differs
    assert snap.main(["--compare", str(dirs["a"]), str(tmp_path / "missing")]) == 2
