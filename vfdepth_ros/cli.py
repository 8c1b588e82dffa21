"""The `vfdepth` command: one entry point, subcommands implemented in their own modules.

Each subcommand module exposes ``add_arguments(parser: argparse.ArgumentParser) -> None`` and
``main(args: argparse.Namespace) -> int``; it is imported only when its subcommand runs, so
``vfdepth --help`` stays fast. Errors a user can fix are raised as ``UserError`` (or ``ConversionError``,
the core's ``ConfigError``/``DatasetError``) and printed as one line, exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Dict, List, Optional, Tuple

from vfdepth_ros.errors import ConversionError, UserError

# name -> (module, one-line help)
SUBCOMMANDS: Dict[str, Tuple[str, str]] = {
    "synth": ("vfdepth_core.datasets.synthetic.cli", "generate a synthetic surround-view drive with ground truth"),
    "check-data": ("vfdepth_core.datasets.check", "check that every dataset file a training config reads is there"),
    "bag": ("vfdepth_ros.bag.cli", "convert datasets to ROS 2 bags, inspect, play and record them"),
    "evaluate-bag": ("vfdepth_ros.bag.evaluate", "score recorded depth/odometry against a bag's ground truth"),
    "launch": ("vfdepth_ros.launcher", "run the node graph without ROS 2 launch (loopback DDS)"),
    "view": ("vfdepth_ros.viewer.cli", "write a headless viewer recording of a bag"),
    "import-original": ("vfdepth_core.import_original",
                        "convert a checkpoint of the paper's released code (depth_net.pth, pose_net.pth) to a vfdepth one"),
}


def _user_error_types() -> tuple:
    types: List[type] = [UserError, ConversionError, FileNotFoundError]
    for mod, name in (("vfdepth_core.config", "ConfigError"), ("vfdepth_core.datasets.common", "DatasetError"),
                      ("vfdepth_core.geometry", "ShapeError"), ("vfdepth_core.checkpoint", "CheckpointError")):
        # only modules already imported can have raised: importing one here (torch) would take seconds
        if hasattr(sys.modules.get(mod), name):
            types.append(getattr(sys.modules[mod], name))
    return tuple(types)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vfdepth", description="vfdepth: surround-view depth tools")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS and not argv[0].startswith("-"):
        if argv and argv[0] not in ("-h", "--help"):
            parser.print_usage(sys.stderr)
            print(f"vfdepth: unknown command '{argv[0]}' (choose from {', '.join(SUBCOMMANDS)})", file=sys.stderr)
            return 2
        parser.print_help()
        return 0
    verbose = False
    while argv and argv[0].startswith("-"):
        flag = argv.pop(0)
        if flag in ("-v", "--verbose"):
            verbose = True
        else:
            print(f"vfdepth: unknown option {flag}", file=sys.stderr)
            return 2
    if not argv:
        parser.print_help()
        return 0
    name = argv.pop(0)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(SUBCOMMANDS[name][0])
    sub = argparse.ArgumentParser(prog=f"vfdepth {name}", description=SUBCOMMANDS[name][1])
    module.add_arguments(sub)
    args = sub.parse_args(argv)
    try:
        return int(module.main(args) or 0)
    except KeyboardInterrupt:
        print("vfdepth: interrupted", file=sys.stderr)
        return 130
    except _user_error_types() as exc:
        print(f"vfdepth {name}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
