"""`vfdepth bag info`: what a bag holds (topics, types, counts, duration, rates, QoS).

Counts are the bag's own index (MCAP summary / rosbag2 metadata); unless `--no-verify`, every message
is read back and a bag that holds fewer than its index lists is an error (or, with `--allow-damaged`,
shown with a `readable` column)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from vfdepth_ros.bag import common as C


@dataclass
class TopicSummary:
    topic: str
    msgtype: str
    count: int
    latched: bool
    readable: Optional[int] = None  # messages actually read back (None: not verified)

    def rate_hz(self, duration_s: float) -> float:
        return (self.count - 1) / duration_s if duration_s > 0 and self.count > 1 else 0.0


@dataclass
class BagSummary:
    path: Path
    start_ns: int
    end_ns: int
    count: int
    storage: str
    topics: List[TopicSummary]
    custom: Dict[str, str]

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) * 1e-9


def summarize(path: str | Path, verify: bool = False, allow_damaged: bool = False) -> BagSummary:
    """The bag's index; `verify`: also read every message back (C.iter_messages checks the counts)."""
    reader = C.open_reader(path, allow_damaged)
    try:
        read: Dict[str, int] = {}
        if verify:
            for c, _, _ in C.iter_messages(reader, allow_damaged=allow_damaged):
                read[c.topic] = read.get(c.topic, 0) + 1
        topics = []
        for name, info in sorted(reader.topics.items()):
            latched = any(C.is_latched(c) for c in info.connections)
            topics.append(TopicSummary(name, info.msgtype or "?", info.msgcount, latched,
                                       read.get(name, 0) if verify else None))
        count = reader.message_count
        start, end = (reader.start_time, reader.end_time) if count else (0, 0)
        storage = "mcap" if str(path).endswith(".mcap") or any(Path(path).glob("*.mcap")) else "sqlite3"
        custom: Dict[str, str] = {}
        return BagSummary(Path(path), start, end, count, storage, topics, custom)
    finally:
        reader.close()


def format_summary(s: BagSummary) -> str:
    lines = [f"bag:       {s.path} ({s.storage})",
             f"duration:  {s.duration_s:.3f} s",
             f"start:     {s.start_ns * 1e-9:.6f} s   end: {s.end_ns * 1e-9:.6f} s",
             f"messages:  {s.count}",
             f"topics:    {len(s.topics)}"]
    w = max([len(t.topic) for t in s.topics] + [5])
    wt = max([len(t.msgtype) for t in s.topics] + [4])
    short = any(t.readable is not None and t.readable < t.count for t in s.topics)
    lines.append(f"  {'topic'.ljust(w)}  {'type'.ljust(wt)}  {'count':>6}  {'rate Hz':>8}  qos" +
                 ("       readable" if short else ""))
    for t in s.topics:
        qos = "latched" if t.latched else "volatile"
        lines.append(f"  {t.topic.ljust(w)}  {t.msgtype.ljust(wt)}  {t.count:>6}  {t.rate_hz(s.duration_s):>8.2f}  " +
                     (f"{qos:<8}  {t.readable:>8}" if short else qos))
    if short:
        lines.append(f"DAMAGED: {sum(t.readable or 0 for t in s.topics)} of {s.count} messages readable")
    return "\n".join(lines)


def add_arguments(parser) -> None:
    parser.add_argument("bag", help="a .mcap/.db3 file or a rosbag2 directory")
    parser.add_argument("--no-verify", action="store_true",
                        help="only read the bag's index (fast) instead of reading every message back")
    parser.add_argument("--allow-damaged", action="store_true",
                        help="list a damaged bag with a 'readable' column instead of stopping with an error")


def main(args) -> int:
    print(format_summary(summarize(args.bag, verify=not args.no_verify, allow_damaged=args.allow_damaged)))
    return 0
