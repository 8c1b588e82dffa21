"""DDAD (TRI's DGP on-disk format) read with plain json/numpy.

Format facts (checked against the real scene in ``shared/data/ddad_sample``):

* ``ddad.json``: ``scene_splits`` {"0": train, "1": val, ...} -> ``filenames`` of scene JSONs, relative
  to the folder of ``ddad.json``.
* scene JSON: ``samples`` (in time order; each with ``datum_keys`` and ``calibration_key``) and ``data``
  (each with ``key``, ``id.name`` = sensor name, ``id.timestamp`` ISO-8601, and ``datum.image`` or
  ``datum.point_cloud`` holding ``filename`` (relative to the scene folder) and ``pose``).
* ``calibration/<calibration_key>.json``: parallel lists ``names``, ``intrinsics`` (fx, fy, cx, cy, skew),
  ``extrinsics`` (translation x,y,z; rotation qw,qx,qy,qz) = vehicle-from-sensor (T_ego_cam).
* image ``pose`` = world-from-camera; LIDAR ``pose`` = world-from-vehicle (the LIDAR extrinsic is the
  identity); LIDAR ``.npz`` key ``data``: N x 4 (X, Y, Z, INTENSITY) in the vehicle frame.

Context frames -1/+1 are the previous/next sample of the scene (10 Hz in DDAD). Depth ground truth is the
LIDAR projected into each camera at network resolution: points go to the world with the LIDAR pose and
into the camera with the inverse of that image's own pose (exact even though camera and LIDAR fire at
slightly different times). Config camera names (``camera_01``) are the upper-cased sensor names.

Vehicle pose (dgp's convention: a datum's pose times its sensor's extrinsic^-1): a frame's ``T_world_ego``
is the first camera's, at the image stamp; the LIDAR sweep, a few ms later, has its own. :func:`read_scene`
is the one DDAD reader: the training dataset and the bag converter (``vfdepth_ros.bag.convert``) use it.

Timestamps: ``stamp_ns`` is ``id.timestamp`` in ns when it fits in int64; DGP's unit-test scene writes
timestamps 10x too large (year 2464), and then the file name (17 digits, units of 100 ns) is used.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from vfdepth_core.datasets.common import DatasetError, FrameRef, SampleRef, SurroundDataset
from vfdepth_core.datasets.files import read_json
from vfdepth_core.datasets.poses import invert_np, quat_pose_to_matrix

logger = logging.getLogger(__name__)

SPLIT_IDS = {"train": "0", "val": "1", "test": "2"}
_INT64_MAX = 2**63 - 1


def parse_timestamp_ns(iso: str) -> int:
    """'2019-06-27T14:04:10.027900Z' -> ns since the epoch (Python int, may exceed int64)."""
    s = iso.rstrip("Z")
    if "." in s:
        main, frac = s.split(".", 1)
    else:
        main, frac = s, "0"
    dt = datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    secs = (dt - epoch).days * 86400 + (dt - epoch).seconds
    return secs * 1_000_000_000 + int((frac + "000000000")[:9])


def datum_stamp_ns(datum: dict, filename: str) -> int:
    """A DGP datum's stamp in ns since the epoch: ``id.timestamp`` when it fits int64, else the 17-digit
    file name in units of 100 ns (see the module docstring), else 0."""
    ns = parse_timestamp_ns(datum["id"]["timestamp"]) if datum.get("id", {}).get("timestamp") else None
    if ns is not None and 0 <= ns <= _INT64_MAX:
        return ns
    stem = Path(filename).stem
    if stem.isdigit():
        return int(stem) * 100
    return 0


def read_lidar_npz(path: str) -> np.ndarray:
    """DGP point cloud .npz (key ``data``, N x >=3) -> (N, 4) float32; DatasetError naming the file."""
    if not os.path.isfile(path):
        raise DatasetError(f"LIDAR file not found: {path}")
    try:
        with np.load(path) as z:
            if "data" not in z.files:
                raise DatasetError(f"{path}: no key 'data' in LIDAR .npz (keys: {z.files})")
            pts = np.asarray(z["data"])
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(f"LIDAR file unreadable: {path} ({exc})") from None
    if pts.ndim != 2 or pts.shape[1] < 3 or pts.dtype.kind not in "fiu":
        raise DatasetError(f"{path}: LIDAR 'data' must be a numeric N x 4 array (X, Y, Z, INTENSITY), got "
                           f"{pts.dtype} {pts.shape}")
    if pts.shape[1] < 4:
        pts = np.concatenate([pts, np.zeros((len(pts), 1), pts.dtype)], 1)
    return pts[:, :4].astype(np.float32)


def _intrinsics_matrix(d: dict) -> np.ndarray:
    return np.array([[d["fx"], d.get("skew", 0.0), d["cx"]], [0.0, d["fy"], d["cy"]], [0.0, 0.0, 1.0]],
                    dtype=np.float64)


def read_scene_files(data_path: str | Path, split: str) -> List[str]:
    """The scene JSON files (relative to the folder of ``ddad.json``) of a split, validated."""
    data_path = Path(data_path)
    if split not in SPLIT_IDS:
        raise DatasetError(f"unknown split '{split}' (use train, val or test)")
    top = read_json(data_path, "DDAD dataset file (ddad.json)")
    splits = top.get("scene_splits") if isinstance(top, dict) else None
    if not isinstance(splits, dict):
        raise DatasetError(f"{data_path}: no 'scene_splits' (is this a DGP ddad.json?)")
    sid = SPLIT_IDS[split]
    if sid not in splits:
        raise DatasetError(f"{data_path}: scene_splits has no split \"{sid}\" ({split}); it has {sorted(splits)}")
    files = splits[sid].get("filenames", []) if isinstance(splits[sid], dict) else None
    if not files or not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise DatasetError(f"{data_path}: split \"{sid}\" ({split}) lists no scene files")
    return files


def read_calibration(path: str | Path, cameras: Sequence[str]) -> Tuple[np.ndarray, np.ndarray, Dict[str, np.ndarray]]:
    """A DGP calibration file -> K (N, 3, 3) and T_ego_cam (N, 4, 4) of `cameras` (sensor names), and
    T_ego_sensor of every sensor it names; DatasetError naming the file when it is malformed or lacks a camera."""
    c = read_json(path, "calibration file")
    names = c.get("names") if isinstance(c, dict) else None
    if not isinstance(names, list):
        raise DatasetError(f"{path}: no 'names' list (is this a DGP calibration file?)")
    for need in ("intrinsics", "extrinsics"):
        if not isinstance(c.get(need), list) or len(c[need]) != len(names):
            raise DatasetError(f"{path}: '{need}' must be a list with one entry per name ({len(names)})")
    missing = [cam for cam in cameras if cam not in names]
    if missing:
        raise DatasetError(f"{path}: unknown camera(s) {missing}: this calibration file lacks them; "
                           f"it has {names} (fix the camera list)")
    try:
        T_all = {n: quat_pose_to_matrix(e["rotation"], e["translation"]) for n, e in zip(names, c["extrinsics"])}
        K = np.stack([_intrinsics_matrix(c["intrinsics"][names.index(cam)]) for cam in cameras])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DatasetError(f"{path}: malformed intrinsics/extrinsics entry ({type(exc).__name__}: {exc})") from None
    return K, np.stack([T_all[cam] for cam in cameras]), T_all


@dataclass
class DDADSample:
    """One sample of a DGP scene as its JSON says (nothing else read): per camera, in rig order, the image
    file, stamp and world-from-camera pose; the LIDAR sweep (file, stamp, world-from-LIDAR pose) if any."""

    index: int
    calibration_key: str
    image_paths: List[str]
    stamp_ns: List[int]
    T_world_cam: List[np.ndarray]
    lidar_path: Optional[str] = None
    lidar_stamp_ns: Optional[int] = None
    T_world_lidar: Optional[np.ndarray] = None


@dataclass
class DDADScene:
    """One DGP scene read by :func:`read_scene`: its samples in time order and their calibrations
    (key -> K (N, 3, 3), T_ego_cam (N, 4, 4), T_ego_sensor of every sensor). A datum's vehicle pose is its
    pose times its sensor's extrinsic^-1 (dgp's convention)."""

    path: Path
    cameras: List[str]
    lidar_name: str
    samples: List[DDADSample]
    calibrations: Dict[str, Tuple[np.ndarray, np.ndarray, Dict[str, np.ndarray]]]

    def calibration(self, sample: DDADSample) -> Tuple[np.ndarray, np.ndarray]:
        """K (N, 3, 3) and T_ego_cam (N, 4, 4) of the sample's cameras."""
        K, T_ego_cam, _ = self.calibrations[sample.calibration_key]
        return K, T_ego_cam

    def T_world_ego(self, sample: DDADSample) -> np.ndarray:
        """The vehicle pose at the sample's image stamp, from the first camera's pose and extrinsic."""
        return sample.T_world_cam[0] @ invert_np(self.calibration(sample)[1][0])

    def T_world_ego_lidar(self, sample: DDADSample) -> np.ndarray:
        """The vehicle pose at the sample's LIDAR stamp (the LIDAR's pose and extrinsic)."""
        return sample.T_world_lidar @ invert_np(self.T_ego_lidar(sample))

    def T_ego_lidar(self, sample: DDADSample) -> np.ndarray:
        """The LIDAR's extrinsic (identity when the calibration does not name it)."""
        return self.calibrations[sample.calibration_key][2].get(self.lidar_name, np.eye(4))


def _datum_pose(datum: dict) -> np.ndarray:
    return quat_pose_to_matrix(datum["pose"]["rotation"], datum["pose"]["translation"])


def read_scene(scene_json: str | Path, cameras: Sequence[str], lidar_name: str = "LIDAR") -> DDADScene:
    """A DGP scene JSON -> :class:`DDADScene` of `cameras` (sensor names, any case); every calibration
    and camera folder is checked; DatasetError naming the file when something is missing or malformed."""
    scene_json = Path(scene_json)
    try:
        return _read_scene(scene_json, [c.upper() for c in cameras], lidar_name)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{scene_json}: malformed DGP scene JSON ({type(exc).__name__}: {exc})") from None


def _read_scene(scene_json: Path, cameras: List[str], lidar_name: str) -> DDADScene:
    scene = read_json(scene_json, "scene JSON")
    scene_dir = scene_json.parent
    for key in ("samples", "data"):
        if key not in scene:
            raise DatasetError(f"{scene_json}: no '{key}' list (is this a DGP scene JSON?)")
    data = {d["key"]: d for d in scene["data"]}
    calibrations = {key: read_calibration(scene_dir / "calibration" / f"{key}.json", cameras)
                    for key in dict.fromkeys(s.get("calibration_key", "") for s in scene["samples"])}
    for cam in cameras:
        if not (scene_dir / "rgb" / cam).is_dir():
            raise DatasetError(f"{scene_dir}: camera folder rgb/{cam} missing (fix data.cameras or the data)")
    samples = []
    for si, s in enumerate(scene["samples"]):
        by_name = {}
        for k in s.get("datum_keys", []):
            if k not in data:
                raise DatasetError(f"{scene_json}: sample {si} refers to datum key {k} absent from 'data'")
            by_name[data[k]["id"]["name"].upper()] = data[k]
        missing = [c for c in cameras if c not in by_name or "image" not in by_name[c]["datum"]]
        if missing:
            raise DatasetError(f"{scene_json}: sample {si} has no image datum for camera(s) {missing}")
        images = [by_name[c]["datum"]["image"] for c in cameras]
        sample = DDADSample(
            index=si, calibration_key=s["calibration_key"],
            image_paths=[str(scene_dir / im["filename"]) for im in images],
            stamp_ns=[datum_stamp_ns(by_name[c], im["filename"]) for c, im in zip(cameras, images)],
            T_world_cam=[_datum_pose(im) for im in images])
        lid = by_name.get(lidar_name)
        if lid is not None and "point_cloud" in lid["datum"]:
            pc = lid["datum"]["point_cloud"]
            sample.lidar_path = str(scene_dir / pc["filename"])
            sample.lidar_stamp_ns = datum_stamp_ns(lid, pc["filename"])
            sample.T_world_lidar = _datum_pose(pc)
        samples.append(sample)
    return DDADScene(scene_json, cameras, lidar_name, samples, calibrations)


class DDADDataset(SurroundDataset):
    """Surround-view samples from a DGP dataset file (see the module docstring for the format).

    Args:
        data_path: the ``ddad.json`` file.
        split: 'train', 'val' or 'test' (scene_splits "0", "1", "2").
        cameras: sensor names, any case (``camera_01`` -> ``CAMERA_01``), in the rig order.
        frame_ids: frames per sample; samples lacking a needed neighbour are skipped.
        Other keyword arguments: see :class:`SurroundDataset`.
    """

    def __init__(self, data_path: str | Path, split: str, cameras: Sequence[str], height: int, width: int,
                 frame_ids: Sequence[int] = (0, -1, 1), with_depth: bool = False,
                 color_jitter: Optional[Sequence[float]] = None, mask_path: Optional[str] = None,
                 gt_cache: Optional[str] = None, skip_broken: bool = False, lidar_name: str = "LIDAR",
                 gt_projection: str = "paper", require_frames: Sequence[int] = ()):
        super().__init__(height=height, width=width, frame_ids=frame_ids, with_depth=with_depth,
                         color_jitter=color_jitter, mask_path=mask_path, gt_cache=gt_cache, skip_broken=skip_broken,
                         gt_projection=gt_projection)
        self.require_frames = tuple(require_frames)
        self.data_path = Path(data_path)
        self.data_root = self.data_path.parent
        self.cameras = [c.upper() for c in cameras]
        self.lidar_name = lidar_name
        self.cache_settings = f"ddad|{self.data_path.name}|{lidar_name}"
        files = read_scene_files(self.data_path, split)
        for f in files:
            self._add_scene(self.data_root / f)
        if not self.refs:
            logger.warning("%s: split %s has no sample with frames %s", self.data_path, split, self.frame_ids)
        logger.info("DDAD %s: %d samples from %d scenes", split, len(self.refs), len(files))

    def _read_lidar_file(self, path: str) -> np.ndarray:
        return read_lidar_npz(path)

    def _peek_lidar_file(self, path: str) -> None:
        """The .npz's zip index (at its end: a cut file fails here) names a 'data' array; nothing decompressed."""
        import zipfile

        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (OSError, zipfile.BadZipFile) as exc:
            raise DatasetError(f"LIDAR file unreadable (truncated or corrupt): {path} ({exc})") from None
        if "data.npy" not in names:
            raise DatasetError(f"{path}: no key 'data' in LIDAR .npz (keys: {[n[:-4] for n in names]})")

    def _add_scene(self, scene_json: Path) -> None:
        scene = read_scene(scene_json, self.cameras, self.lidar_name)
        frames = [FrameRef(s.image_paths, s.stamp_ns, scene.T_world_ego(s)) for s in scene.samples]
        need = [f for f in {*self.frame_ids, *self.require_frames} if f != 0]
        for pos, s in enumerate(scene.samples):
            if any(not 0 <= pos + f < len(frames) for f in need):
                continue
            K, T_ego_cam = scene.calibration(s)
            fn = None
            if s.lidar_path is not None:  # world with the LIDAR's pose, into each camera with that image's own
                fn = self._lidar_in_cam(s.lidar_path, lambda n, s=s: invert_np(s.T_world_cam[n]) @ s.T_world_lidar)
            self.refs.append(SampleRef(scene=scene_json.parent.name, sample=f"{s.index:06d}",
                                       frames={f: frames[pos + f] for f in self.frame_ids}, K=K, T_ego_cam=T_ego_cam,
                                       lidar_in_cam=fn, lidar_path=s.lidar_path))


def ddad_from_config(cfg, split: str, frame_ids: Optional[Sequence[int]] = None, mask_path: Optional[str] = None,
                     skip_broken: bool = False) -> DDADDataset:
    """DDADDataset from a Config (data + training sections). Train: training.frame_ids, colour jitter,
    requirements from data.train_requirements; val/test: frame 0 only, no jitter, val_requirements."""
    d, t = cfg.data, cfg.training
    train = split == "train"
    reqs = d.train_requirements if train else d.val_requirements
    if frame_ids is None:
        frame_ids = t.frame_ids if train else (0,)
    # The paper's dgp index keeps only samples whose context frames exist, in every split (real DDAD only).
    require = t.frame_ids if cfg.data.dataset == "ddad" and not cfg.eval.eval_all_samples else ()
    return DDADDataset(
        d.data_path, split, d.cameras, t.height, t.width, frame_ids=frame_ids,
        with_depth="gt_depth" in reqs, color_jitter=t.color_jitter if train else None,
        mask_path=(mask_path if mask_path is not None else d.mask_path) if "mask" in reqs else None,
        gt_cache=d.gt_cache, skip_broken=skip_broken, gt_projection=d.gt_projection, require_frames=require,
    )
