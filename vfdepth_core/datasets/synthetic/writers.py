"""Write synthetic drives in the real on-disk formats, so the real loaders read them.

``write_ddad(drives, out_dir, splits)`` - DGP layout (what :mod:`vfdepth_core.datasets.ddad` reads)::

    out_dir/ddad.json                               scene_splits {"0": train, "1": val, "2": test}
    out_dir/<000000>/scene_<sha1>.json              samples + data (poses, file names, timestamps)
    out_dir/<000000>/calibration/<sha1>.json        names / intrinsics / extrinsics (LIDAR + cameras)
    out_dir/<000000>/rgb/<CAMERA>/<stamp>.png       lossless PNG images
    out_dir/<000000>/point_cloud/LIDAR/<stamp>.npz  key 'data', N x 4 (X, Y, Z, INTENSITY), vehicle frame
    out_dir/<000000>/depth/<CAMERA>/<stamp>.npz     beyond DGP: exact dense depth, key 'depth' (H, W) metres
    out_dir/masks/0/<CAMERA>_mask.png + masks/mask_sets.json   the rig's self-occlusion masks

``<stamp>`` is the frame's time in units of 100 ns (17 digits, like DDAD's file names).

``write_nuscenes(drives, dataroot, version)`` - nuScenes layout (13 tables + map PNGs; key frames every
``keyframe_every`` frames in samples/, the others as sweeps in sweeps/, like nuScenes' 2 Hz key frames
among 10-12 Hz sweeps), dense depth in ``depth/<CHANNEL>/<file stem>.npz``, masks in ``masks/<CHANNEL>_mask.png``,
scene lists in ``splits/{train,val,test}.txt``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
from PIL import Image

from vfdepth_core.datasets.poses import matrix_to_quat_pose
from vfdepth_core.datasets.synthetic.drive import Drive

logger = logging.getLogger(__name__)

SPLIT_IDS = {"train": "0", "val": "1", "test": "2"}


def _sha1(*parts) -> str:
    return hashlib.sha1("/".join(str(p) for p in parts).encode()).hexdigest()


def _iso(stamp_ns: int) -> str:
    dt = datetime.fromtimestamp(stamp_ns // 1_000_000_000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{(stamp_ns % 1_000_000_000) // 1000:06d}Z"


def _save_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, compress_level=1)


def _save_depth(path: Path, depth: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, depth=depth.astype(np.float32))


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _split_list(splits: Optional[Sequence[str]], i: int) -> str:
    s = "train" if splits is None else splits[i]
    if s not in SPLIT_IDS:
        raise ValueError(f"split of drive {i} must be train, val or test, got {s!r}")
    return s


def _pose_json(T: np.ndarray) -> dict:
    r, t = matrix_to_quat_pose(T)
    return {"rotation": r, "translation": t}


def write_masks(mask: np.ndarray, camera_names: Sequence[str], folder: Path) -> None:
    """Self-occlusion masks (N, H, W) bool (True = valid) as <folder>/<CAMERA>_mask.png (white = valid)."""
    for n, cam in enumerate(camera_names):
        _save_png(folder / f"{cam}_mask.png", (mask[n].astype(np.uint8) * 255))


def write_ddad(drives: Iterable[Drive], out_dir: str | Path, splits: Optional[Sequence[str]] = None,
               write_depth: bool = True, progress=None) -> Path:
    """Write drives (any iterable; each is written and can be dropped before the next is made) in the
    DGP layout. `splits`: 'train'/'val'/'test' per drive (default all train). Returns the ddad.json path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scene_files: Dict[str, List[str]] = {"0": [], "1": [], "2": []}
    mask_sets: Dict[str, str] = {}
    mask_written = False
    for i, drive in enumerate(drives):
        sid = SPLIT_IDS[_split_list(splits, i)]
        scene_name = f"{i:06d}"
        sdir = out / scene_name
        cams = list(drive.camera_names)
        names = ["LIDAR"] + cams
        H, W = drive.hw
        calib = {
            "names": names,
            "intrinsics": [{"fx": 0.0, "fy": 0.0, "cx": 0.0, "cy": 0.0, "skew": 0.0}] + [
                {"fx": float(K[0, 0]), "fy": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2]),
                 "skew": float(K[0, 1])} for K in drive.K],
            "extrinsics": [_pose_json(np.eye(4))] + [_pose_json(T) for T in drive.T_ego_cam],
        }
        calib_key = _sha1("calib", drive.name, json.dumps(calib, sort_keys=True))
        _write_json(sdir / "calibration" / f"{calib_key}.json", calib)
        samples, data = [], []
        keys_prev: Dict[str, str] = {}
        for fi, fr in enumerate(drive.frames):
            stem = f"{fr.stamp_ns // 100:017d}"
            ts = _iso(fr.stamp_ns)
            datum_keys = []
            lid_file = f"point_cloud/LIDAR/{stem}.npz"
            (sdir / lid_file).parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(sdir / lid_file, data=fr.lidar.astype(np.float32))
            entries = [("LIDAR", {"point_cloud": {"filename": lid_file, "pose": _pose_json(fr.T_world_ego),
                                                  "point_format": ["X", "Y", "Z", "INTENSITY"], "point_fields": [],
                                                  "annotations": {}, "metadata": {}}})]
            for n, cam in enumerate(cams):
                img_file = f"rgb/{cam}/{stem}.png"
                _save_png(sdir / img_file, fr.images[n])
                if write_depth:
                    _save_depth(sdir / "depth" / cam / f"{stem}.npz", fr.depth[n])
                entries.append((cam, {"image": {"filename": img_file, "height": H, "width": W, "channels": 3,
                                                "pose": _pose_json(fr.T_world_ego @ drive.T_ego_cam[n]),
                                                "annotations": {}, "metadata": {}}}))
            for name, datum in entries:
                key = _sha1(drive.name, name, fr.stamp_ns)
                datum_keys.append(key)
                rec = {"id": {"log": drive.name, "name": name, "timestamp": ts, "index": str(fi)},
                       "key": key, "datum": datum, "prev_key": keys_prev.get(name, ""), "next_key": ""}
                if name in keys_prev:
                    for d in reversed(data):
                        if d["key"] == keys_prev[name]:
                            d["next_key"] = key
                            break
                keys_prev[name] = key
                data.append(rec)
            samples.append({"id": {"log": drive.name, "name": "", "timestamp": ts, "index": str(fi)},
                            "datum_keys": datum_keys, "calibration_key": calib_key, "metadata": {}})
            if progress is not None:
                progress()
        scene = {"name": drive.name, "description": f"vfdepth synthetic drive ({drive.rig} rig)", "log": drive.name,
                 "samples": samples, "data": data, "metadata": {}, "ontologies": {}}
        scene_file = f"scene_{_sha1('scene', drive.name, len(samples))}.json"
        _write_json(sdir / scene_file, scene)
        scene_files[sid].append(f"{scene_name}/{scene_file}")
        if not mask_written:
            write_masks(drive.mask, cams, out / "masks" / "0")
            mask_written = True
        mask_sets[scene_name] = "0"
    _write_json(out / "masks" / "mask_sets.json", mask_sets)
    top = {"metadata": {"name": "vfdepth_synthetic", "description": "synthetic surround-view drives (vfdepth synth)",
                        "version": "1", "creation_date": datetime.now(timezone.utc).strftime("%Y-%m-%d")},
           "scene_splits": {k: {"filenames": v} for k, v in scene_files.items() if v}}
    _write_json(out / "ddad.json", top)
    logger.info("wrote %s", out / "ddad.json")
    return out / "ddad.json"


# --------------------------------------------------------------------------------------------------
# nuScenes


_CATEGORIES = ["vehicle.car", "movable_object.barrier", "static_object.bicycle_rack"]
_VISIBILITY = [("1", "v0-40"), ("2", "v40-60"), ("3", "v60-80"), ("4", "v80-100")]


def write_nuscenes(drives: Iterable[Drive], dataroot: str | Path, version: str = "v1.0-mini",
                   splits: Optional[Sequence[str]] = None, keyframe_every: int = 5, write_depth: bool = True,
                   progress=None) -> Path:
    """Write drives as a nuScenes dataroot (all 13 tables + map files) that ``NuScenes(version, dataroot)``
    opens. Returns the table folder."""
    root = Path(dataroot)
    tables: Dict[str, list] = {k: [] for k in ("category", "attribute", "visibility", "instance", "sensor",
                                                "calibrated_sensor", "ego_pose", "log", "scene", "sample",
                                                "sample_data", "sample_annotation", "map")}
    tables["category"] = [{"token": _sha1("cat", c), "name": c, "description": c} for c in _CATEGORIES]
    tables["attribute"] = [{"token": _sha1("attr", "vehicle.parked"), "name": "vehicle.parked", "description": ""}]
    tables["visibility"] = [{"token": t, "level": lv, "description": lv} for t, lv in _VISIBILITY]
    sensors: Dict[str, str] = {}
    split_names: Dict[str, List[str]] = {"train": [], "val": [], "test": []}
    map_token = _sha1("map", "synthetic")
    mask_written = False
    for i, drive in enumerate(drives):
        split = _split_list(splits, i)
        scene_name = f"scene-{i:04d}"
        split_names[split].append(scene_name)
        log_token = _sha1("log", drive.name, i)
        tables["log"].append({"token": log_token, "logfile": drive.name, "vehicle": "synthetic",
                              "date_captured": _iso(drive.frames[0].stamp_ns)[:10], "location": "synthetic-town"})
        channels = list(drive.camera_names) + ["LIDAR_TOP"]
        calib_tokens = {}
        for n, ch in enumerate(channels):
            if ch not in sensors:
                sensors[ch] = _sha1("sensor", ch)
                tables["sensor"].append({"token": sensors[ch], "channel": ch,
                                         "modality": "lidar" if ch.startswith("LIDAR") else "camera"})
            if ch == "LIDAR_TOP":
                T = np.eye(4)
                T[:3, 3] = (0.0, 0.0, 1.9)
                intr: list = []
            else:
                T = drive.T_ego_cam[n]
                intr = drive.K[n].tolist()
            r, t = matrix_to_quat_pose(T)
            calib_tokens[ch] = _sha1("calib", drive.name, i, ch)
            tables["calibrated_sensor"].append({"token": calib_tokens[ch], "sensor_token": sensors[ch],
                                                "translation": [t["x"], t["y"], t["z"]],
                                                "rotation": [r["qw"], r["qx"], r["qy"], r["qz"]],
                                                "camera_intrinsic": intr})
        lidar_mount = np.array([0.0, 0.0, 1.9], dtype=np.float32)
        key_idx = list(range(0, len(drive.frames), keyframe_every))
        sample_tokens = [_sha1("sample", drive.name, i, k) for k in key_idx]
        scene_token = _sha1("scene", drive.name, i)
        for j, k in enumerate(key_idx):
            tables["sample"].append({"token": sample_tokens[j], "timestamp": drive.frames[k].stamp_ns // 1000,
                                     "prev": sample_tokens[j - 1] if j > 0 else "",
                                     "next": sample_tokens[j + 1] if j + 1 < len(key_idx) else "",
                                     "scene_token": scene_token})
        tables["scene"].append({"token": scene_token, "log_token": log_token, "nbr_samples": len(key_idx),
                                "first_sample_token": sample_tokens[0], "last_sample_token": sample_tokens[-1],
                                "name": scene_name, "description": f"vfdepth synthetic drive ({drive.rig} rig)"})
        H, W = drive.hw
        sd_tokens = {ch: [_sha1("sd", drive.name, i, ch, f) for f in range(len(drive.frames))] for ch in channels}
        for f, fr in enumerate(drive.frames):
            us = fr.stamp_ns // 1000
            is_key = f % keyframe_every == 0
            # the sample a sweep belongs to: its key frame, else the next key frame (the last one at the end)
            j = min(-(-f // keyframe_every), len(key_idx) - 1)
            folder = "samples" if is_key else "sweeps"
            for n, ch in enumerate(channels):
                ep_token = _sha1("ego", drive.name, i, ch, f)
                r, t = matrix_to_quat_pose(fr.T_world_ego)
                tables["ego_pose"].append({"token": ep_token, "timestamp": us, "rotation": [r["qw"], r["qx"], r["qy"], r["qz"]],
                                           "translation": [t["x"], t["y"], t["z"]]})
                stem = f"{drive.name}__{ch}__{us}"
                if ch == "LIDAR_TOP":
                    fn = f"{folder}/{ch}/{stem}.pcd.bin"
                    pts = np.zeros((len(fr.lidar), 5), dtype=np.float32)
                    pts[:, :3] = fr.lidar[:, :3] - lidar_mount
                    pts[:, 3] = fr.lidar[:, 3] * 255.0
                    (root / fn).parent.mkdir(parents=True, exist_ok=True)
                    pts.tofile(root / fn)
                    fmt, h, w = "pcd", 0, 0
                else:
                    fn = f"{folder}/{ch}/{stem}.png"
                    _save_png(root / fn, fr.images[n])
                    if write_depth:
                        _save_depth(root / "depth" / ch / f"{stem}.npz", fr.depth[n])
                    fmt, h, w = "png", H, W
                tables["sample_data"].append({
                    "token": sd_tokens[ch][f], "sample_token": sample_tokens[j], "ego_pose_token": ep_token,
                    "calibrated_sensor_token": calib_tokens[ch], "timestamp": us, "fileformat": fmt,
                    "is_key_frame": is_key, "height": h, "width": w, "filename": fn,
                    "prev": sd_tokens[ch][f - 1] if f > 0 else "",
                    "next": sd_tokens[ch][f + 1] if f + 1 < len(drive.frames) else ""})
            if progress is not None:
                progress()
        if not mask_written:
            write_masks(drive.mask, drive.camera_names, root / "masks")
            mask_written = True
    tables["map"] = [{"token": map_token, "log_tokens": [lg["token"] for lg in tables["log"]],
                      "category": "semantic_prior", "filename": f"maps/{map_token}.png"}]
    _save_png(root / "maps" / f"{map_token}.png", np.zeros((64, 64, 3), np.uint8) + 255)
    for name, rows in tables.items():
        _write_json(root / version / f"{name}.json", rows)
    for split, names in split_names.items():
        (root / "splits").mkdir(parents=True, exist_ok=True)
        (root / "splits" / f"{split}.txt").write_text("".join(n + "\n" for n in names))
    logger.info("wrote nuScenes %s tables to %s", version, root / version)
    return root / version
