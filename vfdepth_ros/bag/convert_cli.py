"""Argument parsing for the `vfdepth bag from-*` converters."""

from __future__ import annotations

import argparse
import logging

from vfdepth_ros.bag import convert
from vfdepth_ros.bag.info import format_summary, summarize

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser, variant: str) -> None:
    if variant == "ddad":
        parser.add_argument("ddad_json", help="DDAD dataset file (ddad.json)")
        parser.add_argument("--split", default="val", help="train or val (default val)")
        parser.add_argument("--scene", type=int, default=0, help="index of the scene in the split (default 0)")
        parser.add_argument("--cameras", nargs="+", default=list(convert.DDAD_CAMERAS), metavar="CAM",
                            help="DGP camera names (default the six: %(default)s)")
    elif variant == "nuscenes":
        parser.add_argument("dataroot", help="nuScenes dataroot (holds v1.0-*/, samples/, sweeps/, maps/)")
        parser.add_argument("--version", default="v1.0-mini")
        parser.add_argument("--scene", default="scene-0061", help="scene name (default scene-0061)")
        parser.add_argument("--cameras", nargs="+", default=list(convert.NUSC_CAMERAS), metavar="CHANNEL")
        parser.add_argument("--keyframes-only", action="store_true", help="only sample keyframes, no sweeps")
    else:
        parser.add_argument("--rig", default="ddad", choices=("ddad", "nuscenes"), help="camera rig (default ddad)")
        parser.add_argument("--frames", type=int, default=40, help="number of frames (default 40)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--width", type=int, default=None, help="image width (generator default when omitted)")
        parser.add_argument("--height", type=int, default=None, help="image height")
        parser.add_argument("--speed", choices=("constant", "varied"), default="constant",
                            help="ego speed: 'constant' (10 m/s) or 'varied' (about 5 to 15 m/s)")
    parser.add_argument("--out", "-o", required=True, help="output: X.mcap (one MCAP file) or a directory (rosbag2)")
    parser.add_argument("--storage", default="mcap", choices=("mcap", "sqlite3"))
    parser.add_argument("--compressed", action="store_true",
                        help="write <cam>/image_raw/compressed (dataset JPEG bytes kept as they are)")
    parser.add_argument("--resize", default=None, metavar="WxH", help="resize images (camera_info follows)")
    parser.add_argument("--no-lidar", action="store_true", help="leave out lidar/points")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    variant = args._bag_variant
    if variant == "ddad":
        rec = convert.ddad_recording(args.ddad_json, args.split, args.scene, args.cameras, lidar=not args.no_lidar)
    elif variant == "nuscenes":
        rec = convert.nuscenes_recording(args.dataroot, args.version, args.scene, args.cameras,
                                         lidar=not args.no_lidar, sweeps=not args.keyframes_only)
    else:
        from vfdepth_ros.bag import synth_adapter

        rec = synth_adapter.synthetic_recording(rig=args.rig, frames=args.frames, seed=args.seed, width=args.width,
                                                height=args.height, lidar=not args.no_lidar,
                                                progress=not args.no_progress, speed=args.speed)
    print(f"converting {rec.description}")
    convert.write_recording(rec, args.out, storage=args.storage, compressed=args.compressed, resize=args.resize,
                            overwrite=args.overwrite, progress=not args.no_progress)
    print(format_summary(summarize(args.out)))
    return 0
