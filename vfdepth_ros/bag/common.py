"""Shared pieces of the bag tools: opening bags with one-line errors, writing MCAP/sqlite3 bags, and
building the ROS 2 messages the converters write, serialized to CDR with the `rosbags` typestore.

Nothing here imports rclpy: converters and evaluation run on machines without ROS. Message layouts
are those of ROS 2 kilted (`rosbags.typesys.Stores.ROS2_KILTED`); their CDR bytes are what an rclpy
publisher of the same type sends, so the player publishes them unchanged.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from vfdepth_ros.cli import UserError

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


class BagError(UserError):
    """A bag that cannot be read or written as asked (one-line message naming the file)."""


@lru_cache(maxsize=1)
def typestore():
    """The ROS 2 kilted message definitions (rosbags' built-in store)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


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

    from vfdepth_ros.bag.repair import repair

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


# ----------------------------------------------------------------------------------------- messages
def _msg(name: str):
    return typestore().types[name]


def stamp(stamp_ns: int):
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    if not 0 <= sec < 2**31:
        raise BagError(f"timestamp {stamp_ns} ns does not fit builtin_interfaces/Time (int32 seconds)")
    return _msg("builtin_interfaces/msg/Time")(sec=sec, nanosec=nsec)


def stamp_to_ns(t) -> int:
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


def header(stamp_ns: int, frame_id: str):
    return _msg("std_msgs/msg/Header")(stamp=stamp(stamp_ns), frame_id=frame_id)


def serialize(msg) -> bytes:
    """CDR bytes of a message as a DDS publisher sends them: zero-padded to a multiple of 4 bytes (what
    rmw hands a raw subscriber, hence what `ros2 bag record` stores), so play -> record is byte-identical."""
    data = bytes(typestore().serialize_cdr(msg, msg.__msgtype__))
    return data + b"\0" * (-len(data) % 4)


def image_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str, encoding: str = "rgb8"):
    """sensor_msgs/Image from an (H, W, 3) uint8 array (rgb8) or (H, W) float32 (32FC1)."""
    arr = np.ascontiguousarray(rgb)
    h, w = arr.shape[:2]
    return _msg("sensor_msgs/msg/Image")(
        header=header(stamp_ns, frame_id), height=h, width=w, encoding=encoding, is_bigendian=0,
        step=arr.strides[0], data=arr.reshape(-1).view(np.uint8))


def compressed_image_msg(data: bytes, fmt: str, stamp_ns: int, frame_id: str):
    return _msg("sensor_msgs/msg/CompressedImage")(
        header=header(stamp_ns, frame_id), format=fmt, data=np.frombuffer(data, dtype=np.uint8))


def camera_info_msg(K: np.ndarray, height: int, width: int, stamp_ns: int, frame_id: str):
    """sensor_msgs/CameraInfo for a rectified pinhole camera with intrinsics K at (height, width)."""
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    P = np.zeros((3, 4))
    P[:, :3] = K
    roi = _msg("sensor_msgs/msg/RegionOfInterest")(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return _msg("sensor_msgs/msg/CameraInfo")(
        header=header(stamp_ns, frame_id), height=int(height), width=int(width), distortion_model="plumb_bob",
        d=np.zeros(5), k=K.reshape(-1), r=np.eye(3).reshape(-1), p=P.reshape(-1), binning_x=0, binning_y=0,
        roi=roi)


def _quat_xyzw(R: np.ndarray) -> np.ndarray:
    import torch

    from vfdepth_core.geometry import rotmat_to_quat

    wxyz = rotmat_to_quat(torch.as_tensor(np.asarray(R, dtype=np.float64))).numpy()
    return np.array([wxyz[1], wxyz[2], wxyz[3], wxyz[0]])


def _quat_to_R(q) -> np.ndarray:
    import torch

    from vfdepth_core.geometry import quat_to_rotmat

    return quat_to_rotmat(torch.tensor([q.w, q.x, q.y, q.z], dtype=torch.float64)).numpy()


def transform_stamped(T_parent_child: np.ndarray, stamp_ns: int, parent: str, child: str):
    """geometry_msgs/TransformStamped: the pose of `child` in `parent` (maps child points to parent)."""
    T = np.asarray(T_parent_child, dtype=np.float64)
    q = _quat_xyzw(T[:3, :3])
    G = "geometry_msgs/msg/"
    return _msg(G + "TransformStamped")(
        header=header(stamp_ns, parent), child_frame_id=child,
        transform=_msg(G + "Transform")(
            translation=_msg(G + "Vector3")(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
            rotation=_msg(G + "Quaternion")(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))))


def tf_message(transforms: Sequence):
    return _msg("tf2_msgs/msg/TFMessage")(transforms=list(transforms))


def transform_to_matrix(tf) -> np.ndarray:
    """geometry_msgs/Transform (or Pose) -> 4x4 T_parent_child."""
    t = getattr(tf, "translation", None) or getattr(tf, "position")
    q = getattr(tf, "rotation", None) or getattr(tf, "orientation")
    T = np.eye(4)
    T[:3, :3] = _quat_to_R(q)
    T[:3, 3] = [t.x, t.y, t.z]
    return T


def odometry_msg(T_odom_base: np.ndarray, stamp_ns: int, twist_lin=(0.0, 0.0, 0.0), twist_ang=(0.0, 0.0, 0.0),
                 odom_frame: str = ODOM_FRAME, base_frame: str = BASE_FRAME):
    """nav_msgs/Odometry: pose of `base_frame` in `odom_frame`; twist in `base_frame`."""
    T = np.asarray(T_odom_base, dtype=np.float64)
    q = _quat_xyzw(T[:3, :3])
    G = "geometry_msgs/msg/"
    pose = _msg(G + "Pose")(position=_msg(G + "Point")(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
                            orientation=_msg(G + "Quaternion")(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])))
    twist = _msg(G + "Twist")(linear=_msg(G + "Vector3")(x=float(twist_lin[0]), y=float(twist_lin[1]), z=float(twist_lin[2])),
                              angular=_msg(G + "Vector3")(x=float(twist_ang[0]), y=float(twist_ang[1]), z=float(twist_ang[2])))
    return _msg("nav_msgs/msg/Odometry")(
        header=header(stamp_ns, odom_frame), child_frame_id=base_frame,
        pose=_msg(G + "PoseWithCovariance")(pose=pose, covariance=np.zeros(36)),
        twist=_msg(G + "TwistWithCovariance")(twist=twist, covariance=np.zeros(36)))


_PC2_FIELDS = (("x", 0), ("y", 4), ("z", 8), ("intensity", 12))


def pointcloud_msg(points: np.ndarray, stamp_ns: int, frame_id: str):
    """sensor_msgs/PointCloud2 with float32 fields x, y, z, intensity from an (N, 4) array."""
    pts = np.ascontiguousarray(np.asarray(points, dtype=np.float32)[:, :4])
    n = pts.shape[0]
    PF = _msg("sensor_msgs/msg/PointField")
    fields = [PF(name=name, offset=off, datatype=PF.FLOAT32, count=1) for name, off in _PC2_FIELDS]
    return _msg("sensor_msgs/msg/PointCloud2")(
        header=header(stamp_ns, frame_id), height=1, width=n, fields=fields, is_bigendian=False, point_step=16,
        row_step=16 * n, data=pts.reshape(-1).view(np.uint8), is_dense=True)


def pointcloud_to_array(msg) -> np.ndarray:
    """PointCloud2 with float32 x, y, z[, intensity] -> (N, 4) float32 (intensity 0 when absent)."""
    offsets = {f.name: f.offset for f in msg.fields}
    for name in ("x", "y", "z"):
        if name not in offsets:
            raise BagError(f"PointCloud2 on frame {msg.header.frame_id!r} has no field {name!r}")
    n = msg.width * msg.height
    raw = np.asarray(msg.data, dtype=np.uint8)[: n * msg.point_step].reshape(n, msg.point_step)
    out = np.zeros((n, 4), np.float32)
    for i, name in enumerate(("x", "y", "z", "intensity")):
        if name in offsets:
            o = offsets[name]
            out[:, i] = raw[:, o:o + 4].copy().view(">f4" if msg.is_bigendian else "<f4")[:, 0]
    return out


def image_to_array(msg) -> np.ndarray:
    """sensor_msgs/Image -> (H, W) float32 for 32FC1/16UC1 (mm -> m), (H, W, 3) uint8 for rgb8/bgr8."""
    enc = msg.encoding.lower()
    data = np.asarray(msg.data, dtype=np.uint8)
    h, w, step = msg.height, msg.width, msg.step
    rows = data[: h * step].reshape(h, step)
    if enc == "32fc1":
        return rows[:, : w * 4].copy().view(">f4" if msg.is_bigendian else "<f4").reshape(h, w).astype(np.float32)
    if enc in ("16uc1", "mono16"):
        return rows[:, : w * 2].copy().view(">u2" if msg.is_bigendian else "<u2").reshape(h, w).astype(np.float32) / 1000.0
    if enc in ("rgb8", "bgr8"):
        img = rows[:, : w * 3].reshape(h, w, 3)
        return img[..., ::-1].copy() if enc == "bgr8" else img.copy()
    if enc == "mono8":
        return rows[:, :w].copy()
    raise BagError(f"image encoding {msg.encoding!r} not supported (use 32FC1, 16UC1, rgb8, bgr8 or mono8)")


def clock_msg(stamp_ns: int):
    return _msg("rosgraph_msgs/msg/Clock")(clock=stamp(stamp_ns))


def quat_R(q) -> np.ndarray:
    """Public alias: geometry_msgs/Quaternion -> 3x3 rotation."""
    return _quat_to_R(q)
