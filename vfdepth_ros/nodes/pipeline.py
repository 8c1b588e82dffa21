"""The surround_depth node's worker thread: takes the newest complete set from the latch, runs the
predictor and hands the results to the publishers; loads (and reloads) the model."""

from __future__ import annotations

import logging
import time

from vfdepth_core.inference import VirtualCamera
from vfdepth_core.rig import Rig
from vfdepth_ros import params as P
from vfdepth_ros.nodes.inputs import _WaitingForCalibration
from vfdepth_ros.sync import SyncSet

_PREDICTOR_RETRY_S = 5.0
_PENDING_RETRY_S = 10.0  # a set that waits for camera_info/TF is tried again this long (unless a newer one comes)


class PipelineMixin:
    """The worker loop and one set's way through the network.

    A mixin of :class:`~vfdepth_ros.nodes.surround_depth.SurroundDepthNode`: the state it uses is set up in
    that class's ``__init__``."""

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
            self._publish_points(stamp, out, rig, p)
        if virtual is not None and out.virtual_depth is not None:
            tf_out.append(self._publish_virtual(stamp, out.virtual_depth[0, 0, 0], virtual, pred.hw, p))
        if p.publish_tf and tf_out:
            self._publish_tf(tf_out)
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
