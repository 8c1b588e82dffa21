"""Keep DDS on this machine: the project's loopback-only Fast DDS profile.

Every process that creates a ROS participant (nodes, tests, launcher, bag player/recorder, benchmarks)
must call :func:`apply_loopback_profile` *before* ``import rclpy``/``rclpy.init``, or start with the
environment from :func:`loopback_env`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Mapping, Optional

PROFILE_PATH = Path(__file__).resolve().parent / "resources" / "fastdds_loopback.xml"
PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def loopback_env(base: Optional[Mapping[str, str]] = None, domain_id: Optional[int] = None) -> Dict[str, str]:
    """A copy of `base` (default os.environ) that loads the loopback profile, with RMW Fast DDS and,
    if given, ROS_DOMAIN_ID."""
    env = dict(os.environ if base is None else base)
    for var in PROFILE_VARS:
        env[var] = str(PROFILE_PATH)
    env["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    # rmw's own knob (jazzy and later), on top of the profile; ROS_LOCALHOST_ONLY is deprecated.
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_LOCALHOST_ONLY", None)
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    return env


def apply_loopback_profile(domain_id: Optional[int] = None) -> None:
    """Put the loopback profile into this process's environment (call before rclpy.init)."""
    os.environ.update(loopback_env(domain_id=domain_id))
    os.environ.pop("ROS_LOCALHOST_ONLY", None)


def profile_active(env: Optional[Mapping[str, str]] = None) -> bool:
    """True when both profile variables point at the project's profile."""
    env = os.environ if env is None else env
    return all(env.get(v) and Path(env[v]).resolve() == PROFILE_PATH for v in PROFILE_VARS)
