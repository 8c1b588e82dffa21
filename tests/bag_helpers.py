"""Test-only helpers for the bag tools: write small input bags and recorded-output bags by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np

from vfdepth_ros.bag import common as C


def write_outputs_bag(path: str | Path, depth: Dict[str, List[Tuple[int, np.ndarray, np.ndarray, str]]],
                      odom: Sequence[Tuple[int, np.ndarray]] = ()) -> Path:
    """An outputs bag like the node graph's: per camera (stamp_ns, depth (H, W) float32 m, K at H x W,
    frame_id) -> <cam>/depth (32FC1) + <cam>/depth/camera_info; odom as nav_msgs/Odometry."""
    with C.BagWriter(path, overwrite=True) as bw:
        items = []
        for cam, frames in depth.items():
            bw.add_topic(f"{cam}/depth", "sensor_msgs/msg/Image")
            bw.add_topic(f"{cam}/depth/camera_info", "sensor_msgs/msg/CameraInfo")
            for t, d, K, frame in frames:
                items.append((t, f"{cam}/depth", C.image_msg(np.asarray(d, np.float32), t, frame, encoding="32FC1")))
                items.append((t, f"{cam}/depth/camera_info", C.camera_info_msg(K, d.shape[0], d.shape[1], t, frame)))
        if odom:
            bw.add_topic("odom", "nav_msgs/msg/Odometry")
            for t, T in odom:
                items.append((t, "odom", C.odometry_msg(T, t)))
        for t, topic, msg in sorted(items, key=lambda x: (x[0], x[1])):
            bw.write(topic, t, C.serialize(msg))
    return Path(path)


def read_all(path: str | Path) -> Dict[str, List[Tuple[int, bytes]]]:
    """topic (no leading slash) -> [(log time ns, raw CDR bytes)] in bag order."""
    reader = C.open_reader(path)
    out: Dict[str, List[Tuple[int, bytes]]] = {}
    try:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic.lstrip("/"), []).append((t, bytes(raw)))
    finally:
        reader.close()
    return out


def decode_all(path: str | Path, topic: str) -> list:
    reader = C.open_reader(path)
    try:
        conns = [c for c in reader.connections if c.topic.lstrip("/") == topic.lstrip("/")]
        return [C.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(conns)]
    finally:
        reader.close()
