"""`vfdepth bag <action>`: from-ddad, from-nuscenes, from-synthetic, info, repair, play, record.

Each action lives in its own module with ``add_arguments(parser)`` and ``main(args) -> int``; this
module only builds the nested parser and dispatches.
"""

from __future__ import annotations

import argparse
import importlib

ACTIONS = {
    "from-ddad": ("vfdepth_ros.bag.convert_cli", "ddad", "convert one DDAD (DGP) scene to a bag"),
    "from-nuscenes": ("vfdepth_ros.bag.convert_cli", "nuscenes", "convert one nuScenes scene to a bag"),
    "from-synthetic": ("vfdepth_ros.bag.convert_cli", "synthetic", "generate a synthetic drive and write it as a bag"),
    "info": ("vfdepth_ros.bag.info", None, "summarize a bag: topics, types, counts, duration, rate"),
    "repair": ("vfdepth_ros.bag.repair", None, "salvage the readable messages of a damaged MCAP file or one a killed recorder left unfinished"),
    "play": ("vfdepth_ros.bag.player", None, "publish a bag with rclpy (no ros2 bag needed)"),
    "record": ("vfdepth_ros.bag.recorder", None, "record topics to an MCAP bag with rclpy"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bag_action", metavar="ACTION", required=True)
    for name, (mod, variant, help_text) in ACTIONS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(mod)
        if variant is None:
            module.add_arguments(p)
        else:
            module.add_arguments(p, variant)
        p.set_defaults(_bag_module=mod, _bag_variant=variant)


def main(args: argparse.Namespace) -> int:
    module = importlib.import_module(args._bag_module)
    return int(module.main(args) or 0)
