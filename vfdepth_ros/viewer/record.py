"""Bags -> a viewer recording: messages read with the bag tools' reader (`bag.common`), decoded with
the codec (`conversions`) and logged with :class:`~vfdepth_ros.viewer.logger.FrameLogger`. No rclpy.

| source | entity | archetype |
|---|---|---|
| ``/tf``, ``/tf_static`` (parent -> child) | ``entity(child)`` | Transform3D (static for /tf_static) |
| ``<cam>/image_raw[/compressed]`` + ``<cam>/camera_info`` | ``entity(frame)/image`` | Image (JPEG-compressed in the file) + Pinhole |
| ``<cam>/depth`` (32FC1 m, 16UC1 mm) + ``<cam>/depth/camera_info`` | ``entity(frame)/depth`` | DepthImage (meter scale) + Pinhole |
| ``virtual/depth`` + ``virtual/camera_info`` | ``entity(frame)/depth`` of the virtual camera's frame | DepthImage + Pinhole |
| PointCloud2 (``points``: xyz + rgb; ``lidar/points``: xyz) | ``entity(frame)/<topic>`` (``/`` -> ``_``) | Points3D |
| Odometry (``odom``, ``gt/odom``) | ``entity(frame)/trajectory/<topic>`` | LineStrips3D (the path so far) |

``entity(f)`` is the entity path of TF frame f (:class:`~vfdepth_ros.viewer.layout.FrameTree`).
Time: the timeline ``stamp`` holds each message's header stamp (its bag time when it has no header).
When two bags carry the same dynamic TF edge (say ``odom -> base_link`` as ground truth in the input
bag and as the estimate in the outputs bag), the bag named LAST on the command line wins; without any
``odom -> base_link`` transform, the ``odom`` (else ``gt/odom``) Odometry messages place ``base_link``.
"""

from __future__ import annotations

import heapq
import logging
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from vfdepth_ros import conversions as cv
from vfdepth_ros.bag import common as C
from vfdepth_ros.errors import ConversionError, UserError
from vfdepth_ros.viewer.layout import FIXED_FRAME, FrameTree, ViewSummary, sanitize
from vfdepth_ros.viewer.logger import FrameLogger

log = logging.getLogger(__name__)

_IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
_TF_TYPE = "tf2_msgs/msg/TFMessage"
_ODOM_TYPE = "nav_msgs/msg/Odometry"
_CLOUD_TYPE = "sensor_msgs/msg/PointCloud2"

Message = Tuple[int, int, str, str, Any]  # (time ns, bag index, topic, msgtype, message)


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


def bag_messages(reader, index: int, topics: Optional[Iterable[str]] = None,
                 allow_damaged: bool = False) -> Iterator[Message]:
    """(log time ns, `index`, topic, msgtype, message) of an open bag in bag order; types rosbags does
    not know and messages that do not decode are skipped with a warning."""
    known = cv.typestore().types
    want = None if topics is None else set(topics)
    conns = [c for c in reader.connections if (want is None or c.topic in want) and c.msgtype in known]
    skipped = {c.msgtype for c in reader.connections if c.msgtype not in known}
    if skipped:
        log.warning("%s: skipping message types rosbags does not know: %s", reader.path, ", ".join(sorted(skipped)))
    if not conns:
        return
    # damage and messages missing from the bag's index: BagError, or a warning with allow_damaged
    for conn, t_ns, raw in C.iter_messages(reader, conns, allow_damaged=allow_damaged):
        try:
            msg = C.deserialize(raw, conn.msgtype)
        except C.BagError as exc:  # one bad message should not end the recording
            log.warning("%s on %s: %s; skipped", reader.path, conn.topic, exc)
            continue
        yield int(t_ns), index, conn.topic, conn.msgtype, msg


def _header_stamped(messages: Iterator[Message]) -> Iterator[Message]:
    """The same messages with their header stamp (when set) in place of the bag time."""
    for t_ns, idx, topic, msgtype, msg in messages:
        hdr = getattr(msg, "header", None)
        s = cv.stamp_to_ns(hdr.stamp) if hdr is not None and (hdr.stamp.sec or hdr.stamp.nanosec) else t_ns
        yield s, idx, topic, msgtype, msg


def frame_tree(readers: Sequence, fixed_frame: str, allow_damaged: bool) -> Tuple[FrameTree, Optional[str]]:
    """Pass 1: the TF tree (small messages), which bag drives each dynamic edge, and the Odometry topic
    that places its child frame when no TF edge does (None when TF places it)."""
    tree = FrameTree(fixed_frame)
    odom_topics: Dict[str, Tuple[str, str]] = {}
    for idx, reader in enumerate(readers):
        topics = {c.topic: c.msgtype for c in reader.connections}
        tf_topics = [t for t, ty in topics.items() if ty == _TF_TYPE]
        for _, _, topic, _, msg in bag_messages(reader, idx, tf_topics, allow_damaged):
            for tr in msg.transforms:
                tree.add(tr.header.frame_id, tr.child_frame_id)
                if topic.strip("/") != "tf_static":
                    edge = (tr.header.frame_id.strip("/"), tr.child_frame_id.strip("/"))
                    prev = tree.owner.get(edge)
                    if prev is not None and prev != idx:
                        log.warning("TF %s -> %s is in %s and %s; using the latter", edge[0], edge[1],
                                    readers[prev].path, reader.path)
                    tree.owner[edge] = idx
        for t, ty in topics.items():
            if ty == _ODOM_TYPE:
                for _, _, _, _, msg in bag_messages(reader, idx, [t], allow_damaged):
                    odom_topics[t] = (msg.header.frame_id.strip("/") or fixed_frame, msg.child_frame_id.strip("/"))
                    break
    by_preference = sorted(odom_topics, key=lambda s: (s.strip("/") != "odom", s))
    for t in by_preference:
        parent, child = odom_topics[t]
        if child and (parent, child) not in tree.owner and child not in tree.parent:
            tree.add(parent, child)
            log.info("no TF %s -> %s: placing it from %s", parent, child, t)
            return tree, t
    for t in by_preference:
        parent, child = odom_topics[t]
        if child and (parent, child) not in tree.owner and tree.parent.get(child) == parent:
            return tree, t
    return tree, None


class _Recorder:
    """Pass 2: log each message of the merged bags (one method per message kind)."""

    def __init__(self, tree: FrameTree, odom_drives: Optional[str], logger: FrameLogger, every: int) -> None:
        self.tree, self.odom_drives, self.logger, self.every = tree, odom_drives, logger, every
        self.summary = ViewSummary()
        self.entities: set = set()
        self.infos: Dict[str, Tuple[np.ndarray, Tuple[int, int]]] = {}  # camera_info topic -> latest K, hw
        self.seen_per_topic: Dict[str, int] = {}

    def note(self, topic: str, ent: Optional[str] = None) -> None:
        self.summary.messages[topic] = self.summary.messages.get(topic, 0) + 1
        if ent is not None:
            self.entities.add(ent)

    def skip(self, name: str) -> None:
        if name not in self.summary.skipped_topics:
            self.summary.skipped_topics.append(name)

    def message(self, s_ns: int, idx: int, topic: str, msgtype: str, msg) -> None:
        name = topic.strip("/")
        if msgtype == _TF_TYPE:
            self.tf(s_ns, idx, name, msg)
            self.note(topic)
        elif msgtype == _INFO_TYPE:
            try:
                self.infos[name] = cv.camera_info_to_K(msg)
            except ConversionError as exc:
                log.warning("%s: %s; skipped", topic, exc)
            self.note(topic)
        elif msgtype == _ODOM_TYPE:
            self.logger.set_time(s_ns)
            self.odometry(topic, name, msg)
        elif msgtype in _IMAGE_TYPES or msgtype == _CLOUD_TYPE:
            self.logger.set_time(s_ns)
            k = self.seen_per_topic[name] = self.seen_per_topic.get(name, 0) + 1
            if (k - 1) % self.every:
                return
            (self.cloud if msgtype == _CLOUD_TYPE else self.image)(topic, name, msgtype, msg)
        else:
            self.skip(name)

    def tf(self, s_ns: int, idx: int, name: str, msg) -> None:
        static = name == "tf_static"
        for tr in msg.transforms:
            parent, child = tr.header.frame_id.strip("/"), tr.child_frame_id.strip("/")
            if self.tree.parent.get(child) != parent:
                continue  # an edge the tree refused (cycle/second parent)
            if not static and self.tree.owner.get((parent, child)) != idx:
                continue
            try:
                T = cv.transform_to_matrix(tr)
            except ConversionError as exc:
                log.warning("%s: %s; skipped", name, exc)
                continue
            ent = self.tree.entity(child)
            if not static:
                self.logger.set_time(cv.stamp_to_ns(tr.header.stamp) or s_ns)
            self.logger.log_transform(ent, T, static=static)
            self.entities.add(ent)

    def odometry(self, topic: str, name: str, msg) -> None:
        p = msg.pose.pose.position
        frame = msg.header.frame_id.strip("/") or self.tree.fixed
        ent = f"{self.tree.entity(frame)}/trajectory/{sanitize(name)}"
        color = (60, 60, 60) if name.startswith("gt") else (214, 39, 40)
        self.logger.log_trajectory_point(ent, (p.x, p.y, p.z), color=color)
        self.note(topic, ent)
        if topic == self.odom_drives:
            try:
                T = cv.odometry_to_matrix(msg)
            except ConversionError as exc:
                log.warning("%s: %s; skipped", topic, exc)
                return
            child_ent = self.tree.entity(msg.child_frame_id)
            self.logger.log_transform(child_ent, T)
            self.entities.add(child_ent)

    def info_for(self, topic: str) -> Optional[Tuple[np.ndarray, Tuple[int, int]]]:
        """Latest camera_info of an image topic: <t>/camera_info (depth), else <namespace>/camera_info."""
        t = topic[: -len("/compressed")] if topic.endswith("/compressed") else topic
        parent = t.rsplit("/", 1)[0] if "/" in t else ""
        cands = ([f"{t}/camera_info"] if t.rsplit("/", 1)[-1] == "depth" else []) + [
            f"{parent}/camera_info" if parent else "camera_info"]
        return next((self.infos[c] for c in cands if c in self.infos), None)

    def image(self, topic: str, name: str, msgtype: str, msg) -> None:
        role = image_role(name)
        if role is None:
            self.skip(name)
            return
        try:
            arr = cv.compressed_to_rgb(msg) if msgtype.endswith("CompressedImage") else cv.image_to_array(msg)
        except ConversionError as exc:
            log.warning("%s: %s; skipped", topic, exc)
            return
        frame = msg.header.frame_id.strip("/") or sanitize(name.rsplit("/", 1)[0])
        ent = f"{self.tree.entity(frame)}/{role}"
        info = self.info_for(name)
        if info is not None:
            K, hw = info
            self.logger.log_pinhole(ent, K if hw == arr.shape[:2] else cv.scale_K(K, hw, arr.shape[:2]), arr.shape[:2])
        if arr.ndim == 2 and (role == "depth" or arr.dtype == np.float32):
            self.logger.log_depth(ent, arr)
        else:
            self.logger.log_image(ent, arr if arr.ndim == 3 else np.repeat(arr[..., None], 3, axis=2))
        self.note(topic, ent)

    def cloud(self, topic: str, name: str, msgtype: str, msg) -> None:
        try:
            xyz, rgb = cv.pointcloud2_to_xyzrgb(msg)
        except ConversionError as exc:
            log.warning("%s: %s; skipped", topic, exc)
            return
        ok = np.isfinite(xyz).all(axis=1)
        ent = f"{self.tree.entity(msg.header.frame_id)}/{sanitize(name)}"
        self.logger.log_points(ent, xyz[ok], None if rgb is None else rgb[ok])
        self.note(topic, ent)


def record_bags(bags: Sequence[str | Path], out: str | Path, every: int = 1, jpeg_quality: int = 85,
                depth_range_m: Optional[Tuple[float, float]] = None, fixed_frame: str = FIXED_FRAME,
                logger: Optional[FrameLogger] = None, allow_damaged: bool = False) -> ViewSummary:
    """Write a rerun recording of one or more bags (merged by time) to `out` (.rrd); see the module doc.

    every: log every n-th message of each image/depth/point-cloud topic (TF and odometry always).
    allow_damaged: show the readable part of a damaged bag (warning) instead of stopping with an error.
    logger: log into this one (left open) instead of a new file `out`.
    """
    paths = [Path(b) for b in bags]
    if not paths:
        raise UserError("give at least one bag")
    if every < 1:
        raise UserError(f"--every must be >= 1, got {every}")
    readers: List = []
    try:
        for p in paths:
            readers.append(C.open_reader(p, allow_damaged))  # one-line BagError (a UserError) on damage
        tree, odom_drives = frame_tree(readers, fixed_frame, allow_damaged)
        own = logger is None
        logger = FrameLogger.to_file(out, jpeg_quality=jpeg_quality, depth_range_m=depth_range_m) if own else logger
        rec = _Recorder(tree, odom_drives, logger, every)
        streams = [_header_stamped(bag_messages(r, i, None, allow_damaged)) for i, r in enumerate(readers)]
        for m in heapq.merge(*streams, key=lambda m: (m[0], m[1])):
            rec.message(*m)
        ents = sorted(rec.entities)
        logger.send_layout([e for e in ents if e.endswith("/image")], [e for e in ents if e.endswith("/depth")])
        if own:
            logger.close()
        rec.summary.entities = ents
        return rec.summary
    finally:
        for r in readers:
            r.close()
