"""`vfdepth view` and the in-process rerun logger: recordings verified by rerun's own tool and read back."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

rr = pytest.importorskip("rerun", reason="rerun-sdk is needed for the viewer")
pytest.importorskip("rosbags", reason="rosbags is needed to write the test bag")

from vfdepth_ros import conversions as cv  # noqa: E402
from vfdepth_ros.errors import UserError  # noqa: E402
from vfdepth_ros.viewer import cli as viewer  # noqa: E402
from vfdepth_ros.viewer.layout import TIMELINE  # noqa: E402
from vfdepth_ros.viewer.logger import FrameLogger  # noqa: E402
from vfdepth_ros.viewer.record import image_role, record_bags  # noqa: E402

import viz_helpers as VH  # noqa: E402


@pytest.fixture(scope="module")
def test_bag(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bag") / "drive"
    VH.write_test_bag(path)
    return path


@pytest.fixture(scope="module")
def recording(test_bag, tmp_path_factory):
    out = tmp_path_factory.mktemp("rrd") / "view.rrd"
    summary = record_bags([test_bag], out)
    return out, summary


def _table(rrd: Path, entity: str, static: bool = False):
    rec = rr.dataframe.load_recording(str(rrd))
    view = rec.view(index=TIMELINE, contents=entity)
    return (view.select_static() if static else view.select()).read_all()


def _entities(rrd: Path) -> set:
    rec = rr.dataframe.load_recording(str(rrd))
    return {c.entity_path for c in rec.schema().component_columns()}


CAM = "/world/base_link/camera_01_optical_frame"


def test_recording_verifies_and_has_expected_entities(recording):
    out, summary = recording
    viewer.verify_recording(out)  # rerun rrd verify
    ents = _entities(out)
    for cam in VH.CAMERAS:
        base = f"/world/base_link/{cam}_optical_frame"
        assert {base, f"{base}/image", f"{base}/depth"} <= ents
    assert {"/world", "/world/base_link", "/world/base_link/points", "/world/trajectory/odom",
            "/world/trajectory/gt_odom", "/world/virtual_optical_frame/depth"} <= ents
    for topic in ("camera_01/image_raw", "camera_01/depth", "points", "odom", "gt/odom", "virtual/depth", "/tf"):
        assert summary.messages[topic] == VH.N_FRAMES, topic
    assert summary.skipped_topics == []
    # The file also carries the viewer layout (a blueprint store beside the recording).
    printed = subprocess.run([viewer.rerun_cli(), "rrd", "print", str(out)], capture_output=True, text=True,
                             timeout=120, env=viewer.rerun_env())
    assert printed.returncode == 0 and "Blueprint" in printed.stdout + printed.stderr


def test_depth_image_round_trips_in_metres_with_pinhole(recording):
    out, _ = recording
    t = _table(out, f"{CAM}/depth")
    assert len(t) >= VH.N_FRAMES
    fmt = [f for f in t.column(f"{CAM}/depth:ImageFormat").to_pylist() if f][0][0]
    assert (fmt["width"], fmt["height"]) == (VH.DW, VH.DH)
    buf = [b for b in t.column(f"{CAM}/depth:ImageBuffer").to_pylist() if b][0][0]
    depth = np.frombuffer(bytes(buf), np.float32).reshape(VH.DH, VH.DW)
    np.testing.assert_allclose(depth, np.linspace(2.0, 40.0, VH.DH * VH.DW, dtype=np.float32).reshape(VH.DH, VH.DW))
    meter = [m for m in t.column(f"{CAM}/depth:DepthMeter").to_pylist() if m][0][0]
    assert meter == pytest.approx(1.0)
    # Pinhole of the depth image comes from <cam>/depth/camera_info (rerun stores it column-major).
    K = np.array([p for p in t.column(f"{CAM}/depth:PinholeProjection").to_pylist() if p][0][0]).reshape(3, 3).T
    np.testing.assert_allclose(K, VH.camera_K(VH.DH, VH.DW), rtol=1e-6)
    ti = _table(out, f"{CAM}/image")
    Ki = np.array([p for p in ti.column(f"{CAM}/image:PinholeProjection").to_pylist() if p][0][0]).reshape(3, 3).T
    np.testing.assert_allclose(Ki, VH.camera_K(VH.H, VH.W), rtol=1e-6)
    res = [r for r in ti.column(f"{CAM}/image:Resolution").to_pylist() if r][0][0]
    assert list(res) == [VH.W, VH.H]


def test_timeline_uses_header_stamps_and_points_keep_colours(recording):
    out, _ = recording
    t = _table(out, "/world/base_link/points")
    ns = [int(v) for v in t.column("stamp").cast("timestamp[ns]").cast("int64").to_pylist()]
    assert ns == [VH.T0_NS + k * VH.DT_NS for k in range(VH.N_FRAMES)]
    pos = t.column("/world/base_link/points:Position3D").to_pylist()[0]
    col = t.column("/world/base_link/points:Color").to_pylist()[0]
    assert len(pos) == 50 and len(col) == 50


def test_camera_extrinsics_and_trajectory(recording):
    out, _ = recording
    t = _table(out, CAM, static=True)  # from /tf_static
    tr = [v for v in t.column(f"{CAM}:Translation3D").to_pylist() if v][0][0]
    np.testing.assert_allclose(tr, [1.0, 0.0, 1.5])
    mat = np.array([v for v in t.column(f"{CAM}:TransformMat3x3").to_pylist() if v][0][0]).reshape(3, 3).T
    # camera_01 has yaw 0: its optical z axis is the vehicle's forward x axis.
    np.testing.assert_allclose(mat[:, 2], [1.0, 0.0, 0.0], atol=1e-6)
    traj = _table(out, "/world/trajectory/gt_odom")
    strips = [s for s in traj.column("/world/trajectory/gt_odom:LineStrip3D").to_pylist() if s]
    last = np.array(strips[-1][0])
    np.testing.assert_allclose(last[:, 0], [0.0, 1.0, 2.0])
    base = _table(out, "/world/base_link")
    trans = [v[0] for v in base.column("/world/base_link:Translation3D").to_pylist() if v]
    np.testing.assert_allclose(np.array(trans)[:, 0], [0.0, 1.0, 2.0])  # /tf odom -> base_link


def test_cli_view_writes_verified_recording(test_bag, tmp_path, capsys):
    from vfdepth_ros.cli import main

    out = tmp_path / "sub" / "cli.rrd"
    rc = main(["view", str(test_bag), "-o", str(out), "--every", "2", "--verify"])
    assert rc == 0 and out.is_file()
    text = capsys.readouterr().out
    assert "rerun rrd verify OK" in text
    t = _table(out, f"{CAM}/image")
    assert len([b for b in t.column(f"{CAM}/image:Blob").to_pylist() if b]) == 2  # frames 0 and 2 (JPEG)
    assert main(["view", str(tmp_path / "missing.mcap"), "-o", str(tmp_path / "y.rrd")]) == 2
    assert main(["view", str(test_bag), "-o", str(tmp_path / "y.txt")]) == 2


def test_two_bags_later_tf_wins(tmp_path):
    inputs = tmp_path / "in"
    VH.write_test_bag(inputs, with_outputs=False)
    outputs = tmp_path / "out"
    VH.write_test_bag(outputs)
    out = tmp_path / "both.rrd"
    summary = record_bags([inputs, outputs], out)
    assert summary.messages["camera_01/image_raw"] == 2 * VH.N_FRAMES
    viewer.verify_recording(out)


def test_log_frame_api(tmp_path):
    torch = pytest.importorskip("torch")  # the Predictor's outputs are tensors: accepted as they are
    out = tmp_path / "frames.rrd"
    logger = FrameLogger.to_file(out, jpeg_quality=0)
    cams = ["camera_01", "camera_05"]
    K = np.stack([VH.camera_K(VH.DH, VH.DW)] * 2)
    T = np.stack([np.eye(4)] * 2)
    for k in range(3):
        pose = np.eye(4)
        pose[0, 3] = float(k)
        logger.log_frame(VH.T0_NS + k * VH.DT_NS, cams,
                         images=np.zeros((2, 3, VH.H, VH.W), np.float32),
                         depth_m=torch.full((1, 2, 1, VH.DH, VH.DW), 5.0), K=torch.from_numpy(K), T_ego_cam=T,
                         T_world_ego=pose, T_world_ego_gt=pose, points_xyz=np.zeros((4, 3)),
                         points_rgb=np.zeros((4, 3), np.uint8), virtual_depth_m=np.ones((1, VH.DH, VH.DW)),
                         virtual_K=K[:1], virtual_T_ego_cam=T[:1])
    logger.close()
    viewer.verify_recording(out)
    ents = _entities(out)
    assert {"/world/base_link/camera_01/image", "/world/base_link/camera_05/depth", "/world/base_link/points",
            "/world/trajectory/odom", "/world/trajectory/gt_odom", "/world/base_link/virtual_0/depth"} <= ents
    t = _table(out, "/world/base_link/camera_01/image")
    Ki = np.array([p for p in t.column("/world/base_link/camera_01/image:PinholeProjection").to_pylist()
                   if p][0][0]).reshape(3, 3).T
    np.testing.assert_allclose(Ki, cv.scale_K(K[0], (VH.DH, VH.DW), (VH.H, VH.W)), rtol=1e-6)
    td = _table(out, "/world/base_link/camera_05/depth")
    buf = [b for b in td.column("/world/base_link/camera_05/depth:ImageBuffer").to_pylist() if b][-1][0]
    assert np.all(np.frombuffer(bytes(buf), np.float32) == 5.0)
    tt = _table(out, "/world/trajectory/odom")
    last = [s for s in tt.column("/world/trajectory/odom:LineStrip3D").to_pylist() if s][-1][0]
    np.testing.assert_allclose(np.array(last)[:, 0], [0.0, 1.0, 2.0])
    with pytest.raises(UserError, match="images"):
        logger2 = FrameLogger(rr.RecordingStream("t"))
        logger2.log_frame(0, cams, images=np.zeros((3, VH.H, VH.W, 3), np.uint8))


def test_codec_decodes_bag_messages():
    """The codec reads rosbags' message objects as it reads rclpy's (the viewer's decoders)."""
    ts = VH._ts()
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[..., 0] = 255  # blue in BGR
    msg = VH._image(ts, 0, "f", bgr, "bgr8")
    assert cv.image_to_array(msg)[0, 0].tolist() == [0, 0, 255]
    rgba = np.concatenate([bgr[..., ::-1], np.full((2, 3, 1), 9, np.uint8)], axis=2)
    assert cv.image_to_array(VH._image(ts, 0, "f", rgba, "rgba8"))[0, 0].tolist() == [0, 0, 255]
    mm = np.array([[1500, 0]], np.uint16)
    assert cv.image_to_array(VH._image(ts, 0, "f", mm, "16UC1")).tolist() == [[1.5, 0.0]]
    with pytest.raises(cv.ConversionError, match="encoding"):
        cv.image_to_array(VH._image(ts, 0, "f", bgr, "yuv422"))
    xyz = np.array([[1, 2, 3], [np.nan, 0, 0]], np.float32)
    cloud = VH._cloud(ts, 0, "base_link", xyz, np.array([[255, 128, 0], [1, 2, 3]], np.uint8))
    p, c = cv.pointcloud2_to_xyzrgb(cloud)
    np.testing.assert_array_equal(p, xyz)
    assert c.tolist() == [[255, 128, 0], [1, 2, 3]]
    assert image_role("camera_01/image_raw/compressed") == "image"
    assert image_role("camera_01/depth") == "depth" and image_role("virtual/depth") == "depth"
    assert image_role("diagnostics") is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> set:
    addrs = set()
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(f).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            ip_hex, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                addrs.add(ip_hex)
    return addrs


def test_serve_binds_loopback_only(recording):
    out, _ = recording
    with pytest.raises(UserError, match="bind"):
        viewer.serve_command(out, bind="localhost-ish")
    grpc_port, web_port = _free_port(), _free_port()
    cmd = viewer.serve_command(out, grpc_port=grpc_port, web_port=web_port)
    assert cmd[cmd.index("--bind") + 1] == "127.0.0.1"
    env = viewer.rerun_env()
    assert '"analytics_enabled":false' in (Path(env["XDG_CONFIG_HOME"]) / "rerun" / "analytics.json").read_text()
    # Own process group: the rerun launcher starts the server binary as a child, and both must go.
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (_listening(grpc_port) and _listening(web_port)):
            assert proc.poll() is None, "rerun server exited early"
            time.sleep(0.2)
        for port in (grpc_port, web_port):
            addrs = _listening(port)
            assert addrs == {"0100007F"}, f"port {port} listens on {addrs}, expected 127.0.0.1 only"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
