"""Test-only helpers for the ROS tests: a synthetic six-camera rig publisher and an output collector.

Import only after the loopback profile is active (tests/conftest.py applies it at import time).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from vfdepth_core import geometry
from vfdepth_ros import conversions as cv
from vfdepth_ros.params import R_BODY_OPTICAL

CAMERAS = ("camera_01", "camera_05", "camera_06", "camera_07", "camera_08", "camera_09")
YAWS_DEG = (0.0, 60.0, -60.0, 120.0, -120.0, 180.0)  # front, front-left, front-right, back-left, back-right, back
IMG_HW = (96, 144)
TINY_CONFIG = "training/configs/synthetic/synthetic_tiny.yaml"


def rig_extrinsics() -> List[np.ndarray]:
    """T_ego_cam (4, 4) for the six cameras: 1.6 m high, around the vehicle origin, looking outwards."""
    out = []
    for yaw in YAWS_DEG:
        T = np.eye(4)
        T[:3, :3] = geometry.euler_to_rotmat(0.0, 0.0, yaw).double().numpy() @ R_BODY_OPTICAL
        T[:3, 3] = geometry.euler_to_rotmat(0.0, 0.0, yaw).double().numpy() @ np.array([1.0, 0.0, 0.0]) + [0, 0, 1.6]
        out.append(T)
    return out


def rig_K(hw=IMG_HW) -> np.ndarray:
    H, W = hw
    return np.array([[0.8 * W, 0.0, (W - 1) / 2], [0.0, 0.8 * W, (H - 1) / 2], [0.0, 0.0, 1.0]])


def frame_images(k: int, hw=IMG_HW, n: int = 6) -> List[np.ndarray]:
    """Deterministic textured RGB images of frame k (a moving stripe pattern per camera)."""
    H, W = hw
    yy, xx = np.mgrid[0:H, 0:W]
    out = []
    for c in range(n):
        r = (127 + 120 * np.sin((xx + 3 * k) / (4.0 + c))).astype(np.uint8)
        g = (127 + 120 * np.cos((yy + 2 * k) / 5.0)).astype(np.uint8)
        b = ((xx * 7 + yy * 3 + 40 * c) % 256).astype(np.uint8)
        out.append(np.stack([r, g, b], axis=2))
    return out


class RigPublisher(Node):
    """Publishes <cam>/image_raw, <cam>/camera_info and /tf_static like a six-camera driver."""

    def __init__(self, name: str = "test_rig", cameras: Sequence[str] = CAMERAS, **node_kwargs) -> None:
        super().__init__(name, **node_kwargs)
        from tf2_msgs.msg import TFMessage

        self.cameras = list(cameras)
        self.img_pubs = [self.create_publisher(Image, f"{c}/image_raw", qos_profile_sensor_data) for c in self.cameras]
        self.info_pubs = [self.create_publisher(CameraInfo, f"{c}/camera_info", qos_profile_sensor_data)
                          for c in self.cameras]
        static_qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.tf_static = self.create_publisher(TFMessage, "/tf_static", static_qos)
        self._TFMessage = TFMessage

    def publish_tf_static(self, stamp_ns: int = 0) -> None:
        tfs = [cv.matrix_to_transform(T, "base_link", cam, stamp_ns)
               for cam, T in zip(self.cameras, rig_extrinsics())]
        self.tf_static.publish(self._TFMessage(transforms=tfs))

    def image_msg(self, i: int, k: int, stamp_ns: int) -> Image:
        return cv.numpy_to_image(frame_images(k)[i], "rgb8", cv.make_header(stamp_ns, self.cameras[i]))

    def info_msg(self, i: int, stamp_ns: int, K: Optional[np.ndarray] = None) -> CameraInfo:
        return cv.K_to_camera_info(rig_K() if K is None else K, IMG_HW, cv.make_header(stamp_ns, self.cameras[i]))

    def publish_frame(self, k: int, stamp_ns: int, replace: Optional[Dict[int, Image]] = None,
                      skip: Sequence[int] = (), info_override: Optional[Dict[int, CameraInfo]] = None) -> Dict[str, Image]:
        """Camera info then image for every camera; `replace` swaps in bad images, `skip` leaves cameras out."""
        imgs = frame_images(k)
        sent = {}
        for i, cam in enumerate(self.cameras):
            info = (info_override or {}).get(i) or self.info_msg(i, stamp_ns)
            self.info_pubs[i].publish(info)
        for i, cam in enumerate(self.cameras):
            if i in skip:
                continue
            msg = (replace or {}).get(i) or cv.numpy_to_image(imgs[i], "rgb8", cv.make_header(stamp_ns, cam))
            self.img_pubs[i].publish(msg)
            sent[cam] = msg
        return sent

    def matched(self) -> bool:
        return all(p.get_subscription_count() > 0 for p in self.img_pubs + self.info_pubs)


class OutputCollector(Node):
    """Subscribes to everything the surround_depth node publishes and keeps it, thread-safely."""

    def __init__(self, name: str = "test_collector", cameras: Sequence[str] = CAMERAS, **node_kwargs) -> None:
        super().__init__(name, **node_kwargs)
        from tf2_msgs.msg import TFMessage

        self.lock = threading.Lock()
        self.msgs: Dict[str, list] = defaultdict(list)
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        topics = {f"{c}/depth": Image for c in cameras}
        topics.update({f"{c}/depth/camera_info": CameraInfo for c in cameras})
        topics.update({"odom": Odometry, "points": PointCloud2, "virtual/depth": Image,
                       "virtual/camera_info": CameraInfo, "/diagnostics": DiagnosticArray, "/tf": TFMessage})
        self.subs = [self.create_subscription(t, name_, lambda m, n=name_: self._store(n, m), qos)
                     for name_, t in topics.items()]

    def _store(self, topic: str, msg) -> None:
        with self.lock:
            self.msgs[topic].append(msg)

    def get(self, topic: str) -> list:
        with self.lock:
            return list(self.msgs[topic])

    def with_stamp(self, topic: str, stamp_ns: int) -> list:
        return [m for m in self.get(topic) if cv.stamp_to_ns(m.header.stamp) == stamp_ns]


def spin_until(executor, predicate: Callable[[], bool], timeout_s: float, what: str = "condition") -> None:
    """Spin `executor` until predicate() is true; AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        executor.spin_once(timeout_sec=0.05)
