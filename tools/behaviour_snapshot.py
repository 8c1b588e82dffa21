#!/usr/bin/env python3
"""Behaviour snapshot: what the project's command-line tools produce on small fixtures, to show that a
refactor changed nothing (issue 21).

    python tools/behaviour_snapshot.py --out /tmp/snap_before [--checkpoint CK.pt] [--only bags,node,train]
    python tools/behaviour_snapshot.py --compare /tmp/snap_before /tmp/snap_after [--atol 0]

Only the stable entry points run (``vfdepth synth``, ``vfdepth bag from-synthetic / from-ddad / play /
record``, ``vfdepth launch``, ``vfdepth evaluate-bag``, ``training/train.py``), each as a new process of
the repository this file lives in; their files are read with the ``mcap``/``rosbags`` libraries and
torch, never with the project's own modules, so the tool works unchanged on reorganised internals.

Sections (each a folder of JSON + NPZ files under ``--out``):
- ``bags``: a tiny synthetic bag and the DDAD sample (``/work/shared/data/ddad_sample``, read from a copy;
  skipped when absent) converted raw, resized and compressed: per topic the schema, log times and
  payload hashes, and every message decoded into arrays.
- ``train``: the tiny synthetic dataset (file hashes) and ``--train-steps`` CPU training steps of the
  tiny config: losses per step, per-step parameter checksums, per-tensor hashes and sums of the final weights.
- ``node``: the synthetic bag replayed (paced, with /clock) through the node graph of ``vfdepth launch``
  with a fixed checkpoint (``--checkpoint``, default the ``train`` section's final weights, saved as
  ``node/checkpoint.pt`` so a later snapshot can reuse it): depth, camera_info, odometry, /tf, point
  cloud and virtual view as arrays keyed by header stamp, and ``evaluate-bag``'s scores.
``manifest.json`` (commit, times, commands) is informative and not compared.

``--compare`` prints one row per file (items, how many differ, the largest absolute difference) and
the first differing items, and exits 1 when anything differs beyond ``--atol`` (0 = exact).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TINY = "training/configs/synthetic/synthetic_tiny.yaml"
DDAD_SAMPLE = Path("/work/shared/data/ddad_sample")
CAMS = ["camera_01", "camera_05", "camera_06", "camera_07", "camera_08", "camera_09"]
NODE_TOPICS = ([f"{c}/depth:sensor_msgs/msg/Image" for c in CAMS]
               + [f"{c}/depth/camera_info:sensor_msgs/msg/CameraInfo" for c in CAMS]
               + ["odom:nav_msgs/msg/Odometry", "points:sensor_msgs/msg/PointCloud2",
                  "virtual/depth:sensor_msgs/msg/Image", "virtual/camera_info:sensor_msgs/msg/CameraInfo",
                  "/tf:tf2_msgs/msg/TFMessage"])
BIG_IMAGE_PX = 300_000  # larger decoded images are stored every 4th pixel (their hashes cover all)
STEP_RE = re.compile(r"step (\d+) samples \[[\d, ]*\] param_checksum ([-+0-9.eE]+)")
IMAGE_DTYPES = {"32FC1": np.float32, "16UC1": np.uint16, "mono16": np.uint16, "64FC1": np.float64}
FIELD_DTYPES = {1: np.int8, 2: np.uint8, 3: np.int16, 4: np.uint16, 5: np.int32, 6: np.uint32, 7: np.float32,
                8: np.float64}


class SnapshotError(RuntimeError):
    """A step of the snapshot failed; the message names the step and its log."""


# ------------------------------------------------------------------------------------ processes

def _env(domain_id: int) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0",
               ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               RMW_IMPLEMENTATION="rmw_fastrtps_cpp", PYTHONUNBUFFERED="1")
    profile = REPO / "vfdepth_ros" / "resources" / "fastdds_loopback.xml"
    if profile.is_file():
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
    env.pop("ROS_LOCALHOST_ONLY", None)
    return env


def _vfdepth(*args: str) -> List[str]:
    return [sys.executable, "-m", "vfdepth_ros.cli", *args]


def _run(cmd: Sequence[str], log: Path, env: Dict[str, str], timeout_s: float = 1800.0) -> str:
    """Run one command to the end; its output goes to `log`; a nonzero exit is a SnapshotError."""
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        p = subprocess.run(list(cmd), cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout_s,
                           stdin=subprocess.DEVNULL)
    text = log.read_text(errors="replace")
    if p.returncode != 0:
        raise SnapshotError(f"{' '.join(cmd[2:5])} exited {p.returncode}; see {log}:\n{text[-3000:]}")
    return text


# ---------------------------------------------------------------------------------- bag reading

def _iter_bag(path: Path) -> Iterator[Tuple[str, str, bytes, int, bytes]]:
    """(topic, type name, schema bytes, log time ns, raw CDR) of every message of an MCAP file, in order."""
    from mcap.reader import make_reader

    with open(path, "rb") as f:
        for schema, channel, message in make_reader(f).iter_messages(log_time_order=True):
            yield channel.topic, schema.name, bytes(schema.data), message.log_time, bytes(message.data)


def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


def _image_array(msg: Any) -> np.ndarray:
    dtype = IMAGE_DTYPES.get(msg.encoding, np.uint8)
    rows = np.asarray(msg.data, np.uint8).reshape(msg.height, msg.step)
    row_bytes = (msg.step // max(msg.width, 1)) * msg.width  # drop row padding
    a = np.ascontiguousarray(rows[:, :row_bytes]).view(dtype).reshape(msg.height, msg.width, -1)
    return a[::4, ::4] if msg.height * msg.width > BIG_IMAGE_PX else a


def _cloud_arrays(msg: Any) -> Dict[str, np.ndarray]:
    raw = np.asarray(msg.data, np.uint8).reshape(-1, msg.point_step) if msg.point_step else np.zeros((0, 0), np.uint8)
    out = {}
    for fld in msg.fields:
        dt = np.dtype(FIELD_DTYPES.get(fld.datatype, np.uint8))
        out[fld.name] = np.ascontiguousarray(raw[:, fld.offset: fld.offset + dt.itemsize]).view(dt).reshape(-1)
    return out


def _flatten(obj: Any, prefix: str, arrays: Dict[str, np.ndarray], meta: Dict[str, Any]) -> None:
    """Numbers and arrays of a deserialised message into `arrays`, strings into `meta`."""
    if dataclasses.is_dataclass(obj):
        msgtype = getattr(obj, "__msgtype__", "")
        if msgtype == "sensor_msgs/msg/Image":
            arrays[prefix + "image"] = _image_array(obj)
            meta[prefix + "encoding"] = obj.encoding
            meta[prefix + "frame_id"] = obj.header.frame_id
            arrays[prefix + "stamp"] = np.array([obj.header.stamp.sec, obj.header.stamp.nanosec], np.int64)
            return
        if msgtype == "sensor_msgs/msg/PointCloud2":
            for name, a in _cloud_arrays(obj).items():
                arrays[f"{prefix}field.{name}"] = a
            meta[prefix + "frame_id"] = obj.header.frame_id
            arrays[prefix + "stamp"] = np.array([obj.header.stamp.sec, obj.header.stamp.nanosec], np.int64)
            return
        for f in dataclasses.fields(obj):
            if f.name.startswith("__"):
                continue
            _flatten(getattr(obj, f.name), f"{prefix}{f.name}.", arrays, meta)
    elif isinstance(obj, np.ndarray):
        arrays[prefix.rstrip(".")] = obj
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _flatten(v, f"{prefix}{i}.", arrays, meta)
    elif isinstance(obj, (bool, int, float, np.number)):
        arrays[prefix.rstrip(".")] = np.asarray(obj)
    elif isinstance(obj, str):
        meta[prefix.rstrip(".")] = obj


def _header_stamp_ns(msg: Any) -> Optional[int]:
    header = getattr(msg, "header", None)
    if header is None and getattr(msg, "transforms", None):
        header = msg.transforms[0].header
    return None if header is None else header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def snapshot_bag(path: Path, out_stem: Path, keep_log_time: bool = True,
                 skip_topics: Sequence[str] = ("/diagnostics", "/rosout", "/parameter_events")) -> None:
    """Write <out_stem>.json (per topic: type, count, hashes) and <out_stem>.npz (decoded arrays).

    keep_log_time=False (recorded node outputs): messages are keyed and hashed by header stamp, in
    stamp order, and exact copies (a frame the paced player published again, e.g. its /tf) count once,
    because a recorder's receive times, arrival order and the player's re-sends are not behaviour."""
    store = _typestore()
    per_topic: Dict[str, List[Tuple[int, int, bytes, Any]]] = {}
    schemas: Dict[str, Tuple[str, str]] = {}
    for topic, typ, schema, t, raw in _iter_bag(path):
        if topic in skip_topics:
            continue
        msg = store.deserialize_cdr(raw, typ)
        key = t if keep_log_time else (_header_stamp_ns(msg) or t)
        per_topic.setdefault(topic, []).append((key, t, raw, msg))
        schemas[topic] = (typ, hashlib.sha256(schema).hexdigest())
    summary: Dict[str, Any] = {}
    arrays: Dict[str, np.ndarray] = {}
    for topic in sorted(per_topic):
        rows = per_topic[topic]
        if not keep_log_time:
            unique = {(r[0], r[2]): r for r in rows}
            rows = [unique[k] for k in sorted(unique)]
        meta: Dict[str, Any] = {}
        h = hashlib.sha256()
        for i, (key, _, raw, msg) in enumerate(rows):
            h.update(key.to_bytes(8, "little", signed=True) + hashlib.sha256(raw).digest())
            msg_arrays: Dict[str, np.ndarray] = {}
            msg_meta: Dict[str, Any] = {}
            _flatten(msg, "", msg_arrays, msg_meta)
            for k, a in msg_arrays.items():
                arrays[f"{topic.lstrip('/')}/{i:04d}/{k}"] = a
            for k, v in msg_meta.items():
                meta.setdefault(k, [])
                if v not in meta[k]:
                    meta[k].append(v)
        summary[topic] = {"type": schemas[topic][0], "schema_sha256": schemas[topic][1], "count": len(rows),
                          "keys_ns": [r[0] for r in rows], "payload_sha256": h.hexdigest(), "strings": meta}
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out_stem}.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    np.savez_compressed(f"{out_stem}.npz", **arrays)


# -------------------------------------------------------------------------------------- sections

def section_bags(out: Path, work: Path, env: Dict[str, str]) -> Dict[str, Any]:
    made: Dict[str, Any] = {}
    synth = work / "synth.mcap"
    _run(_vfdepth("bag", "from-synthetic", "--frames", "4", "--seed", "0", "--width", "120", "--height", "80",
                  "--out", str(synth), "--overwrite", "--no-progress"), work / "bag_synth.log", env)
    snapshot_bag(synth, out / "bags" / "synthetic")
    made["synthetic"] = str(synth)
    if not (DDAD_SAMPLE / "ddad.json").is_file():
        made["ddad"] = f"skipped: {DDAD_SAMPLE}/ddad.json absent"
        return made
    ddad = work / "ddad_sample"  # a writable copy: the shared sample is read-only, caches included
    if not ddad.exists():
        shutil.copytree(DDAD_SAMPLE, ddad)
        for d, _, files in os.walk(ddad):
            os.chmod(d, 0o755)
            for name in files:
                os.chmod(os.path.join(d, name), 0o644)
    for name, extra in (("ddad", []), ("ddad_resized", ["--resize", "484x304"]), ("ddad_compressed", ["--compressed"])):
        bag = work / f"{name}.mcap"
        _run(_vfdepth("bag", "from-ddad", str(ddad / "ddad.json"), "--split", "val", "--scene", "0", *extra,
                      "--out", str(bag), "--overwrite", "--no-progress"), work / f"bag_{name}.log", env)
        snapshot_bag(bag, out / "bags" / name)
        made[name] = str(bag)
    return made


def _file_hash(path: Path) -> str:
    """sha256 of a file; of an .npz its arrays (a zip member's time stamp is not behaviour)."""
    if path.suffix != ".npz":
        return hashlib.sha256(path.read_bytes()).hexdigest()
    h = hashlib.sha256()
    with np.load(path) as z:
        for k in sorted(z.files):
            a = z[k]
            h.update(f"{k}|{a.dtype}|{a.shape}".encode() + np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _tree_hashes(root: Path) -> Dict[str, str]:
    return {str(p.relative_to(root)): _file_hash(p) for p in sorted(root.rglob("*")) if p.is_file()}


def _weights_summary(ckpt: Path, out: Path) -> None:
    import torch

    ck = torch.load(ckpt, map_location="cpu", weights_only=False)
    state = ck["model"]
    hashes, sums = {}, {}
    total = hashlib.sha256()
    for k in sorted(state):
        t = state[k]
        if not torch.is_tensor(t):
            continue
        b = t.detach().cpu().contiguous().numpy().tobytes()
        hashes[k] = hashlib.sha256(b).hexdigest()
        total.update(k.encode() + b)
        sums[k] = np.array([t.double().sum().item(), t.double().abs().max().item() if t.numel() else 0.0])
    (out / "weights.json").write_text(json.dumps({"sha256_all": total.hexdigest(), "tensors": hashes,
                                                  "step": ck.get("step")}, indent=1, sort_keys=True))
    np.savez_compressed(out / "weights_sums.npz", **sums)


def section_train(out: Path, work: Path, env: Dict[str, str], steps: int) -> Path:
    data = work / "tiny_synth"
    _run(_vfdepth("synth", "--rig", "ddad", "--scenes", "2", "--val-scenes", "1", "--frames", "5", "--height", "64",
                  "--width", "96", "--seed", "0", "--out", str(data)), work / "synth.log", env)
    dst = out / "train"
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "dataset_files.json").write_text(json.dumps(_tree_hashes(data), indent=1, sort_keys=True))
    run = work / "train_run"
    shutil.rmtree(run, ignore_errors=True)
    log = _run([sys.executable, str(REPO / "training" / "train.py"), "--config_file", str(REPO / TINY),
                "--run_dir", str(run), "--no_progress", "--device", "cpu", "--log_level", "DEBUG",
                "--set", f"data.data_path={data / 'ddad.json'}", "--set", "training.val_every_epochs=0",
                "--set", f"training.max_steps={steps}"], work / "train.log", env)
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines() if line.strip()]
    losses = [{k: v for k, v in r.items() if k not in ("samples_per_s", "elapsed_s")} for r in rows]
    checks = [[int(s), float(c)] for s, c in STEP_RE.findall(log)]
    (dst / "losses.json").write_text(json.dumps({"per_step": losses, "param_checksums": checks}, indent=1))
    ckpt = run / "checkpoints" / "latest.pt"
    _weights_summary(ckpt, dst)
    return ckpt


def _slim_checkpoint(src: Path, dst: Path) -> None:
    """The predicting part of a training checkpoint (no optimizer state): small enough to keep."""
    import torch

    ck = torch.load(src, map_location="cpu", weights_only=False)
    for k in ("optimizer", "scheduler", "model_train"):
        ck.pop(k, None)
    torch.save(ck, dst)


def _read_until(proc: subprocess.Popen, pattern: str, count: int, timeout_s: float, head: List[str]) -> bool:
    """Read the process's output until `pattern` has appeared on `count` lines (True) or it ends/times out."""
    done = threading.Event()

    def reader() -> None:
        seen = 0
        for line in proc.stdout:
            head.append(line)
            seen += pattern in line
            if seen >= count:
                done.set()
                return
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    return done.wait(timeout_s) and sum(pattern in ln for ln in head) >= count


def _stop(proc: subprocess.Popen, timeout_s: float = 60.0) -> Tuple[Optional[int], str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        text, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        text, _ = proc.communicate()
    return proc.returncode, text or ""


def section_node(out: Path, work: Path, env: Dict[str, str], bag: Path, ckpt: Path, domain_id: int) -> Dict[str, Any]:
    dst = out / "node"
    dst.mkdir(parents=True, exist_ok=True)
    outputs = work / "node_outputs.mcap"
    if outputs.exists():
        outputs.unlink()
    rec = subprocess.Popen(_vfdepth("bag", "record", "-o", str(outputs), "--domain-id", str(domain_id), *NODE_TOPICS),
                           cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           stdin=subprocess.DEVNULL)
    head: List[str] = []
    if not _read_until(rec, "recording ", len(NODE_TOPICS), 120.0, head):
        _stop(rec)
        raise SnapshotError("vfdepth bag record did not subscribe to every topic:\n" + "".join(head)[-3000:])
    launch = subprocess.Popen(_vfdepth("launch", "--camera-set", "synthetic", "--checkpoint", str(ckpt),
                                       "--use-sim-time", "--no-respawn", "--set", "device=cpu",
                                       "--domain-id", str(domain_id)),
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        play_log = _run(_vfdepth("bag", "play", str(bag), "--clock", "--as-fast-as-possible", "--domain-id",
                                 str(domain_id), "--wait-for-topic", "camera_01/depth", "--wait-timeout", "600",
                                 "--match-timeout", "600", "--no-progress"), work / "play.log", env, timeout_s=1500)
    finally:
        time.sleep(2.0)  # the last frame's point cloud / virtual view may trail camera_01/depth
        rec_code, rec_log = _stop(rec)
        launch_code, launch_log = _stop(launch)
        (work / "record.log").write_text("".join(head) + rec_log)
        (work / "launch.log").write_text(launch_log)
    if rec_code != 0:
        raise SnapshotError(f"vfdepth bag record exited {rec_code}; see {work / 'record.log'}")
    snapshot_bag(outputs, dst / "outputs", keep_log_time=False)
    _run(_vfdepth("evaluate-bag", str(bag), str(outputs), "--json", str(dst / "evaluate.json")),
         work / "evaluate.log", env)
    evaluation = json.loads((dst / "evaluate.json").read_text())
    for key in ("input_bag", "outputs_bag"):  # temporary paths
        evaluation.pop(key, None)
    (dst / "evaluate.json").write_text(json.dumps(evaluation, indent=1, sort_keys=True))
    paced = [ln for ln in play_log.splitlines() if ln.startswith("paced by")]
    return {"launch_exit": launch_code, "record_exit": rec_code, "player": paced[-1] if paced else "?"}


# ---------------------------------------------------------------------------------------- compare

def _leaves(obj: Any, prefix: str = "") -> Iterator[Tuple[str, Any]]:
    if isinstance(obj, dict):
        for k in sorted(obj):
            yield from _leaves(obj[k], f"{prefix}{k}.")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{prefix}{i}.")
    else:
        yield prefix.rstrip("."), obj


def _diff(a: Any, b: Any, atol: float) -> Tuple[bool, float]:
    """(equal within atol, max abs difference; inf for a shape/type mismatch)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or (a.dtype.kind in "US") != (b.dtype.kind in "US"):
            return False, float("inf")
        if a.dtype.kind in "US" or a.size == 0:
            return bool(np.array_equal(a, b)), 0.0
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))
        nan_same = np.isnan(a.astype(np.float64)) == np.isnan(b.astype(np.float64))
        if not nan_same.all():
            return False, float("inf")
        m = float(np.nanmax(d)) if np.isfinite(d).any() or np.isnan(d).any() else 0.0
        m = 0.0 if np.isnan(m) else m
        return m <= atol, m
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        m = abs(float(a) - float(b))
        return m <= atol, m
    return a == b, (0.0 if a == b else float("inf"))


def _load(path: Path) -> Dict[str, Any]:
    if path.suffix == ".npz":
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    return dict(_leaves(json.loads(path.read_text())))


def compare(dir_a: Path, dir_b: Path, atol: float, show: int = 5) -> int:
    files = sorted({p.relative_to(d) for d in (dir_a, dir_b) for p in d.rglob("*")
                    if p.suffix in (".json", ".npz") and p.name != "manifest.json"})
    rows, details = [], []
    for rel in files:
        pa, pb = dir_a / rel, dir_b / rel
        if not (pa.is_file() and pb.is_file()):
            rows.append((str(rel), "-", "-", "-", f"only in {'A' if pa.is_file() else 'B'}"))
            continue
        a, b = _load(pa), _load(pb)
        keys = sorted(set(a) | set(b))
        bad, worst = [], 0.0
        for k in keys:
            if k not in a or k not in b:
                bad.append((k, "missing in " + ("A" if k not in a else "B")))
                continue
            same, m = _diff(a[k], b[k], atol)
            if m != float("inf"):
                worst = max(worst, m)
            if not same:
                bad.append((k, f"max|d|={m:.3g}"))
        rows.append((str(rel), str(len(keys)), str(len(bad)), f"{worst:.3g}", "equal" if not bad else "DIFFERENT"))
        details += [f"  {rel}: {k}: {why}" for k, why in bad[:show]] + ([f"  {rel}: ... {len(bad) - show} more"]
                                                                        if len(bad) > show else [])
    head = ("file", "items", "differ", "max|a-b|", "status")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    if details:
        print("\nfirst differences:")
        print("\n".join(details))
    differ = any(r[4] != "equal" for r in rows)
    print(f"\n{'DIFFERENT' if differ else 'EQUAL'} (atol={atol:g}, {len(rows)} files)")
    return 1 if differ else 0


# -------------------------------------------------------------------------------------------- main

def snapshot(out: Path, sections: Sequence[str], checkpoint: Optional[Path], train_steps: int,
             domain_id: int, keep_work: bool) -> int:
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="vfdepth_snapshot_"))
    env = _env(domain_id)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                capture_output=True, text=True).stdout.strip())
    manifest: Dict[str, Any] = {"repo": str(REPO), "commit": commit, "dirty": dirty, "sections": {},
                                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "work": str(work)}
    try:
        t0 = time.monotonic()
        bags: Dict[str, Any] = {}
        if "bags" in sections or "node" in sections:
            bags = section_bags(out, work, env) if "bags" in sections else {}
            if "synthetic" not in bags:
                synth = work / "synth.mcap"
                _run(_vfdepth("bag", "from-synthetic", "--frames", "4", "--seed", "0", "--width", "120", "--height",
                              "80", "--out", str(synth), "--overwrite", "--no-progress"), work / "bag_synth.log", env)
                bags["synthetic"] = str(synth)
            manifest["sections"]["bags"] = {"made": bags, "seconds": round(time.monotonic() - t0, 1)}
        trained = None
        if "train" in sections or ("node" in sections and checkpoint is None):
            t0 = time.monotonic()
            trained = section_train(out, work, env, train_steps)
            manifest["sections"]["train"] = {"steps": train_steps, "seconds": round(time.monotonic() - t0, 1)}
        if "node" in sections:
            t0 = time.monotonic()
            (out / "node").mkdir(parents=True, exist_ok=True)
            ckpt = out / "node" / "checkpoint.pt"
            if checkpoint is not None and checkpoint.resolve() != ckpt.resolve():
                shutil.copyfile(checkpoint, ckpt)
            elif checkpoint is None:
                _slim_checkpoint(trained, ckpt)
            info = section_node(out, work, env, Path(bags["synthetic"]), ckpt, domain_id)
            info["checkpoint_sha256"] = hashlib.sha256(ckpt.read_bytes()).hexdigest()
            info["seconds"] = round(time.monotonic() - t0, 1)
            manifest["sections"]["node"] = info
    except SnapshotError as exc:
        print(f"behaviour_snapshot: error: {exc}", file=sys.stderr)
        manifest["error"] = str(exc)
        return 1
    finally:
        manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
        if not keep_work and "error" not in manifest:
            shutil.rmtree(work, ignore_errors=True)
    print(f"snapshot written to {out}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out", type=Path, help="write a snapshot into this folder")
    mode.add_argument("--compare", nargs=2, type=Path, metavar=("DIR_A", "DIR_B"), help="compare two snapshots")
    ap.add_argument("--atol", type=float, default=0.0, help="largest absolute difference counted as equal (default 0)")
    ap.add_argument("--only", default="bags,train,node", help="comma-separated sections (default bags,train,node)")
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="model for the node section (e.g. DIR_A/node/checkpoint.pt; default: the train section's)")
    ap.add_argument("--train-steps", type=int, default=3)
    ap.add_argument("--domain-id", type=int, default=200 + os.getpid() % 30,
                    help="ROS_DOMAIN_ID (loopback DDS; default 200-229, outside the tests' 100-199)")
    ap.add_argument("--keep-work", action="store_true", help="keep the temporary work folder (bags, logs)")
    args = ap.parse_args(argv)
    if args.compare:
        for d in args.compare:
            if not d.is_dir():
                print(f"behaviour_snapshot: error: {d} is not a snapshot folder (make one with --out)", file=sys.stderr)
                return 2
        return compare(*args.compare, atol=args.atol)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - {"bags", "train", "node"}
    if unknown:
        print(f"behaviour_snapshot: error: unknown section(s) {sorted(unknown)} (choose from bags, train, node)",
              file=sys.stderr)
        return 2
    if args.checkpoint is not None and not args.checkpoint.is_file():
        print(f"behaviour_snapshot: error: --checkpoint {args.checkpoint} not found", file=sys.stderr)
        return 2
    return snapshot(args.out, sections, args.checkpoint, args.train_steps, args.domain_id, args.keep_work)


if __name__ == "__main__":
    sys.exit(main())
