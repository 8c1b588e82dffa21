"""/diagnostics of the surround_depth node: per camera, the synchronizer, QoS mismatches and inference."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import List

import numpy as np

from rclpy.qos import QoSProfile, qos_policy_name_from_kind

from vfdepth_ros import conversions as cv
from vfdepth_ros.nodes.common import NODE_NAME


@dataclass
class QosMismatch:
    """Peers on one of the node's topics whose QoS cannot match the node's: nothing flows between them."""

    direction: str  # "in" (a publisher the node cannot hear) | "out" (a subscriber the node cannot reach)
    count: int
    policy: str  # the last incompatible policy (RELIABILITY, DURABILITY, ...)


class DiagnosticsMixin:
    """The node's DiagnosticStatus list, its periodic publication and the QoS mismatches it reports.

    A mixin of :class:`~vfdepth_ros.nodes.surround_depth.SurroundDepthNode`: the state it uses is set up in
    that class's ``__init__``."""

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
