"""`vfdepth bag repair`: salvage the messages of an MCAP file that was never closed or is damaged
(:mod:`vfdepth_ros.bag.mcap_salvage` reads it, ``bag.common.repair`` writes them into a new, valid bag).
"""

from __future__ import annotations

import argparse

from vfdepth_ros.bag.common import repair


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="the unfinished MCAP file, its .partial folder, or the bag name the "
                                      "recorder was writing (its .<name>.partial folder is found)")
    parser.add_argument("-o", "--output", required=True, help="the repaired bag (.mcap)")
    parser.add_argument("--overwrite", action="store_true")


def main(args: argparse.Namespace) -> int:
    counts = repair(args.input, args.output, overwrite=args.overwrite)
    print(f"repaired: {sum(counts.values())} messages on {len(counts)} topics -> {args.output}")
    for topic, n in sorted(counts.items()):
        print(f"  {topic}: {n}")
    return 0
