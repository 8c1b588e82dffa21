"""`vfdepth bag play`: publish a ROS 2 bag with rclpy, for machines without `ros2 bag`.

Messages go out as the bag's serialized CDR bytes (``Publisher.publish(bytes)``, no re-serialization).
Timing: real time x `--rate` (log time of the bag), or `--as-fast-as-possible`, optionally paced by
the node's output (`--wait-for-topic camera_01/depth`: before the next frame on the matching input
topic goes out, wait until an output with the previous frame's stamp arrived; a frame without output
is published again, a bounded number of times, then counted as lost; a summary ends the run and lost
frames make the exit status 1 unless `--tolerate-lost`). `/clock` is published
with `--clock` (nodes then run with use_sim_time). Latched topics (offered transient_local in the bag,
e.g. /tf_static) are published transient_local, and their last message before `--start` is sent first.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

from vfdepth_ros.bag import common as C
from vfdepth_ros.bag.common import ALLOW_DAMAGED_HELP, BagError

log = logging.getLogger(__name__)


@dataclass
class PlayOptions:
    rate: float = 1.0
    as_fast_as_possible: bool = False
    loop: bool = False
    clock: bool = False
    clock_hz: float = 50.0
    start_s: float = 0.0
    duration_s: Optional[float] = None
    topics: Optional[Sequence[str]] = None
    wait_for_subscribers: bool = True
    match_timeout_s: float = 10.0
    match_topics: Optional[Sequence[str]] = None
    wait_for_topic: Optional[str] = None
    pace_topic: Optional[str] = None
    wait_timeout_s: float = 30.0
    resend_after_s: float = 3.0  # paced mode: no output for a frame this long -> publish it again
    max_resends: int = 3  # paced mode: then the frame counts as lost (the first frame: until wait_timeout_s)
    tolerate_lost: bool = False  # paced mode: exit 0 even when frames got no output
    domain_id: Optional[int] = None
    progress: bool = True
    allow_damaged: bool = False


@dataclass
class PaceStats:
    """Paced play: frames waited for, re-sends, and which outputs were seen."""

    frames: int = 0
    resends: int = 0
    resent_frames: int = 0
    waited: List[int] = field(default_factory=list)  # stamps of the paced frames, in order
    seen: Set[int] = field(default_factory=set)  # output stamps received

    @property
    def lost(self) -> List[int]:
        return [t for t in self.waited if t not in self.seen]

    def summary(self, topic: str) -> str:
        lost = self.lost
        return (f"paced by {topic}: {self.frames} frames sent, {self.frames - len(lost)} outputs seen, "
                f"{self.resent_frames} frames re-sent ({self.resends} re-sends), {len(lost)} frames lost"
                + (f" (stamps {', '.join(map(str, lost[:5]))}{', ...' if len(lost) > 5 else ''})" if lost else ""))


def _norm(topic: str) -> str:
    return topic if topic.startswith("/") else "/" + topic


class Player:
    """Publishes one bag; `play()` returns the number of messages sent."""

    def __init__(self, bag: str | Path, opts: PlayOptions) -> None:
        self.bag = Path(bag)
        self.opts = opts
        if opts.rate <= 0:
            raise BagError(f"--rate {opts.rate}: must be > 0")
        if opts.resend_after_s <= 0:
            raise BagError(f"--resend-after {opts.resend_after_s}: must be > 0 seconds")
        if opts.max_resends < 0:
            raise BagError(f"--max-resends {opts.max_resends}: must be >= 0")
        self.reader = C.open_reader(self.bag, opts.allow_damaged)
        conns = self.reader.connections
        by_topic = {_norm(c.topic): c for c in conns}
        if opts.topics:
            want = [_norm(t) for t in opts.topics]
            missing = [t for t in want if t not in by_topic]
            if missing:
                raise BagError(f"{self.bag}: no topic {', '.join(missing)} in the bag (it has {', '.join(sorted(by_topic))})")
            conns = [by_topic[t] for t in want]
        self.connections = conns
        self.stop = None
        self._acked_ns = -1
        self._ack_cv = threading.Condition()
        self._latency_s = 0.0  # typical time from a paced frame to its output
        self.pace = PaceStats()

    # ------------------------------------------------------------------ set-up
    def _make_publishers(self, node):
        from vfdepth_ros.bag.rosnode import message_class, rclpy_qos

        pubs: Dict[int, object] = {}
        skipped = []
        for c in self.connections:
            cls = message_class(c.msgtype)
            if cls is None:
                if self.opts.topics:
                    raise BagError(f"topic {c.topic}: message type {c.msgtype} is not installed for rclpy; "
                                   "drop it from --topics (or install its interface package)")
                skipped.append(f"{c.topic} ({c.msgtype})")
                continue
            pubs[c.id] = node.create_publisher(cls, c.topic, rclpy_qos(C.is_latched(c), depth=100))
        for s in skipped:
            log.warning("not playing %s: message type not installed for rclpy", s)
        if not pubs:
            raise BagError(f"{self.bag}: none of the selected topics can be published")
        return pubs

    def _wait_for_match(self, node, pubs) -> None:
        want = self.opts.match_topics
        if want is None:  # default: what the node graph consumes (images, camera_info, TF)
            want = [c.topic for c in self.connections if c.id in pubs and (
                c.msgtype in ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/CameraInfo")
                or _norm(c.topic) in ("/tf", "/tf_static"))]
        want_n = {_norm(t) for t in want}
        targets = [(c.topic, pubs[c.id]) for c in self.connections if c.id in pubs and _norm(c.topic) in want_n]
        if not targets:
            return
        deadline = time.monotonic() + self.opts.match_timeout_s

        def unmatched() -> List[str]:
            out = [t for t, p in targets if p.get_subscription_count() == 0]
            # Paced play: the first frame's output is only seen if our own --wait-for-topic
            # subscription is matched to the node's publisher before anything is sent.
            sub = getattr(self, "_pace_sub", None)
            if sub is not None and sub.get_publisher_count() == 0:
                out.append(f"{self.opts.wait_for_topic} (publisher)")
            return out

        while time.monotonic() < deadline and not self.stop.is_set():
            waiting = unmatched()
            if not waiting:
                log.info("subscribers matched on %d topics", len(targets))
                return
            time.sleep(0.05)
        waiting = unmatched()
        if waiting:
            log.warning("no subscriber on %s after %.1f s; playing anyway", ", ".join(waiting[:4]) +
                        (" ..." if len(waiting) > 4 else ""), self.opts.match_timeout_s)

    def _pacing(self, node):
        """Subscribe (raw) to --wait-for-topic; return the connection id of the paced input topic."""
        from vfdepth_ros.bag.rosnode import header_stamp_ns, message_class, rclpy_qos

        wt = self.opts.wait_for_topic
        if not wt:
            return None
        pace = self.opts.pace_topic
        topics = {_norm(c.topic): c for c in self.connections}
        if pace is None:
            base = wt.rstrip("/").rsplit("/", 1)[0] if "/" in wt.strip("/") else ""
            for cand in (f"{base}/image_raw", f"{base}/image_raw/compressed"):
                if _norm(cand) in topics:
                    pace = cand
                    break
            if pace is None:
                imgs = [c.topic for c in self.connections if "Image" in c.msgtype]
                if not imgs:
                    raise BagError(f"--wait-for-topic {wt}: the bag has no image topic to pace; give --pace-topic")
                pace = imgs[0]
        if _norm(pace) not in topics:
            raise BagError(f"--pace-topic {pace}: not in {self.bag}")
        types = dict(node.get_topic_names_and_types())
        msgtype = (types.get(_norm(wt)) or ["sensor_msgs/msg/Image"])[0]
        cls = message_class(msgtype)
        if cls is None:
            raise BagError(f"--wait-for-topic {wt}: type {msgtype} not installed for rclpy")

        def on_msg(raw: bytes) -> None:
            t = header_stamp_ns(raw)
            if t is None:
                return
            with self._ack_cv:
                self._acked_ns = max(self._acked_ns, t)
                self.pace.seen.add(t)
                self._ack_cv.notify_all()
        self._pace_sub = node.create_subscription(cls, wt, on_msg, rclpy_qos(False, depth=10), raw=True)
        log.info("pacing: before each %s frame, wait for %s of the previous one (timeout %.0f s)", pace, wt,
                 self.opts.wait_timeout_s)
        return topics[_norm(pace)].id

    def _wait_ack(self, stamp_ns: int, resend, first: bool) -> None:
        """Wait for the output of the paced frame `stamp_ns`; `resend` publishes the frame's messages again.

        A frame can be lost on the way (images travel best-effort; a DDS reader also drops samples from
        a writer it has not discovered yet, so the very first frame is lost easily). Without output the
        frame is published again every max(--resend-after, 2 x the typical output latency), at most
        --max-resends times; then it counts as lost and play goes on. The first frame (model warm-up,
        late discovery) is re-sent after --resend-after, 2x, 4x, ... until --wait-timeout."""
        opts = self.opts
        t0 = time.monotonic()
        deadline = t0 + opts.wait_timeout_s
        interval = opts.resend_after_s if first else max(opts.resend_after_s, 2.0 * self._latency_s)
        next_resend = t0 + interval
        resends = 0
        with self._ack_cv:
            while self._acked_ns < stamp_ns and not self.stop.is_set():
                now = time.monotonic()
                if now >= deadline or (not first and now >= next_resend and resends >= opts.max_resends):
                    log.warning("%s: no output for stamp %d after %.1f s and %d re-send(s); counted as lost, "
                                "going on", opts.wait_for_topic, stamp_ns, now - t0, resends)
                    break
                if now >= next_resend:
                    resends += 1
                    log.info("%s: stamp %d still without output after %.1f s%s: publishing it again (%d)",
                             opts.wait_for_topic, stamp_ns, now - t0,
                             " (late discovery or a slow model start)" if first else " (lost on the way?)", resends)
                    self._ack_cv.release()
                    try:
                        resend()
                    finally:
                        self._ack_cv.acquire()
                    if first:
                        interval *= 2
                    next_resend = now + interval
                self._ack_cv.wait(max(0.0, min(deadline - now, next_resend - now, 0.1)))
            acked = self._acked_ns >= stamp_ns
        self.pace.frames += 1
        self.pace.resends += resends
        self.pace.resent_frames += resends > 0
        if acked:  # typical output latency (a node drops the copies of a frame it has: the output is the first's)
            dt = time.monotonic() - t0
            self._latency_s = 0.7 * self._latency_s + 0.3 * dt if self._latency_s else dt
        self.pace.waited.append(stamp_ns)

    # ------------------------------------------------------------------ playing
    def play(self, stop=None) -> int:
        from vfdepth_ros.bag.rosnode import StopFlag, init_rclpy

        self.stop = stop or StopFlag()
        if stop is None:
            self.stop.install()
        opts = self.opts
        rclpy, context, node = init_rclpy(opts.domain_id, "vfdepth_bag_player")
        from rclpy.executors import SingleThreadedExecutor

        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        spin = threading.Thread(target=self._spin, args=(executor,), daemon=True)
        spin.start()
        sent = 0
        try:
            pubs = self._make_publishers(node)
            clock_pub = None
            if opts.clock:
                from rclpy.qos import QoSProfile
                from rosgraph_msgs.msg import Clock

                clock_pub = node.create_publisher(Clock, "/clock", QoSProfile(depth=10))
            pace_id = self._pacing(node)
            if opts.wait_for_subscribers:
                self._wait_for_match(node, pubs)
            while True:
                sent += self._play_once(pubs, clock_pub, pace_id)
                if not opts.loop or self.stop.is_set():
                    break
            # let reliable writers hand over the last messages before the participant goes away (not
            # when asked to stop: a busy subscriber would hold each publisher up to 2 s)
            for pub in pubs.values():
                if self.stop.is_set():
                    break
                try:
                    pub.wait_for_all_acked(rclpy.duration.Duration(seconds=2.0))
                except Exception:  # pragma: no cover - older rclpy
                    pass
        finally:
            executor.shutdown(timeout_sec=1.0)
            spin.join(timeout=2.0)
            node.destroy_node()
            rclpy.shutdown(context=context)
            self.reader.close()
        return sent

    def _spin(self, executor) -> None:
        try:
            executor.spin()
        except Exception:  # executor shut down
            pass

    def _play_once(self, pubs, clock_pub, pace_id) -> int:
        from tqdm import tqdm

        opts = self.opts
        bag_start = self.reader.start_time
        start_ns = bag_start + int(opts.start_s * 1e9)
        stop_ns = start_ns + int(opts.duration_s * 1e9) if opts.duration_s is not None else None
        conns = [c for c in self.connections if c.id in pubs]
        sent = 0
        # latched topics: their newest message before the start goes out first
        if start_ns > bag_start:
            latched = [c for c in conns if C.is_latched(c)]
            last: Dict[int, bytes] = {}
            for c, t, raw in C.iter_messages(self.reader, latched, bag_start, start_ns):
                last[c.id] = raw
            for cid, raw in last.items():
                pubs[cid].publish(raw)
                sent += 1
        total = sum(c.msgcount for c in conns)
        bar = tqdm(total=total, desc=f"playing {self.bag.name}", unit="msg", disable=not opts.progress, leave=False)
        wall0 = None
        t_first = None
        last_clock_wall = 0.0
        pending_pace: Optional[int] = None
        paced = 0  # paced frames started so far
        group: List[Tuple[int, bytes]] = []  # messages from the pending paced one on: re-sent when it is lost
        with self._ack_cv:
            self._acked_ns = -1  # a loop starts over at the first stamp

        def resend() -> None:
            for cid, data in group:
                pubs[cid].publish(data)

        try:
            for c, t, raw in C.iter_messages(self.reader, conns, start_ns, stop_ns, opts.allow_damaged):
                if self.stop.is_set():
                    break
                if t_first is None:
                    t_first, wall0 = t, time.monotonic()
                if pace_id is not None and c.id == pace_id:
                    if pending_pace is not None:
                        self._wait_ack(pending_pace, resend, first=paced == 1)
                        group = []
                    stamp = _header_stamp(raw)
                    pending_pace = stamp if stamp is not None else t
                    paced += 1
                if pending_pace is not None:
                    group.append((c.id, raw))
                if not opts.as_fast_as_possible:
                    target = wall0 + (t - t_first) * 1e-9 / opts.rate
                    while not self.stop.is_set():
                        now = time.monotonic()
                        if now >= target:
                            break
                        if clock_pub is not None and now - last_clock_wall >= 1.0 / opts.clock_hz:
                            sim = t_first + int((now - wall0) * opts.rate * 1e9)
                            self._publish_clock(clock_pub, sim)
                            last_clock_wall = now
                        time.sleep(min(target - now, 1.0 / max(opts.clock_hz, 1.0)))
                if clock_pub is not None:
                    self._publish_clock(clock_pub, t)
                pubs[c.id].publish(raw)
                sent += 1
                bar.update(1)
            if pending_pace is not None and not self.stop.is_set():
                self._wait_ack(pending_pace, resend, first=paced == 1)
        finally:
            bar.close()
        return sent

    @staticmethod
    def _publish_clock(pub, t_ns: int) -> None:
        from rosgraph_msgs.msg import Clock

        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(t_ns), 1_000_000_000)
        pub.publish(msg)


def _header_stamp(raw: bytes) -> Optional[int]:
    from vfdepth_ros.bag.rosnode import header_stamp_ns

    return header_stamp_ns(raw)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="a .mcap/.db3 file or a rosbag2 directory")
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--rate", "-r", type=float, default=1.0, help="playback speed factor (default 1.0)")
    speed.add_argument("--as-fast-as-possible", action="store_true", help="no timing: publish back to back")
    parser.add_argument("--loop", "-l", action="store_true", help="play again from the start until stopped")
    parser.add_argument("--clock", action="store_true", help="publish /clock (run nodes with use_sim_time)")
    parser.add_argument("--clock-hz", type=float, default=50.0, help="/clock rate between messages (default 50)")
    parser.add_argument("--start", type=float, default=0.0, metavar="S", help="start S seconds into the bag")
    parser.add_argument("--duration", type=float, default=None, metavar="S", help="play only S seconds")
    parser.add_argument("--topics", nargs="+", default=None, help="only these topics")
    parser.add_argument("--no-wait-for-subscribers", action="store_true",
                        help="start at once instead of waiting for subscribers (see --match-topics)")
    parser.add_argument("--match-timeout", type=float, default=10.0, metavar="S",
                        help="how long to wait for subscribers before playing anyway (default 10)")
    parser.add_argument("--match-topics", nargs="+", default=None, help="topics that need a subscriber before playing (default: images, camera_info, /tf, /tf_static)")
    parser.add_argument("--wait-for-topic", default=None, metavar="TOPIC",
                        help="paced mode: wait for this output (e.g. camera_01/depth) of each frame before the next")
    parser.add_argument("--pace-topic", default=None, help="input topic paced by --wait-for-topic (default derived)")
    parser.add_argument("--wait-timeout", type=float, default=30.0, metavar="S",
                        help="paced mode: give up waiting for one frame's output after S seconds (default 30)")
    parser.add_argument("--resend-after", "--resend-first", dest="resend_after", type=float, default=3.0, metavar="S",
                        help="paced mode: publish a frame again when it has no output after S seconds (or twice the "
                             "typical output latency when longer), then again, --max-resends times; the first frame "
                             "after S, 2S, 4S, ... until --wait-timeout (model warm-up, late discovery; default 3)")
    parser.add_argument("--max-resends", type=int, default=3, metavar="N",
                        help="paced mode: a frame still without output after N re-sends counts as lost (default 3)")
    parser.add_argument("--tolerate-lost", action="store_true",
                        help="paced mode: exit 0 even when some frames got no output (default: exit 1)")
    parser.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default from the environment)")
    parser.add_argument("--allow-damaged", action="store_true", help=ALLOW_DAMAGED_HELP)
    parser.add_argument("--no-progress", action="store_true")


def options_from_args(args: argparse.Namespace) -> PlayOptions:
    return PlayOptions(rate=args.rate, as_fast_as_possible=args.as_fast_as_possible, loop=args.loop, clock=args.clock,
                       clock_hz=args.clock_hz, start_s=args.start, duration_s=args.duration, topics=args.topics,
                       wait_for_subscribers=not args.no_wait_for_subscribers, match_timeout_s=args.match_timeout,
                       match_topics=args.match_topics, wait_for_topic=args.wait_for_topic, pace_topic=args.pace_topic,
                       wait_timeout_s=args.wait_timeout, resend_after_s=args.resend_after,
                       max_resends=args.max_resends, tolerate_lost=args.tolerate_lost,
                       domain_id=args.domain_id, progress=not args.no_progress, allow_damaged=args.allow_damaged)


def _exit_now(code: int) -> None:
    """Leave without the interpreter's finalization: with rclpy and numpy loaded it can take seconds
    on a busy machine, with Python's signal handlers already reset, so a launcher's escalating
    SIGTERM ended the player with -15 (or a second signal with the CLI's 130)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # the reading end is gone (a launcher killed by SIGTERM)
            pass
    os._exit(code)


def _say(line: str) -> None:
    """print, unless stdout is gone: `ros2 launch` ended by SIGTERM leaves the player a broken pipe,
    and a BrokenPipeError there made its stop exit 1."""
    try:
        print(line, flush=True)
    except (OSError, ValueError):
        pass


def _leave_now(signum: int, frame) -> None:  # noqa: ARG001
    """A repeated stop signal (a launcher escalating to SIGTERM, a second Ctrl-C): the player has
    nothing to save, so it leaves at once, exit 0, instead of a KeyboardInterrupt in its clean-up."""
    log.info("stop signal %d again: leaving now", signum)
    _exit_now(0)


def install_stop(stop) -> None:
    """Install `stop`'s SIGINT/SIGTERM handlers, with a repeat that would raise KeyboardInterrupt
    turned into :func:`_leave_now`."""
    if threading.current_thread() is not threading.main_thread():  # signals are the main thread's
        return
    stop.install()
    inner = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        try:
            inner(signum, frame)
        except KeyboardInterrupt:
            _leave_now(signum, frame)

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, handler)


def main(args: argparse.Namespace) -> int:
    """`vfdepth bag play`. Stopped by SIGINT (once or more) or SIGTERM, it ends at once with exit 0."""
    from vfdepth_ros.bag.rosnode import StopFlag

    stop = StopFlag()
    install_stop(stop)
    player = Player(args.bag, options_from_args(args))
    t0 = time.monotonic()
    n = player.play(stop)
    _say(f"played {n} messages from {args.bag} in {time.monotonic() - t0:.1f} s")
    if args.wait_for_topic:
        _say(player.pace.summary(args.wait_for_topic))
    if stop.signal is not None:  # asked to stop: done (the process is ending, not an in-process call)
        _exit_now(0)
    if not args.wait_for_topic:
        return 0
    if player.pace.lost and not stop.is_set():
        if args.tolerate_lost:
            return 0
        print(f"vfdepth bag play: error: {len(player.pace.lost)} of {player.pace.frames} frames got no "
              f"{args.wait_for_topic} output (pass --tolerate-lost to accept that)", file=sys.stderr)
        return 1
    return 0
