"""surround_depth: six synchronized cameras in; metric depth per camera, ego odometry, a fused point
cloud and depth at a virtual viewpoint out.

Wiring only: messages become arrays in :mod:`vfdepth_ros.conversions`, stamps are matched by
:mod:`vfdepth_ros.sync`, parameters are validated by :mod:`vfdepth_ros.params`, the network runs in
:class:`vfdepth_core.inference.Predictor` and all geometry is :mod:`vfdepth_core.geometry`.

Threads: the executor thread only files incoming messages (synchronizer, calibration, TF) and
publishes /diagnostics; one worker thread takes the newest complete set from a one-slot latch, runs
the predictor and publishes the results. When inference is slower than the cameras, sets that were
replaced before the worker got to them are dropped and counted (never an unbounded queue).

The node's jobs, one module each beside this one: :mod:`.parameters` (declaration, run-time changes),
:mod:`.inputs` (callbacks, a set's images and calibration), :mod:`.pipeline` (the worker, the predictor),
:mod:`.publishing` (output messages), :mod:`.diagnostics` (/diagnostics, QoS mismatches); names and QoS
profiles they share are in :mod:`.common`. This module composes them into the lifecycle node.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from typing import Any, Deque, Dict, Optional, Sequence, Tuple

import torch

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.qos import QoSProfile, qos_profile_sensor_data

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from vfdepth_core.odometry import OdometryIntegrator
from vfdepth_core.rig import Rig
from vfdepth_ros import params as P
from vfdepth_ros.nodes.common import NODE_NAME, OUT_QOS, TF_QOS, TF_STATIC_QOS, TFMessage
from vfdepth_ros.nodes.diagnostics import DiagnosticsMixin, QosMismatch
from vfdepth_ros.nodes.inputs import CameraState, InputsMixin
from vfdepth_ros.nodes.parameters import ParametersMixin, declare_parameters
from vfdepth_ros.nodes.pipeline import PipelineMixin
from vfdepth_ros.nodes.publishing import PublishingMixin
from vfdepth_ros.nodes.tf_buffer import TfBuffer
from vfdepth_ros.sync import ApproximateTimeSync, LatestSetLatch, SyncSet

_STOP_JOIN_S = 1.0  # longest wait at shutdown for the set in the network (a clean stop takes < 3 s)


class _Throttle:
    """Per-key log throttling (rclpy throttles per call site; problems here are per camera)."""

    def __init__(self, period_s: float = 5.0) -> None:
        self.period_s = period_s
        self._last: Dict[str, float] = {}

    def ready(self, key: str) -> bool:
        now = time.monotonic()
        if now - self._last.get(key, -1e9) >= self.period_s:
            self._last[key] = now
            return True
        return False


class SurroundDepthNode(InputsMixin, PipelineMixin, PublishingMixin, DiagnosticsMixin, ParametersMixin,
                        LifecycleNode):
    """See the module docstring. Raises params.ParamError at construction for unusable parameters.

    A managed (lifecycle) node: configure loads the model and checks the calibration file, activate
    starts taking images and publishing, deactivate stops that, cleanup frees the model. With
    parameter 'autostart' (the default) it configures and activates itself at start-up, as a plain
    node would; with autostart false it waits for `ros2 lifecycle set`."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self.params: P.NodeParams = declare_parameters(self)
        p = self.params
        self.calibration: Dict[str, P.CameraCalibration] = {}
        self._configured = threading.Event()  # lifecycle: model may be loaded (configure .. cleanup)
        self._active = threading.Event()  # lifecycle: images taken, outputs published
        self._log = self.get_logger()
        self._throttle = _Throttle(5.0)
        self._lock = threading.Lock()
        self.cams = [CameraState(c) for c in p.cameras]
        self.sync = ApproximateTimeSync(len(p.cameras), queue_size=p.queue_size, slop_s=p.slop_s,
                                        inter_message_lower_bound_s=p.inter_message_lower_bound_s or None)
        self.latch: LatestSetLatch[Tuple[SyncSet, float]] = LatestSetLatch()
        self.tf = TfBuffer()
        self.tf_errors = 0

        # worker state
        self.predictor = None
        self.predictor_error = ""
        self._reload = threading.Event()
        self.frames_done = 0
        self.frames_failed = 0
        self.frames_skipped = 0  # sets that could not be used (bad image, missing calibration)
        # The last set skipped only for calibration that has not arrived yet: (set, emit time, first try).
        # Without a newer set it is tried again (a first frame whose /tf_static was lost to late discovery
        # is otherwise never answered, because its re-sent images are duplicates).
        self._waiting: Optional[Tuple[SyncSet, float, float]] = None
        self.last_problem = ""
        self.infer_ms: Deque[float] = deque(maxlen=100)
        self.latency_ms: Deque[float] = deque(maxlen=100)
        self.out_times: Deque[float] = deque(maxlen=30)
        self.odom = OdometryIntegrator(p.max_pose_gap_s)  # T_odom_base from the per-frame motions
        self._prev: Optional[Tuple[Rig, list]] = None  # the last set's rig and images (3, H, W) uint8
        self._reset_odom = False

        # I/O. Inputs are best-effort (sensor data): they hear best-effort and reliable drivers alike.
        # Outputs are reliable, volatile: reliable (rviz2, ros2 topic echo) and best-effort subscribers
        # both get them. A peer whose QoS cannot match (e.g. a transient-local subscriber, a best-effort
        # /tf_static) is logged and reported on /diagnostics instead of silence.
        self.qos_mismatches: Dict[str, QosMismatch] = {}
        self.subs = []
        for i, cam in enumerate(p.cameras):
            if p.image_transport == "raw":
                topic, mtype = f"{cam}/image_raw", Image
            else:
                topic, mtype = f"{cam}/image_raw/compressed", CompressedImage
            self.subs.append(self._subscribe(mtype, topic, lambda m, i=i: self._on_image(i, m),
                                                      qos_profile_sensor_data))
            if p.calibration_source == "camera_info":
                self.subs.append(self._subscribe(CameraInfo, f"{cam}/camera_info",
                                                          lambda m, i=i: self._on_info(i, m), qos_profile_sensor_data))
        if p.extrinsics_source == "tf":
            self.subs.append(self._subscribe(TFMessage, "/tf_static", lambda m: self._on_tf(m, True), TF_STATIC_QOS))
            self.subs.append(self._subscribe(TFMessage, "/tf", lambda m: self._on_tf(m, False), TF_QOS))
        self.pub_depth = [self._publisher(Image, f"{c}/depth", OUT_QOS) for c in p.cameras]
        self.pub_depth_info = [self._publisher(CameraInfo, f"{c}/depth/camera_info", OUT_QOS) for c in p.cameras]
        self.pub_odom = self._publisher(Odometry, "odom", OUT_QOS)
        self.pub_tf = self._publisher(TFMessage, "/tf", TF_QOS) if TFMessage is not None else None
        self.pub_points = self._publisher(PointCloud2, "points", OUT_QOS)
        self.pub_vdepth = self._publisher(Image, "virtual/depth", OUT_QOS)
        self.pub_vinfo = self._publisher(CameraInfo, "virtual/camera_info", OUT_QOS)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.diag_timer = self.create_timer(p.diagnostics_period_s, self._publish_diagnostics)

        self._stop = threading.Event()
        self.worker = threading.Thread(target=self._work, name="surround_depth_worker", daemon=True)
        self.worker.start()
        self._autostarting = p.autostart
        if p.autostart:
            if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                self.destroy_node()
                raise P.ParamError(self.predictor_error)
            self.trigger_activate()
        self._autostarting = False
        self._log.info(f"surround_depth: {len(p.cameras)} cameras ({', '.join(p.cameras)}), {p.image_transport} "
                       f"images, calibration from {p.calibration_source}, extrinsics from {p.extrinsics_source}, "
                       f"slop {p.slop_s} s, device {p.device}")

    # ------------------------------------------------------------------------------------ lifecycle
    def lifecycle_state(self) -> str:
        return self._state_machine.current_state[1]

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Check the calibration file and load the model (at start-up with autostart, the worker
        loads it, retrying as parameters change, so the node comes up even without a model)."""
        try:
            self.calibration = P.calibration_for(self.params)
        except P.ParamError as exc:
            self._log.error(f"configure failed: {exc}")
            self.predictor_error = str(exc)
            return TransitionCallbackReturn.FAILURE
        if not self._autostarting:
            self._load_predictor()
            if self.predictor is None:
                self._log.error(f"configure failed: {self.predictor_error}")
                return TransitionCallbackReturn.FAILURE
        self._configured.set()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active.set()
        self._log.info("active: taking images and publishing")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active.clear()
        self._log.info("inactive: images ignored, nothing published")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active.clear()
        self._configured.clear()
        self._release_model()
        self._log.info("cleaned up: model freed")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self.on_cleanup(state)

    def _release_model(self) -> None:
        with self._lock:
            self.predictor, self.predictor_error = None, "not configured (lifecycle)"
            self._prev = None
            self._waiting = None
        self.latch.take(timeout=0.0)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _subscribe(self, mtype, topic: str, callback, qos: QoSProfile):
        events = SubscriptionEventCallbacks(incompatible_qos=lambda ev: self._on_qos_mismatch("in", topic, qos, ev))
        return self.create_subscription(mtype, topic, callback, qos, event_callbacks=events)

    def _publisher(self, mtype, topic: str, qos: QoSProfile):
        events = PublisherEventCallbacks(incompatible_qos=lambda ev: self._on_qos_mismatch("out", topic, qos, ev))
        return self.create_publisher(mtype, topic, qos, event_callbacks=events)

    def _problem(self, key: str, msg: str, level: str = "warning") -> None:
        """Log a problem, at most once per `period_s` per key (every module of the node reports through this)."""
        if not self._throttle.ready(key):
            return
        # one call site per severity: rclpy refuses a call site whose severity changes between calls
        if level == "error":
            self._log.error(msg)
        else:
            self._log.warning(msg)

    def destroy_node(self) -> None:
        """Stop the worker and destroy the node. A set still in the network after _STOP_JOIN_S is
        abandoned (the worker is a daemon thread and publishes nothing once _stop is set)."""
        if not hasattr(self, "worker"):  # construction failed before the worker existed
            super().destroy_node()
            return
        self._stop.set()
        self._reload.set()
        self.latch.close()
        self.worker.join(timeout=_STOP_JOIN_S)
        if self.worker.is_alive():
            # Python logging: the ROS logger's /rosout publisher is gone with the context
            logging.getLogger(__name__).info("stopping while a set is in the network: its results are dropped")
        super().destroy_node()


def _quiet_stop_signals() -> Dict[int, Any]:
    """Python-level SIGINT/SIGTERM handlers that never raise (call before rclpy.init).

    rclpy's own handlers (installed by rclpy.init on top of these) shut the context down, which ends
    the spin; they then chain to these. With Python's default SIGINT handler a KeyboardInterrupt would
    follow a moment later, anywhere in the clean-up (the traceback from destroy_node's join), and a second
    SIGINT or a SIGTERM during the clean-up would do the same or kill the process mid-way."""
    import signal

    def _stop(signum, frame):  # noqa: ARG001 - the shutdown itself is rclpy's handler's work
        pass

    return {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}


def main(args: Optional[Sequence[str]] = None) -> int:
    """Console script `surround_depth` (ROS arguments: --ros-args --params-file ... -r from:=to).

    Ends with exit code 0 on SIGINT (once or more, to the process or its group) or SIGTERM, within
    _STOP_JOIN_S plus a moment even while a set is being processed; 2 on unusable parameters."""
    from vfdepth_ros.launcher import end_with_parent

    end_with_parent()  # `ros2 launch` ended by SIGTERM does not stop its processes
    _quiet_stop_signals()
    rclpy.init(args=args)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s]: %(message)s")
    node = None
    code = 0
    try:
        node = SurroundDepthNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except P.ParamError as exc:
        rclpy.logging.get_logger(NODE_NAME).fatal(f"startup failed: {exc}")
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:  # rclpy's RCLError: "context is not valid" when a signal shut it down mid-wait
        if rclpy.ok():  # a real failure
            raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    # Leave without the interpreter's finalization: with a set still in the network it would tear down the
    # C++ runtime under that thread (std::terminate, exit -6), and even without one it can take over a second
    # on a busy machine (torch, rclpy), during which Python has already reset its signal handlers, so a
    # launcher's escalating SIGTERM (`ros2 launch`: sigterm_timeout) killed the node with exit -15.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
