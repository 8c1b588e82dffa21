"""rclpy plumbing shared by the player and the recorder: loopback DDS set-up, message classes from
type names, QoS from bag metadata or from the graph, and signal handling that lets us close files.

Imported only by the player/recorder (rclpy is needed there, nowhere else in the bag tools).
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import struct
import threading
import time
from typing import Optional

from vfdepth_ros.bag.common import BagError

log = logging.getLogger(__name__)


def init_rclpy(domain_id: Optional[int], node_name: str, use_sim_time: bool = False):
    """Apply the loopback profile, init rclpy without its signal handlers (we install ours), make a node."""
    from vfdepth_ros.dds import apply_loopback_profile

    if domain_id is None and os.environ.get("ROS_DOMAIN_ID"):
        domain_id = int(os.environ["ROS_DOMAIN_ID"])
    apply_loopback_profile(domain_id)
    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.signals import SignalHandlerOptions

    context = rclpy.context.Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    params = [Parameter("use_sim_time", Parameter.Type.BOOL, True)] if use_sim_time else []
    node = rclpy.create_node(node_name, context=context, parameter_overrides=params)
    return rclpy, context, node


def message_class(msgtype: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class, or None when that package is not installed."""
    parts = msgtype.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3:
        return None
    pkg, kind, name = parts
    try:
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (ImportError, AttributeError):
        return None


def rclpy_qos(latched: bool, reliable: bool = True, depth: int = 10):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=1 if latched else depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def header_stamp_ns(raw: bytes) -> Optional[int]:
    """Stamp of a serialized message whose first field is std_msgs/Header (CDR: 4-byte encapsulation
    header, then int32 sec, uint32 nanosec)."""
    if len(raw) < 12:
        return None
    little = raw[1] in (0x01, 0x03)
    sec, nsec = struct.unpack_from("<iI" if little else ">iI", raw, 4)
    return sec * 1_000_000_000 + nsec


_REPEAT_S = 1.0  # a second stop signal sooner than this is the first one delivered twice


class StopFlag:
    """Set by SIGINT/SIGTERM (or by code); lets loops end and files close cleanly."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: Optional[int] = None
        self._first_s = 0.0

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, _frame):
            if self.event.is_set():
                # One Ctrl-C in a terminal under `ros2 launch` arrives twice (from the terminal to the group, and
                # forwarded by launch): a repeat within _REPEAT_S is that same request. A later one: leave now.
                if time.monotonic() - self._first_s > _REPEAT_S:
                    raise KeyboardInterrupt
                return
            self._first_s = time.monotonic()
            self.signal = signum
            self.event.set()
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def is_set(self) -> bool:
        return self.event.is_set()

    def set(self) -> None:
        self.event.set()

    def wait(self, timeout: float) -> bool:
        return self.event.wait(timeout)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0): look at its state
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def require_type(msgtype: str, topic: str):
    cls = message_class(msgtype)
    if cls is None:
        raise BagError(f"topic {topic}: message type {msgtype} is not installed for rclpy "
                       f"(for tf2_msgs run `.venv/bin/python tools/build_tf2_msgs.py`)")
    return cls
