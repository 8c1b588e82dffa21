"""End-to-end benchmark of the surround_depth node, next to the predictor alone in the same run.

Starts the node graph through the project's launcher (separate process, loopback DDS, own domain),
publishes six synthetic cameras (+ camera_info, /tf_static) at --rate Hz for --duration s, and measures

* latency: the last camera image of a set published -> the last of its six depth images received
  (p50/p95, ms; includes DDS both ways, decoding, synchronization, inference and publishing);
* sustained output rate (sets with depth per second) and how many input sets were dropped as stale;
* the node's own numbers from /diagnostics (predict() inside the node, set-complete -> published);
* then, with the node stopped, pure ``Predictor.predict`` on the same inputs (same options as the
  node: previous frame for ego motion, one virtual view) in this process.

    .venv/bin/python benchmarks/bench_node.py --config training/configs/synthetic/synthetic_cpu.yaml \
        --width 640 --height 384 --rate 10 --duration 20 --json results/bench_node.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

from vfdepth_ros.dds import apply_loopback_profile
from vfdepth_ros.toy_rig import frame_images, rig_extrinsics, rig_K

REPO = Path(__file__).resolve().parent.parent


def pct(xs, q):
    return float(np.percentile(np.asarray(xs, dtype=float), q)) if len(xs) else float("nan")


def run_node(args, domain_id):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, Image
    from tf2_msgs.msg import TFMessage

    from vfdepth_ros import conversions as cv
    from vfdepth_ros import graph as G
    from vfdepth_ros.launcher import Launcher
    from vfdepth_core.config import DDAD_CAMERAS as CAMS

    graph = G.surround_graph(camera_set="synthetic", model_config=str(Path(args.config).resolve()),
                             overrides={"device": args.device, "amp": args.amp, "publish_points": True,
                                        "publish_virtual": True,
                                        "camera_timeout_s": 5.0},
                             respawn=False)
    log = open(args.log, "w")
    launcher = Launcher(graph, domain_id=domain_id, output=log).start()
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain_id)
    node = rclpy.create_node("bench_rig", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    W, H = args.width, args.height
    K, Ts = rig_K((H, W)), rig_extrinsics()
    img_pubs = [node.create_publisher(Image, f"{c}/image_raw", qos_profile_sensor_data) for c in CAMS]
    info_pubs = [node.create_publisher(CameraInfo, f"{c}/camera_info", qos_profile_sensor_data) for c in CAMS]
    tf_pub = node.create_publisher(TFMessage, "/tf_static", QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    tf_pub.publish(TFMessage(transforms=[cv.matrix_to_transform(T, "base_link", c, 0) for c, T in zip(CAMS, Ts)]))
    lock = threading.Lock()
    got = {}  # stamp -> list of receive times
    diag = []

    def on_depth(msg):
        with lock:
            got.setdefault(cv.stamp_to_ns(msg.header.stamp), []).append(time.perf_counter())

    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    subs = [node.create_subscription(Image, f"{c}/depth", on_depth, qos) for c in CAMS]
    subs.append(node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diag.append(m), 10))
    deadline = time.monotonic() + 120
    while not all(p.get_subscription_count() for p in img_pubs) or not diag:
        if time.monotonic() > deadline or launcher.children[0].proc.poll() is not None:
            launcher.stop()
            raise SystemExit(f"the node did not come up; see {args.log}")
        ex.spin_once(timeout_sec=0.05)
    # the model is loaded when the inference status is no longer 'loading'
    while "loading" in cv.diagnostics_to_dict(diag[-1]).get("surround_depth: inference", {}).get("message", "loading"):
        ex.spin_once(timeout_sec=0.05)
    frames = [frame_images(k, (H, W)) for k in range(8)]
    infos = [cv.K_to_camera_info(K, (H, W), cv.make_header(0, c)) for c in CAMS]
    for p, m in zip(info_pubs, infos):
        p.publish(m)
    sent = {}  # stamp -> perf_counter time the last camera was published
    period = 1.0 / args.rate
    t_start = time.perf_counter()
    k = 0
    warm = args.warmup
    while time.perf_counter() - t_start < args.duration + warm:
        t_next = t_start + k * period
        while time.perf_counter() < t_next:
            ex.spin_once(timeout_sec=max(0.0, min(0.005, t_next - time.perf_counter())))
        stamp = node.get_clock().now().nanoseconds
        for i, c in enumerate(CAMS):
            info_pubs[i].publish(cv.K_to_camera_info(K, (H, W), cv.make_header(stamp, c)))
            img_pubs[i].publish(cv.numpy_to_image(frames[k % len(frames)][i], "rgb8", cv.make_header(stamp, c)))
        if time.perf_counter() - t_start >= warm:
            sent[stamp] = time.perf_counter()
        k += 1
    t_end = time.perf_counter()
    drain = time.monotonic() + 10
    while time.monotonic() < drain:
        ex.spin_once(timeout_sec=0.05)
    final = cv.diagnostics_to_dict(diag[-1])
    launcher.stop()
    ex.shutdown()
    rclpy.try_shutdown(context=ctx)
    log.close()
    lat = [(max(got[s]) - t) * 1e3 for s, t in sent.items() if s in got and len(got[s]) == 6]
    done = [s for s in sent if s in got and len(got[s]) == 6]
    inf = final["surround_depth: inference"]["values"]
    sync = final["surround_depth: synchronizer"]["values"]
    return {
        "input_sets": len(sent), "sets_with_depth": len(done), "input_rate_hz": len(sent) / (t_end - t_start - warm),
        "output_rate_hz": len(done) / (t_end - t_start - warm),
        "latency_ms_p50": pct(lat, 50), "latency_ms_p95": pct(lat, 95),
        "node_predict_ms_p50": float(inf["inference_ms_p50"]), "node_predict_ms_p95": float(inf["inference_ms_p95"]),
        "node_set_to_publish_ms_p50": float(inf["latency_ms_p50"]),
        "node_set_to_publish_ms_p95": float(inf["latency_ms_p95"]),
        "stale_sets_dropped": int(sync["stale_sets_dropped"]), "sync_dropped": int(sync["sync_dropped"]),
        "device": inf["device"], "amp": args.amp,
    }


def run_predict(args, reps):
    import torch

    from vfdepth_core.config import load_config
    from vfdepth_core.inference import Predictor, VirtualCamera
    from vfdepth_ros.params import VirtualCameraParams, virtual_camera
    from vfdepth_ros.conversions import scale_K

    cfg = load_config(args.config)
    pred = Predictor(cfg, device=None if args.device == "auto" else args.device, amp=args.amp)
    W, H = args.width, args.height
    K, Ts = rig_K((H, W)), rig_extrinsics()
    imgs = [np.stack(frame_images(k, (H, W))).transpose(0, 3, 1, 2) for k in range(2)]
    Kv, Tv = virtual_camera(VirtualCameraParams(x=-8, z=5, pitch_deg=20), pred.hw, scale_K(K, (H, W), pred.hw))
    virt = VirtualCamera(torch.from_numpy(Kv[None]), torch.from_numpy(Tv[None]))
    Ks, Tst = np.stack([K] * 6), np.stack(Ts)
    for _ in range(2):
        pred.predict(imgs[1], Ks, Tst, prev_images=imgs[0], virtual=virt)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        pred.predict(imgs[1], Ks, Tst, prev_images=imgs[0], virtual=virt)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"predict_ms_p50": pct(times, 50), "predict_ms_p95": pct(times, 95), "predict_reps": reps,
            "network_size": f"{pred.hw[1]}x{pred.hw[0]}"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "training/configs/synthetic/synthetic_cpu.yaml"))
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=384)
    ap.add_argument("--rate", type=float, default=10.0, help="camera rate (Hz)")
    ap.add_argument("--duration", type=float, default=20.0, help="measured seconds (after --warmup)")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", default="none", choices=("none", "bf16", "fp16"),
                    help="autocast in the node and in the predict() comparison (bf16 pays on CPUs with AMX)")
    ap.add_argument("--reps", type=int, default=10, help="predict() repetitions")
    ap.add_argument("--domain-id", type=int, default=None)
    ap.add_argument("--log", default="/tmp/bench_node_graph.log")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    domain_id = args.domain_id if args.domain_id is not None else 200 + os.getpid() % 30
    apply_loopback_profile(domain_id)
    res = {"config": args.config, "input": f"6 x {args.width}x{args.height} rgb8 @ {args.rate} Hz"}
    res.update(run_node(args, domain_id))
    res.update(run_predict(args, args.reps))
    res["node_overhead_ms_p50"] = res["latency_ms_p50"] - res["node_predict_ms_p50"]
    res["overhead_fraction_of_latency"] = res["node_overhead_ms_p50"] / res["latency_ms_p50"]
    width = max(len(k) for k in res)
    for k, v in res.items():
        print(f"{k:<{width}}  {v:.1f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
