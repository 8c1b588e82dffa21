"""Shared pieces of the bag tools: opening bags with one-line errors, reading and writing MCAP/sqlite3
bags, and CDR (de)serialisation with the `rosbags` typestore. Messages <-> arrays: vfdepth_ros.conversions
(``types=BAG``).

Nothing here imports rclpy: converters and evaluation run on machines without ROS. Message layouts
are those of ROS 2 kilted (`rosbags.typesys.Stores.ROS2_KILTED`); their CDR bytes are what an rclpy
publisher of the same type sends, so the player publishes them unchanged.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Dict, Optional

from vfdepth_ros.conversions import typestore
from vfdepth_ros.errors import BagError

log = logging.getLogger(__name__)

# Topic names (relative, DESIGN 4.1) and frames the converters write.
TF_STATIC = "/tf_static"
TF = "/tf"
GT_ODOM = "gt/odom"
LIDAR_POINTS = "lidar/points"
CLOCK = "/clock"
BASE_FRAME = "base_link"
ODOM_FRAME = "odom"
LIDAR_FRAME = "lidar"


def camera_frame(cam: str) -> str:
    """TF frame of a camera (OpenCV optical axes: x right, y down, z forward)."""
    return f"{cam}_optical_frame"


def image_topic(cam: str, compressed: bool = False) -> str:
    return f"{cam}/image_raw/compressed" if compressed else f"{cam}/image_raw"


def info_topic(cam: str) -> str:
    return f"{cam}/camera_info"


# ----------------------------------------------------------------------------------------- QoS
def qos_profile(latched: bool = False, depth: int = 10):
    """A rosbags Qos record: reliable, keep-last; transient_local when `latched` (e.g. /tf_static).
    Durations 0 = "system default" (infinite), as ros2 bag record writes them."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(0, 0)
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=1 if latched else depth,
        reliability=QosReliability.RELIABLE,
        durability=QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
        deadline=zero,
        lifespan=zero,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=zero,
        avoid_ros_namespace_conventions=False,
    )


def is_latched(connection) -> bool:
    """True when a bag connection was offered transient_local (latched), as /tf_static is."""
    from rosbags.interfaces import QosDurability

    profiles = getattr(connection.ext, "offered_qos_profiles", None) or []
    return any(getattr(p, "durability", None) == QosDurability.TRANSIENT_LOCAL for p in profiles)


# ----------------------------------------------------------------------------------------- reading
def one_line(exc: BaseException) -> str:
    """An exception's text folded onto one line (rosbags' YAML errors span several)."""
    return " ".join(str(exc).split())


ALLOW_DAMAGED_HELP = ("go on with the readable part of a damaged bag (warning, exit 0) instead of stopping with "
                      "an error; a truncated MCAP is salvaged first (`vfdepth bag repair` recovers the most)")


def repair_hint(path: str | Path) -> str:
    p = Path(path)
    if p.suffix == ".mcap" or (p.is_dir() and any(p.glob("*.mcap"))):
        return (f"`vfdepth bag repair {path} -o repaired.mcap` salvages what can be read, or pass --allow-damaged "
                "to use the readable part as it is")
    return "re-record or re-convert it, or pass --allow-damaged to use the readable part as it is"


def open_reader(path: str | Path, allow_damaged: bool = False):
    """Open a bag (a .mcap/.db3 file or a rosbag2 directory) for reading, or raise BagError.

    `allow_damaged`: an MCAP file that cannot be opened (truncated, no summary) is salvaged record by
    record (`bag repair`) into a temporary bag, which is opened instead, with a warning."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: no such bag (give a .mcap file or a rosbag2 directory)")
    try:
        reader = Reader(path)
        reader.open()
    except FileNotFoundError as exc:
        raise BagError(f"{path}: not a bag ({exc}); give a .mcap/.db3 file or a directory with metadata.yaml") from None
    except Exception as exc:  # rosbags raises ReaderError and assorted struct/yaml errors on damage
        if allow_damaged and path.suffix == ".mcap":
            return _open_salvaged(path, exc)
        raise BagError(f"{path}: cannot read bag, it is truncated or corrupt ({type(exc).__name__}: {one_line(exc)}); "
                       f"{repair_hint(path)}") from None
    return reader


def _open_salvaged(path: Path, exc: BaseException):
    """--allow-damaged: open what `bag repair` salvages from `path` (a temporary copy, removed at exit)."""
    import atexit
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="vfdepth-salvage-"))
    atexit.register(shutil.rmtree, tmp, True)
    counts = repair(path, tmp / path.name)
    log.warning("%s: damaged (%s: %s); using the %d messages salvaged from it", path, type(exc).__name__,
                one_line(exc), sum(counts.values()))
    return open_reader(tmp / path.name)


def iter_messages(reader, connections=(), start: Optional[int] = None, stop: Optional[int] = None,
                  allow_damaged: bool = False):
    """Messages (connection, log_time_ns, raw CDR bytes), checked against the bag's own index.

    A read that stops on damage, or a whole-bag read (no `start`/`stop` inside the bag's span) that
    yields fewer messages per topic than the bag's summary/metadata counts, raises BagError naming the
    bag and how much was readable; with `allow_damaged` it logs a warning and ends with what was read."""
    conns = list(connections) or list(reader.connections)
    whole = (start is None or start <= reader.start_time) and (stop is None or stop > reader.end_time)
    got: Dict[int, int] = {c.id: 0 for c in conns}
    try:
        for c, t, raw in reader.messages(connections=connections, start=start, stop=stop):
            got[c.id] = got.get(c.id, 0) + 1
            yield c, t, raw
    except BagError:
        raise
    except Exception as exc:
        _damaged(reader, conns, got, f"unreadable part-way ({type(exc).__name__}: {one_line(exc)})", allow_damaged)
        return
    if whole and any(got[c.id] < c.msgcount for c in conns):
        _damaged(reader, conns, got, "damaged or truncated", allow_damaged)


def _damaged(reader, conns, got: Dict[int, int], what: str, allow_damaged: bool) -> None:
    expected = sum(c.msgcount for c in conns)
    short = [f"{c.topic} {got[c.id]}/{c.msgcount}" for c in conns if got[c.id] < c.msgcount]
    msg = (f"{reader.path}: bag is {what}: read {sum(got.values())} of the {expected} messages its index lists"
           + (f" ({', '.join(short[:4])}{', ...' if len(short) > 4 else ''})" if short else ""))
    if not allow_damaged:
        raise BagError(f"{msg}; {repair_hint(reader.path)}")
    log.warning("%s; --allow-damaged: going on with the readable part", msg)


def deserialize(raw: bytes, msgtype: str):
    """CDR bytes -> rosbags message object, or BagError naming the type."""
    ts = typestore()
    if msgtype not in ts.types:
        raise BagError(f"unknown message type {msgtype!r}: not a ROS 2 kilted type this tool knows")
    try:
        return ts.deserialize_cdr(raw, msgtype)
    except Exception as exc:
        raise BagError(f"cannot decode a {msgtype} message ({type(exc).__name__}: {exc}); the bag is corrupt") from None


# ----------------------------------------------------------------------------------------- writing
class BagWriter:
    """Write a bag: ``out.mcap`` -> one MCAP file (ROS 2 bag metadata embedded); any other path -> a
    rosbag2 directory (metadata.yaml + storage file) in `storage` 'mcap' or 'sqlite3'.

    Refuses to overwrite unless `overwrite`. Use as a context manager; on an exception the partial
    output is removed.
    """

    def __init__(self, out: str | Path, storage: str = "mcap", overwrite: bool = False) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.out = Path(out)
        if storage not in ("mcap", "sqlite3"):
            raise BagError(f"--storage {storage!r}: choose mcap or sqlite3")
        self.single_file = self.out.suffix == ".mcap" and storage == "mcap"
        if self.out.suffix == ".mcap" and storage != "mcap":
            raise BagError(f"{self.out}: a .mcap name needs --storage mcap; name a directory for sqlite3")
        if self.out.exists():
            if not overwrite:
                raise BagError(f"{self.out} exists already; remove it or pass --overwrite")
            shutil.rmtree(self.out) if self.out.is_dir() else self.out.unlink()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.dir = self.out.parent / f".{self.out.name}.partial" if self.single_file else self.out
        if self.dir.exists() and self.single_file:
            shutil.rmtree(self.dir)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self.writer = Writer(self.dir, version=9, storage_plugin=plugin)
        self.connections: Dict[str, object] = {}
        self.counts: Dict[str, int] = {}
        self._open = False

    def open(self) -> "BagWriter":
        self.writer.open()
        self._open = True
        return self

    def add_topic(self, topic: str, msgtype: str, latched: bool = False, msgdef: Optional[str] = None,
                  rihs01: Optional[str] = None):
        """Register a topic once; returns its connection."""
        if topic in self.connections:
            return self.connections[topic]
        kwargs = dict(offered_qos_profiles=[qos_profile(latched)])
        if msgdef is not None and rihs01 is not None:
            conn = self.writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=rihs01, **kwargs)
        else:
            if msgtype not in typestore().types:
                raise BagError(f"topic {topic}: unknown message type {msgtype!r}")
            conn = self.writer.add_connection(topic, msgtype, typestore=typestore(), **kwargs)
        self.connections[topic] = conn
        self.counts[topic] = 0
        return conn

    def write(self, topic: str, stamp_ns: int, data: bytes) -> None:
        self.writer.write(self.connections[topic], int(stamp_ns), data)
        self.counts[topic] += 1

    def flush(self) -> None:
        """Push buffered messages to disk (MCAP: close the pending chunk). The file stays valid only
        after close(); flushing limits what a hard kill can lose to what `bag repair` can't see."""
        storage = getattr(self.writer, "storage", None)
        if storage is None:
            return
        if hasattr(storage, "close_chunk") and storage.chunk.msgs:
            storage.close_chunk()
        bio = getattr(storage, "bio", None)
        if bio is not None:
            bio.flush()
        db = getattr(storage, "conn", None)
        if db is not None:
            db.commit()

    def close(self) -> Path:
        if not self._open:
            return self.out
        self.writer.close()
        self._open = False
        if self.single_file:
            produced = self.dir / f"{self.dir.name}.mcap"
            produced.replace(self.out)
            shutil.rmtree(self.dir, ignore_errors=True)
        return self.out

    def abort(self) -> None:
        if self._open:
            try:
                self.writer.abort()
            except Exception:  # pragma: no cover - best effort clean-up
                pass
            self._open = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "BagWriter":
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# ----------------------------------------------------------------------------------------- CDR
def serialize(msg) -> bytes:
    """CDR bytes of a message as a DDS publisher sends them: zero-padded to a multiple of 4 bytes (what
    rmw hands a raw subscriber, hence what `ros2 bag record` stores), so play -> record is byte-identical."""
    data = bytes(typestore().serialize_cdr(msg, msg.__msgtype__))
    return data + b"\0" * (-len(data) % 4)


# ----------------------------------------------------------------------------------------- repair
def repair(path: str | Path, out: str | Path, overwrite: bool = False) -> Dict[str, int]:
    """Write what `path` holds into the valid bag `out`; returns messages per topic."""
    from vfdepth_ros.bag.mcap_salvage import find_partial, salvage

    src = find_partial(path)
    s = salvage(src)
    if not s.messages:
        raise BagError(f"{src}: no complete message found (was the recorder killed before its first flush?)")
    writer = BagWriter(out, overwrite=overwrite)
    counts: Dict[str, int] = {}
    with writer:
        usable: Dict[int, str] = {}
        for cid, (sid, topic, meta) in sorted(s.channels.items()):
            name = s.schemas.get(sid, ("", "", ""))[0]
            if name not in typestore().types:
                log.warning("%s: message type %r unknown here; its messages are left out", topic, name)
                continue
            latched = "durability: 1" in meta.get("offered_qos_profiles", "") or \
                "durability: transient_local" in meta.get("offered_qos_profiles", "")
            writer.add_topic(topic, name, latched=latched)
            usable[cid] = topic
            counts[topic] = 0
        for cid, t, data in sorted(s.messages, key=lambda m: m[1]):
            topic = usable.get(cid)
            if topic is None:
                continue
            writer.write(topic, t, data)
            counts[topic] += 1
    log.info("%s: %d messages on %d topics salvaged%s%s", src, sum(counts.values()), len(counts),
             "" if s.complete else f" ({s.lost_bytes} bytes of an unfinished tail dropped)",
             f" ({s.damaged_chunks} damaged chunk(s): their records after the damage dropped)" if s.damaged_chunks
             else "")
    return counts
