#!/usr/bin/env python3
"""Soak test: a synthetic bag replayed in a loop through the real node graph (project launcher + bag player
+ surround_depth, loopback DDS) for a bounded time, watching for leaks and slow-downs.

Every --sample-s seconds it records the node's resident memory (RSS from /proc), GPU memory of the node
process when nvidia-smi is there, the synchronizer queue sizes and stale drops (from /diagnostics), and
the output rate (camera_01/depth messages received here per window). After a warm-up (the first
--warmup-frac of the run, at most 2 minutes) it fails (exit 1) when:

* RSS grew by more than --rss-growth (default 15 %) from the first post-warm-up samples to the last
  ones (medians of three samples each);
* the output rate of the last quarter fell below --rate-floor (default 0.7) x the first post-warm-up
  quarter's;
* the node restarted, a synchronizer queue exceeded queue_size, or no output arrived at all.

    python benchmarks/soak.py --minutes 10                   # default
    python benchmarks/soak.py --minutes 5 --out results/soak # + samples.csv and summary.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]

TINY_CONFIG = ROOT / "training" / "configs" / "synthetic" / "synthetic_tiny.yaml"


def rss_bytes(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def gpu_mem_mib(pid: int) -> Optional[float]:
    """GPU memory used by `pid` (nvidia-smi), None without a GPU tool."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(pid):
            return float(parts[1])
    return 0.0


def make_bag(path: Path, frames: int, hw) -> Path:
    from vfdepth_ros.bag.convert import write_recording
    from vfdepth_ros.bag.synth_adapter import synthetic_recording

    rec = synthetic_recording("ddad", frames=frames, seed=5, height=hw[0], width=hw[1], lidar=False, progress=False)
    write_recording(rec, path, storage="mcap", overwrite=True, progress=False)
    return path


def median(xs: List[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="how long to soak (default 10)")
    ap.add_argument("--sample-s", type=float, default=10.0, help="sampling period (default 10 s)")
    ap.add_argument("--warmup-frac", type=float, default=0.2, help="warm-up share of the run (max 2 min)")
    ap.add_argument("--rss-growth", type=float, default=0.15, help="allowed RSS growth after warm-up (0.15 = 15%%)")
    ap.add_argument("--rate-floor", type=float, default=0.7, help="last/first quarter output rate floor")
    ap.add_argument("--rate", type=float, default=1.0, help="bag playback speed")
    ap.add_argument("--frames", type=int, default=30, help="frames in the synthetic bag (10 Hz)")
    ap.add_argument("--size", default="96x144", help="camera image size HxW of the synthetic bag")
    ap.add_argument("--config", default=str(TINY_CONFIG), help="model config (random weights)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--domain-id", type=int, default=83)
    ap.add_argument("--bag", default="", help="use this bag instead of rendering one")
    ap.add_argument("--out", default="", help="folder for samples.csv, summary.json and the graph log")
    args = ap.parse_args(argv)

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from vfdepth_ros import conversions as cv
    from vfdepth_ros import graph as G
    from vfdepth_ros.dds import apply_loopback_profile
    from vfdepth_ros.launcher import Launcher

    out_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="vfdepth_soak_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    H, W = (int(v) for v in args.size.lower().split("x"))
    bag = Path(args.bag) if args.bag else make_bag(out_dir / "soak.mcap", args.frames, (H, W))

    apply_loopback_profile(args.domain_id)
    graph = G.replay_graph(str(bag), rate=args.rate, loop=True, camera_set="synthetic", model_config=args.config,
                           overrides={"device": args.device, "diagnostics_period_s": 1.0}, respawn=True)
    log = open(out_dir / "graph.log", "w")
    launcher = Launcher(graph, domain_id=args.domain_id, output=log)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=args.domain_id)
    node = rclpy.create_node("soak_monitor", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    state: Dict[str, object] = {"depth": 0, "diag": {}}
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Image, "camera_01/depth", lambda m: state.__setitem__("depth", state["depth"] + 1), qos)
    node.create_subscription(DiagnosticArray, "/diagnostics",
                             lambda m: state.__setitem__("diag", cv.diagnostics_to_dict(m)), qos)

    duration_s = args.minutes * 60.0
    warmup_s = min(120.0, args.warmup_frac * duration_s)
    samples: List[dict] = []
    failures: List[str] = []
    launcher.start()
    sd = next(c for c in launcher.children if c.name == "surround_depth")
    t0 = time.monotonic()
    next_sample = t0 + args.sample_s
    last_depth = 0
    max_queue_seen = 0
    queue_size = None
    try:
        while time.monotonic() - t0 < duration_s:
            ex.spin_once(timeout_sec=0.05)
            launcher.poll()
            now = time.monotonic()
            if now < next_sample:
                continue
            next_sample += args.sample_s
            pid = sd.proc.pid if sd.proc is not None and sd.proc.poll() is None else None
            d = state["diag"]
            sync = d.get("surround_depth: synchronizer", {}).get("values", {})
            inf = d.get("surround_depth: inference", {}).get("values", {})
            queued = [int(q) for q in str(sync.get("queued", "")).split() if q.strip().isdigit()]
            queue_size = int(sync["queue_size"]) if "queue_size" in sync else queue_size
            max_queue_seen = max([max_queue_seen] + queued)
            n = int(state["depth"])
            s = {"t_s": round(now - t0, 1), "rss_mb": (rss_bytes(pid) or 0) / 2**20 if pid else None,
                 "gpu_mib": gpu_mem_mib(pid) if pid else None, "out_rate_hz": (n - last_depth) / args.sample_s,
                 "outputs": n, "frames_processed": inf.get("frames_processed"), "sets_skipped": inf.get("sets_skipped"),
                 "stale_dropped": sync.get("stale_sets_dropped"), "sync_dropped": sync.get("sync_dropped"),
                 "queued": " ".join(map(str, queued)), "latency_ms_p50": inf.get("latency_ms_p50"),
                 "restarts": sd.restarts}
            last_depth = n
            samples.append(s)
            print(f"t={s['t_s']:6.1f}s rss={s['rss_mb'] or 0:7.1f} MB gpu={s['gpu_mib']} rate={s['out_rate_hz']:.2f} Hz "
                  f"processed={s['frames_processed']} stale={s['stale_dropped']} queued=[{s['queued']}] "
                  f"lat_p50={s['latency_ms_p50']} restarts={s['restarts']}", flush=True)
    finally:
        codes = launcher.stop()
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
        log.close()

    post = [s for s in samples if s["t_s"] >= warmup_s and s["rss_mb"]]
    summary: Dict[str, object] = {"minutes": args.minutes, "warmup_s": warmup_s, "samples": len(samples),
                                  "exit_codes": codes, "bag": str(bag), "device": args.device}
    if len(post) < 6:
        failures.append(f"only {len(post)} samples after warm-up: run longer (--minutes) or sample faster")
    else:
        q = max(1, len(post) // 4)
        rss0, rss1 = median([s["rss_mb"] for s in post[:3]]), median([s["rss_mb"] for s in post[-3:]])
        rate0 = statistics.mean(s["out_rate_hz"] for s in post[:q])
        rate1 = statistics.mean(s["out_rate_hz"] for s in post[-q:])
        summary.update(rss_mb_after_warmup=rss0, rss_mb_end=rss1, rss_growth=rss1 / rss0 - 1.0,
                       rss_mb_peak=max(s["rss_mb"] for s in samples if s["rss_mb"]),
                       rate_hz_first_quarter=rate0, rate_hz_last_quarter=rate1,
                       outputs=samples[-1]["outputs"], max_queue_seen=max_queue_seen, queue_size=queue_size,
                       restarts=sd.restarts, stale_dropped=samples[-1]["stale_dropped"])
        if rss1 > rss0 * (1.0 + args.rss_growth):
            failures.append(f"RSS grew {100 * (rss1 / rss0 - 1):.1f}% after warm-up ({rss0:.1f} -> {rss1:.1f} MB), "
                            f"bound {100 * args.rss_growth:.0f}%")
        if rate0 <= 0 or rate1 < args.rate_floor * rate0:
            failures.append(f"output rate decayed: {rate0:.2f} -> {rate1:.2f} Hz (floor {args.rate_floor} x)")
    if sd.restarts:
        failures.append(f"surround_depth restarted {sd.restarts} time(s) (see {out_dir / 'graph.log'})")
    if queue_size is not None and max_queue_seen > queue_size:
        failures.append(f"a synchronizer queue held {max_queue_seen} > queue_size {queue_size}")
    if not samples or not samples[-1]["outputs"]:
        failures.append("no depth output at all")
    summary["failures"] = failures
    keys = list(samples[0]) if samples else []
    with open(out_dir / "samples.csv", "w") as f:
        f.write(",".join(keys) + "\n")
        for s in samples:
            f.write(",".join("" if s[k] is None else str(s[k]) for k in keys) + "\n")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(json.dumps(summary, indent=1, default=str))
    print(("SOAK FAILED: " + "; ".join(failures)) if failures else "soak passed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
