"""Test-only helpers for the bag tools: write small input bags and recorded-output bags by hand."""

from __future__ import annotations

from pathlib import Path
import struct
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np

from vfdepth_ros import conversions as cv
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
                header = cv.make_header(t, frame, cv.BAG)
                items.append((t, f"{cam}/depth", cv.depth_to_image(d, header, cv.BAG)))
                items.append((t, f"{cam}/depth/camera_info", cv.K_to_camera_info(K, d.shape, header, types=cv.BAG)))
        if odom:
            bw.add_topic("odom", "nav_msgs/msg/Odometry")
            for t, T in odom:
                items.append((t, "odom", cv.matrix_to_odometry(T, t, types=cv.BAG)))
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


def tiny_recording(frames: int = 4, cams: int = 2, hw=(24, 32), seed: int = 0, period_ns: int = 100_000_000,
                   names: Sequence[str] = ()):
    """A hand-made Recording (random images, a plane of LIDAR points, straight-line ego motion): fast, no data."""
    from vfdepth_ros.bag.convert import CameraSpec, Event, Recording

    rng = np.random.default_rng(seed)
    H, W = hw
    K = np.array([[20.0, 0, (W - 1) / 2], [0, 20.0, (H - 1) / 2], [0, 0, 1]])
    R_ego_cam = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)  # optical z forward = vehicle x
    specs = []
    for i in range(cams):
        T = np.eye(4)
        yaw = 2 * np.pi * i / cams
        Rz = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
        T[:3, :3] = Rz @ R_ego_cam
        T[:3, 3] = [0.5 * np.cos(yaw), 0.5 * np.sin(yaw), 1.5]
        specs.append(CameraSpec(names[i] if names else f"camera_{i:02d}", K, H, W, T))
    t0 = 1_700_000_000_000_000_000
    events = []
    for f in range(frames):
        t = t0 + f * period_ns
        T = np.eye(4)
        T[0, 3] = 1.0 * f
        events.append(Event(t, "ego", (lambda T=T: T)))
        events.append(Event(t, "lidar", (lambda: rng.normal(size=(50, 4)).astype(np.float32))))
        for i in range(cams):
            img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
            events.append(Event(t, "image", (lambda img=img: ("raw", img)), i))
    return Recording(specs, events, np.eye(4), "tiny test recording")


def vfdepth_cmd(*args: str) -> List[str]:
    """argv running the `vfdepth` CLI with this interpreter (no console script needed)."""
    import sys

    return [sys.executable, "-c", "import sys; from vfdepth_ros.cli import main; sys.exit(main())", *args]


def one_line_error(capsys, *argv: str) -> str:
    """Run `vfdepth *argv` in-process; assert exit 2 with a single-line error and no traceback; return it."""
    from vfdepth_ros.cli import main

    rc = main(list(argv))
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def tiny_nuscenes(root: Path, frames: int = 1, keyframe_every: int = 1, hw=(8, 8)) -> Path:
    """A hand-made nuScenes dataroot (no rendering: black images, three LIDAR points per sweep); returns root."""
    from vfdepth_core.datasets.synthetic import write_nuscenes
    from vfdepth_core.datasets.synthetic.drive import Drive, Frame

    rec = tiny_recording(frames=1, cams=6, hw=hw)
    K = np.stack([c.K for c in rec.cameras])
    T = np.stack([c.T_ego_cam for c in rec.cameras])
    imgs = np.zeros((6, *hw, 3), np.uint8)
    drive = Drive("tiny", "nuscenes", ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK_LEFT",
                                       "CAM_BACK_RIGHT", "CAM_BACK"), K, T, np.ones((6, *hw), bool))
    for f in range(frames):
        Tw = np.eye(4)
        Tw[0, 3] = f
        drive.frames.append(Frame(1_600_000_000_000_000_000 + f * 100_000_000, Tw, imgs, np.zeros((6, *hw), np.float32),
                                  np.ones((3, 4), np.float32), K, T))
    write_nuscenes([drive], root, version="v1.0-mini", keyframe_every=keyframe_every, write_depth=False)
    return root


OP_CHANNEL, OP_MESSAGE, OP_CHUNK, OP_DATA_END = 0x04, 0x05, 0x06, 0x0F


def mcap_records(data: bytes) -> Tuple[List[Tuple[int, int]], List[Tuple[int, int, str]], int]:
    """(chunks (offset, length), message records inside chunks (offset, length, topic), offset of DataEnd)."""
    chunks, msgs, pos, topics = [], [], 8, {}
    while True:
        op, n = data[pos], struct.unpack_from("<Q", data, pos + 1)[0]
        if op == OP_DATA_END:
            return chunks, msgs, pos
        if op == OP_CHUNK:
            chunks.append((pos, n))
            b = pos + 9 + 28  # start, end, uncompressed size, crc
            b += 4 + struct.unpack_from("<I", data, b)[0]  # compression string
            end = b + 8 + struct.unpack_from("<Q", data, b)[0]
            q = b + 8
            while q < end:
                m = struct.unpack_from("<Q", data, q + 1)[0]
                if data[q] == OP_CHANNEL:  # id u16, schema id u16, topic string
                    n_topic = struct.unpack_from("<I", data, q + 13)[0]
                    topics[struct.unpack_from("<H", data, q + 9)[0]] = data[q + 17:q + 17 + n_topic].decode()
                if data[q] == OP_MESSAGE:
                    msgs.append((q, m, topics[struct.unpack_from("<H", data, q + 9)[0]]))
                q += 9 + m
        pos += 9 + n
