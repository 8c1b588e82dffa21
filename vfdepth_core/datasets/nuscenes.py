"""nuScenes surround-view samples through the nuscenes-devkit.

* A sample is a key frame: the six ``CAM_*`` sample_data of one ``sample`` (config names ``cam_front``
  -> channel ``CAM_FRONT``).
* Context frames -1/+1 follow each camera's own sample_data ``prev``/``next`` (sweeps, about 12 Hz);
  training samples lacking them are skipped.
* ``T_ego_cam`` comes from each camera's ``calibrated_sensor`` (translation, rotation w,x,y,z).
* nuScenes stamps every sample_data with its own ``ego_pose`` (the cameras fire tens of ms apart as the
  LIDAR sweeps). The sample dict has one vehicle pose per frame: ``T_world_ego[f]`` is the ego pose of the
  FIRST configured camera (the front camera) at frame f. Depth ground truth does not use that
  approximation: LIDAR_TOP points (``.pcd.bin``, float32 x5) go lidar -> ego (LIDAR time) -> world ->
  ego (that camera's time) -> camera.
* Splits: a text file of scene names or of sample tokens (the paper's ``dataset/nuscenes/{train,val}.txt``:
  those samples only, in the file's order) (``data.train_split`` / ``data.val_split``), else
  ``<dataroot>/splits/<split>.txt`` when present (written by the synthetic writer), else the devkit's
  official split for the version when its scenes are present, else a deterministic split of the sorted
  scene names (every fifth scene is val, at least one when there are two or more).
* Self-occlusion masks: one static mask per camera, ``<mask_path>/<CAM_X>_mask.png`` (or a set folder).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from vfdepth_core.datasets.common import DatasetError, FrameRef, SampleRef, SurroundDataset
from vfdepth_core.datasets.poses import invert_np, quat_pose_to_matrix

logger = logging.getLogger(__name__)

_TABLES = ("category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor", "ego_pose", "log",
           "scene", "sample", "sample_data", "sample_annotation", "map")


def _pose(rec: dict) -> np.ndarray:
    r, t = rec["rotation"], rec["translation"]
    return quat_pose_to_matrix({"qw": r[0], "qx": r[1], "qy": r[2], "qz": r[3]}, {"x": t[0], "y": t[1], "z": t[2]})


PCD_BIN_POINT_BYTES = 5 * 4  # x, y, z, intensity, ring as little-endian float32


def read_pcd_bin(path: str) -> np.ndarray:
    """nuScenes LIDAR .pcd.bin (float32 x5: x, y, z, intensity, ring) -> (P, 4) float32 in the sensor frame."""
    if not os.path.isfile(path):
        raise DatasetError(f"LIDAR file not found: {path}")
    size = os.path.getsize(path)
    if size % PCD_BIN_POINT_BYTES:
        raise DatasetError(f"LIDAR file truncated or not float32 x5: {path} ({size} bytes, not a multiple of "
                           f"{PCD_BIN_POINT_BYTES}); re-download it")
    return np.fromfile(path, dtype="<f4").reshape(-1, 5)[:, :4]


def stamp_ns(record: dict) -> int:
    """A sample_data's or ego_pose's stamp in ns (nuScenes stores microseconds)."""
    return int(record["timestamp"]) * 1000


def ego_pose(nusc, sd: dict) -> Tuple[int, np.ndarray]:
    """The vehicle pose at a sample_data's stamp (its own ego_pose record): (stamp_ns, T_world_ego (4, 4))."""
    ep = nusc.get("ego_pose", sd["ego_pose_token"])
    return stamp_ns(ep), _pose(ep)


def sensor_extrinsic(nusc, sd: dict) -> np.ndarray:
    """T_ego_sensor (4, 4) of a sample_data's calibrated_sensor."""
    return _pose(nusc.get("calibrated_sensor", sd["calibrated_sensor_token"]))


def camera_intrinsic(nusc, sd: dict, channel: str, tables: Path) -> np.ndarray:
    """K (3, 3) of a camera sample_data's calibrated_sensor; DatasetError naming the table when not 3x3."""
    K = np.asarray(nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])["camera_intrinsic"], dtype=np.float64)
    if K.shape != (3, 3):
        raise DatasetError(f"{tables}/calibrated_sensor.json: {channel}'s camera_intrinsic is not 3x3 (shape {K.shape})")
    return K


def channel_chain(nusc, scene: dict, channel: str, sweeps: bool = True) -> Iterator[dict]:
    """A channel's sample_data of a scene in time order, from its data of the first sample up to and
    including its data of the last one (a camera of the last key frame may fire after that sample's
    LIDAR time); only key frames unless `sweeps`."""
    first = nusc.get("sample", scene["first_sample_token"])
    last = nusc.get("sample", scene["last_sample_token"])
    end_us = last["timestamp"]
    if channel in last["data"]:
        end_us = max(end_us, nusc.get("sample_data", last["data"][channel])["timestamp"])
    sd = nusc.get("sample_data", first["data"][channel])
    while sd is not None and sd["timestamp"] <= end_us:
        if sweeps or sd["is_key_frame"]:
            yield sd
        sd = nusc.get("sample_data", sd["next"]) if sd["next"] else None


_TOKEN = re.compile(r"[0-9a-f]{32,64}")  # nuScenes tokens: 32 hex digits


def _read_split_file(path: str) -> List[str]:
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"scene split file not found: {p} (fix data.train_split / data.val_split)")
    return [ln.strip() for ln in p.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def open_nuscenes(dataroot: str | Path, version: str):
    """NuScenes(version, dataroot) with the devkit's failures turned into one-line DatasetErrors."""
    root = Path(dataroot)
    tdir = root / version
    if not tdir.is_dir():
        raise DatasetError(f"nuScenes table folder not found: {tdir} (fix data.data_path or data.version)")
    missing = [t for t in _TABLES if not (tdir / f"{t}.json").is_file()]
    if missing:
        raise DatasetError(f"{tdir}: missing nuScenes table(s) {', '.join(t + '.json' for t in missing)}")
    from nuscenes.nuscenes import NuScenes

    import json

    try:
        return NuScenes(version=version, dataroot=str(root), verbose=False)
    except AssertionError as exc:  # e.g. a missing map file
        raise DatasetError(f"{root}: nuscenes-devkit cannot open {version}: {exc}") from None
    except Exception as exc:  # broken tables: name the first one that does not parse, else the folder
        for t in _TABLES:
            try:
                json.loads((tdir / f"{t}.json").read_text())
            except (ValueError, UnicodeDecodeError) as jexc:
                raise DatasetError(f"{tdir / (t + '.json')}: broken JSON ({jexc})") from None
        raise DatasetError(f"{tdir}: malformed nuScenes tables ({type(exc).__name__}: {exc})") from None


class NuScenesDataset(SurroundDataset):
    """Surround-view samples from a nuScenes dataroot (see the module docstring)."""

    def __init__(self, dataroot: str | Path, version: str, split: str, cameras: Sequence[str], height: int, width: int,
                 frame_ids: Sequence[int] = (0, -1, 1), with_depth: bool = False,
                 color_jitter: Optional[Sequence[float]] = None, mask_path: Optional[str] = None,
                 gt_cache: Optional[str] = None, skip_broken: bool = False, split_file: Optional[str] = None,
                 nusc=None, gt_projection: str = "paper"):
        super().__init__(height=height, width=width, frame_ids=frame_ids, with_depth=with_depth,
                         color_jitter=color_jitter, mask_path=mask_path, gt_cache=gt_cache, skip_broken=skip_broken,
                         gt_projection=gt_projection)
        self.data_root = Path(dataroot)
        self.tables = self.data_root / version
        self.cache_settings = f"nuscenes|{version}"
        self.cameras = [c.upper() for c in cameras]
        self.nusc = nusc if nusc is not None else open_nuscenes(dataroot, version)
        try:
            known = {s["channel"] for s in self.nusc.sensor}
            by_name = {s["name"]: s for s in self.nusc.scene}
        except (KeyError, TypeError) as exc:
            raise DatasetError(f"{self.data_root / version}: malformed sensor/scene table ({exc})") from None
        unknown = [c for c in self.cameras if c not in known]
        if unknown:
            raise DatasetError(f"{self.data_root / version}: unknown camera channel(s) {unknown}; sensors are "
                               f"{sorted(known)} (fix data.cameras)")
        names = self._split_scenes(split, version, split_file)
        # The paper's split files (its dataset/nuscenes/{train,val}.txt) list sample tokens, not scenes: keep
        # those samples, in the file's order (evaluation batches pool consecutive samples).
        self.sample_order: Optional[Dict[str, int]] = None
        if names and all(n not in by_name and _TOKEN.fullmatch(n.split()[0]) for n in names):
            names, self.sample_order = self._scenes_of_tokens([n.split()[0] for n in names], split_file)
        absent = [n for n in names if n not in by_name]
        if absent:
            raise DatasetError(f"split '{split}' names scene(s) absent from {version}: {absent[:5]}")
        for n in names:
            try:
                self._add_scene(by_name[n])
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                if isinstance(exc, DatasetError):
                    raise
                raise DatasetError(f"{self.data_root / version}: malformed nuScenes records for scene {n} "
                                   f"({type(exc).__name__}: {exc})") from None
        if self.sample_order is not None:
            self.refs.sort(key=lambda r: self.sample_order[r.sample])
        logger.info("nuScenes %s: %d samples from %d scenes", split, len(self.refs), len(names))

    def _scenes_of_tokens(self, tokens: List[str], split_file: Optional[str]) -> Tuple[List[str], Dict[str, int]]:
        """Scene names (first-seen order) of a sample-token split file, and each token's position in it."""
        scene_name = {s["token"]: s["name"] for s in self.nusc.scene}
        names: Dict[str, None] = {}
        for t in tokens:
            try:
                names[scene_name[self.nusc.get("sample", t)["scene_token"]]] = None
            except KeyError:
                raise DatasetError(f"{split_file}: sample token {t} is not in this nuScenes version "
                                   f"(fix data.version or the split file)") from None
        return list(names), {t: i for i, t in enumerate(tokens)}

    def _split_scenes(self, split: str, version: str, split_file: Optional[str]) -> List[str]:
        if split_file:
            return _read_split_file(split_file)
        auto = self.data_root / "splits" / f"{split}.txt"
        if auto.is_file():
            return _read_split_file(str(auto))
        all_names = sorted(s["name"] for s in self.nusc.scene)
        try:
            from nuscenes.utils.splits import create_splits_scenes

            official = create_splits_scenes(verbose=False)
            key = {"v1.0-mini": {"train": "mini_train", "val": "mini_val"}}.get(version, {"train": "train", "val": "val"})
            official = set(official[key[split]]) if split in key else set()
            names = [n for n in all_names if n in official]
            if names:
                return names
        except Exception:  # pragma: no cover - devkit without splits
            pass
        val = [n for i, n in enumerate(all_names) if i % 5 == 4]
        if not val and len(all_names) > 1:
            val = [all_names[-1]]
        if split == "val":
            return val
        if split == "train":
            return [n for n in all_names if n not in val]
        raise DatasetError(f"no '{split}' split for {version}: pass a scene list file (data.val_split)")

    def _read_lidar_file(self, path: str) -> np.ndarray:
        return read_pcd_bin(path)

    def _add_scene(self, scene: dict) -> None:
        nusc = self.nusc
        tok = scene["first_sample_token"]
        k = 0
        while tok:
            sample = nusc.get("sample", tok)
            tok = sample["next"]
            k += 1
            if self.sample_order is not None and sample["token"] not in self.sample_order:
                continue
            missing = [c for c in self.cameras if c not in sample["data"]]
            if missing:
                logger.warning("scene %s sample %s has no %s; skipped", scene["name"], sample["token"], missing)
                continue
            sd0 = [nusc.get("sample_data", sample["data"][c]) for c in self.cameras]
            frames: Dict[int, FrameRef] = {}
            ok = True
            for f in self.frame_ids:
                sds = []
                for sd in sd0:
                    cur = sd
                    for _ in range(abs(f)):
                        nxt = cur["next"] if f > 0 else cur["prev"]
                        if not nxt:
                            cur = None
                            break
                        cur = nusc.get("sample_data", nxt)
                    if cur is None:
                        ok = False
                        break
                    sds.append(cur)
                if not ok:
                    break
                frames[f] = FrameRef([str(self.data_root / s["filename"]) for s in sds], [stamp_ns(s) for s in sds],
                                     ego_pose(nusc, sds[0])[1])
            if not ok:
                continue
            K = np.stack([camera_intrinsic(nusc, sd, c, self.tables) for c, sd in zip(self.cameras, sd0)])
            T_ego_cam = np.stack([sensor_extrinsic(nusc, sd) for sd in sd0])
            lidar_path, fn = None, None
            if "LIDAR_TOP" in sample["data"]:
                lsd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
                lidar_path = str(self.data_root / lsd["filename"])
                T_world_lidar = ego_pose(nusc, lsd)[1] @ sensor_extrinsic(nusc, lsd)
                T_world_egoc = [ego_pose(nusc, sd)[1] for sd in sd0]

                def T_cam_lidar(n: int, T_ec=T_ego_cam, T_wc=T_world_egoc, T_wl=T_world_lidar) -> np.ndarray:
                    return invert_np(T_ec[n]) @ invert_np(T_wc[n]) @ T_wl  # via the vehicle at the camera's time

                fn = self._lidar_in_cam(lidar_path, T_cam_lidar)
            self.refs.append(SampleRef(scene=scene["name"], sample=sample["token"], frames=frames, K=K,
                                       T_ego_cam=T_ego_cam, lidar_in_cam=fn, lidar_path=lidar_path))


def nuscenes_from_config(cfg, split: str, frame_ids: Optional[Sequence[int]] = None,
                         skip_broken: bool = False) -> NuScenesDataset:
    """NuScenesDataset from a Config: data.data_path = dataroot, data.version, data.train_split/val_split."""
    d, t = cfg.data, cfg.training
    train = split == "train"
    reqs = d.train_requirements if train else d.val_requirements
    if frame_ids is None:
        frame_ids = t.frame_ids if train else (0,)
    mask_path = d.mask_path
    if mask_path is None and (Path(d.data_path) / "masks").is_dir():
        mask_path = str(Path(d.data_path) / "masks")
    return NuScenesDataset(
        d.data_path, d.version, split, d.cameras, t.height, t.width, frame_ids=frame_ids,
        with_depth="gt_depth" in reqs, color_jitter=t.color_jitter if train else None,
        mask_path=mask_path if "mask" in reqs else None, gt_cache=d.gt_cache, skip_broken=skip_broken,
        split_file=d.train_split if train else d.val_split, gt_projection=d.gt_projection,
    )
