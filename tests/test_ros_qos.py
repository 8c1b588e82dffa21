"""QoS that just works with real drivers: the node hears images and camera_info from best-effort
(sensor-data) and reliable publishers; its outputs reach reliable and best-effort subscribers; a peer
whose QoS cannot match is reported in the log and on /diagnostics (with each input's measured rate).

In-process and fast: the node runs without a model (nothing to infer here), in a context of its own."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs is not built into this environment (tools/build_tf2_msgs.py)")

import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from ros_helpers import spin_until  # noqa: E402
from vfdepth_ros import conversions as cv  # noqa: E402
from vfdepth_ros.nodes.surround_depth import SurroundDepthNode  # noqa: E402
from vfdepth_ros.toy_rig import rig_K  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]  # about 7 s each (node start-up and discovery)
CAMS = ["camera_01", "camera_05"]
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
PROFILES = {"best_effort": qos_profile_sensor_data, "reliable": RELIABLE}


@pytest.fixture
def graph(ros_domain_id):
    """(executor, the node, a peer node) in a context of their own."""
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain_id)
    ex = SingleThreadedExecutor(context=ctx)
    node = SurroundDepthNode(context=ctx, parameter_overrides=[
        Parameter("cameras", value=CAMS), Parameter("diagnostics_period_s", value=0.2)])
    peer = rclpy.create_node("qos_peer", context=ctx)
    ex.add_node(node)
    ex.add_node(peer)
    try:
        yield ex, node, peer
    finally:
        node.destroy_node()
        peer.destroy_node()
        ex.shutdown()
        rclpy.try_shutdown(context=ctx)


def _diag(node):
    return {s.name: s for s in node.diagnostics()}


@pytest.mark.parametrize("qos", list(PROFILES))
def test_inputs_are_heard_from_best_effort_and_reliable_drivers(graph, qos):
    ex, node, peer = graph
    img_pub = peer.create_publisher(Image, "camera_01/image_raw", PROFILES[qos])
    info_pub = peer.create_publisher(CameraInfo, "camera_01/camera_info", PROFILES[qos])
    spin_until(ex, lambda: img_pub.get_subscription_count() and info_pub.get_subscription_count(), 20,
               "the node's subscriptions")
    img = np.zeros((4, 6, 3), np.uint8)
    k = 0

    def publish_until(pred):
        nonlocal k
        k += 1
        stamp = k * 50_000_000
        info_pub.publish(cv.K_to_camera_info(rig_K((4, 6)), (4, 6), cv.make_header(stamp, "camera_01")))
        img_pub.publish(cv.numpy_to_image(img, "rgb8", cv.make_header(stamp, "camera_01")))
        return pred()

    cam = node.cams[0]
    spin_until(ex, lambda: publish_until(lambda: cam.received >= 5 and len(cam.info_arrivals) >= 5), 20,
               f"images and camera_info from a {qos} publisher")
    values = {kv.key: kv.value for kv in _diag(node)["surround_depth: camera camera_01"].values}
    assert float(values["rate_hz"]) > 0 and float(values["camera_info_rate_hz"]) > 0
    assert node.qos_mismatches == {}


@pytest.mark.parametrize("qos", list(PROFILES))
def test_outputs_reach_reliable_and_best_effort_subscribers(graph, qos):
    ex, node, peer = graph
    got = []
    sub = peer.create_subscription(Image, "camera_01/depth", got.append, PROFILES[qos])
    spin_until(ex, lambda: node.pub_depth[0].get_subscription_count() > 0, 20, "the subscriber matched")
    msg = cv.depth_to_image(np.full((2, 3), 4.5, np.float32), cv.make_header(7, "camera_01"))

    def publish():
        node.pub_depth[0].publish(msg)
        return bool(got)

    spin_until(ex, publish, 20, f"depth at a {qos} subscriber")
    np.testing.assert_array_equal(cv.image_to_numpy(got[0]), 4.5)
    assert node.qos_mismatches == {}
    peer.destroy_subscription(sub)


def test_incompatible_peers_are_reported_not_silent(graph):
    ex, node, peer = graph
    # a subscriber that wants old messages kept (transient local) cannot match a volatile publisher
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    peer.create_subscription(Image, "camera_01/depth", lambda m: None, latched)
    # a best-effort /tf_static publisher cannot match the reliable subscription of every TF listener
    peer.create_publisher(TFMessage, "/tf_static", qos_profile_sensor_data)
    spin_until(ex, lambda: {"/camera_01/depth", "/tf_static"} <= set(node.qos_mismatches), 20,
               "both mismatches noticed")
    assert node.qos_mismatches["/camera_01/depth"].direction == "out"
    assert node.qos_mismatches["/camera_01/depth"].policy == "DURABILITY"
    assert node.qos_mismatches["/tf_static"].direction == "in"
    assert node.qos_mismatches["/tf_static"].policy == "RELIABILITY"
    status = _diag(node)["surround_depth: qos"]
    assert cv._level_int(status.level) == cv._level_int(cv.LEVELS["ERROR"])  # an input hears nothing
    assert "/tf_static" in status.message and "/camera_01/depth" in status.message
    values = {kv.key: kv.value for kv in status.values}
    assert "RELIABILITY" in values["/tf_static"] and "DURABILITY" in values["/camera_01/depth"]


def test_qos_status_is_ok_without_mismatches(graph):
    _, node, _ = graph
    status = _diag(node)["surround_depth: qos"]
    assert status.message == "no incompatible QoS seen"
