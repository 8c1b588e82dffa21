"""Play -> record round trips through real rclpy processes (loopback DDS profile, own domain id)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from bag_helpers import decode_all, mcap_records, read_all, tiny_recording, vfdepth_cmd
from vfdepth_ros import conversions as cv
from vfdepth_ros.bag import common as C
from vfdepth_ros.bag.convert import write_recording
from vfdepth_ros.dds import loopback_env

pytest.importorskip("rclpy")
pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs not built (run tools/build_tf2_msgs.py)")

ALL = ["/tf_static", "/tf", "gt/odom", "lidar/points", "camera_00/image_raw", "camera_00/camera_info",
       "camera_01/image_raw", "camera_01/camera_info"]


@pytest.fixture
def tiny_bag(tmp_path):
    out = tmp_path / "in.mcap"
    write_recording(tiny_recording(frames=5), out, progress=False)
    return out


def _start(args, domain_id, **kw):
    return subprocess.Popen(vfdepth_cmd(*args), env=loopback_env(domain_id=domain_id), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def _finish(proc, timeout=90):
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def test_play_record_round_trip_byte_identical(tiny_bag, tmp_path, ros_domain_id):
    out = tmp_path / "rec.mcap"
    rec = _start(["bag", "record", "-o", str(out), *ALL, "/clock", "--idle-timeout", "3"], ros_domain_id)
    play = _start(["bag", "play", str(tiny_bag), "--as-fast-as-possible", "--clock", "--no-progress",
                   "--match-topics", *ALL[2:], "--match-timeout", "30"], ros_domain_id)
    rc_p, log_p = _finish(play)
    assert rc_p == 0, log_p
    rc_r, log_r = _finish(rec)
    assert rc_r == 0, log_r
    # each topic is announced once its publisher is seen (scripts wait for it before the publisher sends)
    for topic in ALL:
        assert log_r.count(f"matched /{topic.lstrip('/')}\n") == 1, (topic, log_r)
    src, got = read_all(tiny_bag), read_all(out)
    for topic in ALL:
        assert [raw for _, raw in got[topic.lstrip("/")]] == [raw for _, raw in src[topic.lstrip("/")]], topic
    # log time = receive time (ROS time of the recorder), not the bag's
    times = [t for t, _ in got["camera_00/image_raw"]]
    assert times == sorted(times) and times[0] > src["camera_00/image_raw"][-1][0]
    # /tf_static recorded as latched, /clock covers the bag's stamps
    from vfdepth_ros.bag.info import summarize

    assert {t.topic for t in summarize(out).topics if t.latched} == {"/tf_static"}
    clocks = [cv.stamp_to_ns(m.clock) for m in decode_all(out, "clock")]
    assert clocks == sorted(clocks) and clocks[-1] == src["camera_00/image_raw"][-1][0]


def test_play_start_topics_filter_sends_latched_first(tiny_bag, tmp_path, ros_domain_id):
    out = tmp_path / "rec.mcap"
    rec = _start(["bag", "record", "-o", str(out), "/tf_static", "camera_01/image_raw", "--idle-timeout", "3"],
                 ros_domain_id)
    play = _start(["bag", "play", str(tiny_bag), "--rate", "4", "--start", "0.25", "--topics", "/tf_static",
                   "camera_01/image_raw", "--no-progress", "--match-timeout", "30"], ros_domain_id)
    assert _finish(play)[0] == 0
    rc, log = _finish(rec)
    assert rc == 0, log
    src, got = read_all(tiny_bag), read_all(out)
    t_start = src["tf_static"][0][0] + 250_000_000
    assert [r for _, r in got["camera_01/image_raw"]] == [r for t, r in src["camera_01/image_raw"] if t >= t_start]
    assert [r for _, r in got["tf_static"]] == [r for _, r in src["tf_static"]]  # before --start, sent anyway
    assert set(got) == {"tf_static", "camera_01/image_raw"}


def _partial_size(out: Path) -> int:
    part = out.parent / f".{out.name}.partial"
    return sum(p.stat().st_size for p in part.glob("*.mcap")) if part.exists() else 0


def test_recorder_survives_player_crash_and_ctrl_c(tiny_bag, tmp_path, ros_domain_id):
    out_a, out_b = tmp_path / "a.mcap", tmp_path / "b.mcap"
    # slow playback: 5 frames 0.1 s apart at rate 0.01 -> one frame every 10 s
    play = _start(["bag", "play", str(tiny_bag), "--rate", "0.01", "--no-progress", "--match-timeout", "30",
                   "--match-topics", "camera_00/image_raw"],
                  ros_domain_id)
    rec_a = _start(["bag", "record", "-o", str(out_a), "camera_00/image_raw", "--until-pid",
                    str(play.pid), "--flush-interval", "0.2"], ros_domain_id)
    rec_b = _start(["bag", "record", "-o", str(out_b), "camera_00/image_raw", "--flush-interval", "0.2"],
                   ros_domain_id)
    # wait (bounded) until both recorders flushed an image (24x32x3 bytes) to disk
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (_partial_size(out_a) < 2304 or _partial_size(out_b) < 2304):
        assert play.poll() is None and rec_a.poll() is None and rec_b.poll() is None
        time.sleep(0.1)
    play.send_signal(signal.SIGKILL)  # the player crashes
    play.wait(timeout=10)
    rc_a, log_a = _finish(rec_a, timeout=30)  # stops by itself: the player's pid is gone
    assert rc_a == 0 and "exited" in log_a, log_a
    rec_b.send_signal(signal.SIGINT)  # Ctrl-C
    rc_b, log_b = _finish(rec_b, timeout=30)
    assert rc_b == 0, log_b
    src = read_all(tiny_bag)
    for out in (out_a, out_b):
        got = read_all(out)  # a complete, readable bag
        imgs = [r for _, r in got["camera_00/image_raw"]]
        ref = [r for _, r in src["camera_00/image_raw"]]
        # a recorder that matched after the player started misses the first frames, never one in between
        assert 1 <= len(imgs) < 5 and imgs[0] in ref
        k = ref.index(imgs[0])
        assert imgs == ref[k:k + len(imgs)]


def test_paced_play_sends_the_first_frame_again_when_it_got_no_output(tiny_bag, ros_domain_id):
    """A node whose reader discovered the player late loses the first frame; the paced player
    publishes that frame again instead of waiting out --wait-timeout, and goes on in order."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from vfdepth_ros.bag.rosnode import rclpy_qos

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain_id)
    seen = []
    try:
        node = rclpy.create_node("lossy_echo", context=ctx)
        pub = node.create_publisher(Image, "camera_00/depth", rclpy_qos(False))

        def on_image(msg):
            seen.append(cv.stamp_to_ns(msg.header.stamp))
            if len(seen) > 1:  # the very first image is "lost"
                pub.publish(msg)

        node.create_subscription(Image, "camera_00/image_raw", on_image, rclpy_qos(False))
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        play = _start(["bag", "play", str(tiny_bag), "--as-fast-as-possible", "--no-progress",
                       "--match-topics", "camera_00/image_raw", "--match-timeout", "30",
                       "--wait-for-topic", "camera_00/depth", "--wait-timeout", "60", "--resend-first", "1"],
                      ros_domain_id)
        deadline = time.monotonic() + 90
        while play.poll() is None and time.monotonic() < deadline:
            ex.spin_once(timeout_sec=0.05)
        rc, log = _finish(play, timeout=10)
    finally:
        rclpy.shutdown(context=ctx)
    assert rc == 0, log
    assert "publishing it again" in log and "no output for stamp" not in log, log
    stamps = [cv.stamp_to_ns(m.header.stamp) for m in decode_all(tiny_bag, "camera_00/image_raw")]
    assert seen == [stamps[0]] + stamps, (seen, log)  # first frame twice, then each frame once, in order


def _echo_node(ctx, on_image):
    """An in-process stand-in for the depth node: camera_00/image_raw in, on_image(msg, pub) decides."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from vfdepth_ros.bag.rosnode import rclpy_qos

    node = rclpy.create_node("lossy_echo", context=ctx)
    pub = node.create_publisher(Image, "camera_00/depth", rclpy_qos(False))
    node.create_subscription(Image, "camera_00/image_raw", lambda m: on_image(m, pub), rclpy_qos(False))
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    return ex


def _paced_play(tiny_bag, ros_domain_id, on_image, *extra):
    import rclpy

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain_id)
    try:
        ex = _echo_node(ctx, on_image)
        play = _start(["bag", "play", str(tiny_bag), "--as-fast-as-possible", "--no-progress",
                       "--match-topics", "camera_00/image_raw", "--match-timeout", "30",
                       "--wait-for-topic", "camera_00/depth", "--wait-timeout", "60", "--resend-after", "1",
                       "--max-resends", "2", *extra], ros_domain_id)
        deadline = time.monotonic() + 90
        while play.poll() is None and time.monotonic() < deadline:
            ex.spin_once(timeout_sec=0.05)
        return _finish(play, timeout=10)
    finally:
        rclpy.shutdown(context=ctx)


def test_paced_play_resends_lost_frames_and_reports_the_ones_without_output(tiny_bag, ros_domain_id):
    """A node that loses frame 1 once and never answers frame 3: frame 1 is re-sent and goes through,
    frame 3 is re-sent --max-resends times and counted as lost (not waited out for --wait-timeout),
    the run ends with a summary and exit 1; --tolerate-lost makes that exit 0."""
    stamps = [cv.stamp_to_ns(m.header.stamp) for m in decode_all(tiny_bag, "camera_00/image_raw")]
    for extra, want_rc in (((), 1), (("--tolerate-lost",), 0)):
        seen = []

        def on_image(msg, pub):
            t = cv.stamp_to_ns(msg.header.stamp)
            seen.append(t)
            if t == stamps[3] or (t == stamps[1] and seen.count(t) == 1):
                return  # dropped on purpose
            pub.publish(msg)

        rc, log = _paced_play(tiny_bag, ros_domain_id, on_image, *extra)
        assert rc == want_rc, log
        assert "5 frames sent, 4 outputs seen" in log and f"1 frames lost (stamps {stamps[3]})" in log, log
        assert "counted as lost" in log and "after 60" not in log, log
        assert seen.count(stamps[1]) >= 2 and seen.count(stamps[3]) == 3, (seen, log)  # 1 + --max-resends
        assert sorted(set(seen)) == stamps and [t for i, t in enumerate(seen) if t not in seen[:i]] == stamps
        if want_rc:
            assert "error: 1 of 5 frames got no camera_00/depth output" in log


def test_play_refuses_a_damaged_bag(tiny_bag, tmp_path, ros_domain_id):
    data = tiny_bag.read_bytes()
    reader = C.open_reader(tiny_bag)
    n = sum(c.msgcount for c in reader.connections)
    reader.close()
    # drop one message record's opcode inside the chunk: readers skip it, the index still counts it
    _, msgs, _ = mcap_records(data)
    bad = bytearray(data)
    bad[msgs[len(msgs) // 2][0]] ^= 0x5A
    path = tmp_path / "bad.mcap"
    path.write_bytes(bytes(bad))
    play = _start(["bag", "play", str(path), "--as-fast-as-possible", "--no-progress", "--no-wait-for-subscribers"],
                  ros_domain_id)
    rc, log = _finish(play, timeout=60)
    assert rc == 2 and f"read {n - 1} of the {n} messages its index lists" in log and "Traceback" not in log, log


class _GraphOnlyNode:
    """Just the graph queries the recorder makes: one topic of a type unknown here, one it knows, both with a
    publisher."""

    def __init__(self):
        self.graph = [("/custom", ["acme_msgs/msg/Widget"]), ("/odom", ["nav_msgs/msg/Odometry"])]
        self.subscriptions = []

    def get_publishers_info_by_topic(self, topic):
        return [object()] if topic == "/custom" else []  # discovered; /odom's type is given

    def get_topic_names_and_types(self):
        return self.graph

    def count_publishers(self, topic):
        return 1

    def create_subscription(self, cls, topic, cb, qos, raw=False):
        self.subscriptions.append(topic)


def test_recorder_never_announces_a_topic_it_does_not_record(tmp_path, caplog):
    """A discovered topic of an unknown type is logged as not recorded and never as 'matched' (a script that
    waits for 'matched TOPIC' before it sends must not start on a topic that lands nowhere)."""
    from vfdepth_ros.bag.recorder import Recorder

    rec = Recorder(tmp_path / "r.mcap", ["/custom", "/odom:nav_msgs/msg/Odometry"])
    node = _GraphOnlyNode()
    rec.writer.open()
    try:
        with caplog.at_level("INFO", logger="vfdepth_ros.bag.recorder"):
            rec._try_subscribe(node)
            rec._note_matches(node)
    finally:
        rec.writer.close()
    assert node.subscriptions == ["/odom"]
    assert rec.matched == {"/odom"} and rec.unrecorded == {"/custom"}
    assert "matched /custom" not in caplog.text and "matched /odom" in caplog.text
    assert "acme_msgs/msg/Widget unknown here; not recording it" in caplog.text
