"""`vfdepth bag info`: what a bag holds (topics, types, counts, duration, rates, QoS)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

from vfdepth_ros.bag import common as C


@dataclass
class TopicSummary:
    topic: str
    msgtype: str
    count: int
    latched: bool

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


def summarize(path: str | Path) -> BagSummary:
    reader = C.open_reader(path)
    try:
        topics = []
        for name, info in sorted(reader.topics.items()):
            latched = any(C.is_latched(c) for c in info.connections)
            topics.append(TopicSummary(name, info.msgtype or "?", info.msgcount, latched))
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
    lines.append(f"  {'topic'.ljust(w)}  {'type'.ljust(wt)}  {'count':>6}  {'rate Hz':>8}  qos")
    for t in s.topics:
        lines.append(f"  {t.topic.ljust(w)}  {t.msgtype.ljust(wt)}  {t.count:>6}  {t.rate_hz(s.duration_s):>8.2f}  "
                     f"{'latched' if t.latched else 'volatile'}")
    return "\n".join(lines)


def add_arguments(parser) -> None:
    parser.add_argument("bag", help="a .mcap/.db3 file or a rosbag2 directory")


def main(args) -> int:
    print(format_summary(summarize(args.bag)))
    return 0
