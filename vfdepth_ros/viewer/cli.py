"""`vfdepth view`: a headless viewer recording (rerun ``.rrd``) of input and/or output bags
(:mod:`vfdepth_ros.viewer.record`), checked with rerun's verifier and optionally served to a browser."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

from vfdepth_ros.errors import UserError
from vfdepth_ros.viewer.layout import FIXED_FRAME
from vfdepth_ros.viewer.record import record_bags

log = logging.getLogger(__name__)

DEFAULT_BIND = "127.0.0.1"


def check_bind(bind: str) -> str:
    """Validate a bind address; warn when it is not loopback."""
    try:
        ip = ipaddress.ip_address(bind)
    except ValueError:
        raise UserError(f"--bind {bind!r} is not an IP address (use 127.0.0.1 for this machine only)") from None
    if not ip.is_loopback:
        log.warning("--bind %s exposes the viewer server beyond this machine", bind)
    return bind


def rerun_cli() -> str:
    """Path of the rerun command-line tool that ships with rerun-sdk."""
    cand = Path(sys.executable).with_name("rerun")
    if cand.exists():
        return str(cand)
    found = shutil.which("rerun")
    if not found:
        raise UserError("the `rerun` command from rerun-sdk is not on PATH; run `make install`")
    return found


def rerun_env() -> Dict[str, str]:
    """Environment for the rerun processes this tool starts: rerun's usage analytics switched off (its
    config lives in a private XDG_CONFIG_HOME under the temp folder, the user's own is left alone)."""
    import os
    import tempfile

    cfg = Path(tempfile.gettempdir()) / f"vfdepth-rerun-{os.getuid()}"
    env = dict(os.environ, XDG_CONFIG_HOME=str(cfg))
    if not (cfg / "rerun" / "analytics.json").is_file():
        subprocess.run([rerun_cli(), "analytics", "disable"], env=env, capture_output=True, timeout=60, check=False)
    return env


def serve_command(rrd: str | Path, bind: str = DEFAULT_BIND, grpc_port: int = 9876, web_port: int = 9090) -> List[str]:
    """The rerun CLI command that serves a recording to web viewers, listening on `bind` only.

    (The Python SDK's own server listens on every interface, so the CLI is used instead.)
    """
    return [rerun_cli(), str(rrd), "--serve-web", "--bind", check_bind(bind), "--port", str(int(grpc_port)),
            "--web-viewer-port", str(int(web_port))]


def verify_recording(rrd: str | Path) -> None:
    """Check a .rrd with rerun's own verifier (`rerun rrd verify`); raise UserError if it fails."""
    res = subprocess.run([rerun_cli(), "rrd", "verify", str(rrd)], capture_output=True, text=True, timeout=300,
                         env=rerun_env())
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise UserError(f"{rrd}: rerun rrd verify failed: {' | '.join(tail)}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bags", nargs="+", help="input and/or recorded output bags (.mcap/.db3 or rosbag2 folders), "
                        "merged by time; a later bag's dynamic TF wins over an earlier one's")
    parser.add_argument("-o", "--output", default="results/view.rrd", help="rerun recording to write (.rrd)")
    parser.add_argument("--every", type=int, default=1, help="log every n-th image/depth/cloud message per topic")
    parser.add_argument("--jpeg-quality", type=int, default=85, help="JPEG quality of camera images in the file (0 = raw)")
    parser.add_argument("--depth-range", type=float, nargs=2, metavar=("MIN_M", "MAX_M"),
                        help="colour range of depth images in metres (default: rerun picks per image)")
    parser.add_argument("--fixed-frame", default=FIXED_FRAME, help="TF frame shown as the world (default odom)")
    parser.add_argument("--verify", action="store_true", help="check the file with `rerun rrd verify` afterwards")
    parser.add_argument("--allow-damaged", action="store_true",
                        help="show the readable part of a damaged bag (warning) instead of stopping with an error")
    parser.add_argument("--serve", action="store_true", help="then serve it to a web browser (rerun web viewer) until Ctrl-C")
    parser.add_argument("--bind", default=DEFAULT_BIND, help="address the server listens on (default loopback only)")
    parser.add_argument("--port", type=int, default=9876, help="gRPC port of the server")
    parser.add_argument("--web-port", type=int, default=9090, help="HTTP port of the web viewer")


def main(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.suffix != ".rrd":
        raise UserError(f"-o {out}: the recording must end in .rrd")
    if args.serve:
        check_bind(args.bind)
    t0 = time.perf_counter()
    summary = record_bags(args.bags, out, every=args.every, jpeg_quality=args.jpeg_quality,
                          depth_range_m=tuple(args.depth_range) if args.depth_range else None,
                          fixed_frame=args.fixed_frame, allow_damaged=args.allow_damaged)
    dt = time.perf_counter() - t0
    total = sum(summary.messages.values())
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {total} messages from {len(args.bags)} bag(s) "
          f"into {len(summary.entities)} entities in {dt:.1f} s")
    for topic, n in sorted(summary.messages.items()):
        print(f"  {topic:<40} {n:>6}")
    if summary.skipped_topics:
        print(f"  not shown: {', '.join(summary.skipped_topics)}")
    if args.verify:
        verify_recording(out)
        print(f"{out}: rerun rrd verify OK")
    print(f"open it with: {Path(rerun_cli()).name} {out}")
    if args.serve:
        cmd = serve_command(out, args.bind, args.port, args.web_port)
        print(f"serving on http://{args.bind}:{args.web_port} (gRPC {args.bind}:{args.port}); Ctrl-C stops")
        proc = subprocess.Popen(cmd, env=rerun_env())
        try:
            return int(proc.wait())
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait(timeout=10)
            return 0
    return 0
