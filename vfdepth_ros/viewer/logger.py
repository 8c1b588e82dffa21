"""`vfdepth view`: a headless viewer recording (rerun ``.rrd``) of input and/or output bags, and
``FrameLogger``/``log_frame`` to log arrays from Python (training, evaluation, the demo).

Why rerun: it is already a pinned dependency, runs headless (writes a file, no display), and its
recording holds images, depth images with a metre scale, camera frusta, point clouds, transforms and
line strips on a shared timeline, which is everything rviz2 shows, with no ROS install. The file opens
in the rerun viewer (``rerun results/x.rrd``, or in a browser with ``vfdepth view ... --serve``).

Bags are read with ``rosbags`` (MCAP or sqlite3, file or rosbag2 directory); messages are decoded
from their raw CDR bytes with rosbags' ROS 2 kilted typestore. rclpy is not needed here.

Entity layout (the fixed frame ``odom`` is the entity ``world``; each TF frame is an entity below its
TF parent, e.g. ``world/base_link/camera_01_optical_frame``; ``entity(f)`` below means that path):

| source | entity | archetype |
|---|---|---|
| ``/tf``, ``/tf_static`` (parent -> child) | ``entity(child)`` | Transform3D (static for /tf_static) |
| ``<cam>/image_raw[/compressed]`` + ``<cam>/camera_info`` | ``entity(frame)/image`` | Image (JPEG-compressed in the file) + Pinhole |
| ``<cam>/depth`` (32FC1 m, 16UC1 mm) + ``<cam>/depth/camera_info`` | ``entity(frame)/depth`` | DepthImage (meter scale) + Pinhole |
| ``virtual/depth`` + ``virtual/camera_info`` | ``entity(frame)/depth`` of the virtual camera's frame | DepthImage + Pinhole |
| PointCloud2 (``points``: xyz + rgb; ``lidar/points``: xyz) | ``entity(frame)/<topic>`` (``/`` -> ``_``) | Points3D |
| Odometry (``odom``, ``gt/odom``) | ``entity(frame)/trajectory/<topic>`` | LineStrips3D (the path so far) |

Time: the timeline ``stamp`` holds each message's header stamp (its bag time when it has no header).
When two bags carry the same dynamic TF edge (say ``odom -> base_link`` as ground truth in the input
bag and as the estimate in the outputs bag), the bag named LAST on the command line wins; without any
``odom -> base_link`` transform, the ``odom`` (else ``gt/odom``) Odometry messages place ``base_link``.
"""

from __future__ import annotations

import argparse
import heapq
import ipaddress
import logging
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from vfdepth_ros.cli import UserError

log = logging.getLogger(__name__)

FIXED_FRAME = "odom"
WORLD = "world"
TIMELINE = "stamp"
DEFAULT_BIND = "127.0.0.1"

_IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
_TF_TYPE = "tf2_msgs/msg/TFMessage"
_ODOM_TYPE = "nav_msgs/msg/Odometry"
_CLOUD_TYPE = "sensor_msgs/msg/PointCloud2"


# --------------------------------------------------------------------------------------------------
# small pure helpers (no rerun, no ROS)

def _rr():
    try:
        import rerun as rr
    except ImportError as exc:  # pragma: no cover - rerun-sdk is pinned in requirements.txt
        raise UserError(f"the viewer needs rerun-sdk ({exc}); run `make install`") from None
    return rr


def sanitize(name: str) -> str:
    """A frame or topic name as one entity path component (``/`` and odd characters -> ``_``)."""
    s = re.sub(r"[^A-Za-z0-9_\-]", "_", name.strip("/"))
    return s or "_"


def stamp_ns(header_stamp) -> int:
    return int(header_stamp.sec) * 1_000_000_000 + int(header_stamp.nanosec)


def quat_xyzw_to_R(q: Sequence[float]) -> np.ndarray:
    x, y, z, w = (float(v) for v in q)
    n = x * x + y * y + z * z + w * w
    if n < 1e-12:
        return np.eye(3)
    s = 2.0 / n
    return np.array([[1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)],
                     [s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)],
                     [s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)]])


def image_role(topic: str) -> Optional[str]:
    """'image' or 'depth' for an image or camera_info topic, from its name; None for other topics."""
    parts = [p for p in topic.strip("/").split("/") if p]
    if parts and parts[-1] == "compressed":
        parts = parts[:-1]
    if parts and parts[-1] == "camera_info":
        parts = parts[:-1]
        if not parts or parts[-1] not in ("depth",):
            return "image"
    if not parts:
        return None
    last = parts[-1]
    if last == "depth" or last.startswith("depth"):
        return "depth"
    if last.startswith("image"):
        return "image"
    return None


def image_to_array(msg) -> np.ndarray:
    """sensor_msgs/Image (rosbags object) -> (H, W, 3) uint8 RGB or (H, W) float32 depth in metres."""
    h, w, step, enc = int(msg.height), int(msg.width), int(msg.step), str(msg.encoding).lower()
    chans = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8uc1": 1, "8uc3": 3}
    wide = {"32fc1": np.float32, "16uc1": np.uint16, "mono16": np.uint16}
    buf = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data, np.uint8)
    if buf.size < h * step:
        raise UserError(f"image {w}x{h} {enc}: data has {buf.size} bytes, need {h * step} (corrupt message)")
    rows = buf[: h * step].reshape(h, step)
    if enc in chans:
        c = chans[enc]
        a = rows[:, : w * c].reshape(h, w, c) if c > 1 else rows[:, :w]
        if enc.startswith("bgr"):
            a = a[..., [2, 1, 0]]
        elif enc.startswith("rgba"):
            a = a[..., :3]
        return np.ascontiguousarray(a)
    if enc in wide:
        dt = np.dtype(wide[enc]).newbyteorder(">" if msg.is_bigendian else "<")
        a = rows[:, : w * dt.itemsize].copy().view(dt).reshape(h, w)
        if enc == "32fc1":
            return a.astype(np.float32)
        return a.astype(np.float32) / 1000.0  # 16-bit depth is millimetres (REP 118)
    raise UserError(f"image encoding {msg.encoding!r} is not supported by the viewer "
                    "(rgb8, bgr8, rgba8, bgra8, mono8, 32FC1, 16UC1)")


def compressed_to_array(msg) -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG/PNG) -> (H, W, 3) uint8 RGB."""
    import io

    from PIL import Image

    try:
        return np.asarray(Image.open(io.BytesIO(bytes(msg.data))).convert("RGB"))
    except Exception as exc:
        raise UserError(f"compressed image ({msg.format!r}) cannot be decoded: {exc}") from None


_PF_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}


def pointcloud2_to_xyzrgb(msg) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """sensor_msgs/PointCloud2 -> xyz (P, 3) float32 (finite points only) and rgb (P, 3) uint8 or None.

    Reads fields x, y, z and, when present, rgb/rgba packed into a float32 or uint32 (0x00RRGGBB).
    """
    fields = {f.name: f for f in msg.fields}
    for k in ("x", "y", "z"):
        if k not in fields:
            raise UserError(f"PointCloud2 has no field {k!r} (fields: {', '.join(fields)})")
    end = ">" if msg.is_bigendian else "<"
    names, formats, offsets = [], [], []
    for name in ("x", "y", "z", "rgb", "rgba"):
        if name in fields:
            f = fields[name]
            dt = "u4" if name in ("rgb", "rgba") else _PF_DTYPES.get(int(f.datatype), "f4")
            names.append(name)
            formats.append(end + dt)
            offsets.append(int(f.offset))
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": int(msg.point_step)})
    n = int(msg.width) * int(msg.height)
    raw = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data, np.uint8)
    if n == 0 or raw.size < n * int(msg.point_step):
        return np.zeros((0, 3), np.float32), None
    if int(msg.row_step) != int(msg.width) * int(msg.point_step) and int(msg.height) > 1:
        raw = raw.reshape(int(msg.height), int(msg.row_step))[:, : int(msg.width) * int(msg.point_step)].ravel()
    pts = raw[: n * int(msg.point_step)].view(dtype)
    xyz = np.stack([pts["x"], pts["y"], pts["z"]], axis=1).astype(np.float32)
    ok = np.isfinite(xyz).all(axis=1)
    rgb = None
    key = "rgb" if "rgb" in names else ("rgba" if "rgba" in names else None)
    if key is not None:
        packed = pts[key].astype(np.uint32)
        rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1).astype(np.uint8)[ok]
    return xyz[ok], rgb


def camera_info_K(msg) -> Tuple[np.ndarray, Tuple[int, int]]:
    """CameraInfo -> K (3, 3) float64 and (height, width)."""
    return np.asarray(msg.k, dtype=np.float64).reshape(3, 3), (int(msg.height), int(msg.width))


def scale_K_to(K: np.ndarray, src_hw: Tuple[int, int], dst_hw: Tuple[int, int]) -> np.ndarray:
    """Intrinsics for a resized image, half-pixel-correct (the geometry module's rule, in numpy)."""
    sx, sy = dst_hw[1] / src_hw[1], dst_hw[0] / src_hw[0]
    K2 = np.array(K, dtype=np.float64, copy=True)
    K2[0, 0] *= sx
    K2[1, 1] *= sy
    K2[0, 2] = (K2[0, 2] + 0.5) * sx - 0.5
    K2[1, 2] = (K2[1, 2] + 0.5) * sy - 0.5
    return K2


def check_bind(bind: str) -> str:
    """Validate a bind address; warn when it is not loopback."""
    try:
        ip = ipaddress.ip_address(bind)
    except ValueError:
        raise UserError(f"--bind {bind!r} is not an IP address (use 127.0.0.1 for this machine only)") from None
    if not ip.is_loopback:
        log.warning("--bind %s exposes the viewer server beyond this machine", bind)
    return bind


# --------------------------------------------------------------------------------------------------
# logging arrays (in-process API, also used by the bag reader)

def _np(x) -> Optional[np.ndarray]:
    """numpy array of an array-like or a (CPU or GPU) torch tensor, duck-typed; None stays None."""
    if x is None:
        return None
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


@dataclass
class _TrajectoryState:
    points: List[np.ndarray] = field(default_factory=list)


class FrameLogger:
    """Log vfdepth frames (arrays) to a rerun recording with the same entity layout as ``vfdepth view``.

    >>> logger = FrameLogger.to_file("results/run.rrd")  # or FrameLogger(rr.RecordingStream(...))
    >>> logger.log_frame(stamp_ns, cameras=names, images=imgs, depth_m=depth, K=K, T_ego_cam=T, ...)
    >>> logger.close()
    """

    def __init__(self, rec=None, application_id: str = "vfdepth", jpeg_quality: int = 85,
                 depth_range_m: Optional[Tuple[float, float]] = None, max_trajectory_points: int = 5000) -> None:
        rr = _rr()
        self.rr = rr
        self.rec = rec if rec is not None else rr.RecordingStream(application_id)
        self.jpeg_quality = int(jpeg_quality)
        self.depth_range_m = depth_range_m
        self.max_trajectory_points = int(max_trajectory_points)
        self._traj: Dict[str, _TrajectoryState] = {}
        self._pinholes: Dict[str, Tuple] = {}
        self._static_done = False
        self._layout: Optional[Tuple[Tuple[str, ...], Tuple[str, ...]]] = None
        self._T_parent: Dict[str, np.ndarray] = {}
        self.path: Optional[Path] = None

    @classmethod
    def to_file(cls, path: str | Path, **kwargs) -> "FrameLogger":
        """A logger that streams into a new ``.rrd`` file (parent folder created)."""
        p = Path(path)
        if p.suffix != ".rrd":
            raise UserError(f"{p}: a rerun recording must end in .rrd")
        p.parent.mkdir(parents=True, exist_ok=True)
        logger = cls(**kwargs)
        logger.rec.save(str(p))
        logger.path = p
        return logger

    # -- primitives -------------------------------------------------------------------------------
    def _static_world(self) -> None:
        if not self._static_done:
            self.rec.log(WORLD, self.rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
            self._static_done = True

    def set_time(self, stamp_ns_: int) -> None:
        self.rec.set_time(TIMELINE, timestamp=np.datetime64(int(stamp_ns_), "ns"))

    def log_transform(self, entity: str, T_parent_child: np.ndarray, static: bool = False) -> None:
        """Pose of `entity` in its parent entity (4x4 T_parent_child)."""
        self._static_world()
        T = np.asarray(T_parent_child, dtype=np.float64)
        self._T_parent[entity] = T
        self.rec.log(entity, self.rr.Transform3D(translation=T[:3, 3], mat3x3=T[:3, :3]), static=static)

    def send_layout(self, image_entities: Sequence[str], depth_entities: Sequence[str]) -> None:
        """Viewer layout: the 3D scene (fixed frame) beside a grid of the camera images and one of the
        depth images. Six cameras whose poses were logged are ordered like the paper (front-left, front,
        front-right / back-left, back, back-right)."""
        import rerun.blueprint as rrb

        key = (tuple(image_entities), tuple(depth_entities))
        if key == self._layout or not (image_entities or depth_entities):
            return
        self._layout = key

        def ordered(ents: Sequence[str]) -> List[str]:
            # Camera views first (paper layout when six), then the rest (e.g. the virtual view).
            rest = sorted(e for e in ents if e not in image_entities and
                          e.rsplit("/", 1)[0] + "/image" not in image_entities)
            ents = sorted(e for e in ents if e not in rest)
            cams = [e.rsplit("/", 1)[0] for e in ents]
            if len(ents) == 6 and all(c in self._T_parent for c in cams):
                from vfdepth_core.viz import surround_order_from_extrinsics

                order = surround_order_from_extrinsics(np.stack([self._T_parent[c] for c in cams]))
                ents = [ents[i] for i in order]
            return ents + rest

        def label(e: str) -> str:
            parts = e.split("/")
            return f"{parts[-2]} {parts[-1]}" if len(parts) >= 2 else e

        grids = []
        for name, ents in (("camera images", image_entities), ("depth", depth_entities)):
            if ents:
                views = [rrb.Spatial2DView(origin="/" + e, name=label(e)) for e in ordered(ents)]
                grids.append(rrb.Grid(*views, grid_columns=3, name=name))
        layout = rrb.Horizontal(rrb.Spatial3DView(origin=f"/{WORLD}", name=f"3D ({FIXED_FRAME} frame)"),
                                rrb.Vertical(*grids), column_shares=[2, 3])
        self.rec.send_blueprint(rrb.Blueprint(layout, collapse_panels=False))

    def log_pinhole(self, entity: str, K: np.ndarray, hw: Tuple[int, int], plane_m: float = 1.0) -> None:
        """Camera intrinsics (OpenCV axes: right, down, forward) for the image(s) logged at `entity`."""
        key = (tuple(np.round(np.asarray(K, float).ravel(), 6)), tuple(hw))
        if self._pinholes.get(entity) == key:
            return
        self._pinholes[entity] = key
        self.rec.log(entity, self.rr.Pinhole(image_from_camera=np.asarray(K, np.float32), resolution=[hw[1], hw[0]],
                                             camera_xyz=self.rr.ViewCoordinates.RDF, image_plane_distance=plane_m),
                     static=True)

    def log_image(self, entity: str, rgb: np.ndarray) -> None:
        img = self.rr.Image(np.ascontiguousarray(rgb, dtype=np.uint8))
        if self.jpeg_quality > 0:
            img = img.compress(jpeg_quality=self.jpeg_quality)
        self.rec.log(entity, img)

    def log_depth(self, entity: str, depth_m: np.ndarray) -> None:
        d = np.nan_to_num(np.asarray(depth_m, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        kw: Dict[str, Any] = {"meter": 1.0, "colormap": "turbo"}  # rerun: low (near) = blue, high (far) = red
        if self.depth_range_m is not None:
            kw["depth_range"] = [float(self.depth_range_m[0]), float(self.depth_range_m[1])]
        self.rec.log(entity, self.rr.DepthImage(d, **kw))

    def log_points(self, entity: str, xyz: np.ndarray, rgb: Optional[np.ndarray] = None, radius_m: float = 0.05) -> None:
        kw: Dict[str, Any] = {"radii": radius_m}
        if rgb is not None and len(rgb) == len(xyz):
            kw["colors"] = np.asarray(rgb, dtype=np.uint8)
        self.rec.log(entity, self.rr.Points3D(np.asarray(xyz, dtype=np.float32), **kw))

    def log_trajectory_point(self, entity: str, xyz: Sequence[float], color=(214, 39, 40)) -> None:
        """Append a position to the path drawn at `entity` and log the path so far."""
        st = self._traj.setdefault(entity, _TrajectoryState())
        st.points.append(np.asarray(xyz, dtype=np.float32)[:3])
        pts = np.stack(st.points)
        if len(pts) > self.max_trajectory_points:
            idx = np.linspace(0, len(pts) - 1, self.max_trajectory_points).round().astype(int)
            pts = pts[idx]
        self.rec.log(entity, self.rr.LineStrips3D([pts], colors=[color], radii=0.1))

    # -- a whole frame ------------------------------------------------------------------------------
    def log_frame(self, stamp_ns: int, cameras: Sequence[str], images: Optional[np.ndarray] = None,
                  depth_m: Optional[np.ndarray] = None, K: Optional[np.ndarray] = None,
                  T_ego_cam: Optional[np.ndarray] = None, T_world_ego: Optional[np.ndarray] = None,
                  T_world_ego_gt: Optional[np.ndarray] = None, points_xyz: Optional[np.ndarray] = None,
                  points_rgb: Optional[np.ndarray] = None, virtual_depth_m: Optional[np.ndarray] = None,
                  virtual_K: Optional[np.ndarray] = None, virtual_T_ego_cam: Optional[np.ndarray] = None,
                  K_image: Optional[np.ndarray] = None) -> None:
        """Log one surround frame at time `stamp_ns`.

        cameras: N names (entity ``world/base_link/<name>``); images (N, H0, W0, 3) uint8 or (N, 3, H0, W0)
        float [0, 1]; depth_m (N, H, W) or (N, 1, H, W) metres; K (N, 3, 3) at depth resolution (H, W);
        K_image (N, 3, 3) at image resolution (default: K scaled to it); T_ego_cam (N, 4, 4) camera ->
        vehicle; T_world_ego (4, 4) estimated vehicle pose (draws ``world/trajectory/odom``), T_world_ego_gt
        ground truth (``world/trajectory/gt_odom``); points (P, 3) metres in the vehicle frame with
        optional (P, 3) uint8 colours; virtual_depth_m (V, H, W) with virtual_K (V, 3, 3) and
        virtual_T_ego_cam (V, 4, 4) (entities ``world/base_link/virtual_<v>``).
        """
        from vfdepth_core.viz import to_uint8_rgb

        self._static_world()
        self.set_time(stamp_ns)
        base = f"{WORLD}/base_link"
        n = len(cameras)

        def arr(name, x, tail_dims):
            if x is None:
                return None
            a = _np(x)
            if a.ndim == tail_dims + 2 and a.shape[0] == 1:
                a = a[0]  # drop a batch dim of 1
            if a.shape[0] != n and name not in ("virtual_depth_m", "virtual_K", "virtual_T_ego_cam"):
                raise UserError(f"log_frame: {name} has {a.shape[0]} entries for {n} cameras")
            return a

        images_a = arr("images", images, 3)
        depth_a = arr("depth_m", depth_m, 2 if depth_m is None or len(depth_m.shape) <= 3 else 3)
        if depth_a is not None and depth_a.ndim == 4:
            depth_a = depth_a[:, 0]
        K_a, Ki_a, T_a = arr("K", K, 2), arr("K_image", K_image, 2), arr("T_ego_cam", T_ego_cam, 2)
        if T_world_ego is not None:
            T = _np(T_world_ego).astype(np.float64).reshape(4, 4)
            self.log_transform(base, T)
            self.log_trajectory_point(f"{WORLD}/trajectory/odom", T[:3, 3])
        if T_world_ego_gt is not None:
            T = _np(T_world_ego_gt).astype(np.float64).reshape(4, 4)
            self.log_trajectory_point(f"{WORLD}/trajectory/gt_odom", T[:3, 3], color=(60, 60, 60))
        for i, cam in enumerate(cameras):
            ent = f"{base}/{sanitize(cam)}"
            if T_a is not None:
                self.log_transform(ent, T_a[i])
            if depth_a is not None:
                if K_a is not None:
                    self.log_pinhole(f"{ent}/depth", K_a[i], depth_a.shape[1:3])
                self.log_depth(f"{ent}/depth", depth_a[i])
            if images_a is not None:
                rgb = to_uint8_rgb(images_a[i])
                Ki = Ki_a[i] if Ki_a is not None else (
                    scale_K_to(K_a[i], depth_a.shape[1:3], rgb.shape[:2]) if K_a is not None and depth_a is not None
                    else (K_a[i] if K_a is not None else None))
                if Ki is not None:
                    self.log_pinhole(f"{ent}/image", Ki, rgb.shape[:2])
                self.log_image(f"{ent}/image", rgb)
        if points_xyz is not None:
            self.log_points(f"{base}/points", _np(points_xyz).reshape(-1, 3),
                            None if points_rgb is None else _np(points_rgb).reshape(-1, 3))
        if virtual_depth_m is not None:
            vd = _np(virtual_depth_m)
            virt_ents = [f"{base}/virtual_{v}/depth" for v in range(vd.reshape((-1,) + vd.shape[-2:]).shape[0])]
        else:
            virt_ents = []
        self.send_layout([f"{base}/{sanitize(c)}/image" for c in cameras] if images is not None else [],
                         ([f"{base}/{sanitize(c)}/depth" for c in cameras] if depth_m is not None else []) + virt_ents)
        if virtual_depth_m is not None:
            vK, vT = _np(virtual_K), _np(virtual_T_ego_cam)
            vd = vd.reshape((-1,) + vd.shape[-2:])
            for v in range(vd.shape[0]):
                ent = f"{base}/virtual_{v}"
                if vT is not None:
                    self.log_transform(ent, vT.reshape(-1, 4, 4)[v])
                if vK is not None:
                    self.log_pinhole(f"{ent}/depth", vK.reshape(-1, 3, 3)[v], vd.shape[1:])
                self.log_depth(f"{ent}/depth", vd[v])

    def close(self) -> None:
        """Flush and finish the recording (the .rrd file is complete afterwards)."""
        self.rec.flush(blocking=True)
        try:
            self.rec.disconnect()
        except Exception:  # noqa: BLE001 - older/newer SDKs differ; the flush above already wrote the data
            pass


_DEFAULT_LOGGERS: Dict[int, FrameLogger] = {}


def log_frame(rec, stamp_ns: int, cameras: Sequence[str], **arrays) -> FrameLogger:
    """Log one frame to a rerun RecordingStream (see ``FrameLogger.log_frame`` for the arrays).

    Keeps one ``FrameLogger`` per recording so trajectories accumulate across calls; returns it.
    """
    logger = _DEFAULT_LOGGERS.get(id(rec))
    if logger is None or logger.rec is not rec:
        logger = _DEFAULT_LOGGERS[id(rec)] = FrameLogger(rec)
    logger.log_frame(stamp_ns, cameras, **arrays)
    return logger


# --------------------------------------------------------------------------------------------------
# bags -> recording

@lru_cache(maxsize=1)
def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


class _Bag:
    """One open bag: connections by topic, decoder, ordered message iterator (header stamps)."""

    def __init__(self, path: Path, index: int, allow_damaged: bool = False) -> None:
        from vfdepth_ros.bag import common as C

        self.reader = C.open_reader(path, allow_damaged)  # one-line BagError (a UserError) on damage
        self.allow_damaged = allow_damaged
        self.path = path
        self.index = index
        self.ts = _typestore()

    def topics(self) -> Dict[str, str]:
        return {c.topic: c.msgtype for c in self.reader.connections}

    def messages(self, topics: Optional[Iterable[str]] = None) -> Iterator[Tuple[int, int, str, str, Any]]:
        """(log_time_ns, bag index, topic, msgtype, message) in bag order, unknown types skipped."""
        want = None if topics is None else set(topics)
        conns = [c for c in self.reader.connections if (want is None or c.topic in want) and c.msgtype in self.ts.types]
        skipped = {c.msgtype for c in self.reader.connections if c.msgtype not in self.ts.types}
        if skipped:
            log.warning("%s: skipping message types rosbags does not know: %s", self.path, ", ".join(sorted(skipped)))
        if not conns:
            return
        from vfdepth_ros.bag import common as C

        # damage and messages missing from the bag's index: BagError, or a warning with allow_damaged
        for conn, t_ns, raw in C.iter_messages(self.reader, conns, allow_damaged=self.allow_damaged):
            try:
                msg = self.ts.deserialize_cdr(raw, conn.msgtype)
            except Exception as exc:  # noqa: BLE001 - one bad message should not end the recording
                log.warning("%s: cannot decode a %s on %s (%s); skipped", self.path, conn.msgtype, conn.topic, exc)
                continue
            yield int(t_ns), self.index, conn.topic, conn.msgtype, msg

    def close(self) -> None:
        self.reader.close()


@dataclass
class ViewSummary:
    """What a recording holds: messages logged per topic and the entity paths written."""

    messages: Dict[str, int] = field(default_factory=dict)
    entities: List[str] = field(default_factory=list)
    skipped_topics: List[str] = field(default_factory=list)


class _FrameTree:
    """TF parent of each frame, and the entity path of each frame (fixed frame = ``world``)."""

    def __init__(self, fixed_frame: str = FIXED_FRAME) -> None:
        self.fixed = fixed_frame
        self.parent: Dict[str, str] = {}
        self.owner: Dict[Tuple[str, str], int] = {}  # dynamic edge -> bag index that drives it

    def add(self, parent: str, child: str) -> None:
        parent, child = parent.strip("/"), child.strip("/")
        if child == self.fixed or child == parent:
            return
        # Refuse cycles (first edge wins).
        p = parent
        seen = set()
        while p in self.parent and p not in seen:
            seen.add(p)
            p = self.parent[p]
            if p == child:
                return
        self.parent.setdefault(child, parent)

    def entity(self, frame: str) -> str:
        frame = (frame or "").strip("/")
        if not frame or frame == self.fixed:
            return WORLD
        chain = [frame]
        seen = {frame}
        while chain[-1] in self.parent:
            nxt = self.parent[chain[-1]]
            if nxt == self.fixed or nxt in seen:
                break
            chain.append(nxt)
            seen.add(nxt)
        return "/".join([WORLD] + [sanitize(f) for f in reversed(chain)])


def _transform_matrix(tf) -> np.ndarray:
    T = np.eye(4)
    r, t = tf.rotation, tf.translation
    T[:3, :3] = quat_xyzw_to_R((r.x, r.y, r.z, r.w))
    T[:3, 3] = (t.x, t.y, t.z)
    return T


def record_bags(bags: Sequence[str | Path], out: str | Path, every: int = 1, jpeg_quality: int = 85,
                depth_range_m: Optional[Tuple[float, float]] = None, fixed_frame: str = FIXED_FRAME,
                logger: Optional[FrameLogger] = None, allow_damaged: bool = False) -> ViewSummary:
    """Write a rerun recording of one or more bags (merged by time) to `out` (.rrd); see the module doc.

    every: log every n-th message of each image/depth/point-cloud topic (TF and odometry always).
    allow_damaged: show the readable part of a damaged bag (warning) instead of stopping with an error.
    """
    paths = [Path(b) for b in bags]
    if not paths:
        raise UserError("give at least one bag")
    if every < 1:
        raise UserError(f"--every must be >= 1, got {every}")
    opened = [_Bag(p, i, allow_damaged) for i, p in enumerate(paths)]
    try:
        return _record(opened, out, every, jpeg_quality, depth_range_m, fixed_frame, logger)
    finally:
        for b in opened:
            b.close()


def _record(bags: List[_Bag], out, every, jpeg_quality, depth_range_m, fixed_frame, logger) -> ViewSummary:
    tree = _FrameTree(fixed_frame)
    summary = ViewSummary()
    # Pass 1: the TF tree (small messages) and which bag drives each dynamic edge.
    odom_topics: Dict[str, Tuple[str, str]] = {}
    for bag in bags:
        topics = bag.topics()
        tf_topics = [t for t, ty in topics.items() if ty == _TF_TYPE]
        for _, idx, topic, _, msg in bag.messages(tf_topics):
            for tr in msg.transforms:
                tree.add(tr.header.frame_id, tr.child_frame_id)
                if topic.strip("/") != "tf_static":
                    edge = (tr.header.frame_id.strip("/"), tr.child_frame_id.strip("/"))
                    prev = tree.owner.get(edge)
                    if prev is not None and prev != idx:
                        log.warning("TF %s -> %s is in %s and %s; using the latter", edge[0], edge[1],
                                    bags[prev].path, bag.path)
                    tree.owner[edge] = idx
        for t, ty in topics.items():
            if ty == _ODOM_TYPE:
                for _, _, _, _, msg in bag.messages([t]):
                    odom_topics[t] = (msg.header.frame_id.strip("/") or fixed_frame, msg.child_frame_id.strip("/"))
                    break
    # Odometry places its child frame when no TF edge does.
    odom_drives: Optional[str] = None
    for t in sorted(odom_topics, key=lambda s: (s.strip("/") != "odom", s)):
        parent, child = odom_topics[t]
        if child and (parent, child) not in tree.owner and child not in tree.parent:
            tree.add(parent, child)
            odom_drives = t
            log.info("no TF %s -> %s: placing it from %s", parent, child, t)
            break
    if odom_drives is None:
        for t in sorted(odom_topics, key=lambda s: (s.strip("/") != "odom", s)):
            parent, child = odom_topics[t]
            if child and (parent, child) not in tree.owner and tree.parent.get(child) == parent:
                odom_drives = t
                break

    own_logger = logger is None
    if own_logger:
        logger = FrameLogger.to_file(out, jpeg_quality=jpeg_quality, depth_range_m=depth_range_m)
    assert logger is not None
    entities: set = set()
    counts: Dict[str, int] = {}
    infos: Dict[str, Tuple[np.ndarray, Tuple[int, int]]] = {}  # camera_info topic -> latest K, hw
    seen_per_topic: Dict[str, int] = {}

    def note(topic: str, ent: str) -> None:
        counts[topic] = counts.get(topic, 0) + 1
        entities.add(ent)

    def info_for(topic: str) -> Optional[Tuple[np.ndarray, Tuple[int, int]]]:
        """Latest camera_info of an image topic: <t>/camera_info (depth), else <namespace>/camera_info."""
        t = topic[: -len("/compressed")] if topic.endswith("/compressed") else topic
        parent = t.rsplit("/", 1)[0] if "/" in t else ""
        cands = ([f"{t}/camera_info"] if t.rsplit("/", 1)[-1] == "depth" else []) + [
            f"{parent}/camera_info" if parent else "camera_info"]
        for c in cands:
            if c in infos:
                return infos[c]
        return None

    streams = [b.messages() for b in bags]

    def stamped(stream):
        for t_ns, idx, topic, msgtype, msg in stream:
            hdr = getattr(msg, "header", None)
            s = stamp_ns(hdr.stamp) if hdr is not None and (hdr.stamp.sec or hdr.stamp.nanosec) else t_ns
            yield s, idx, topic, msgtype, msg

    for s_ns, idx, topic, msgtype, msg in heapq.merge(*[stamped(st) for st in streams], key=lambda m: (m[0], m[1])):
        name = topic.strip("/")
        if msgtype == _TF_TYPE:
            static = name == "tf_static"
            for tr in msg.transforms:
                parent, child = tr.header.frame_id.strip("/"), tr.child_frame_id.strip("/")
                if tree.parent.get(child) != parent:
                    continue  # an edge the tree refused (cycle/second parent)
                if not static and tree.owner.get((parent, child)) != idx:
                    continue
                ent = tree.entity(child)
                if static:
                    logger.log_transform(ent, _transform_matrix(tr.transform), static=True)
                else:
                    logger.set_time(stamp_ns(tr.header.stamp) or s_ns)
                    logger.log_transform(ent, _transform_matrix(tr.transform))
                entities.add(ent)
            counts[topic] = counts.get(topic, 0) + 1
            continue
        if msgtype == _INFO_TYPE:
            infos[name] = camera_info_K(msg)
            counts[topic] = counts.get(topic, 0) + 1
            continue
        logger.set_time(s_ns)
        if msgtype == _ODOM_TYPE:
            p = msg.pose.pose.position
            frame = msg.header.frame_id.strip("/") or fixed_frame
            ent = f"{tree.entity(frame)}/trajectory/{sanitize(name)}"
            color = (60, 60, 60) if name.startswith("gt") else (214, 39, 40)
            logger.log_trajectory_point(ent, (p.x, p.y, p.z), color=color)
            note(topic, ent)
            if topic == odom_drives:
                o = msg.pose.pose.orientation
                T = np.eye(4)
                T[:3, :3] = quat_xyzw_to_R((o.x, o.y, o.z, o.w))
                T[:3, 3] = (p.x, p.y, p.z)
                child_ent = tree.entity(msg.child_frame_id)
                logger.log_transform(child_ent, T)
                entities.add(child_ent)
            continue
        if msgtype in _IMAGE_TYPES or msgtype == _CLOUD_TYPE:
            k = seen_per_topic[name] = seen_per_topic.get(name, 0) + 1
            if (k - 1) % every:
                continue
        if msgtype in _IMAGE_TYPES:
            role = image_role(name)
            if role is None:
                if name not in summary.skipped_topics:
                    summary.skipped_topics.append(name)
                continue
            try:
                arr = compressed_to_array(msg) if msgtype.endswith("CompressedImage") else image_to_array(msg)
            except UserError as exc:
                log.warning("%s: %s; skipped", topic, exc)
                continue
            frame = msg.header.frame_id.strip("/") or sanitize(name.rsplit("/", 1)[0])
            ent = f"{tree.entity(frame)}/{role}"
            info = info_for(name)
            if info is not None:
                K, hw = info
                if hw != tuple(arr.shape[:2]) and hw[0] > 0 and hw[1] > 0:
                    K = scale_K_to(K, hw, arr.shape[:2])
                logger.log_pinhole(ent, K, arr.shape[:2])
            if arr.ndim == 2 and (role == "depth" or arr.dtype == np.float32):
                logger.log_depth(ent, arr)
            else:
                logger.log_image(ent, arr if arr.ndim == 3 else np.repeat(arr[..., None], 3, axis=2))
            note(topic, ent)
            continue
        if msgtype == _CLOUD_TYPE:
            xyz, rgb = pointcloud2_to_xyzrgb(msg)
            ent = f"{tree.entity(msg.header.frame_id)}/{sanitize(name)}"
            logger.log_points(ent, xyz, rgb)
            note(topic, ent)
            continue
        if name not in summary.skipped_topics:
            summary.skipped_topics.append(name)
    ents = sorted(entities)
    logger.send_layout([e for e in ents if e.endswith("/image")], [e for e in ents if e.endswith("/depth")])
    if own_logger:
        logger.close()
    summary.messages = counts
    summary.entities = sorted(entities)
    return summary


# --------------------------------------------------------------------------------------------------
# serving and the CLI

def rerun_cli() -> str:
    """Path of the rerun command-line tool that ships with rerun-sdk."""
    cand = Path(sys.executable).with_name("rerun")
    if cand.exists():
        return str(cand)
    found = shutil.which("rerun")
    if not found:
        raise UserError("the `rerun` command from rerun-sdk is not on PATH; run `make install`")
    return found


def rerun_env() -> Dict[str, str]:
    """Environment for the rerun processes this tool starts: rerun's usage analytics switched off (its
    config lives in a private XDG_CONFIG_HOME under the temp folder, the user's own is left alone)."""
    import os
    import tempfile

    cfg = Path(tempfile.gettempdir()) / f"vfdepth-rerun-{os.getuid()}"
    env = dict(os.environ, XDG_CONFIG_HOME=str(cfg))
    if not (cfg / "rerun" / "analytics.json").is_file():
        subprocess.run([rerun_cli(), "analytics", "disable"], env=env, capture_output=True, timeout=60, check=False)
    return env


def serve_command(rrd: str | Path, bind: str = DEFAULT_BIND, grpc_port: int = 9876, web_port: int = 9090) -> List[str]:
    """The rerun CLI command that serves a recording to web viewers, listening on `bind` only.

    (The Python SDK's own server listens on every interface, so the CLI is used instead.)
    """
    return [rerun_cli(), str(rrd), "--serve-web", "--bind", check_bind(bind), "--port", str(int(grpc_port)),
            "--web-viewer-port", str(int(web_port))]


def verify_recording(rrd: str | Path) -> None:
    """Check a .rrd with rerun's own verifier (`rerun rrd verify`); raise UserError if it fails."""
    res = subprocess.run([rerun_cli(), "rrd", "verify", str(rrd)], capture_output=True, text=True, timeout=300,
                         env=rerun_env())
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise UserError(f"{rrd}: rerun rrd verify failed: {' | '.join(tail)}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bags", nargs="+", help="input and/or recorded output bags (.mcap/.db3 or rosbag2 folders), "
                        "merged by time; a later bag's dynamic TF wins over an earlier one's")
    parser.add_argument("-o", "--output", default="results/view.rrd", help="rerun recording to write (.rrd)")
    parser.add_argument("--every", type=int, default=1, help="log every n-th image/depth/cloud message per topic")
    parser.add_argument("--jpeg-quality", type=int, default=85, help="JPEG quality of camera images in the file (0 = raw)")
    parser.add_argument("--depth-range", type=float, nargs=2, metavar=("MIN_M", "MAX_M"),
                        help="colour range of depth images in metres (default: rerun picks per image)")
    parser.add_argument("--fixed-frame", default=FIXED_FRAME, help="TF frame shown as the world (default odom)")
    parser.add_argument("--verify", action="store_true", help="check the file with `rerun rrd verify` afterwards")
    parser.add_argument("--allow-damaged", action="store_true",
                        help="show the readable part of a damaged bag (warning) instead of stopping with an error")
    parser.add_argument("--serve", action="store_true", help="then serve it to a web browser (rerun web viewer) until Ctrl-C")
    parser.add_argument("--bind", default=DEFAULT_BIND, help="address the server listens on (default loopback only)")
    parser.add_argument("--port", type=int, default=9876, help="gRPC port of the server")
    parser.add_argument("--web-port", type=int, default=9090, help="HTTP port of the web viewer")


def main(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.suffix != ".rrd":
        raise UserError(f"-o {out}: the recording must end in .rrd")
    if args.serve:
        check_bind(args.bind)
    t0 = time.perf_counter()
    summary = record_bags(args.bags, out, every=args.every, jpeg_quality=args.jpeg_quality,
                          depth_range_m=tuple(args.depth_range) if args.depth_range else None,
                          fixed_frame=args.fixed_frame, allow_damaged=args.allow_damaged)
    dt = time.perf_counter() - t0
    total = sum(summary.messages.values())
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {total} messages from {len(args.bags)} bag(s) "
          f"into {len(summary.entities)} entities in {dt:.1f} s")
    for topic, n in sorted(summary.messages.items()):
        print(f"  {topic:<40} {n:>6}")
    if summary.skipped_topics:
        print(f"  not shown: {', '.join(summary.skipped_topics)}")
    if args.verify:
        verify_recording(out)
        print(f"{out}: rerun rrd verify OK")
    print(f"open it with: {Path(rerun_cli()).name} {out}")
    if args.serve:
        cmd = serve_command(out, args.bind, args.port, args.web_port)
        print(f"serving on http://{args.bind}:{args.web_port} (gRPC {args.bind}:{args.port}); Ctrl-C stops")
        proc = subprocess.Popen(cmd, env=rerun_env())
        try:
            return int(proc.wait())
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait(timeout=10)
            return 0
    return 0


__all__ = [
    "FrameLogger",
    "ViewSummary",
    "add_arguments",
    "camera_info_K",
    "check_bind",
    "image_role",
    "image_to_array",
    "log_frame",
    "main",
    "pointcloud2_to_xyzrgb",
    "record_bags",
    "rerun_env",
    "serve_command",
    "verify_recording",
]
