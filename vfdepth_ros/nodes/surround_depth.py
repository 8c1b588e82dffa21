"""surround_depth: six synchronized cameras in; metric depth per camera, ego odometry, a fused point
cloud and depth at a virtual viewpoint out.

Wiring only: messages become arrays in :mod:`vfdepth_ros.conversions`, stamps are matched by
:mod:`vfdepth_ros.sync`, parameters are validated by :mod:`vfdepth_ros.params`, the network runs in
:class:`vfdepth_core.inference.Predictor` and all geometry is :mod:`vfdepth_core.geometry`.

Threads: the executor thread only files incoming messages (synchronizer, calibration, TF) and
publishes /diagnostics; one worker thread takes the newest complete set from a one-slot latch, runs
the predictor and publishes the results. When inference is slower than the cameras, sets that were
replaced before the worker got to them are dropped and counted (never an unbounded queue).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

import rclpy
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_policy_name_from_kind,
                       qos_profile_sensor_data)

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from vfdepth_core import geometry
from vfdepth_core.inference import VirtualCamera
from vfdepth_core.odometry import OdometryIntegrator
from vfdepth_core.rig import Rig
from vfdepth_ros import conversions as cv
from vfdepth_ros import params as P
from vfdepth_ros.nodes.tf_buffer import TfBuffer
from vfdepth_ros.sync import ApproximateTimeSync, LatestSetLatch, SyncSet

try:  # built into pip-only venvs by tools/build_tf2_msgs.py; part of every ROS 2 install
    from tf2_msgs.msg import TFMessage
except ImportError:  # pragma: no cover - depends on the install
    TFMessage = None

NODE_NAME = "surround_depth"
VIRTUAL_FRAME_SUFFIX = "_vfdepth_virtual"
_TIME_JUMP_BACK_NS = 1_000_000_000  # a stamp this much older than the camera's last one = bag loop/restart
_PREDICTOR_RETRY_S = 5.0
_RECENT_INFOS = 16  # camera_info messages kept per camera for pairing by stamp
_PENDING_RETRY_S = 10.0  # a set that waits for camera_info/TF is tried again this long (unless a newer one comes)
_FIRST_INFO_WAIT_S = 1.0  # longest wait for the camera_info of an image that completed a set before it
_STOP_JOIN_S = 1.0  # longest wait at shutdown for the set in the network (a clean stop takes < 3 s)


class _WaitingForCalibration(ValueError):
    """A set's camera_info or TF has not arrived yet (it may still come: the set is kept and retried)."""


TF_STATIC_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)
TF_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)
OUT_QOS = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)


@dataclass
class CameraState:
    name: str
    arrivals: Deque[float] = field(default_factory=lambda: deque(maxlen=30))  # monotonic s
    info_arrivals: Deque[float] = field(default_factory=lambda: deque(maxlen=30))  # camera_info, monotonic s
    received: int = 0
    last_stamp_ns: Optional[int] = None
    info: Optional[CameraInfo] = None
    info_K: Optional[np.ndarray] = None
    info_hw: Optional[Tuple[int, int]] = None
    # recent camera_info by header stamp: an image is paired with the camera_info of its own stamp when
    # that one arrived (a driver that changes size or zoom sends both with the same stamp), else the newest
    recent_infos: Dict[int, Tuple[CameraInfo, np.ndarray, Tuple[int, int]]] = field(default_factory=dict)
    last_error: str = ""
    last_error_t: float = -1e9
    errors: int = 0
    calib_problem: str = ""

    def rate_hz(self, arrivals: Optional[Deque[float]] = None) -> float:
        """Measured rate of the images (or of `arrivals`) over the last 30 messages."""
        arrivals = self.arrivals if arrivals is None else arrivals
        if len(arrivals) < 2:
            return 0.0
        span = arrivals[-1] - arrivals[0]
        return (len(arrivals) - 1) / span if span > 0 else 0.0


@dataclass
class QosMismatch:
    """Peers on one of the node's topics whose QoS cannot match the node's: nothing flows between them."""

    direction: str  # "in" (a publisher the node cannot hear) | "out" (a subscriber the node cannot reach)
    count: int
    policy: str  # the last incompatible policy (RELIABILITY, DURABILITY, ...)


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


class SurroundDepthNode(LifecycleNode):
    """See the module docstring. Raises params.ParamError at construction for unusable parameters.

    A managed (lifecycle) node: configure loads the model and checks the calibration file, activate
    starts taking images and publishing, deactivate stops that, cleanup frees the model. With
    parameter 'autostart' (the default) it configures and activates itself at start-up, as a plain
    node would; with autostart false it waits for `ros2 lifecycle set`."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        for spec in P.PARAMETERS:
            self.declare_parameter(spec.name, spec.default, ParameterDescriptor(
                description=spec.description, read_only=not spec.dynamic, dynamic_typing=True))
        values = {spec.name: self.get_parameter(spec.name).value for spec in P.PARAMETERS}
        self.params: P.NodeParams = P.node_params_from_values(values)
        p = self.params
        if p.extrinsics_source == "tf" and TFMessage is None:
            raise P.ParamError("parameter 'extrinsics_source' is 'tf' but tf2_msgs is not installed: build it into "
                               "the venv (tools/build_tf2_msgs.py) or set extrinsics_source: file")
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

    def _on_qos_mismatch(self, direction: str, topic: str, qos: QoSProfile, event) -> None:
        """Logged (each time a peer is found) and on /diagnostics: a QoS that delivers nothing."""
        policy = qos_policy_name_from_kind(event.last_policy_kind)
        name = self.resolve_topic_name(topic)
        with self._lock:
            self.qos_mismatches[name] = QosMismatch(direction, int(event.total_count), policy)
        peer, verb = ("publisher", "subscribes") if direction == "in" else ("subscriber", "publishes")
        self._log.warning(f"{name}: a {peer} with incompatible QoS ({policy}) was discovered, nothing flows "
                          f"{'from' if direction == 'in' else 'to'} it: the node {verb} "
                          f"{qos.reliability.name.lower()}, {qos.durability.name.lower()} (make the {peer} match)")

    # ------------------------------------------------------------------------------ input callbacks
    def _problem(self, key: str, msg: str, level: str = "warning") -> None:
        if not self._throttle.ready(key):
            return
        # one call site per severity: rclpy refuses a call site whose severity changes between calls
        if level == "error":
            self._log.error(msg)
        else:
            self._log.warning(msg)

    def _on_image(self, i: int, msg) -> None:
        if not self._active.is_set():  # lifecycle: only an active node takes images
            return
        cam = self.cams[i]
        stamp = cv.stamp_to_ns(msg.header.stamp)
        now = time.monotonic()
        with self._lock:
            cam.received += 1
            cam.arrivals.append(now)
            if cam.last_stamp_ns is not None and stamp < cam.last_stamp_ns - _TIME_JUMP_BACK_NS:
                self._problem("timejump", f"{cam.name}: time jumped back by "
                              f"{(cam.last_stamp_ns - stamp) / 1e9:.2f} s (bag loop?): resetting the synchronizer "
                              "and the odometry")
                self.sync.reset()
                for c in self.cams:
                    c.last_stamp_ns = None
                self._reset_odom = True
            rejected = self.sync.stats.rejected[i]
            sets = self.sync.add(i, stamp, msg)
            if self.sync.stats.rejected[i] != rejected:
                self._problem(f"order{i}", f"{cam.name}: image stamp {stamp} is not newer than the previous one "
                              f"({cam.last_stamp_ns}); duplicate or out-of-order image dropped")
            else:
                cam.last_stamp_ns = stamp
        for s in sets:
            self.latch.put((s, now))

    def _on_info(self, i: int, msg: CameraInfo) -> None:
        cam = self.cams[i]
        with self._lock:
            cam.info_arrivals.append(time.monotonic())
        try:
            K, hw = cv.camera_info_to_K(msg)
        except cv.ConversionError as exc:
            with self._lock:
                cam.calib_problem = f"bad camera_info ignored: {exc}"
            self._problem(f"info{i}", f"{cam.name}/camera_info: {exc} (message ignored; keeping the last valid one)")
            return
        with self._lock:
            cam.info, cam.info_K, cam.info_hw = msg, K, hw
            cam.recent_infos[cv.stamp_to_ns(msg.header.stamp)] = (msg, K, hw)
            while len(cam.recent_infos) > _RECENT_INFOS:
                cam.recent_infos.pop(next(iter(cam.recent_infos)))
            if cam.calib_problem.startswith("bad camera_info"):
                cam.calib_problem = ""

    def _on_tf(self, msg, static: bool) -> None:
        for ts in msg.transforms:
            try:
                T = cv.transform_to_matrix(ts)
                self.tf.set(ts.header.frame_id, ts.child_frame_id, T, static=static)
            except (cv.ConversionError, ValueError) as exc:
                self.tf_errors += 1
                self._problem(f"tf:{ts.child_frame_id}", f"{'/tf_static' if static else '/tf'}: {exc} (ignored)")

    def _on_set_parameters(self, changes) -> SetParametersResult:
        values = {c.name: c.value for c in changes}
        unknown = [n for n in values if n not in P.SPECS]
        if unknown:
            return SetParametersResult(successful=False, reason=f"unknown parameter '{unknown[0]}'")
        try:
            new = P.with_values(self.params, values)
        except P.ParamError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        old, self.params = self.params, new
        if new.checkpoint != old.checkpoint:
            self._log.info(f"parameter 'checkpoint' changed to '{new.checkpoint}': reloading the model")
            self._reload.set()
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------------------------- worker
    def _work(self) -> None:
        while not self._stop.is_set():
            if not self._configured.is_set():  # lifecycle: unconfigured, no model wanted
                self._configured.wait(0.2)
                continue
            if self.predictor is None or self._reload.is_set():
                self._reload.clear()
                self._load_predictor()
                if self.predictor is None:
                    self._reload.wait(_PREDICTOR_RETRY_S)
                    continue
            item = self.latch.take(timeout=0.5)
            if item is not None:
                self._waiting = None  # a newer set replaces one still waiting for calibration
            elif self._waiting is not None and time.monotonic() - self._waiting[2] < _PENDING_RETRY_S:
                item = self._waiting[:2]
            else:
                self._waiting = None
                continue
            sset, t_emit = item
            try:
                self._process(sset, t_emit)
            except Exception as exc:  # the node must survive anything one frame can throw
                if self._stop.is_set():  # publishers destroyed under a set that was being published
                    return
                self.frames_failed += 1
                self.last_problem = f"{type(exc).__name__}: {exc}"
                self._problem("process", f"processing a set failed: {self.last_problem}", "error")
                logging.getLogger(__name__).debug("processing failed", exc_info=True)

    def _load_predictor(self) -> None:
        try:
            pred = P.load_predictor(self.params)
        except P.ParamError as exc:
            self.predictor, self.predictor_error = None, str(exc)
            self._problem("predictor", f"{exc} (node keeps running; retrying every {_PREDICTOR_RETRY_S:.0f} s)", "error")
            return
        except Exception as exc:  # e.g. CUDA asked for but missing
            self.predictor, self.predictor_error = None, f"cannot build the model: {type(exc).__name__}: {exc}"
            self._problem("predictor", f"{self.predictor_error} (check parameters 'device', 'amp', 'checkpoint')", "error")
            return
        self.predictor, self.predictor_error = pred, ""
        self._prev = None
        self._log.info(f"model ready on {pred.device} (amp {pred.amp}), network input {pred.hw[1]}x{pred.hw[0]}, "
                       f"{'checkpoint ' + self.params.checkpoint if self.params.checkpoint else 'RANDOM WEIGHTS'}")

    def _await_info(self, cam, stamp_ns: int, image_hw: Tuple[int, int]) -> tuple:
        """(camera_info, K, hw) for the camera's image at `stamp_ns`: the camera_info with the same stamp
        when it arrived, else the newest one if it fits the image size. Image and camera_info travel on
        separate best-effort topics, so the image that completes a set can beat its camera_info (always
        possible for the first frame, and after a size change): then wait up to _FIRST_INFO_WAIT_S for
        it (polling; the executor thread files it) instead of dropping the set."""
        deadline = time.monotonic() + _FIRST_INFO_WAIT_S
        while True:
            with self._lock:
                same = cam.recent_infos.get(stamp_ns)
                newest = (cam.info, cam.info_K, cam.info_hw)
            if same is not None:
                return same
            fits = newest[1] is not None and tuple(newest[2]) == tuple(image_hw)
            if fits or time.monotonic() >= deadline or self._stop.is_set():
                return newest
            time.sleep(0.01)

    def _camera_inputs(self, sset: SyncSet, p: P.NodeParams):
        """Decode the set's images and gather calibration. Returns (images (3, H, W) per camera, Rig,
        camera infos) or raises ValueError with a message naming the camera."""
        rows = []
        for i, msg in enumerate(sset.msgs):
            cam = self.cams[i]
            try:
                rgb = cv.image_to_rgb(msg) if p.image_transport == "raw" else cv.compressed_to_rgb(msg)
            except cv.ConversionError as exc:
                self._camera_error(cam, f"bad image: {exc}")
                raise ValueError(f"{cam.name}: {exc}") from None
            calib = self.calibration.get(cam.name)
            if p.calibration_source == "file":
                K, hw, info = calib.K, calib.hw, None
            else:
                info, K, hw = self._await_info(cam, cv.stamp_to_ns(msg.header.stamp), rgb.shape[:2])
            if K is None:
                cam.calib_problem = f"waiting for {cam.name}/camera_info"
                raise _WaitingForCalibration(cam.calib_problem)
            if tuple(rgb.shape[:2]) != tuple(hw):
                msg_txt = (f"image {rgb.shape[1]}x{rgb.shape[0]} does not match its calibration "
                           f"{hw[1]}x{hw[0]} (width x height)")
                self._camera_error(cam, msg_txt)
                raise ValueError(f"{cam.name}: {msg_txt}")
            if p.extrinsics_source == "file":
                T = calib.T_ego_cam
            else:
                frame = msg.header.frame_id or (info.header.frame_id if info is not None else "")
                T = self.tf.lookup(p.base_frame, frame) if frame else None
                if T is None:
                    cam.calib_problem = f"waiting for TF {p.base_frame} -> '{frame}' (/tf_static or /tf)"
                    raise _WaitingForCalibration(f"{cam.name}: {cam.calib_problem}")
            if cam.calib_problem.startswith("waiting"):
                cam.calib_problem = ""
            rows.append((rgb.transpose(2, 0, 1), K, hw, T, info))
        images, Ks, hws, Ts, infos = zip(*rows)
        return list(images), Rig(p.cameras, Ks, Ts, hws), list(infos)

    def _camera_error(self, cam: CameraState, text: str) -> None:
        with self._lock:
            cam.errors += 1
            cam.last_error, cam.last_error_t = text, time.monotonic()
        self._problem(f"cam:{cam.name}", f"{cam.name}: {text} (set skipped)")

    def _process(self, sset: SyncSet, t_emit: float) -> None:
        p, pred = self.params, self.predictor
        frame = self._frame_inputs(sset, t_emit, p)
        if frame is None:
            return
        images, rig, infos = frame
        stamp = sset.stamps_ns[0]
        prev = self._prev_images(stamp, rig, p)
        virtual = None
        if p.publish_virtual:
            virtual = VirtualCamera(*(x[None] for x in P.virtual_camera(p.virtual, pred.hw, rig.resized(pred.hw).K[0])))
        t0 = time.perf_counter()
        out = pred.predict(images, rig.K, rig.T_ego_cam, prev_images=prev, virtual=virtual)
        infer_ms = (time.perf_counter() - t0) * 1e3
        if self._stop.is_set() or not self._active.is_set():  # shutting down or deactivated meanwhile
            return
        tf_out = []
        if p.publish_depth:
            self._publish_depth(sset, infos, out, pred.hw)
        if p.publish_odom:
            tf_out.append(self._publish_odom(stamp, out.T_egoprev_egocur if prev is not None else None, p))
            self._prev = (rig, images)
        if p.publish_points:
            xyz, rgb = geometry.fused_points(out.depth[0], out.K[0], rig.T_ego_cam, out.images[0],
                                             p.point_decimation, p.points_max_depth_m)
            header = cv.make_header(stamp, p.base_frame)
            self.pub_points.publish(cv.xyzrgb_to_pointcloud2(xyz.numpy(), rgb.numpy(), header))
        if virtual is not None and out.virtual_depth is not None:
            tf_out.append(self._publish_virtual(stamp, out.virtual_depth[0, 0, 0], virtual, pred.hw, p))
        if p.publish_tf and tf_out and self.pub_tf is not None:
            self.pub_tf.publish(TFMessage(transforms=tf_out))
        done = time.monotonic()
        self.frames_done += 1
        self.infer_ms.append(infer_ms)
        self.latency_ms.append((done - t_emit) * 1e3)
        self.out_times.append(done)

    def _frame_inputs(self, sset: SyncSet, t_emit: float, p: P.NodeParams):
        """The set's (images, Rig, camera infos), or None when it is skipped (counted; one still waiting
        for calibration is kept to be tried again)."""
        try:
            frame = self._camera_inputs(sset, p)
        except _WaitingForCalibration as exc:
            if self._waiting is None or self._waiting[0] is not sset:  # first try of this set
                self._waiting = (sset, t_emit, time.monotonic())
                self.frames_skipped += 1
                self.last_problem = str(exc)
                self._problem("skip", f"set skipped: {exc} (tried again for up to {_PENDING_RETRY_S:g} s "
                              "while no newer set comes)")
            return None
        except ValueError as exc:
            self.frames_skipped += 1
            self.last_problem = str(exc)
            self._problem("skip", f"set skipped: {exc}")
            return None
        if self._waiting is not None and self._waiting[0] is sset:  # a retry that worked
            self.frames_skipped -= 1
            self._waiting = None
        return frame

    def _prev_images(self, stamp: int, rig: Rig, p: P.NodeParams):
        """The previous set's images when a motion to this set is wanted (same image sizes, within
        max_pose_gap_s); resets the odometry after a time jump."""
        if self._reset_odom:
            self._reset_odom, self._prev = False, None
            self.odom.reset()
        self.odom.max_pose_gap_s = p.max_pose_gap_s
        if self.odom.last_stamp_ns is not None and stamp <= self.odom.last_stamp_ns:
            self._prev = None
            self.odom.reset()
        if p.publish_odom and self._prev is not None and self.odom.motion_wanted(stamp) \
                and self._prev[0].image_hw == rig.image_hw:
            return self._prev[1]
        return None

    def _publish_depth(self, sset: SyncSet, infos: list, out, net_hw: Tuple[int, int]) -> None:
        """Per camera: depth and its camera_info (the camera's own, scaled to the network size)."""
        for i, msg in enumerate(sset.msgs):
            header = cv.copy_header(msg.header)
            self.pub_depth[i].publish(cv.depth_to_image(out.depth[0, i, 0].cpu().numpy(), header))
            self.pub_depth_info[i].publish(cv.scaled_camera_info(infos[i], net_hw, cv.copy_header(msg.header))
                                           if infos[i] is not None else
                                           cv.K_to_camera_info(out.K[0, i].cpu().numpy(), net_hw, cv.copy_header(msg.header)))

    def _publish_odom(self, stamp: int, T_egoprev_egocur, p: P.NodeParams):
        """Integrate the motion (None: none measured), publish odom; returns the odom -> base transform."""
        st = self.odom.update(stamp, T_egoprev_egocur[0].double().cpu() if T_egoprev_egocur is not None else None)
        self.pub_odom.publish(cv.matrix_to_odometry(st.T_odom_ego, stamp, p.odom_frame, p.base_frame,
                                                    st.twist_linear_mps, st.twist_angular_radps,
                                                    st.pose_covariance, st.twist_covariance))
        return cv.matrix_to_transform(st.T_odom_ego, p.odom_frame, p.base_frame, stamp)

    def _publish_virtual(self, stamp: int, depth_m, virtual, net_hw: Tuple[int, int], p: P.NodeParams):
        """Virtual depth and camera_info; returns the base -> virtual camera transform."""
        vframe = p.base_frame + VIRTUAL_FRAME_SUFFIX
        self.pub_vdepth.publish(cv.depth_to_image(depth_m.float().cpu().numpy(), cv.make_header(stamp, vframe)))
        self.pub_vinfo.publish(cv.K_to_camera_info(virtual.K[0], net_hw, cv.make_header(stamp, vframe)))
        return cv.matrix_to_transform(virtual.T_ego_cam[0], p.base_frame, vframe, stamp)

    # -------------------------------------------------------------------------------- diagnostics
    def diagnostics(self) -> List:
        """The node's DiagnosticStatus list (also published on /diagnostics)."""
        p = self.params
        now = time.monotonic()
        hw_id = self.get_fully_qualified_name()
        out = []
        st = self.sync.stats
        for i, cam in enumerate(self.cams):
            with self._lock:
                age = now - cam.arrivals[-1] if cam.arrivals else None
                vals = {"rate_hz": cam.rate_hz(), "camera_info_rate_hz": cam.rate_hz(cam.info_arrivals),
                        "received": cam.received, "rejected_out_of_order": st.rejected[i],
                        "sync_dropped": st.dropped[i], "errors": cam.errors, "last_error": cam.last_error,
                        "calibration": cam.calib_problem or ("no camera_info yet" if cam.info is None and
                                                             p.calibration_source == "camera_info" else "ok"),
                        "last_stamp_ns": cam.last_stamp_ns if cam.last_stamp_ns is not None else "none"}
                recent_error = now - cam.last_error_t < max(5.0, 2 * p.camera_timeout_s)
            if age is None:
                level, text = "STALE", "no image received yet"
            elif age > p.camera_timeout_s:
                level, text = "STALE", f"no image for {age:.1f} s"
            elif recent_error:
                level, text = "ERROR", cam.last_error
            elif cam.calib_problem:
                level, text = "WARN", cam.calib_problem
            else:
                level, text = "OK", f"{vals['rate_hz']:.1f} Hz"
            out.append(cv.diagnostic_status(f"{NODE_NAME}: camera {cam.name}", level, text, vals, hw_id))
        out.append(self._qos_status(hw_id))
        stale = self.latch.stale_dropped
        out.append(cv.diagnostic_status(
            f"{NODE_NAME}: synchronizer", "OK" if st.emitted else "WARN",
            f"{st.emitted} sets" if st.emitted else "no complete set yet",
            {"sets_emitted": st.emitted, "sync_dropped": st.total_dropped, "rejected_out_of_order": st.total_rejected,
             "stale_sets_dropped": stale, "slop_s": p.slop_s, "queue_size": p.queue_size,
             "queued": " ".join(map(str, self.sync.queued())), "tf_errors": self.tf_errors}, hw_id))
        pred = self.predictor
        inf = np.asarray(self.infer_ms, dtype=float)
        lat = np.asarray(self.latency_ms, dtype=float)
        rate = ((len(self.out_times) - 1) / (self.out_times[-1] - self.out_times[0])
                if len(self.out_times) > 1 and self.out_times[-1] > self.out_times[0] else 0.0)
        vals = {"device": str(pred.device) if pred is not None else "none", "amp": p.amp,
                "model": p.checkpoint or f"RANDOM WEIGHTS ({p.model_config})",
                "network_size": f"{pred.hw[1]}x{pred.hw[0]}" if pred is not None else "none",
                "frames_processed": self.frames_done, "frames_failed": self.frames_failed,
                "sets_skipped": self.frames_skipped, "last_problem": self.last_problem, "output_rate_hz": rate,
                "inference_ms_p50": float(np.percentile(inf, 50)) if inf.size else "none",
                "inference_ms_p95": float(np.percentile(inf, 95)) if inf.size else "none",
                "latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else "none",
                "latency_ms_p95": float(np.percentile(lat, 95)) if lat.size else "none"}
        vals["lifecycle_state"] = self.lifecycle_state()
        if not self._active.is_set():
            level, text = "OK", f"lifecycle state {vals['lifecycle_state']}: not publishing"
        elif pred is None:
            level, text = "ERROR", self.predictor_error or "loading the model"
        elif not p.checkpoint:
            level, text = "WARN", "running RANDOM weights (parameter 'checkpoint' is empty)"
        else:
            level, text = "OK", f"{self.frames_done} sets processed"
        out.append(cv.diagnostic_status(f"{NODE_NAME}: inference", level, text, vals, hw_id))
        return out

    def _qos_status(self, hw_id: str):
        """ERROR while an input has a publisher it cannot hear, WARN while an output has a subscriber it
        cannot reach (values: per topic, the peers and the policy), OK otherwise."""
        with self._lock:
            bad = dict(self.qos_mismatches)
        vals = {topic: f"{m.direction}: {m.count} incompatible {'publisher' if m.direction == 'in' else 'subscriber'}"
                       f"(s), policy {m.policy}" for topic, m in sorted(bad.items())}
        if not bad:
            return cv.diagnostic_status(f"{NODE_NAME}: qos", "OK", "no incompatible QoS seen", {}, hw_id)
        level = "ERROR" if any(m.direction == "in" for m in bad.values()) else "WARN"
        return cv.diagnostic_status(f"{NODE_NAME}: qos", level,
                                    f"incompatible QoS on {', '.join(sorted(bad))}: nothing flows there", vals, hw_id)

    def _publish_diagnostics(self) -> None:
        try:
            self.pub_diag.publish(cv.diagnostic_array(self.diagnostics(), self.get_clock().now().nanoseconds))
        except Exception as exc:  # never let diagnostics take the node down
            if not self.context.ok():  # a stop signal shut the context down under the timer
                return
            self._problem("diag", f"diagnostics failed: {type(exc).__name__}: {exc}", "error")

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
