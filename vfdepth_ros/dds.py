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
PROFILE_VAR = "FASTDDS_DEFAULT_PROFILES_FILE"
# Fast DDS 2.x's name for it: Fast DDS 3 (kilted) still reads it but warns in every process that it is
# deprecated, so it is removed from the children's environment.
DEPRECATED_PROFILE_VAR = "FASTRTPS_DEFAULT_PROFILES_FILE"


def loopback_env(base: Optional[Mapping[str, str]] = None, domain_id: Optional[int] = None) -> Dict[str, str]:
    """A copy of `base` (default os.environ) that loads the loopback profile, with RMW Fast DDS and,
    if given, ROS_DOMAIN_ID."""
    env = dict(os.environ if base is None else base)
    env[PROFILE_VAR] = str(PROFILE_PATH)
    env.pop(DEPRECATED_PROFILE_VAR, None)
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
    for var in ("ROS_LOCALHOST_ONLY", DEPRECATED_PROFILE_VAR):
        os.environ.pop(var, None)


def profile_active(env: Optional[Mapping[str, str]] = None) -> bool:
    """True when FASTDDS_DEFAULT_PROFILES_FILE points at the project's profile."""
    env = os.environ if env is None else env
    return bool(env.get(PROFILE_VAR)) and Path(env[PROFILE_VAR]).resolve() == PROFILE_PATH
