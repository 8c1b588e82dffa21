"""Node parameters -> core objects, and the node's behaviour on parameter/calibration problems
(in-process rclpy, loopback profile, own domain)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vfdepth_core import geometry
from vfdepth_ros import params as P


def test_defaults_and_round_trip():
    p = P.node_params_from_values({"model_config": "x.yaml"})
    assert p.cameras == P.DDAD_CAMERAS and p.device == "auto" and p.torch_device is None
    assert P.node_params_from_values(P.params_to_values(p)) == p
    q = P.with_values(p, {"virtual.yaw_deg": 45.0, "point_decimation": 2})
    assert q.virtual.yaw_deg == 45.0 and q.point_decimation == 2 and p.point_decimation == 4


def test_parameters_are_declared_by_the_dataclass_fields():
    """One declaration: every NodeParams field (virtual.* for the nested one) is a parameter whose default,
    description and dynamic flag come from the field."""
    from dataclasses import fields

    names = [f.name for f in fields(P.NodeParams) if f.name != "virtual"]
    assert [s.name for s in P.PARAMETERS] == names + [f"virtual.{f.name}" for f in fields(P.VirtualCameraParams)]
    assert P.params_to_values(P.NodeParams()) == {s.name: s.default for s in P.PARAMETERS}
    assert P.SPECS["checkpoint"].dynamic and not P.SPECS["cameras"].dynamic and P.SPECS["virtual.yaw_deg"].dynamic
    assert "network size" in P.SPECS["virtual.width"].description and P.SPECS["amp"].choices == ("none", "fp16", "bf16")


@pytest.mark.parametrize("values,name", [
    ({"device": "gpu"}, "'device'"), ({"amp": "fp8"}, "'amp'"), ({"image_transport": "theora"}, "'image_transport'"),
    ({"cameras": []}, "'cameras'"), ({"cameras": ["a", "a"]}, "'cameras'"), ({"slop_s": 0.0}, "'slop_s'"),
    ({"queue_size": 0}, "'queue_size'"), ({"point_decimation": 1.5}, "'point_decimation'"),
    ({"virtual.width": -1}, "'virtual.width'"), ({"virtual.x": float("nan")}, "'virtual.x'"),
    ({"virtual.fx": 100.0}, "'virtual.fx'"), ({"calibration_source": "file"}, "'calibration_file'"),
    ({"bogus": 1}, "'bogus'"), ({"slop_s": "fast"}, "'slop_s'"),
])
def test_bad_values_name_the_parameter(values, name):
    with pytest.raises(P.ParamError, match=name):
        P.node_params_from_values(values)


def test_virtual_camera_pose_and_intrinsics():
    K_ref = np.array([[50.0, 0, 47.5], [0, 50.0, 31.5], [0, 0, 1]])
    K, T = P.virtual_camera(P.VirtualCameraParams(x=1.0, y=2.0, z=3.0), (64, 96), K_ref)
    np.testing.assert_allclose(K, K_ref)
    np.testing.assert_allclose(T[:3, 3], [1, 2, 3])
    np.testing.assert_allclose(T[:3, 2], [1, 0, 0], atol=1e-12)  # optical axis forward
    np.testing.assert_allclose(T[:3, 0], [0, -1, 0], atol=1e-12)  # image x to the right = -y
    _, T = P.virtual_camera(P.VirtualCameraParams(yaw_deg=90.0, pitch_deg=30.0), (64, 96), K_ref)
    np.testing.assert_allclose(T[:3, 2], [0, np.cos(np.radians(30)), -np.sin(np.radians(30))], atol=1e-6)
    # explicit intrinsics for a 192x128 image, scaled to the 96x64 network size (half-pixel correct)
    K, _ = P.virtual_camera(P.VirtualCameraParams(fx=100.0, fy=100.0, cx=95.5, cy=63.5, width=192, height=128),
                            (64, 96), K_ref)
    np.testing.assert_allclose(K, [[50.0, 0, 47.5], [0, 50.0, 31.5], [0, 0, 1]])


def test_calibration_file(tmp_path):
    f = tmp_path / "rig.yaml"
    f.write_text("""
camera_01: {width: 96, height: 64, K: [50, 0, 47.5, 0, 50, 31.5, 0, 0, 1], translation: [1, 0, 1.5],
            rotation_wxyz: [0.5, -0.5, 0.5, -0.5]}
camera_05: {frame_id: cam5, width: 96, height: 64, fx: 40, fy: 41, cx: 47.5, cy: 31.5,
            T_ego_cam: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]}
""")
    cal = P.load_calibration_file(str(f), ["camera_01", "camera_05"])
    np.testing.assert_allclose(cal["camera_01"].T_ego_cam[:3, :3], geometry.R_BODY_OPTICAL.numpy(), atol=1e-12)
    assert cal["camera_05"].frame_id == "cam5" and cal["camera_05"].K[1, 1] == 41 and cal["camera_05"].hw == (64, 96)
    with pytest.raises(P.ParamError, match="no entry for camera 'camera_06'"):
        P.load_calibration_file(str(f), ["camera_06"])
    with pytest.raises(P.ParamError, match="not found"):
        P.load_calibration_file(str(tmp_path / "nope.yaml"), ["camera_01"])
    f.write_text("camera_01: {width: 96, height: 64, fx: .nan, fy: 1, cx: 1, cy: 1}\n")
    with pytest.raises(P.ParamError, match="camera 'camera_01'"):
        P.load_calibration_file(str(f), ["camera_01"])


def test_load_predictor_errors_name_the_parameter(tmp_path):
    pytest.importorskip("vfdepth_core.inference")
    with pytest.raises(P.ParamError, match="'checkpoint'.*not found"):
        P.load_predictor(P.node_params_from_values({"checkpoint": str(tmp_path / "missing.pt")}))
    with pytest.raises(P.ParamError, match="'checkpoint' and 'model_config' are both empty"):
        P.load_predictor(P.node_params_from_values({}))
    with pytest.raises(P.ParamError, match="'model_config'"):
        P.load_predictor(P.node_params_from_values({"model_config": str(tmp_path / "missing.yaml")}))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(P.ParamError, match="'checkpoint': cannot load"):
        P.load_predictor(P.node_params_from_values({"checkpoint": str(bad)}))


# ------------------------------------------------------------------------------- in-process node

@pytest.fixture
def ros_ctx(ros_domain_id):
    rclpy = pytest.importorskip("rclpy")
    pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs is not built into this environment")
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain_id)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def _node(ctx, **params):
    from rclpy.parameter import Parameter

    from vfdepth_ros.nodes.surround_depth import SurroundDepthNode

    return SurroundDepthNode(context=ctx, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])


@pytest.mark.ros
def test_node_startup_error_names_the_parameter(ros_ctx):
    with pytest.raises(P.ParamError, match="'device'"):
        _node(ros_ctx, device="tpu")


@pytest.mark.ros
def test_node_stays_up_without_a_checkpoint_and_reports_it(ros_ctx, tmp_path):
    from vfdepth_ros import conversions as cv

    node = _node(ros_ctx, checkpoint=str(tmp_path / "missing.pt"))
    try:
        deadline = time.monotonic() + 20
        while not node.predictor_error and time.monotonic() < deadline:
            time.sleep(0.05)
        d = cv.diagnostics_to_dict(cv.diagnostic_array(node.diagnostics(), 0))
        inf = d["surround_depth: inference"]
        assert inf["level"] == "ERROR" and "'checkpoint'" in inf["message"] and "not found" in inf["message"]
        assert d["surround_depth: camera camera_01"]["level"] == "STALE"
        assert node.worker.is_alive()
    finally:
        node.destroy_node()
    assert not node.worker.is_alive()
