"""Test-only helpers for the ROS tests: a synthetic six-camera rig publisher and an output collector.

Import only after the loopback profile is active (tests/conftest.py applies it at import time).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from vfdepth_ros import conversions as cv
from vfdepth_ros.toy_rig import CAMERAS, IMG_HW, frame_images, rig_extrinsics, rig_K

TINY_CONFIG = "training/configs/synthetic/synthetic_tiny.yaml"


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
