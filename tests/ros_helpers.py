"""Test-only helpers for the ROS tests: a synthetic six-camera rig publisher and an output collector.

Import only after the loopback profile is active (tests/conftest.py applies it at import time).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from typing import Callable, Dict, Iterator, Optional, Sequence

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


class GraphRun:
    """A node graph started by the project launcher, with a RigPublisher and an OutputCollector spun by
    `ex` in a context of their own (see :func:`graph_with_rig`); `codes` holds the exit codes after the stop."""

    def __init__(self, launcher, ctx, ex, lines) -> None:
        self.launcher, self.ctx, self.ex, self.lines = launcher, ctx, ex, lines
        self.rig = RigPublisher(context=ctx)
        self.out = OutputCollector(context=ctx)
        for n in (self.rig, self.out):
            ex.add_node(n)
        self.codes: Dict[str, Optional[int]] = {}

    def alive(self) -> bool:
        """True while the graph's first process (the node) runs; fails the test with its log when it died."""
        assert self.launcher.children[0].proc.poll() is None, "surround_depth died:\n" + "\n".join(self.lines[-40:])
        return True


@contextlib.contextmanager
def graph_with_rig(graph, domain_id: int, log_path) -> Iterator[GraphRun]:
    """Start `graph` (vfdepth_ros.graph) with the project launcher on `domain_id` (its output to `log_path`
    and to GraphRun.lines) and yield a GraphRun; stops everything on the way out."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from vfdepth_ros.launcher import Launcher

    lines: list = []
    with open(log_path, "w") as log:
        launcher = Launcher(graph, domain_id=domain_id, output=log, on_line=lambda n, l: lines.append(l))
        ctx = rclpy.Context()
        rclpy.init(context=ctx, domain_id=domain_id)
        ex = SingleThreadedExecutor(context=ctx)
        launcher.start()
        run = None
        try:
            run = GraphRun(launcher, ctx, ex, lines)
            yield run
        finally:
            codes = launcher.stop()
            if run is not None:
                run.codes = codes or {}
            ex.shutdown()
            rclpy.try_shutdown(context=ctx)
