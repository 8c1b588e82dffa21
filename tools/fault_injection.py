#!/usr/bin/env python3
"""Scripted fault injection on the real node graph (project launcher + surround_depth node, loopback DDS).

A six-camera rig is published from this process with real rclpy publishers; the node runs from the
graph description with the tiny config and random weights. Each fault is injected, then good frames
are sent one at a time and the node must answer each with correct depth (header copied, 32FC1, finite,
positive, network size). For every fault the table says whether the node survived (still running or
respawned by the launcher), whether /diagnostics reported the fault, and how many good frames AFTER
the fault got no output ("lost beyond the faulty input"; the faulty frames themselves are expected to
be dropped).

    python tools/fault_injection.py                 # the full scripted set, longer outages
    python tools/fault_injection.py --quick         # the fast version the tests run
    python tools/fault_injection.py --only garbage_image,node_restart

Faults: camera publisher killed and restarted, one camera stopped for N seconds, time jumping back (bag
loop), duplicate and out-of-order stamps, image size change mid-stream, garbage bytes in Image, garbage
bytes in CompressedImage (second node with image_transport=compressed; full run only), TF removed
(node restarted without /tf_static until it comes back), node SIGKILLed while inputs keep coming
(launcher respawn).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np

from vfdepth_ros.toy_rig import CAMERAS, IMG_HW, frame_image, rig_extrinsics, rig_K

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "training" / "configs" / "synthetic" / "synthetic_tiny.yaml"
NET_HW = (64, 96)
T0 = 2_000 * 1_000_000_000
DT = 100_000_000


@dataclass
class Result:
    fault: str
    survived: bool
    reported: bool
    lost: int
    checked: int
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.survived and self.reported and self.lost == 0


class Harness:
    """The graph (launcher) plus this process's rig publisher and output/diagnostics collector."""

    def __init__(self, domain_id: int, compressed: bool = False, log_path: Optional[Path] = None,
                 camera_timeout_s: float = 1.0, out_timeout_s: float = 30.0) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        from vfdepth_ros import graph as G
        from vfdepth_ros.dds import apply_loopback_profile
        from vfdepth_ros.launcher import Launcher

        apply_loopback_profile(domain_id)
        self.compressed = compressed
        self.out_timeout_s = out_timeout_s
        self.lines: Deque[str] = deque(maxlen=400)
        graph = G.surround_graph(camera_set="synthetic", model_config=str(TINY_CONFIG), respawn=True, overrides={
            "device": "cpu", "diagnostics_period_s": 0.25, "camera_timeout_s": camera_timeout_s,
            "max_pose_gap_s": 5.0, "image_transport": "compressed" if compressed else "raw",
            "publish_points": False, "publish_virtual": False})
        self._log = open(log_path, "w") if log_path else open(os.devnull, "w")
        self.launcher = Launcher(graph, domain_id=domain_id, output=self._log,
                                 on_line=lambda n, l: self.lines.append(f"[{n}] {l}"))
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain_id)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.node = rclpy.create_node("fault_injector", context=self.ctx)
        self.ex.add_node(self.node)
        self.diags: Deque[Tuple[float, dict]] = deque(maxlen=2000)
        self.depth: Dict[int, object] = {}  # stamp -> camera_01/depth message
        self._make_io()
        self.launcher.start()
        self.k = 0  # frame counter (image content)
        self.stamp = T0

    # ---- I/O -------------------------------------------------------------------------------------
    def _make_io(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        from vfdepth_ros import conversions as cv

        n = self.node
        self.img_type = CompressedImage if self.compressed else Image
        self.img_topic = "image_raw/compressed" if self.compressed else "image_raw"
        self.img_pubs = [n.create_publisher(self.img_type, f"{c}/{self.img_topic}", qos_profile_sensor_data)
                         for c in CAMERAS]
        self.info_pubs = [n.create_publisher(CameraInfo, f"{c}/camera_info", qos_profile_sensor_data) for c in CAMERAS]
        self.tf_pub = None
        self.make_tf_publisher()
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        n.create_subscription(Image, "camera_01/depth", lambda m: self.depth.__setitem__(cv.stamp_to_ns(m.header.stamp), m),
                              qos)
        n.create_subscription(DiagnosticArray, "/diagnostics",
                              lambda m: self.diags.append((time.monotonic(), cv.diagnostics_to_dict(m))), qos)

    def make_tf_publisher(self) -> None:
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from tf2_msgs.msg import TFMessage

        from vfdepth_ros import conversions as cv

        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.tf_pub = self.node.create_publisher(TFMessage, "/tf_static", qos)
        self.tf_pub.publish(TFMessage(transforms=[cv.matrix_to_transform(T, "base_link", c, 0)
                                                  for c, T in zip(CAMERAS, rig_extrinsics())]))

    def remove_tf_publisher(self) -> None:
        if self.tf_pub is not None:
            self.node.destroy_publisher(self.tf_pub)
            self.tf_pub = None

    def image_msg(self, c: int, k: int, stamp: int, hw: Tuple[int, int] = IMG_HW):
        from vfdepth_ros import conversions as cv

        header = cv.make_header(stamp, CAMERAS[c])
        if self.compressed:
            return cv.rgb_to_compressed(frame_image(k, c, hw), "jpeg", header)
        return cv.numpy_to_image(frame_image(k, c, hw), "rgb8", header)

    def info_msg(self, c: int, stamp: int, hw: Tuple[int, int] = IMG_HW):
        from vfdepth_ros import conversions as cv

        return cv.K_to_camera_info(rig_K(hw), hw, cv.make_header(stamp, CAMERAS[c]))

    def publish(self, stamp: int, k: Optional[int] = None, skip: Sequence[int] = (), replace: Optional[dict] = None,
                hw: Tuple[int, int] = IMG_HW, info_hw: Optional[Tuple[int, int]] = None, infos: bool = True) -> None:
        k = self.k if k is None else k
        for c in range(len(CAMERAS) if infos else 0):
            self.info_pubs[c].publish(self.info_msg(c, stamp, info_hw or hw))
        for c in range(len(CAMERAS)):
            if c in skip or self.img_pubs[c] is None:
                continue
            self.img_pubs[c].publish((replace or {}).get(c) or self.image_msg(c, k, stamp, hw))

    # ---- waiting ---------------------------------------------------------------------------------
    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.02)
            self.launcher.poll()

    def until(self, pred: Callable[[], bool], timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if pred():
                return True
            self.ex.spin_once(timeout_sec=0.05)
            self.launcher.poll()
        return pred()

    @property
    def child(self):
        return self.launcher.children[0]

    def node_pid(self) -> Optional[int]:
        p = self.child.proc
        return p.pid if p is not None and p.poll() is None else None

    def alive(self) -> bool:
        return self.node_pid() is not None or self.child.next_start is not None

    def last_diag(self) -> dict:
        return self.diags[-1][1] if self.diags else {}

    def diag_since(self, t: float, pred: Callable[[dict], bool]) -> bool:
        return any(pred(d) for ts, d in list(self.diags) if ts >= t)

    def cam_diag(self, d: dict, cam: str) -> dict:
        return d.get(f"surround_depth: camera {cam}", {})

    def ready(self, timeout_s: float = 120.0) -> None:
        """Node up, model loaded, subscriptions matched, calibration and TF known: one frame answered."""
        ok = self.until(lambda: all(p.get_subscription_count() > 0 for p in self.img_pubs + self.info_pubs)
                        and self.last_diag().get("surround_depth: inference", {}).get("level") in ("OK", "WARN"),
                        timeout_s)
        if not ok:
            raise RuntimeError("surround_depth did not come up:\n" + "\n".join(list(self.lines)[-40:]))
        # the first frames can come before the latched /tf_static reached the node (skipped: "waiting for
        # TF"): send a frame a second until one is answered
        for _ in range(60):
            if not self.good_frames(1, timeout_s=1.0)[0]:
                return
        raise RuntimeError("surround_depth answers no frame:\n" + "\n".join(list(self.lines)[-40:]))

    # ---- frames ----------------------------------------------------------------------------------
    def next_stamp(self) -> int:
        self.stamp += DT
        self.k += 1
        return self.stamp

    def check_depth(self, msg, stamp: int) -> Optional[str]:
        from vfdepth_ros import conversions as cv

        if cv.stamp_to_ns(msg.header.stamp) != stamp or msg.header.frame_id != "camera_01":
            return "header not copied from the source image"
        if msg.encoding != "32FC1" or (msg.height, msg.width) != NET_HW:
            return f"bad depth image {msg.encoding} {msg.width}x{msg.height}"
        d = cv.image_to_numpy(msg)
        if not (np.isfinite(d).all() and (d > 0).all()):
            return "non-finite or non-positive depth"
        return None

    def good_frames(self, n: int, timeout_s: Optional[float] = None, hw: Tuple[int, int] = IMG_HW,
                    stamps: Optional[Sequence[int]] = None) -> Tuple[int, List[str]]:
        """Send n good frames one at a time, each waiting for its depth; returns (lost, problems)."""
        lost, problems = 0, []
        for i in range(n):
            stamp = stamps[i] if stamps is not None else self.next_stamp()
            self.publish(stamp, hw=hw)
            if not self.until(lambda: stamp in self.depth, timeout_s or self.out_timeout_s):
                lost += 1
                continue
            bad = self.check_depth(self.depth[stamp], stamp)
            if bad:
                problems.append(f"frame {stamp}: {bad}")
        return lost, problems

    def outage(self, seconds: float, rate_hz: float = 10.0, **publish_kw) -> List[int]:
        """Publish (faulty) frames at rate_hz for `seconds` without waiting for outputs."""
        stamps = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            s = self.next_stamp()
            self.publish(s, **publish_kw)
            stamps.append(s)
            self.pump(1.0 / rate_hz)
        return stamps

    def close(self) -> Dict[str, Optional[int]]:
        import rclpy

        try:
            codes = self.launcher.stop()
        finally:
            self.ex.shutdown()
            self.node.destroy_node()
            rclpy.try_shutdown(context=self.ctx)
            self._log.close()
        return codes


# ------------------------------------------------------------------------------------------ faults
def _finish(h: Harness, name: str, reported: bool, recover: int, detail: str = "",
            timeout_s: Optional[float] = None) -> Result:
    lost, problems = h.good_frames(recover, timeout_s=timeout_s)
    survived = h.alive()
    if problems:
        detail = (detail + "; " if detail else "") + "; ".join(problems[:2])
        lost += len(problems)
    return Result(name, survived, reported, lost, recover, detail)


def fault_camera_publisher_restart(h: Harness, outage_s: float = 1.6, recover: int = 3) -> Result:
    """camera_07's publisher is destroyed (its DDS writer leaves), frames go on without it, then a new
    publisher (new writer) takes over."""
    from rclpy.qos import qos_profile_sensor_data

    c = 3
    h.node.destroy_publisher(h.img_pubs[c])
    h.img_pubs[c] = None
    t = time.monotonic()
    h.outage(outage_s)
    stale = h.until(lambda: h.diag_since(t, lambda d: h.cam_diag(d, CAMERAS[c]).get("level") == "STALE"), 5.0)
    h.img_pubs[c] = h.node.create_publisher(h.img_type, f"{CAMERAS[c]}/{h.img_topic}", qos_profile_sensor_data)
    h.until(lambda: h.img_pubs[c].get_subscription_count() > 0, 10.0)
    return _finish(h, "camera publisher killed+restarted", stale, recover, "camera_07 STALE" if stale else "")


def fault_camera_stopped(h: Harness, seconds: float = 1.6, recover: int = 3) -> Result:
    """camera_05 sends nothing for `seconds` while the other five keep going."""
    t = time.monotonic()
    h.outage(seconds, skip=(1,))
    stale = h.until(lambda: h.diag_since(t, lambda d: h.cam_diag(d, CAMERAS[1]).get("level") == "STALE"), 5.0)
    return _finish(h, f"one camera stopped {seconds:g} s", stale, recover, "camera_05 STALE" if stale else "")


def fault_time_jump_back(h: Harness, jump_s: float = 30.0, recover: int = 3) -> Result:
    """Stamps jump back (a bag loop): the node resets its synchronizer and odometry and goes on."""
    before = h.stamp
    h.stamp -= int(jump_s * 1e9)
    t = time.monotonic()
    lost, problems = h.good_frames(recover)
    reported = h.until(lambda: h.diag_since(t, lambda d: int(h.cam_diag(d, CAMERAS[0]).get("values", {})
                                                                .get("last_stamp_ns", "0") or 0) < before), 5.0)
    jumped = any("time jumped back" in ln for ln in h.lines)
    detail = "last_stamp_ns went back" + (", 'time jumped back' logged" if jumped else "")
    return Result(f"time jumps back {jump_s:g} s (bag loop)", h.alive(), reported and jumped,
                  lost + len(problems), recover, detail)


def fault_duplicate_out_of_order(h: Harness, recover: int = 3) -> Result:
    """A frame is sent twice, then an older frame arrives after a newer one."""
    def rejected(d):
        return int(d.get("surround_depth: synchronizer", {}).get("values", {}).get("rejected_out_of_order", "0"))

    base = rejected(h.last_diag())
    s1 = h.next_stamp()
    s2 = h.next_stamp()
    h.publish(s2)
    h.until(lambda: s2 in h.depth, h.out_timeout_s)
    h.publish(s2)  # duplicate
    h.publish(s1)  # out of order (older than s2, less than 1 s back: not a time jump)
    t = time.monotonic()
    reported = h.until(lambda: h.diag_since(t, lambda d: rejected(d) >= base + 12), 10.0)
    dup_out = s1 in h.depth
    res = _finish(h, "duplicate + out-of-order stamps", reported and not dup_out, recover,
                  f"rejected_out_of_order +{rejected(h.last_diag()) - base}")
    return res


def fault_image_size_change(h: Harness, recover: int = 3) -> Result:
    """All cameras switch to a new resolution; the first frame at the new size arrives with the old
    camera_info (mismatch: reported, skipped), then camera_info follows."""
    new_hw = (120, 160)
    t = time.monotonic()
    s = h.next_stamp()
    h.publish(s, hw=new_hw, info_hw=IMG_HW)
    reported = h.until(lambda: h.diag_since(t, lambda d: "does not match" in h.cam_diag(d, CAMERAS[0])
                                            .get("values", {}).get("last_error", "")), 10.0)
    for c in range(len(CAMERAS)):
        h.info_pubs[c].publish(h.info_msg(c, h.stamp, new_hw))
    h.pump(0.3)
    lost, problems = h.good_frames(recover, hw=new_hw)
    # and back, with the images overtaking their camera_info (separate topics): the node pairs each
    # image with the camera_info of its own stamp, waiting briefly for it, so no frame is skipped
    s = h.next_stamp()
    h.publish(s, hw=IMG_HW, infos=False)
    h.pump(0.2)
    for c in range(len(CAMERAS)):
        h.info_pubs[c].publish(h.info_msg(c, s, IMG_HW))
    lost2 = 0 if h.until(lambda: s in h.depth, h.out_timeout_s) else 1
    problems2 = ["the frame whose camera_info came after its images was skipped"] if lost2 else []
    if not lost2:
        bad = h.check_depth(h.depth[s], s)
        problems2 += [bad] if bad else []
    return Result("image size change mid-stream", h.alive(), reported, lost + lost2 + len(problems + problems2),
                  recover + 1, "; ".join((["mismatch reported, new size processed, back with late camera_info"]
                                          if reported else []) + problems + problems2))


def fault_garbage_image(h: Harness, recover: int = 3) -> Result:
    """One camera's image message carries garbage bytes (wrong length) / a wrong step."""
    from vfdepth_ros import conversions as cv

    t = time.monotonic()
    s = h.next_stamp()
    bad = h.image_msg(2, h.k, s)
    if h.compressed:
        bad.data = bytes(np.random.default_rng(0).integers(0, 255, 300, dtype=np.uint8))
    else:
        bad.data = b"\x00\x01garbage"
    h.publish(s, replace={2: bad})
    reported = h.until(lambda: h.diag_since(t, lambda d: "bad image" in h.cam_diag(d, CAMERAS[2])
                                            .get("values", {}).get("last_error", "")), 10.0)
    if not h.compressed:  # a lying step as well
        s = h.next_stamp()
        bad = h.image_msg(2, h.k, s)
        bad.step = bad.step * 3
        h.publish(s, replace={2: bad})
    name = "garbage bytes in CompressedImage" if h.compressed else "garbage bytes in Image"
    return _finish(h, name, reported, recover, "'bad image' on camera_06" if reported else "")


def fault_node_restart(h: Harness, outage_s: float = 1.0, recover: int = 3) -> Result:
    """SIGKILL the node while inputs keep coming: the launcher respawns it and it resumes."""
    pid = h.node_pid()
    restarts = h.child.restarts
    os.kill(pid, signal.SIGKILL)
    h.outage(outage_s)
    back = h.until(lambda: h.child.restarts > restarts and h.node_pid() not in (None, pid), 30.0)
    t = time.monotonic()
    up = h.until(lambda: h.diag_since(t, lambda d: d.get("surround_depth: inference", {}).get("level") in ("OK", "WARN")
                                      and int(d["surround_depth: inference"]["values"]["frames_processed"]) == 0), 90.0)
    # inputs kept coming: publish at 10 Hz until the new process answers, then count losses
    h.until(lambda: all(p.get_subscription_count() > 0 for p in h.img_pubs if p is not None), 30.0)
    lost_warmup = 0
    for _ in range(100):
        s = h.next_stamp()
        h.publish(s)
        if h.until(lambda: s in h.depth, 1.0):
            break
        lost_warmup += 1
    return _finish(h, "node SIGKILL + launcher respawn", back and up, recover,
                   f"respawned (restart {h.child.restarts}), {lost_warmup} frames during warm-up")


def _restart_node(h: Harness) -> None:
    """SIGKILL the node; wait until the launcher's respawn has its model up and its image readers matched."""
    pid = h.node_pid()
    restarts = h.child.restarts
    os.kill(pid, signal.SIGKILL)
    h.until(lambda: h.child.restarts > restarts and h.node_pid() not in (None, pid), 30.0)
    t = time.monotonic()
    h.until(lambda: h.diag_since(t, lambda d: d.get("surround_depth: inference", {}).get("level") in ("OK", "WARN")),
            90.0)
    h.until(lambda: all(p.get_subscription_count() > 0 for p in h.img_pubs if p is not None), 30.0)


def fault_camera_info_late(h: Harness, recover: int = 3) -> Result:
    """A (re)started node gets a frame's images before any camera_info (separate topics, so this is
    ordinary at start-up): the set waits briefly for the calibration instead of being skipped."""
    _restart_node(h)
    # images only, slowly, until the new process has taken some (its readers have matched ours)
    t = time.monotonic()
    for _ in range(60):
        h.publish(h.next_stamp(), infos=False)
        if h.until(lambda: h.diag_since(t, lambda d: int(h.cam_diag(d, CAMERAS[-1]).get("values", {})
                                                         .get("received", 0)) > 0), 0.5):
            break
    h.pump(2.5)  # sets without calibration drain from the worker
    s = h.next_stamp()
    h.publish(s, infos=False)
    h.pump(0.3)
    for c in range(len(CAMERAS)):
        h.info_pubs[c].publish(h.info_msg(c, s))
    got = h.until(lambda: s in h.depth, 30.0)
    return _finish(h, "camera_info after the first images", got, recover,
                   "the late-calibrated set got depth" if got else "set skipped although camera_info came 0.3 s later")


def fault_tf_removed(h: Harness, recover: int = 3) -> Result:
    """/tf_static disappears (its publisher leaves) and the node restarts: no extrinsics, so sets are
    skipped with 'waiting for TF' on /diagnostics until /tf_static comes back."""
    h.remove_tf_publisher()
    pid = h.node_pid()
    restarts = h.child.restarts
    os.kill(pid, signal.SIGKILL)
    h.until(lambda: h.child.restarts > restarts and h.node_pid() not in (None, pid), 30.0)
    t = time.monotonic()
    h.until(lambda: h.diag_since(t, lambda d: d.get("surround_depth: inference", {}).get("level") in ("OK", "WARN")),
            90.0)
    h.until(lambda: all(p.get_subscription_count() > 0 for p in h.img_pubs if p is not None), 30.0)
    waiting = False
    first = h.stamp + DT
    for _ in range(50):
        s = h.next_stamp()
        h.publish(s)
        if h.until(lambda: h.diag_since(t, lambda d: "waiting for TF" in h.cam_diag(d, CAMERAS[0])
                                        .get("values", {}).get("calibration", "")), 0.5):
            waiting = True
            break
    h.pump(1.0)
    got_output = any(first <= st <= h.stamp for st in list(h.depth))  # no depth without extrinsics
    h.make_tf_publisher()  # latched: delivered once the node's /tf_static reader matches the new writer
    h.until(lambda: h.tf_pub.get_subscription_count() > 0, 10.0)
    h.pump(0.5)
    detail = ("'waiting for TF' reported" if waiting else "") + ("; depth WITHOUT extrinsics?!" if got_output else "")
    return _finish(h, "TF removed (node restarted without /tf_static)", waiting and not got_output, recover, detail)


QUICK = [("camera_publisher_restart", fault_camera_publisher_restart), ("camera_stopped", fault_camera_stopped),
         ("time_jump_back", fault_time_jump_back), ("duplicate_out_of_order", fault_duplicate_out_of_order),
         ("image_size_change", fault_image_size_change), ("garbage_image", fault_garbage_image),
         ("tf_removed", fault_tf_removed), ("camera_info_late", fault_camera_info_late),
         ("node_restart", fault_node_restart)]


def format_table(results: Sequence[Result]) -> str:
    w = max([len(r.fault) for r in results] + [5])
    lines = [f"{'fault'.ljust(w)}  survived  reported  lost/checked  detail",
             f"{'-' * w}  --------  --------  ------------  ------"]
    for r in results:
        lines.append(f"{r.fault.ljust(w)}  {'yes' if r.survived else 'NO':8}  {'yes' if r.reported else 'NO':8}  "
                     f"{f'{r.lost}/{r.checked}':>12}  {r.detail}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short outages (what the tests run)")
    ap.add_argument("--only", default="", help="comma-separated fault names: " + ", ".join(n for n, _ in QUICK)
                    + ", garbage_compressed")
    ap.add_argument("--domain-id", type=int, default=77)
    ap.add_argument("--log", default="", help="write the graph's output here")
    args = ap.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    long = not args.quick
    results: List[Result] = []
    h = Harness(args.domain_id, log_path=Path(args.log) if args.log else None)
    try:
        h.ready()
        for name, fn in QUICK:
            if only and name not in only:
                continue
            kw = {}
            if long and name in ("camera_stopped", "camera_publisher_restart"):
                kw = {"seconds" if name == "camera_stopped" else "outage_s": 5.0, "recover": 10}
            elif long:
                kw = {"recover": 10}
            r = fn(h, **kw)
            print(f"{r.fault}: {'ok' if r.ok else 'FAILED'} ({r.detail})", flush=True)
            results.append(r)
    finally:
        h.close()
    if not only or "garbage_compressed" in only:
        hc = Harness(args.domain_id + 1, compressed=True)
        try:
            hc.ready()
            r = fault_garbage_image(hc, recover=10 if long else 3)
            print(f"{r.fault}: {'ok' if r.ok else 'FAILED'} ({r.detail})", flush=True)
            results.append(r)
        finally:
            hc.close()
    print()
    print(format_table(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
