"""The managed (lifecycle) node, driven through its lifecycle services as `ros2 lifecycle set` does:
configure loads the model and checks the calibration file, activate starts publishing, deactivate
stops, cleanup frees the model; /diagnostics reports the state. In-process, tiny random model."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs is not built into this environment (tools/build_tf2_msgs.py)")

import rclpy  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from ros_helpers import TINY_CONFIG, OutputCollector, RigPublisher, spin_until  # noqa: E402
from vfdepth_ros.nodes.surround_depth import SurroundDepthNode  # noqa: E402
from vfdepth_ros.toy_rig import CAMERAS  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]
T0 = 2_000 * 1_000_000_000


@pytest.fixture
def ctx_ex(ros_domain_id):
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain_id)
    ex = SingleThreadedExecutor(context=ctx)
    yield ctx, ex
    ex.shutdown()
    rclpy.try_shutdown(context=ctx)


def _managed(ctx, repo_root, **extra):
    params = {"cameras": list(CAMERAS), "model_config": str(repo_root / TINY_CONFIG), "device": "cpu",
              "autostart": False, "diagnostics_period_s": 0.2, **extra}
    return SurroundDepthNode(context=ctx, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])


class _Lifecycle:
    """What `ros2 lifecycle set/get` do: the node's change_state and get_state services."""

    def __init__(self, ex, client_node, target: str) -> None:
        self.ex = ex
        self.change = client_node.create_client(ChangeState, f"{target}/change_state")
        self.get = client_node.create_client(GetState, f"{target}/get_state")
        spin_until(ex, lambda: self.change.service_is_ready() and self.get.service_is_ready(), 20,
                   "the lifecycle services")

    def _call(self, client, req):
        fut = client.call_async(req)
        spin_until(self.ex, fut.done, 120, "the lifecycle service answer")
        return fut.result()

    def set(self, label: str) -> bool:
        return self._call(self.change, ChangeState.Request(transition=Transition(label=label))).success

    def state(self) -> str:
        return self._call(self.get, GetState.Request()).current_state.label


def _inference_status(node):
    (st,) = [s for s in node.diagnostics() if s.name == "surround_depth: inference"]
    return st.message, {kv.key: kv.value for kv in st.values}


def test_transitions_load_publish_stop_and_free(ctx_ex, repo_root):
    ctx, ex = ctx_ex
    node = _managed(ctx, repo_root)
    rig, out = RigPublisher(context=ctx), OutputCollector(context=ctx)
    client = rclpy.create_node("lifecycle_client", context=ctx)
    for n in (node, rig, out, client):
        ex.add_node(n)
    try:
        lc = _Lifecycle(ex, client, "/surround_depth")
        assert lc.state() == "unconfigured" and node.predictor is None
        msg, vals = _inference_status(node)
        assert vals["lifecycle_state"] == "unconfigured" and "not publishing" in msg

        assert lc.set("configure") and lc.state() == "inactive"
        assert node.predictor is not None  # configure loaded the model
        rig.publish_tf_static()
        spin_until(ex, rig.matched, 30, "the node's subscriptions")

        def frame_out(k):
            stamp = T0 + k * 100_000_000
            rig.publish_frame(k, stamp)
            return lambda: bool(out.with_stamp("camera_01/depth", stamp))

        got = frame_out(0)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            ex.spin_once(timeout_sec=0.1)
        assert not got(), "an inactive node published"

        assert lc.set("activate") and lc.state() == "active"
        k = 1
        while True:  # the first sets may wait for camera_info/TF discovery
            got = frame_out(k)
            try:
                spin_until(ex, got, 10, f"depth of frame {k}")
                break
            except AssertionError:
                k += 1
                assert k < 8, "no depth from the active node"

        assert lc.set("deactivate") and lc.state() == "inactive"
        got = frame_out(k + 1)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            ex.spin_once(timeout_sec=0.1)
        assert not got(), "a deactivated node published"

        assert lc.set("cleanup") and lc.state() == "unconfigured"
        assert node.predictor is None  # the model is freed
        assert _inference_status(node)[1]["device"] == "none"
    finally:
        for n in (client, out, rig, node):
            n.destroy_node()


def test_configure_fails_on_a_bad_calibration_file(ctx_ex, repo_root, tmp_path):
    ctx, ex = ctx_ex
    bad = tmp_path / "calib.yaml"
    bad.write_text("camera_01: {width: 10}\n")  # no intrinsics, but calibration_source is 'file'
    node = _managed(ctx, repo_root, calibration_file=str(bad), calibration_source="file")
    client = rclpy.create_node("lifecycle_client", context=ctx)
    for n in (node, client):
        ex.add_node(n)
    try:
        lc = _Lifecycle(ex, client, "/surround_depth")
        assert not lc.set("configure")
        assert lc.state() == "unconfigured" and node.predictor is None
        assert "calibration_file" in node.predictor_error
    finally:
        client.destroy_node()
        node.destroy_node()
