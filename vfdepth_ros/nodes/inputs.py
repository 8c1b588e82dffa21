"""Input side of the surround_depth node: image, camera_info and TF callbacks (executor thread) and the
decoding of a synchronized set into images and calibration (worker thread)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Dict, Optional, Tuple

import numpy as np

from sensor_msgs.msg import CameraInfo

from vfdepth_core.rig import Rig
from vfdepth_ros import conversions as cv
from vfdepth_ros import params as P
from vfdepth_ros.sync import SyncSet

_TIME_JUMP_BACK_NS = 1_000_000_000  # a stamp this much older than the camera's last one = bag loop/restart
_RECENT_INFOS = 16  # camera_info messages kept per camera for pairing by stamp
_FIRST_INFO_WAIT_S = 1.0  # longest wait for the camera_info of an image that completed a set before it


class _WaitingForCalibration(ValueError):
    """A set's camera_info or TF has not arrived yet (it may still come: the set is kept and retried)."""


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


class InputsMixin:
    """Files incoming messages (synchronizer, calibration, TF) and turns a set into network inputs.

    A mixin of :class:`~vfdepth_ros.nodes.surround_depth.SurroundDepthNode`: the state it uses is set up in
    that class's ``__init__``."""

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
