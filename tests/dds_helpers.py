"""Two-process DDS checks for tests/test_dds.py: run as ``python tests/dds_helpers.py pub|sub MODE``.

MODE ``frame``: the publisher sends one six-camera frame (6 x 384x640 rgb8 ``sensor_msgs/Image`` +
``CameraInfo``) and one ``nav_msgs/Odometry``; the subscriber receives everything and checks it
byte for byte against the same deterministic content. MODE ``tf``: one ``tf2_msgs/TFMessage`` on /tf.

Both processes load the loopback-only Fast DDS profile before rclpy starts (the parent passes
``vfdepth_ros.dds.loopback_env``), use reliable QoS, and synchronize on matched endpoints, never on
sleeps. Each prints one JSON line with its measurements on stdout and exits 0 only on success.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vfdepth_ros.dds import apply_loopback_profile, profile_active  # noqa: E402

CAMERAS = ("camera_01", "camera_05", "camera_06", "camera_07", "camera_08", "camera_09")
HEIGHT, WIDTH = 384, 640
STAMP_SEC, STAMP_NSEC = 1_700_000_000, 123_456_789
NS = "/vfdepth_dds_test"


def image_bytes(index: int) -> np.ndarray:
    """Deterministic image content (H, W, 3) uint8 for camera `index`."""
    return np.random.default_rng(1000 + index).integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)


def camera_stamp(index: int):
    """Per-camera stamps 10 ms apart (cameras of one instant fire spread in time)."""
    nsec = STAMP_NSEC + index * 10_000_000
    return STAMP_SEC + nsec // 1_000_000_000, nsec % 1_000_000_000


def intrinsics(index: int):
    fx = 500.0 + index
    return [fx, 0.0, 319.5, 0.0, fx, 191.5, 0.0, 0.0, 1.0]


ODOM_POSITION = (1.25, -0.5, 0.125)
ODOM_QUAT = (0.0, 0.0, 0.38268343236508984, 0.9238795325112867)  # x, y, z, w: 45 deg yaw
TF_TRANSLATION = (1.5, 0.0, 1.6)


def qos():
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def topics(mode: str):
    """(topic, type) pairs for `mode`."""
    if mode == "tf":
        from tf2_msgs.msg import TFMessage

        return [(f"{NS}/tf", TFMessage)]
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import CameraInfo, Image

    out = []
    for cam in CAMERAS:
        out += [(f"{NS}/{cam}/image_raw", Image), (f"{NS}/{cam}/camera_info", CameraInfo)]
    return out + [(f"{NS}/odom", Odometry)]


def build_messages(mode: str):
    """topic -> message, the content the subscriber expects."""
    msgs = {}
    if mode == "tf":
        from geometry_msgs.msg import TransformStamped
        from tf2_msgs.msg import TFMessage

        tfs = []
        for i, cam in enumerate(CAMERAS):
            t = TransformStamped()
            t.header.stamp.sec, t.header.stamp.nanosec = camera_stamp(i)
            t.header.frame_id = "base_link"
            t.child_frame_id = cam
            t.transform.translation.x, t.transform.translation.z = TF_TRANSLATION[0], TF_TRANSLATION[2]
            t.transform.translation.y = float(i)  # distinct per camera
            t.transform.rotation.w = 1.0
            tfs.append(t)
        msgs[f"{NS}/tf"] = TFMessage(transforms=tfs)
        return msgs
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import CameraInfo, Image

    for i, cam in enumerate(CAMERAS):
        img = Image()
        img.header.stamp.sec, img.header.stamp.nanosec = camera_stamp(i)
        img.header.frame_id = f"{cam}_optical"
        img.height, img.width, img.encoding, img.is_bigendian, img.step = HEIGHT, WIDTH, "rgb8", 0, WIDTH * 3
        img.data = image_bytes(i).tobytes()
        msgs[f"{NS}/{cam}/image_raw"] = img
        info = CameraInfo()
        info.header = img.header
        info.height, info.width, info.distortion_model = HEIGHT, WIDTH, "plumb_bob"
        info.d = [0.0] * 5
        info.k = intrinsics(i)
        msgs[f"{NS}/{cam}/camera_info"] = info
    odom = Odometry()
    odom.header.stamp.sec, odom.header.stamp.nanosec = STAMP_SEC, STAMP_NSEC
    odom.header.frame_id, odom.child_frame_id = "odom", "base_link"
    p, q = odom.pose.pose.position, odom.pose.pose.orientation
    p.x, p.y, p.z = ODOM_POSITION
    q.x, q.y, q.z, q.w = ODOM_QUAT
    msgs[f"{NS}/odom"] = odom
    return msgs


def check_message(topic: str, msg, expected) -> str | None:
    """None when `msg` equals `expected` (images compared byte for byte), else what differs."""
    name = type(msg).__name__
    if name == "Image":
        got = np.frombuffer(bytes(msg.data), dtype=np.uint8)
        want = np.frombuffer(bytes(expected.data), dtype=np.uint8)
        if (msg.height, msg.width, msg.encoding, msg.step) != (expected.height, expected.width, expected.encoding,
                                                                expected.step):
            return f"{topic}: image header fields differ: {msg.height}x{msg.width} {msg.encoding} step {msg.step}"
        if got.shape != want.shape or not np.array_equal(got, want):
            return f"{topic}: image bytes differ ({got.size} received, {want.size} sent)"
        if msg.header != expected.header:
            return f"{topic}: header {msg.header} != {expected.header}"
        return None
    if msg != expected:
        return f"{topic}: {name} differs: {msg} != {expected}"
    return None


def run_publisher(mode: str, timeout_s: float) -> int:
    import rclpy
    from rclpy.duration import Duration

    rclpy.init()
    node = rclpy.create_node("vfdepth_dds_test_pub")
    report = {"role": "pub", "mode": mode, "profile_active": profile_active()}
    try:
        t0 = time.monotonic()
        pubs = {topic: node.create_publisher(tp, topic, qos()) for topic, tp in topics(mode)}
        msgs = build_messages(mode)
        deadline = t0 + timeout_s
        while any(p.get_subscription_count() < 1 for p in pubs.values()):
            if time.monotonic() > deadline:
                unmatched = [t for t, p in pubs.items() if p.get_subscription_count() < 1]
                report["error"] = f"no subscriber matched within {timeout_s} s: {unmatched}"
                print(json.dumps(report), flush=True)
                return 1
            rclpy.spin_once(node, timeout_sec=0.05)
        report["discovery_s"] = time.monotonic() - t0
        report["publish_wall_time"] = time.time()
        for topic, pub in pubs.items():
            pub.publish(msgs[topic])
        acked = all(p.wait_for_all_acked(Duration(seconds=timeout_s)) for p in pubs.values())
        report["all_acked"] = acked
        report["acked_s"] = time.time() - report["publish_wall_time"]
        print(json.dumps(report), flush=True)
        return 0 if acked else 1
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def run_subscriber(mode: str, timeout_s: float) -> int:
    import rclpy

    rclpy.init()
    node = rclpy.create_node("vfdepth_dds_test_sub")
    expected = build_messages(mode)
    received: dict = {}
    recv_time: dict = {}
    report = {"role": "sub", "mode": mode, "profile_active": profile_active()}

    def make_cb(topic):
        def cb(msg):
            received[topic] = msg
            recv_time[topic] = time.time()
        return cb

    subs = [node.create_subscription(tp, topic, make_cb(topic), qos()) for topic, tp in topics(mode)]
    try:
        # Tell the parent we exist: it starts the publisher only after this line.
        print(json.dumps({"role": "sub", "ready": True}), flush=True)
        deadline = time.monotonic() + timeout_s
        while len(received) < len(expected) and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        missing = sorted(set(expected) - set(received))
        errors = [e for t in sorted(received) if (e := check_message(t, received[t], expected[t]))]
        report.update(received=len(received), expected=len(expected), missing=missing, errors=errors,
                      first_recv_wall_time=min(recv_time.values(), default=None),
                      last_recv_wall_time=max(recv_time.values(), default=None))
        print(json.dumps(report), flush=True)
        return 0 if not missing and not errors else 1
    finally:
        del subs
        node.destroy_node()
        rclpy.try_shutdown()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["pub", "sub"])
    parser.add_argument("mode", choices=["frame", "tf"])
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    apply_loopback_profile()  # the parent already passes the profile; this keeps the script safe alone
    return run_publisher(args.mode, args.timeout) if args.role == "pub" else run_subscriber(args.mode, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
