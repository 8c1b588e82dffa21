"""`make demo`'s script end to end with a given checkpoint (no training): synthetic drive -> bag -> the real
node graph (launcher, loopback DDS) -> recorded outputs -> metrics, trajectory plot, mosaic GIF, viewer file."""

from __future__ import annotations

import json
import subprocess
import sys

import imageio.v3 as iio
import pytest
import torch

from vfdepth_core.checkpoint import save_checkpoint
from vfdepth_core.config import load_config
from vfdepth_core.model import VFDepth
from vfdepth_ros.dds import loopback_env

pytest.importorskip("rclpy")
pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs not built (run tools/build_tf2_msgs.py)")

CAMS = ["camera_01", "camera_05", "camera_06", "camera_07", "camera_08", "camera_09"]


@pytest.mark.slow
@pytest.mark.ros
def test_demo_with_checkpoint_writes_every_result(repo_root, tmp_path, ros_domain_id):
    torch.manual_seed(0)
    cfg = load_config(repo_root / "training/configs/synthetic/synthetic_tiny.yaml")
    ckpt = save_checkpoint(tmp_path / "tiny.pt", VFDepth(cfg, load_imagenet=False), cfg)
    out = tmp_path / "demo"
    frames = 3
    p = subprocess.run([sys.executable, "tools/demo.py", "--checkpoint", str(ckpt), "--frames", str(frames),
                        "--out", str(out), "--domain-id", str(ros_domain_id)],
                       cwd=repo_root, env=loopback_env(domain_id=ros_domain_id), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=400)
    log = p.stdout[-6000:]
    assert p.returncode == 0, log
    metrics = json.loads((out / "metrics.json").read_text())
    # every camera's depth of every frame came out of the node and was matched to the bag's LIDAR
    assert metrics["depth"]["matched_per_camera"] == {c: frames for c in CAMS}, log
    assert all(metrics["depth"]["metric"]["per_camera"][c]["abs_rel"] > 0 for c in CAMS)
    assert metrics["odometry"]["num_poses"] == frames
    assert "abs_rel" in (out / "metrics.txt").read_text()
    for name in ("trajectory.png", "mosaic.gif", "view.rrd", "outputs.mcap"):
        assert (out / name).stat().st_size > 1000, name
    gif = iio.imread(out / "mosaic.gif", index=None)
    assert gif.shape[0] == frames and gif.shape[-1] == 3


def test_demo_report_puts_the_prior_beside_the_model(repo_root):
    """The demo's summary: step count, model and per-pixel prior with their ratio, the odometry headline."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("vfdepth_demo", repo_root / "tools" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    res = {"depth": {"metric": {"mean": {"abs_rel": 0.12, "d1": 0.85}}},
           "odometry": {"rel_trans_err_pct": 8.0, "rel_rot_err_deg_per_m": 0.2, "ate_rmse_m": 0.5,
                        "est_path_length_m": 18.0, "path_length_m": 18.9}}
    text = demo.report(res, {"metric": {"mean": {"abs_rel": 0.16, "d1": 0.75}}}, 300)
    assert "300 training steps" in text and "model / prior abs_rel: 0.75" in text
    assert "relative translation error 8.0 %" in text and "18.0 m of 18.9 m" in text
    assert "prior" not in demo.report(res, None, 300)
