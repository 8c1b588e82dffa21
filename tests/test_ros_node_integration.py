"""The node graph as separate processes (project launcher, loopback DDS, own domain) against a
synthetic six-camera rig published from this test: outputs, runtime parameters, diagnostics, bad input.

Small config (synthetic_tiny, 64x96 network), random weights, CPU.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed")
pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs is not built into this environment (tools/build_tf2_msgs.py)")
pytest.importorskip("vfdepth_core.inference", reason="vfdepth_core.inference is missing")

import rclpy  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402

from vfdepth_ros import conversions as cv  # noqa: E402
from vfdepth_ros import graph as G  # noqa: E402
from vfdepth_ros.toy_rig import CAMERAS, IMG_HW, rig_extrinsics, rig_K  # noqa: E402

from ros_helpers import TINY_CONFIG, graph_with_rig, spin_until  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]
NET_HW = (64, 96)
T0 = 1_000 * 1_000_000_000
DT = 100_000_000


def _param(name, value) -> Parameter:
    if isinstance(value, float):
        v = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    elif isinstance(value, int):
        v = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    else:
        v = ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=list(value))
    return Parameter(name=name, value=v)


def test_graph_end_to_end(ros_domain_id, repo_root, tmp_path):
    graph = G.surround_graph(camera_set="synthetic", model_config=str(repo_root / TINY_CONFIG),
                             overrides={"device": "cpu", "diagnostics_period_s": 0.3, "camera_timeout_s": 5.0,
                                        "max_pose_gap_s": 5.0},
                             respawn=False)
    with graph_with_rig(graph, ros_domain_id, tmp_path / "graph.log") as g:
        ex, rig, out, alive, lines = g.ex, g.rig, g.out, g.alive, g.lines
        client_node = rclpy.create_node("test_param_client", context=g.ctx)
        ex.add_node(client_node)
        rig.publish_tf_static()

        spin_until(ex, lambda: alive() and rig.matched(), 90, "the node's image/camera_info subscriptions")

        # Before any image: every camera is STALE, the model is up (random weights -> WARN)
        def diag():
            msgs = out.get("/diagnostics")
            return cv.diagnostics_to_dict(msgs[-1]) if msgs else {}

        spin_until(ex, lambda: alive() and diag().get("surround_depth: inference", {}).get("level") == "WARN", 60,
                   "diagnostics with the model loaded")
        d = diag()
        assert d["surround_depth: camera camera_01"]["level"] == "STALE"
        assert "RANDOM" in d["surround_depth: inference"]["message"]
        assert d["surround_depth: inference"]["values"]["device"] == "cpu"

        for i in range(len(CAMERAS)):  # calibration first (a real driver sends it with every image)
            rig.info_pubs[i].publish(rig.info_msg(i, T0))
        spin_until(ex, lambda: alive() and all(
            diag().get(f"surround_depth: camera {c}", {}).get("values", {}).get("calibration") == "ok"
            for c in CAMERAS), 30, "camera_info received by the node")

        def run_frame(k, **kw):
            stamp = T0 + k * DT
            sent = rig.publish_frame(k, stamp, **kw)
            spin_until(ex, lambda: alive() and len(out.with_stamp("virtual/depth", stamp)) >= 1
                       and all(out.with_stamp(f"{c}/depth", stamp) for c in CAMERAS)
                       and out.with_stamp("points", stamp) and out.with_stamp("odom", stamp)
                       and any(cv.stamp_to_ns(t.header.stamp) == stamp for m in out.get("/tf") for t in m.transforms),
                       60,
                       f"the outputs of frame {k}")
            return stamp, sent

        stamps = []
        for k in range(3):
            stamp, sent = run_frame(k)
            stamps.append(stamp)
            K_net = cv.scale_K(rig_K(), IMG_HW, NET_HW)
            for cam in CAMERAS:
                (dmsg,) = out.with_stamp(f"{cam}/depth", stamp)
                assert dmsg.header.frame_id == sent[cam].header.frame_id == cam
                assert dmsg.encoding == "32FC1" and (dmsg.height, dmsg.width) == NET_HW
                depth = cv.image_to_numpy(dmsg)
                assert depth.dtype == np.float32 and np.isfinite(depth).all() and (depth > 0).all()
                (imsg,) = out.with_stamp(f"{cam}/depth/camera_info", stamp)
                K, hw = cv.camera_info_to_K(imsg)
                assert hw == NET_HW and imsg.header.frame_id == cam
                np.testing.assert_allclose(K, K_net, rtol=1e-6)

        # odometry: first frame identity, then finite rigid motions; the same transform on /tf
        odoms = {cv.stamp_to_ns(m.header.stamp): m for m in out.get("odom")}
        T_first = cv.odometry_to_matrix(odoms[stamps[0]])
        np.testing.assert_allclose(T_first, np.eye(4), atol=1e-9)
        assert odoms[stamps[0]].header.frame_id == "odom" and odoms[stamps[0]].child_frame_id == "base_link"
        for s in stamps[1:]:
            T = cv.odometry_to_matrix(odoms[s])
            assert np.isfinite(T).all()
            np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-6)
            assert np.linalg.norm(T[:3, 3]) < 4.0 * 2  # the pose head clamps translation to +-4 m per step
        tf_odom = {cv.stamp_to_ns(t.header.stamp): t for m in out.get("/tf") for t in m.transforms
                   if t.child_frame_id == "base_link"}
        for s in stamps:
            np.testing.assert_allclose(cv.transform_to_matrix(tf_odom[s]), cv.odometry_to_matrix(odoms[s]), atol=1e-9)
        assert not np.allclose(cv.odometry_to_matrix(odoms[stamps[2]]), np.eye(4))  # it moved (random weights)
        # covariance (vfdepth_core.odometry.OdometryIntegrator): none at the start, growing with each step;
        # the first frame's twist is unknown (large variance), later ones are measured
        pose_var = [np.array(odoms[s].pose.covariance).reshape(6, 6)[0, 0] for s in stamps]
        assert pose_var[0] == 0.0 and all(b > a for a, b in zip(pose_var[1:], pose_var[2:]))
        assert np.array(odoms[stamps[0]].twist.covariance)[0] >= 1e6 > np.array(odoms[stamps[2]].twist.covariance)[0] > 0

        # point cloud: fields, frame, one point per kept pixel, at the back-projected position
        (pc,) = out.with_stamp("points", stamps[-1])
        assert pc.header.frame_id == "base_link"
        assert [f.name for f in pc.fields] == ["x", "y", "z", "rgb"]
        xyz, rgb = cv.pointcloud2_to_xyzrgb(pc)
        dec = 2  # config/synthetic.yaml point_decimation
        depths = [cv.image_to_numpy(out.with_stamp(f"{c}/depth", stamps[-1])[0]) for c in CAMERAS]
        expected = sum(int(((dd[::dec, ::dec] > 0) & (dd[::dec, ::dec] <= 80.0)).sum()) for dd in depths)
        assert xyz.shape == (expected, 3) and rgb.shape == (expected, 3) and np.isfinite(xyz).all()
        # first point = camera_01 pixel (0, 0) at its depth, moved to base_link
        K0 = cv.scale_K(rig_K(), IMG_HW, NET_HW)
        p_cam = np.linalg.inv(K0) @ np.array([0.0, 0.0, 1.0]) * depths[0][0, 0]
        p_ego = rig_extrinsics()[0] @ np.append(p_cam, 1.0)
        np.testing.assert_allclose(xyz[0], p_ego[:3], rtol=1e-4, atol=1e-4)

        # virtual view: published, and it changes when its pose parameter changes at run time
        (v0,) = out.with_stamp("virtual/depth", stamps[-1])
        assert v0.encoding == "32FC1" and (v0.height, v0.width) == NET_HW
        vd0 = cv.image_to_numpy(v0)
        assert np.isfinite(vd0).all()
        (vi0,) = out.with_stamp("virtual/camera_info", stamps[-1])
        assert vi0.header.frame_id == v0.header.frame_id

        cli = client_node.create_client(SetParameters, "/surround_depth/set_parameters")
        spin_until(ex, lambda: cli.service_is_ready(), 30, "the node's set_parameters service")

        def set_params(params):
            fut = cli.call_async(SetParameters.Request(parameters=params))
            spin_until(ex, fut.done, 30, "set_parameters reply")
            return fut.result().results

        res = set_params([_param("virtual.yaw_deg", 90.0), _param("virtual.x", 0.0), _param("virtual.z", 3.0),
                          _param("virtual.pitch_deg", 0.0)])
        assert all(r.successful for r in res), [r.reason for r in res]
        bad = set_params([_param("virtual.width", -5)])
        assert not bad[0].successful and "virtual.width" in bad[0].reason
        ro = set_params([_param("cameras", ["a", "b"])])
        assert not ro[0].successful

        stamp, _ = run_frame(3)
        (v1,) = out.with_stamp("virtual/depth", stamp)
        vd1 = cv.image_to_numpy(v1)
        assert np.isfinite(vd1).all() and not np.array_equal(vd0, vd1)
        tf_virtual = [t for m in out.get("/tf") for t in m.transforms
                      if t.child_frame_id == v0.header.frame_id and cv.stamp_to_ns(t.header.stamp) == stamp]
        Tv = cv.transform_to_matrix(tf_virtual[0])
        np.testing.assert_allclose(Tv[:3, 3], [0.0, 0.0, 3.0], atol=1e-9)
        np.testing.assert_allclose(Tv[:3, 2], [0.0, 1.0, 0.0], atol=1e-9)  # optical axis along +y (yaw 90)

        # bad inputs: garbage bytes, wrong size, NaN camera_info, duplicate stamps -> reported, node lives on
        k = 4
        garbage = rig.image_msg(1, k, T0 + k * DT)
        garbage.data = b"\x01\x02\x03"
        rig.publish_frame(k, T0 + k * DT, replace={1: garbage})

        def last_error(cam):
            return diag().get(f"surround_depth: camera {cam}", {}).get("values", {}).get("last_error", "")

        spin_until(ex, lambda: alive() and "bad image" in last_error("camera_05"), 30, "camera_05's bad image reported")
        small = cv.numpy_to_image(np.zeros((40, 50, 3), np.uint8), "rgb8", cv.make_header(T0 + 5 * DT, "camera_06"))
        rig.publish_frame(5, T0 + 5 * DT, replace={2: small})
        spin_until(ex, lambda: alive() and "does not match" in last_error("camera_06"), 30, "camera_06's size reported")
        nan_K = rig_K().copy()
        nan_K[0, 0] = np.nan
        d = diag()
        assert d["surround_depth: camera camera_05"]["level"] == "ERROR"
        assert not out.with_stamp("camera_01/depth", T0 + 4 * DT)  # the broken sets were skipped
        assert not out.with_stamp("camera_01/depth", T0 + 5 * DT)
        rig.publish_frame(2, T0 + 2 * DT)  # an old (duplicate) frame: rejected by the synchronizer
        rig.info_pubs[3].publish(rig.info_msg(3, T0 + 6 * DT, K=nan_K))
        stamp, _ = run_frame(6, info_override={3: rig.info_msg(3, T0 + 6 * DT, K=nan_K)})  # keeps the last valid K
        (imsg,) = out.with_stamp("camera_07/depth/camera_info", stamp)
        np.testing.assert_allclose(cv.camera_info_to_K(imsg)[0], cv.scale_K(rig_K(), IMG_HW, NET_HW), rtol=1e-6)
        spin_until(ex, lambda: int(diag().get("surround_depth: synchronizer", {}).get("values", {})
                                   .get("rejected_out_of_order", "0")) >= 6
                   and "bad camera_info" in diag().get("surround_depth: camera camera_07", {})
                   .get("values", {}).get("calibration", "")
                   and int(diag()["surround_depth: inference"]["values"]["frames_processed"]) >= 5,
                   30, "diagnostics of the duplicates, the NaN K and frame 6")
        inf = diag()["surround_depth: inference"]["values"]
        assert int(inf["sets_skipped"]) >= 2
        assert float(inf["latency_ms_p50"]) > 0
        alive()
    assert g.codes["surround_depth"] == 0, "\n".join(lines[-40:])


def test_set_waiting_for_tf_is_answered_when_tf_arrives(ros_domain_id, repo_root, tmp_path):
    """A first set whose /tf_static is late (lost to discovery, sent again by a player) still gets its
    outputs once TF arrives, although no newer images come (re-sent images are dropped as duplicates)."""
    graph = G.surround_graph(camera_set="synthetic", model_config=str(repo_root / TINY_CONFIG),
                             overrides={"device": "cpu", "camera_timeout_s": 5.0}, respawn=False)
    with graph_with_rig(graph, ros_domain_id, tmp_path / "graph.log") as g:
        ex, rig, out, alive, lines = g.ex, g.rig, g.out, g.alive, g.lines
        spin_until(ex, lambda: alive() and rig.matched(), 90, "the node's image/camera_info subscriptions")
        for i in range(len(CAMERAS)):
            rig.info_pubs[i].publish(rig.info_msg(i, T0))
        waiting = lambda: any("waiting for TF" in l for l in lines)  # noqa: E731
        deadline = time.monotonic() + 90
        while alive() and not waiting():  # (again every 2 s: the first images can be lost to discovery)
            assert time.monotonic() < deadline, "the node never reported the set waiting for TF:\n" + "\n".join(lines[-40:])
            rig.publish_frame(0, T0)
            end = time.monotonic() + 2.0
            while time.monotonic() < end and not waiting():
                ex.spin_once(timeout_sec=0.1)
        assert not out.with_stamp("camera_01/depth", T0)
        rig.publish_tf_static()
        spin_until(ex, lambda: alive() and all(out.with_stamp(f"{c}/depth", T0) for c in CAMERAS), 30,
                   "the waiting set's depth after /tf_static arrived")
