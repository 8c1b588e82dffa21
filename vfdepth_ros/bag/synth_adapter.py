"""Synthetic drives (vfdepth_core.datasets.synthetic) -> bag Recording.

The synthetic LIDAR is given in the vehicle frame, so it is written in frame ``lidar`` with an identity
``base_link -> lidar`` transform (as DDAD's). Every frame's cameras, LIDAR and pose share one stamp.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np

from vfdepth_ros.bag.convert import CameraSpec, Event, Recording

log = logging.getLogger(__name__)


def recording_from_drive(drive: Any, lidar: bool = True) -> Recording:
    H, W = drive.hw
    cams = [CameraSpec(str(name).lower(), np.asarray(drive.K[i], float), H, W, np.asarray(drive.T_ego_cam[i], float))
            for i, name in enumerate(drive.camera_names)]
    events = []
    for fr in drive.frames:
        t = int(fr.stamp_ns)
        events.append(Event(t, "ego", (lambda T=np.asarray(fr.T_world_ego, float): T)))
        if lidar and fr.lidar is not None and len(fr.lidar):
            events.append(Event(t, "lidar", (lambda P=fr.lidar: np.asarray(P, np.float32))))
        for i in range(len(cams)):
            events.append(Event(t, "image", (lambda img=fr.images[i]: ("raw", img)), i))
    return Recording(cams, events, np.eye(4), f"synthetic drive {drive.name} ({drive.rig} rig, {len(drive.frames)} frames)",
                     {"dataset": f"synthetic_{drive.rig}", "scene": drive.name})


def synthetic_recording(rig: str = "ddad", frames: int = 40, seed: int = 0, width: Optional[int] = None,
                        height: Optional[int] = None, lidar: bool = True, progress: bool = True,
                        speed: str = "constant") -> Recording:
    """Generate a drive with the synthetic world and wrap it (rendering shows a progress bar); `speed`: the
    ego vehicle's ('constant' or 'varied', see vfdepth_core.datasets.synthetic.drive.SPEED_PROFILES)."""
    from tqdm import tqdm

    from vfdepth_core.datasets.synthetic import make_drive

    kwargs: dict = {"speed": speed}
    if width is not None:
        kwargs["width"] = int(width)
    if height is not None:
        kwargs["height"] = int(height)
    bar = tqdm(total=frames, desc=f"rendering synthetic {rig} drive", unit="frame", disable=not progress, leave=False)
    try:
        drive = make_drive(rig, frames=frames, seed=seed, with_lidar=lidar, progress=lambda: bar.update(1), **kwargs)
    finally:
        bar.close()
    return recording_from_drive(drive, lidar=lidar)
