"""``vfdepth synth``: generate synthetic surround-view drives in the DDAD or nuScenes layout.

    vfdepth synth --rig ddad --scenes 4 --frames 100 --height 192 --width 320 --seed 0 \\
                  --out input_data/synthetic_ddad [--format ddad|nuscenes] [--val-scenes 1] [--world varied]
    vfdepth synth --check --out input_data/synthetic_ddad [--format ddad]   # report broken samples

Scenes are rendered one at a time and written straight away (memory holds one drive). Scene i uses seed
``seed + i``; the last ``--val-scenes`` scenes form the val split.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rig", choices=("ddad", "nuscenes"), default="ddad", help="camera rig (default ddad)")
    parser.add_argument("--format", choices=("ddad", "nuscenes"), default=None,
                        help="on-disk layout (default: the rig's own)")
    parser.add_argument("--scenes", type=int, default=4, help="number of drives (default 4)")
    parser.add_argument("--frames", type=int, default=100, help="frames per drive at 10 Hz (default 100)")
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--world", choices=("default", "varied"), default="default",
                        help="world generator: 'default' (a flat, regular street) or 'varied' (per-scene road widths, "
                             "setbacks, walls, parked-car positions, terrain slopes; beyond the paper)")
    parser.add_argument("--speed", choices=("constant", "varied"), default="constant",
                        help="ego speed: 'constant' (10 m/s) or 'varied' (speeding up and slowing down between about "
                             "5 and 15 m/s, per drive; beyond the paper)")
    parser.add_argument("--val-scenes", type=int, default=1, help="how many of the scenes are val (default 1)")
    parser.add_argument("--version", default="v1.0-mini", help="nuScenes table version (nuscenes format)")
    parser.add_argument("--keyframe-every", type=int, default=5,
                        help="nuScenes format: a key frame (sample) every N frames, sweeps between (default 5)")
    parser.add_argument("--no-depth", action="store_true", help="do not store the exact dense depth")
    parser.add_argument("--device", default="cpu", help="torch device for rendering (default cpu)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: fastest on a shared or busy machine)")
    parser.add_argument("--out", default=None, help="output folder (default input_data/synthetic_<rig>)")
    parser.add_argument("--check", action="store_true",
                        help="do not generate: scan an existing output folder and report every broken sample")


def _check(args) -> int:
    from vfdepth_core.datasets.ddad import DDADDataset
    from vfdepth_core.datasets.nuscenes import NuScenesDataset
    from vfdepth_core.datasets.synthetic.rigs import RIGS

    out = Path(args.out)
    fmt = args.format or args.rig
    cams = list(RIGS[args.rig].camera_names)
    problems, total = [], 0
    for split in ("train", "val"):
        try:
            if fmt == "ddad":
                ds = DDADDataset(out / "ddad.json", split, cams, args.height, args.width, frame_ids=(0,), with_depth=True,
                                 gt_cache=str(out / "depth_cache"))
            else:
                ds = NuScenesDataset(out, args.version, split, cams, args.height, args.width, frame_ids=(0,),
                                     with_depth=True, gt_cache=str(out / "depth_cache"))
        except Exception as exc:
            if "has no split" in str(exc) or "lists no scene" in str(exc):
                continue
            raise
        total += len(ds)
        problems += ds.scan()
    for p in problems:
        print(p)
    print(f"{total} samples checked, {len(problems)} problem(s)")
    return 1 if problems else 0


def main(args: argparse.Namespace) -> int:
    from vfdepth_core.datasets.common import DatasetError

    if args.out is None:
        args.out = f"input_data/synthetic_{args.rig}"
    if args.check:
        return _check(args)
    if args.scenes < 1 or args.frames < 3:
        raise DatasetError("--scenes must be >= 1 and --frames >= 3 (a sample needs both neighbours)")
    if args.scenes == 1:
        args.val_scenes = 0
    elif not 0 <= args.val_scenes < args.scenes:
        raise DatasetError(f"--val-scenes must be between 0 and --scenes - 1 ({args.scenes - 1})")
    if args.height % 32 or args.width % 32:
        logger.warning("height/width %dx%d are not multiples of 32; the network needs that", args.height, args.width)
    import torch
    from tqdm import tqdm

    torch.set_num_threads(max(1, args.threads))

    from vfdepth_core.datasets.synthetic.drive import make_drive
    from vfdepth_core.datasets.synthetic.writers import write_ddad, write_nuscenes

    fmt = args.format or args.rig
    splits = ["train"] * (args.scenes - args.val_scenes) + ["val"] * args.val_scenes
    total = args.scenes * args.frames
    bar = tqdm(total=total, unit="frame", desc=f"synth {args.rig}->{fmt}")
    t0 = time.perf_counter()

    def drives():
        for i in range(args.scenes):
            yield make_drive(args.rig, args.frames, args.height, args.width, seed=args.seed + i,
                             name=f"synth_{args.rig}_s{args.seed + i:04d}", device=args.device,
                             progress=lambda: bar.update(1), variety=args.world,
                             speed=args.speed)

    if fmt == "ddad":
        path = write_ddad(drives(), args.out, splits, write_depth=not args.no_depth)
    else:
        path = write_nuscenes(drives(), args.out, args.version, splits, keyframe_every=args.keyframe_every,
                              write_depth=not args.no_depth)
    bar.close()
    dt = time.perf_counter() - t0
    print(f"wrote {args.scenes} scene(s) x {args.frames} frames ({fmt} layout, {args.rig} rig, "
          f"{args.height}x{args.width}) to {path} in {dt:.1f} s: {total / dt:.2f} frames/s (6 cameras + LIDAR)")
    return 0
