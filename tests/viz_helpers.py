"""Test-only helpers for the viewer tests: a tiny ROS 2 bag written with rosbags (no ROS install).

The bag holds what the node graph's inputs and outputs look like (DESIGN 4.1): two cameras with
rgb8 images + camera_info, 32FC1 depth + depth/camera_info at half size, /tf_static (base_link ->
camera optical frames), /tf (odom -> base_link), odom and gt/odom, points (PointCloud2 xyz + rgb in
base_link), virtual/depth + virtual/camera_info.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

CAMERAS = ("camera_01", "camera_05")
H, W = 24, 32
DH, DW = 12, 16
N_FRAMES = 3
T0_NS = 1_700_000_000_000_000_000
DT_NS = 100_000_000


def _ts():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def _header(ts, stamp_ns: int, frame: str):
    T = ts.types
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9,
                                                                           nanosec=stamp_ns % 10**9), frame_id=frame)


def _quat_yaw(yaw: float):
    return (0.0, 0.0, float(np.sin(yaw / 2)), float(np.cos(yaw / 2)))


def _tf(ts, stamp_ns, parent, child, xyz, q_xyzw):
    T = ts.types
    return T["geometry_msgs/msg/TransformStamped"](
        header=_header(ts, stamp_ns, parent), child_frame_id=child,
        transform=T["geometry_msgs/msg/Transform"](
            translation=T["geometry_msgs/msg/Vector3"](x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2])),
            rotation=T["geometry_msgs/msg/Quaternion"](x=q_xyzw[0], y=q_xyzw[1], z=q_xyzw[2], w=q_xyzw[3])))


def _image(ts, stamp_ns, frame, arr: np.ndarray, encoding: str):
    T = ts.types
    h, w = arr.shape[:2]
    data = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
    return T["sensor_msgs/msg/Image"](header=_header(ts, stamp_ns, frame), height=h, width=w, encoding=encoding,
                                      is_bigendian=0, step=data.size // h, data=data)


def _info(ts, stamp_ns, frame, K: np.ndarray, h: int, w: int):
    T = ts.types
    P = np.zeros((3, 4))
    P[:, :3] = K
    return T["sensor_msgs/msg/CameraInfo"](
        header=_header(ts, stamp_ns, frame), height=h, width=w, distortion_model="plumb_bob",
        d=np.zeros(5), k=K.reshape(-1).astype(np.float64), r=np.eye(3).reshape(-1), p=P.reshape(-1),
        binning_x=0, binning_y=0,
        roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def _cloud(ts, stamp_ns, frame, xyz: np.ndarray, rgb: np.ndarray):
    T = ts.types
    PF = T["sensor_msgs/msg/PointField"]
    n = len(xyz)
    rec = np.zeros(n, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<u4")])
    rec["x"], rec["y"], rec["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    rec["rgb"] = (rgb[:, 0].astype(np.uint32) << 16) | (rgb[:, 1].astype(np.uint32) << 8) | rgb[:, 2]
    fields = [PF(name="x", offset=0, datatype=7, count=1), PF(name="y", offset=4, datatype=7, count=1),
              PF(name="z", offset=8, datatype=7, count=1), PF(name="rgb", offset=12, datatype=7, count=1)]
    return T["sensor_msgs/msg/PointCloud2"](header=_header(ts, stamp_ns, frame), height=1, width=n, fields=fields,
                                            is_bigendian=False, point_step=16, row_step=16 * n,
                                            data=rec.view(np.uint8).reshape(-1), is_dense=True)


def _odom(ts, stamp_ns, x: float, yaw: float):
    T = ts.types
    pose = T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=x, y=0.0, z=0.0),
                                       orientation=T["geometry_msgs/msg/Quaternion"](*_quat_yaw(yaw)))
    twist = T["geometry_msgs/msg/Twist"](linear=T["geometry_msgs/msg/Vector3"](x=1.0, y=0.0, z=0.0),
                                         angular=T["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0))
    return T["nav_msgs/msg/Odometry"](
        header=_header(ts, stamp_ns, "odom"), child_frame_id="base_link",
        pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
        twist=T["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=np.zeros(36)))


def camera_K(h: int, w: int) -> np.ndarray:
    return np.array([[w * 0.8, 0, (w - 1) / 2], [0, w * 0.8, (h - 1) / 2], [0, 0, 1.0]])


def write_test_bag(path: Path, cameras: Sequence[str] = CAMERAS, n_frames: int = N_FRAMES,
                   with_outputs: bool = True) -> Dict[str, int]:
    """Write the tiny bag to `path` (an .mcap file); returns messages per topic."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = _ts()
    msgs: List = []  # (stamp_ns, topic, msgtype, msg)
    yaw_of = {c: np.radians(60.0 * i) for i, c in enumerate(cameras)}
    # base_link -> optical frame: rotate vehicle axes (x fwd, y left, z up) into OpenCV (x right, y down, z fwd).
    R_base_opt = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)
    tfs = []
    for c in cameras:
        yaw = yaw_of[c]
        Rz = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
        R = Rz @ R_base_opt
        # quaternion (x, y, z, w) of R
        w = np.sqrt(max(0.0, 1 + R[0, 0] + R[1, 1] + R[2, 2])) / 2
        x = np.copysign(np.sqrt(max(0.0, 1 + R[0, 0] - R[1, 1] - R[2, 2])) / 2, R[2, 1] - R[1, 2])
        y = np.copysign(np.sqrt(max(0.0, 1 - R[0, 0] + R[1, 1] - R[2, 2])) / 2, R[0, 2] - R[2, 0])
        z = np.copysign(np.sqrt(max(0.0, 1 - R[0, 0] - R[1, 1] + R[2, 2])) / 2, R[1, 0] - R[0, 1])
        tfs.append(_tf(ts, T0_NS, "base_link", f"{c}_optical_frame", (1.0, 0.0, 1.5), (x, y, z, w)))
    msgs.append((T0_NS, "/tf_static", "tf2_msgs/msg/TFMessage", ts.types["tf2_msgs/msg/TFMessage"](transforms=tfs)))
    rng = np.random.default_rng(0)
    for k in range(n_frames):
        t = T0_NS + k * DT_NS
        frame_tf = _tf(ts, t, "odom", "base_link", (1.0 * k, 0.0, 0.0), _quat_yaw(0.05 * k))
        msgs.append((t, "/tf", "tf2_msgs/msg/TFMessage", ts.types["tf2_msgs/msg/TFMessage"](transforms=[frame_tf])))
        msgs.append((t, "gt/odom", "nav_msgs/msg/Odometry", _odom(ts, t, 1.0 * k, 0.05 * k)))
        for c in cameras:
            f = f"{c}_optical_frame"
            rgb = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
            msgs.append((t, f"{c}/image_raw", "sensor_msgs/msg/Image", _image(ts, t, f, rgb, "rgb8")))
            msgs.append((t, f"{c}/camera_info", "sensor_msgs/msg/CameraInfo", _info(ts, t, f, camera_K(H, W), H, W)))
            if with_outputs:
                depth = np.linspace(2.0, 40.0, DH * DW, dtype=np.float32).reshape(DH, DW)
                msgs.append((t, f"{c}/depth", "sensor_msgs/msg/Image", _image(ts, t, f, depth, "32FC1")))
                msgs.append((t, f"{c}/depth/camera_info", "sensor_msgs/msg/CameraInfo",
                             _info(ts, t, f, camera_K(DH, DW), DH, DW)))
        if with_outputs:
            msgs.append((t, "odom", "nav_msgs/msg/Odometry", _odom(ts, t, 1.1 * k, 0.05 * k)))
            xyz = rng.normal(size=(50, 3)).astype(np.float32) * 5
            col = rng.integers(0, 255, (50, 3), dtype=np.uint8)
            msgs.append((t, "points", "sensor_msgs/msg/PointCloud2", _cloud(ts, t, "base_link", xyz, col)))
            vdepth = np.full((DH, DW), 7.5, np.float32)
            msgs.append((t, "virtual/depth", "sensor_msgs/msg/Image", _image(ts, t, "virtual_optical_frame", vdepth, "32FC1")))
            msgs.append((t, "virtual/camera_info", "sensor_msgs/msg/CameraInfo",
                         _info(ts, t, "virtual_optical_frame", camera_K(DH, DW), DH, DW)))
    counts: Dict[str, int] = {}
    path = Path(path)
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {}
        # camera_info before images at equal stamps (the node publishes them together)
        order = sorted(range(len(msgs)), key=lambda i: (msgs[i][0], "camera_info" not in msgs[i][1], i))
        for i in order:
            t, topic, msgtype, msg = msgs[i]
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=ts)
            writer.write(conns[topic], t, bytes(ts.serialize_cdr(msg, msgtype)))
            counts[topic] = counts.get(topic, 0) + 1
    return counts
