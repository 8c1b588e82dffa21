"""The project's synthetic surround-view world: procedural textured streets rendered by vectorised ray
casting in torch, with exact depth, ego poses, calibration and a LIDAR-like point cloud, for a DDAD-like
and a nuScenes-like six-camera rig; written in the DDAD (DGP) and nuScenes on-disk formats.

    drive = make_drive("ddad", frames=20, height=192, width=320, seed=0)   # Drive (see drive.py)
    drive = make_drive("ddad", seed=0, variety="varied")   # the varied world (varied.py): terrain, setbacks, ...
    write_ddad([drive], "input_data/synthetic_ddad", splits=["train"])
    write_nuscenes([drive2], "input_data/synthetic_nuscenes", version="v1.0-mini")

Command line: ``vfdepth synth`` (:mod:`vfdepth_core.datasets.synthetic.cli`).
"""

from vfdepth_core.datasets.synthetic.drive import Drive, Frame, cast_lidar, make_drive, render_cameras
from vfdepth_core.datasets.synthetic.rigs import DDAD_RIG, NUSCENES_RIG, RIGS, Rig
from vfdepth_core.datasets.synthetic.world import Boxes, World, generate_world
from vfdepth_core.datasets.synthetic.writers import write_ddad, write_nuscenes

__all__ = ["Drive", "Frame", "Rig", "RIGS", "DDAD_RIG", "NUSCENES_RIG", "Boxes", "World", "generate_world",
           "make_drive", "render_cameras", "cast_lidar", "write_ddad", "write_nuscenes"]
