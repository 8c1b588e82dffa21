"""`vfdepth bag record`: subscribe to topics with rclpy (raw CDR) and write an MCAP bag via rosbags.

Types come from graph discovery (topics may appear later: the graph is polled until each is found) or
are given as ``TOPIC:TYPE``. Each message is stored as received (no re-serialization) with its receive
time (ROS time: /clock time with `--use-sim-time`) as the bag log time. QoS follows the publishers
(transient_local for latched topics such as /tf_static, best effort when a publisher is). The bag is
flushed every `--flush-interval` seconds and closed cleanly on Ctrl-C / SIGTERM, after `--duration`,
after `--idle-timeout` without messages, or when the process `--until-pid` exits (e.g. a player that
crashed): no message that was received is lost.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from vfdepth_ros import conversions as cv
from vfdepth_ros.bag import common as C
from vfdepth_ros.bag.common import BagError

log = logging.getLogger(__name__)


def _norm(topic: str) -> str:
    return topic if topic.startswith("/") else "/" + topic


class Recorder:
    def __init__(self, out: str | Path, topics: Sequence[str], storage: str = "mcap", overwrite: bool = False,
                 domain_id: Optional[int] = None, use_sim_time: bool = False, flush_interval_s: float = 1.0,
                 duration_s: Optional[float] = None, idle_timeout_s: Optional[float] = None,
                 until_pid: Optional[int] = None, discovery_timeout_s: Optional[float] = None,
                 max_messages: Optional[int] = None) -> None:
        if not topics:
            raise BagError("record: name at least one topic (TOPIC or TOPIC:TYPE)")
        self.want: Dict[str, Optional[str]] = {}
        for spec in topics:
            name, _, msgtype = spec.partition(":")
            self.want[_norm(name)] = msgtype or None
        for name, msgtype in self.want.items():
            if msgtype and msgtype not in cv.typestore().types:
                raise BagError(f"{name}:{msgtype}: unknown message type (not a ROS 2 kilted type)")
        self.out = Path(out)
        self.writer = C.BagWriter(out, storage=storage, overwrite=overwrite)
        self.domain_id = domain_id
        self.use_sim_time = use_sim_time
        self.flush_interval_s = flush_interval_s
        self.duration_s = duration_s
        self.idle_timeout_s = idle_timeout_s
        self.until_pid = until_pid
        self.discovery_timeout_s = discovery_timeout_s
        self.max_messages = max_messages
        self.subscribed: Dict[str, str] = {}
        self.matched: set = set()  # subscribed topics with a publisher seen (logged once: 'matched TOPIC')
        self.unrecorded: set = set()  # discovered topics of a type unknown here (in `subscribed`, never recorded)
        self.received = 0
        self.last_rx = None
        self.reason = ""

    def _try_subscribe(self, node) -> None:
        from vfdepth_ros.bag.rosnode import message_class, rclpy_qos

        graph = None
        for topic, given in self.want.items():
            if topic in self.subscribed:
                continue
            msgtype = given
            infos = node.get_publishers_info_by_topic(topic)
            if msgtype is None:
                if graph is None:
                    graph = {_norm(n): ts for n, ts in node.get_topic_names_and_types()}
                if topic not in graph or not infos:
                    continue  # not discovered yet
                msgtype = graph[topic][0]
            cls = message_class(msgtype)
            if cls is None or msgtype not in cv.typestore().types:
                log.error("%s: message type %s unknown here; not recording it", topic, msgtype)
                self.subscribed[topic] = msgtype
                self.unrecorded.add(topic)
                continue
            from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

            latched = bool(infos) and all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
            reliable = not infos or all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
            self.writer.add_topic(topic, msgtype, latched=latched)
            node.create_subscription(cls, topic, self._callback(topic, node), rclpy_qos(latched, reliable, depth=100),
                                     raw=True)
            self.subscribed[topic] = msgtype
            log.info("recording %s (%s%s)", topic, msgtype, ", latched" if latched else "")

    def _note_matches(self, node) -> None:
        """Log 'matched TOPIC' once a subscribed topic has a publisher (a script can wait for it before
        making the publisher send: volatile messages sent before the match are never delivered). A topic
        that is not recorded (unknown type) is never announced: a script waiting for it must not start."""
        for topic in self.subscribed:
            if topic not in self.matched and topic not in self.unrecorded and node.count_publishers(topic) > 0:
                self.matched.add(topic)
                log.info("matched %s", topic)

    def _callback(self, topic: str, node):
        def on_msg(raw: bytes) -> None:
            t = node.get_clock().now().nanoseconds
            self.writer.write(topic, t, raw)
            self.received += 1
            self.last_rx = time.monotonic()
        return on_msg

    def _drain(self, executor, quiet_s: float = 0.3, max_s: float = 3.0) -> None:
        """Take what is already on its way: spin until nothing arrived for `quiet_s` (at most `max_s`), so a
        busy machine's late deliveries are not lost at a stop."""
        t0 = last = time.monotonic()
        seen = self.received
        while time.monotonic() - last < quiet_s and time.monotonic() - t0 < max_s:
            executor.spin_once(timeout_sec=0.02)
            if self.received != seen:
                seen, last = self.received, time.monotonic()

    def run(self, stop=None) -> Dict[str, int]:
        from vfdepth_ros.bag.rosnode import StopFlag, init_rclpy, pid_alive

        own_stop = stop is None
        self.stop = stop or StopFlag()
        if own_stop:
            self.stop.install()
        rclpy, context, node = init_rclpy(self.domain_id, "vfdepth_bag_recorder", self.use_sim_time)
        from rclpy.executors import SingleThreadedExecutor

        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        self.writer.open()
        t_start = time.monotonic()
        last_flush = last_graph = t_start
        try:
            self._try_subscribe(node)
            while not self.stop.is_set():
                executor.spin_once(timeout_sec=0.05)
                now = time.monotonic()
                if now - last_graph > 0.25 and len(self.matched) + len(self.unrecorded) < len(self.want):
                    if len(self.subscribed) < len(self.want):
                        self._try_subscribe(node)
                    self._note_matches(node)
                    last_graph = now
                    if (self.discovery_timeout_s is not None and now - t_start > self.discovery_timeout_s
                            and not self.subscribed):
                        raise BagError(f"record: none of {', '.join(self.want)} appeared within "
                                       f"{self.discovery_timeout_s:.0f} s (give TOPIC:TYPE or start the publisher)")
                if now - last_flush >= self.flush_interval_s:
                    self.writer.flush()
                    last_flush = now
                if self.duration_s is not None and now - t_start >= self.duration_s:
                    self.reason = "duration reached"
                    break
                if self.idle_timeout_s is not None and self.last_rx is not None and now - self.last_rx >= self.idle_timeout_s:
                    self.reason = f"no message for {self.idle_timeout_s:.1f} s"
                    break
                if self.max_messages is not None and self.received >= self.max_messages:
                    self.reason = f"{self.max_messages} messages recorded"
                    break
                if self.until_pid is not None and not pid_alive(self.until_pid):
                    self._drain(executor)  # what is already on its way, then stop
                    self.reason = f"process {self.until_pid} exited"
                    break
            if self.stop.is_set():
                self.reason = "signal" if self.stop.signal else "stopped"
                self._drain(executor)
        except BaseException:
            self.writer.close()
            raise
        finally:
            executor.shutdown(timeout_sec=1.0)
            node.destroy_node()
            rclpy.shutdown(context=context)
        self.writer.close()
        missing = [t for t in self.want if t not in self.subscribed]
        if missing:
            log.warning("never saw %s", ", ".join(missing))
        return dict(self.writer.counts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topics", nargs="+", metavar="TOPIC[:TYPE]",
                        help="topics to record; the type is discovered from the graph unless given")
    parser.add_argument("-o", "--output", required=True, help="output bag (X.mcap, or a directory)")
    parser.add_argument("--storage", default="mcap", choices=("mcap", "sqlite3"))
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--use-sim-time", action="store_true", help="stamp with /clock time (player --clock)")
    parser.add_argument("--flush-interval", type=float, default=1.0, metavar="S")
    parser.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    parser.add_argument("--idle-timeout", type=float, default=None, metavar="S",
                        help="stop S seconds after the last message (once one arrived)")
    parser.add_argument("--until-pid", type=int, default=None, metavar="PID", help="stop when this process exits")
    parser.add_argument("--max-messages", type=int, default=None)
    parser.add_argument("--discovery-timeout", type=float, default=None, metavar="S",
                        help="fail if no topic appeared within S seconds")
    parser.add_argument("--domain-id", type=int, default=None)


def main(args: argparse.Namespace) -> int:
    rec = Recorder(args.output, args.topics, storage=args.storage, overwrite=args.overwrite, domain_id=args.domain_id,
                   use_sim_time=args.use_sim_time, flush_interval_s=args.flush_interval, duration_s=args.duration,
                   idle_timeout_s=args.idle_timeout, until_pid=args.until_pid,
                   discovery_timeout_s=args.discovery_timeout, max_messages=args.max_messages)
    counts = rec.run()
    total = sum(counts.values())
    print(f"recorded {total} messages on {len(counts)} topics to {args.output} ({rec.reason or 'stopped'})")
    for topic, n in sorted(counts.items()):
        print(f"  {topic}: {n}")
    return 0
