#!/usr/bin/env python3
"""`make demo`: a synthetic drive, as a ROS 2 bag, through the real node graph; results in results/demo/.

Steps (each prints what it does; re-runs reuse what is cached under results/demo/cache):
  1. model: --checkpoint / $VFDEPTH_DEMO_CHECKPOINT, else results/demo/cache/model.pt, else train one:
     `vfdepth synth` renders a small synthetic DDAD-format dataset, `training/train.py` trains the CPU
     config on it for --train-steps optimizer steps (a step budget, with a progress bar and ETA: a
     slower machine takes longer but trains the same model) and the last checkpoint is cached.
  2. bag: `vfdepth bag from-synthetic` renders a drive the model never saw (another seed; 10 m/s, or
     about 5 to 15 m/s with `--drive-speed varied`) -> drive.mcap.
  3. replay: `vfdepth launch` starts the node graph (loopback DDS, own ROS_DOMAIN_ID, use_sim_time),
     `vfdepth bag record` records its outputs, `vfdepth bag play --clock --wait-for-topic camera_01/depth`
     replays the drive paced by the node (no frame dropped on a slow CPU).
  4. scores: `vfdepth evaluate-bag` -> metrics.json + metrics.txt (depth vs LIDAR, odometry vs gt/odom),
     and beside the model the best per-pixel prior of the training scenes' LIDAR (per camera and pixel,
     the depth minimising abs_rel) scored on the same pixels of the unseen drive.
  5. pictures: trajectory.png (estimate with the ground truth on top), mosaic.gif (six inputs, their depth, the
     virtual view), and view.rrd (`vfdepth view`, the headless rerun recording) when available.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import threading
import sys
import time
from pathlib import Path
from typing import List, Optional

REPO = Path(__file__).resolve().parent.parent

from vfdepth_core.config import DDAD_CAMERAS  # noqa: E402

CAMS = list(DDAD_CAMERAS)

# What the demo trains with on top of the CPU config (beyond the paper, see training/README.md):
# the LIDAR depth loss (--gt-depth-coeff) and these (the pose refinement acts at inference only: the
# node's odometry).
DEMO_SETS = ("model.pose_translation_scale=1.0", "model.pose_refine_iterations=6", "model.use_skips=true")
DEMO_STEPS = 300


def say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def vfdepth(*args: str) -> List[str]:
    return [sys.executable, "-c", "import sys; from vfdepth_ros.cli import main; sys.exit(main())", *args]


def run(cmd: List[str], env=None, **kw) -> None:
    r = subprocess.run(cmd, env=env, cwd=REPO, **kw)
    if r.returncode != 0:
        raise SystemExit(f"demo: step failed (exit {r.returncode}): {' '.join(cmd[:1] + cmd[3:] if cmd[1:2] == ['-c'] else cmd)}")


def train_model(cache: Path, args) -> Path:
    data = cache / "synthetic_ddad"
    if not (data / "ddad.json").is_file():
        say(f"rendering a synthetic training set ({args.train_scenes} drives x {args.train_frames} frames, "
            f"{args.width}x{args.height}) -> {data}")
        tmp = cache / "synthetic_ddad.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        run(vfdepth("synth", "--rig", "ddad", "--scenes", str(args.train_scenes), "--frames", str(args.train_frames),
                    "--height", str(args.height), "--width", str(args.width), "--val-scenes", "1", "--seed", "0",
                    "--out", str(tmp)))
        tmp.rename(data)
    run_dir = cache / "train"
    sup = (f", self-supervised + LIDAR depth loss x{args.gt_depth_coeff:g}" if args.gt_depth_coeff > 0
           else ", self-supervised only")
    say(f"training {args.config} on it for {args.train_steps} steps (CPU{sup}; progress bar with ETA below) -> {run_dir}")
    cmd = [sys.executable, str(REPO / "training" / "train.py"), "--config_file", str(REPO / args.config),
           "--run_dir", str(run_dir), "--device", "cpu",
           "--set", f"data.data_path={data / 'ddad.json'}", "--set", f"training.height={args.height}",
           "--set", f"training.width={args.width}", "--set", f"training.max_steps={args.train_steps}",
           "--set", "training.num_epochs=1000", "--set", "training.num_workers=0"]
    for kv in (*DEMO_SETS, *args.set):
        cmd += ["--set", kv]
    if args.gt_depth_coeff > 0:
        # Beyond the paper: LIDAR supervision on top of the self-supervised losses, so that a few CPU
        # minutes give depth worth looking at (benchmarks/learning.py measures the pure objective).
        cmd += ["--set", f"loss.gt_depth_coeff={args.gt_depth_coeff}",
                "--set", "data.train_requirements=(gt_pose, gt_depth, mask)"]
    if (run_dir / "checkpoints" / "latest.pt").is_file():
        cmd.append("--resume")
    run(cmd)
    ckpt = run_dir / "checkpoints" / "latest.pt"
    if not ckpt.is_file():
        raise SystemExit(f"demo: training finished without {ckpt}")
    shutil.copy2(ckpt, cache / "model.pt")
    return cache / "model.pt"


def checkpoint_steps(ckpt: Path) -> Optional[int]:
    from vfdepth_core.checkpoint import load_checkpoint

    return load_checkpoint(ckpt, map_location="cpu").get("step")


def prior_scores(cache: Path, bag: Path, outputs: Path, args) -> Optional[dict]:
    """The best per-pixel prior of the training scenes' LIDAR (per camera and pixel, the depth minimising
    abs_rel), scored like the model on the same pixels of the unseen drive; None without training data."""
    data = cache / "synthetic_ddad" / "ddad.json"
    if not data.is_file():
        say(f"no training data in {data.parent} (a given checkpoint): no per-pixel prior to compare with")
        return None
    from vfdepth_core.config import load_config
    from vfdepth_core.training.evaluate import split_gt_prior
    from vfdepth_ros.bag import evaluate as E

    cfg = load_config(REPO / args.config, [f"data.data_path={data}", f"training.height={args.height}",
                                           f"training.width={args.width}"])
    prior = split_gt_prior(cfg, "train")["prior"].numpy().astype("float32")
    out = E.read_outputs(outputs)
    cams = [str(c) for c in cfg.data.cameras]
    if any(d.shape != prior.shape[1:] for c in out.depth for _, d, _ in out.depth[c]):
        say(f"the model's depth is not {args.width}x{args.height}: no per-pixel prior to compare with")
        return None
    out.depth = {c: [(t, prior[cams.index(c)], f) for t, _, f in lst] for c, lst in out.depth.items() if c in cams}
    out.odom = []
    return E.score_depth(out, E.read_ground_truth(bag), E.EvalOptions(), str(bag))


def constant_motion_scores(cache: Path, bag: Path, args) -> Optional[dict]:
    """The best constant motion of the training drives (what a pose net that ignores the images outputs)
    scored on the unseen drive's ground-truth steps; None without training data."""
    data = cache / "synthetic_ddad" / "ddad.json"
    if not data.is_file():
        return None
    import numpy as np

    from vfdepth_core.config import load_config
    from vfdepth_core.odometry import best_constant_motion, constant_motion_result, relative_motions, training_steps
    from vfdepth_ros.bag import evaluate as E

    cfg = load_config(REPO / args.config, [f"data.data_path={data}", "data.train_requirements=(gt_pose, mask)"])
    steps = training_steps(cfg)
    gt = E.read_ground_truth(bag, need_lidar=False)
    return constant_motion_result(best_constant_motion(steps), {"drive": list(relative_motions(np.stack(gt.odom_T)))},
                                  )["overall"]


def report(res: dict, prior: Optional[dict], steps: Optional[int]) -> str:
    """Model vs per-pixel prior (depth) and the odometry headline, as text lines."""
    lines = [f"model: {'?' if steps is None else steps} training steps"]
    m = res.get("depth", {}).get("metric", {}).get("mean", {})
    if m:
        lines.append(f"{'metric depth':24s} {'abs_rel':>8s} {'d1':>8s}")
        lines.append(f"{'model':24s} {m['abs_rel']:8.3f} {m['d1']:8.3f}")
        if prior is not None:
            pm = prior["metric"]["mean"]
            lines.append(f"{'per-pixel prior (train)':24s} {pm['abs_rel']:8.3f} {pm['d1']:8.3f}")
            lines.append(f"model / prior abs_rel: {m['abs_rel'] / pm['abs_rel']:.2f} (below 1: the model learnt more "
                         "than the prior)")
    o = res.get("odometry")
    if o and o.get("rel_trans_err_pct") is not None:
        lines.append(f"odometry: relative translation error {o['rel_trans_err_pct']:.1f} %, rotation "
                     f"{o['rel_rot_err_deg_per_m']:.3f} deg/m, ATE {o['ate_rmse_m']:.2f} m; the estimate travelled "
                     f"{o['est_path_length_m']:.1f} m of {o['path_length_m']:.1f} m")
    c = res.get("constant_motion")
    if c and c.get("rel_trans_err_pct") is not None:
        lines.append(f"best constant motion (train): relative translation error {c['rel_trans_err_pct']:.1f} %, "
                     f"rotation {c['rel_rot_err_deg_per_m']:.3f} deg/m (ignores the images: the odometry must beat it)")
    return "\n".join(lines)


def replay(bag: Path, ckpt: Path, outputs: Path, domain_id: int, log_dir: Path) -> None:
    from vfdepth_ros.dds import loopback_env

    env = loopback_env(domain_id=domain_id)
    img, info = "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo"
    topics = [t for c in CAMS for t in (f"{c}/depth:{img}", f"{c}/depth/camera_info:{info}")] + \
        ["odom:nav_msgs/msg/Odometry", f"virtual/depth:{img}", f"virtual/camera_info:{info}",
         "points:sensor_msgs/msg/PointCloud2"]
    logs = {n: open(log_dir / f"{n}.log", "w") for n in ("launch", "record")}
    # The recorder subscribes first (topic types given: nothing publishes them yet, so discovery could not
    # tell it), so it has matched the node's publishers by the time the first frame comes out; it is
    # stopped with SIGINT once the player is done.
    record = subprocess.Popen(vfdepth("bag", "record", "-o", str(outputs), "--overwrite", *topics), env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rec_log = logs["record"]
    subscribed = 0
    # A recorder that has not subscribed to every topic within a minute is stopped (its output then ends
    # and the loop below fails with a message) instead of leaving the demo waiting for ever.
    watchdog = threading.Timer(60.0, record.kill)
    watchdog.start()
    try:
        while subscribed < len(topics):
            line = record.stdout.readline()
            if not line:
                raise SystemExit(f"demo: the recorder exited (or did not subscribe within 60 s) before subscribing "
                                 f"to all {len(topics)} topics; see {log_dir}/record.log")
            rec_log.write(line)
            subscribed += "recording " in line
    finally:
        watchdog.cancel()
        rec_log.flush()
    matched = {"n": 0}
    all_matched = threading.Event()

    def pump_recorder() -> None:
        for line in record.stdout:
            rec_log.write(line)
            if " matched " in f" {line}":
                matched["n"] += 1
                if matched["n"] >= len(topics):
                    all_matched.set()

    pump = threading.Thread(target=pump_recorder, daemon=True)
    pump.start()
    launch = subprocess.Popen(vfdepth("launch", "--camera-set", "synthetic", "--checkpoint", str(ckpt),
                                      "--use-sim-time", "--no-respawn"), env=env, cwd=REPO,
                              stdout=logs["launch"], stderr=subprocess.STDOUT, start_new_session=True)
    player = None
    try:
        say(f"node graph started (vfdepth launch, ROS_DOMAIN_ID={domain_id}, loopback DDS); log {log_dir}/launch.log")
        # the node's outputs are volatile: what it publishes before the recorder has matched it is lost, and
        # discovery on a busy machine can take longer than a frame
        if not all_matched.wait(timeout=120):
            raise SystemExit(f"demo: the recorder matched {matched['n']} of {len(topics)} node outputs within 120 s; "
                             f"see {log_dir}/launch.log and record.log")
        player = subprocess.Popen(vfdepth("bag", "play", str(bag), "--clock", "--as-fast-as-possible",
                                          "--wait-for-topic", "camera_01/depth", "--wait-timeout", "120",
                                          "--match-timeout", "120"), env=env, cwd=REPO)
        say("replaying the drive, paced by the node's camera_01/depth (one frame at a time)")
        if player.wait() != 0:
            raise SystemExit("demo: the bag player failed")
        record.send_signal(signal.SIGINT)
        if record.wait(timeout=120) != 0:
            raise SystemExit(f"demo: the recorder failed; see {log_dir}/record.log")
        pump.join(timeout=10)
    finally:
        for p in (player, record):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGINT)
                p.wait(timeout=30)
        if launch.poll() is None:
            launch.send_signal(signal.SIGINT)
            try:
                launch.wait(timeout=30)
            except subprocess.TimeoutExpired:
                launch.kill()
        for f in logs.values():
            f.close()


def pictures(bag: Path, outputs: Path, out_dir: Path, res: dict) -> None:
    import numpy as np

    from vfdepth_core import viz
    from vfdepth_ros import conversions as cv
    from vfdepth_ros.bag import common as C
    from vfdepth_ros.bag import evaluate as E

    def by_stamp(path: Path, suffix: str):
        reader = C.open_reader(path)
        d = {}
        try:
            for conn, _, raw in C.iter_messages(reader):
                name = conn.topic.lstrip("/")
                if name.endswith(suffix) and not name.endswith("camera_info"):
                    m = C.deserialize(raw, conn.msgtype)
                    d.setdefault(cv.stamp_to_ns(m.header.stamp), {})[name[: -len(suffix)] if suffix else name] = \
                        cv.image_to_array(m)
        finally:
            reader.close()
        return d

    images = by_stamp(bag, "/image_raw")
    depths = by_stamp(outputs, "/depth")
    # trajectory: estimate vs ground truth (both relative to their first pose, SE(3)-aligned by evaluation)
    out = E.read_outputs(outputs)
    gt = E.read_ground_truth(bag, need_lidar=False)
    if out.odom:
        est = np.array([T[:3, 3] for _, T in sorted(out.odom, key=lambda x: x[0])])
        gtp = np.array([G[:3, 3] for G in gt.odom_T])
        o = res.get("odometry") or {}
        title = "odometry: estimate vs ground truth"
        if o.get("rel_trans_err_pct") is not None:
            title += f"\nrel. translation error {o['rel_trans_err_pct']:.1f} %, ATE {o['ate_rmse_m']:.2f} m"
        viz.plot_trajectory(est, gtp, path=out_dir / "trajectory.png", title=title)
        say(f"wrote {out_dir / 'trajectory.png'}")
    frames = []
    all_d = [d for s in depths.values() for k, d in s.items() if k in CAMS]
    vmin, vmax = viz.depth_range(all_d) if all_d else (1.0, 80.0)
    for t in sorted(depths):
        if t not in images or not all(c in images[t] and c in depths[t] for c in CAMS):
            continue
        rgb = viz.surround_layout([images[t][c] for c in CAMS], labels=CAMS)
        dep = viz.depth_with_colorbar(viz.surround_layout([viz.colorize_depth(depths[t][c], vmin, vmax)
                                                           for c in CAMS]), vmin, vmax, label="depth (m)")
        panels = [rgb, dep]
        if "virtual" in depths[t]:
            v = viz.colorize_depth(depths[t]["virtual"], vmin, vmax)
            panels.append(viz.mosaic([v], ncols=1, labels=["virtual view"]))
        w = max(p.shape[1] for p in panels)
        frames.append(np.concatenate([np.pad(p, ((0, 0), (0, w - p.shape[1]), (0, 0)), constant_values=255)
                                      for p in panels], 0))
    if frames:
        viz.write_gif(frames, out_dir / "mosaic.gif", fps=4)
        say(f"wrote {out_dir / 'mosaic.gif'} ({len(frames)} frames)")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/demo")
    ap.add_argument("--checkpoint", default=os.environ.get("VFDEPTH_DEMO_CHECKPOINT", ""),
                    help="use this trained model instead of training one (env VFDEPTH_DEMO_CHECKPOINT)")
    ap.add_argument("--config", default="training/configs/synthetic/synthetic_cpu.yaml")
    ap.add_argument("--train-steps", type=int, default=DEMO_STEPS,
                    help=f"optimizer steps of the demo's training (default {DEMO_STEPS}; a step budget, so a slower "
                         "machine takes longer, with a progress bar and ETA, but trains the same model)")
    ap.add_argument("--gt-depth-coeff", type=float, default=0.5,
                    help="weight of the LIDAR depth loss added to the self-supervised losses when the demo trains "
                         "its model (beyond the paper; 0 = purely self-supervised; default 0.5)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra training config override (repeatable), after the demo's own: "
                         + ", ".join(DEMO_SETS))
    ap.add_argument("--train-scenes", type=int, default=3)
    ap.add_argument("--train-frames", type=int, default=40)
    ap.add_argument("--frames", type=int, default=20, help="frames of the demo drive (10 Hz)")
    ap.add_argument("--drive-speed", choices=("constant", "varied"), default="constant",
                    help="the demo drive's speed: 'constant' (default: 10 m/s, as the training drives) or 'varied' "
                         "(about 5 to 15 m/s, so a motion that ignores the images scores badly on translation)")
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--height", type=int, default=96)
    ap.add_argument("--domain-id", type=int, default=int(os.environ.get("VFDEPTH_DEMO_DOMAIN_ID", "42")))
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    out_dir = (REPO / args.out).resolve()
    cache = out_dir / "cache"
    cache.mkdir(parents=True, exist_ok=True)

    say("1/5 model")
    if args.checkpoint:
        ckpt = Path(args.checkpoint).resolve()
        if not ckpt.is_file():
            raise SystemExit(f"demo: --checkpoint {ckpt} does not exist")
        say(f"using {ckpt}")
    elif (cache / "model.pt").is_file():
        ckpt = cache / "model.pt"
        say(f"reusing the cached model {ckpt} (delete it to train again)")
    else:
        ckpt = train_model(cache, args)

    say("2/5 synthetic drive -> ROS 2 bag")
    speed = "" if args.drive_speed == "constant" else f"_{args.drive_speed}"  # the constant drive keeps its name
    bag = cache / f"drive_{args.frames}f_{args.width}x{args.height}{speed}.mcap"
    if not bag.is_file():
        run(vfdepth("bag", "from-synthetic", "--rig", "ddad", "--frames", str(args.frames), "--seed", "7",
                    "--width", str(args.width), "--height", str(args.height), "--speed", args.drive_speed,
                    "--out", str(bag)))
    shutil.copy2(bag, out_dir / "drive.mcap")
    bag = out_dir / "drive.mcap"

    say("3/5 replay through the node graph, recording its outputs")
    outputs = out_dir / "outputs.mcap"
    replay(bag, ckpt, outputs, args.domain_id, out_dir)

    say("4/5 evaluate the recorded outputs against the bag's ground truth")
    run(vfdepth("evaluate-bag", str(bag), str(outputs), "--json", str(out_dir / "metrics.json")),
        stdout=open(out_dir / "metrics.txt", "w"))
    res = json.loads((out_dir / "metrics.json").read_text())
    prior = prior_scores(cache, bag, outputs, args)
    res["per_pixel_prior"] = prior
    res["constant_motion"] = constant_motion_scores(cache, bag, args)
    res["training_steps"] = checkpoint_steps(ckpt)
    (out_dir / "metrics.json").write_text(json.dumps(res, indent=2))
    summary = report(res, prior, res["training_steps"])
    with open(out_dir / "metrics.txt", "a") as f:
        f.write("\n" + summary + "\n")
    print((out_dir / "metrics.txt").read_text())

    say("5/5 pictures and viewer recording")
    pictures(bag, outputs, out_dir, res)
    try:
        import vfdepth_ros.viewer  # noqa: F401

        run(vfdepth("view", str(bag), str(outputs), "-o", str(out_dir / "view.rrd")), stdout=subprocess.DEVNULL)
        say(f"wrote {out_dir / 'view.rrd'} (open with `rerun {out_dir / 'view.rrd'}`)")
    except ImportError:
        say("vfdepth_ros.viewer not available: no viewer recording")
    except SystemExit as exc:
        say(f"viewer recording failed ({exc}); the other results stand")
    say(f"done in {(time.monotonic() - t0) / 60:.1f} min: {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
