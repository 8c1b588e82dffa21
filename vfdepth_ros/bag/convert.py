"""Datasets -> ROS 2 bags (MCAP by default, sqlite3 on request), written with `rosbags`.

What a converted bag holds (topic names relative, DESIGN 4.1; cameras named from the dataset):

| topic | type | frame | notes |
|---|---|---|---|
| `<cam>/image_raw` | sensor_msgs/Image rgb8 | `<cam>_optical_frame` | or `<cam>/image_raw/compressed` (CompressedImage, dataset JPEG bytes kept as they are) with `--compressed` |
| `<cam>/camera_info` | sensor_msgs/CameraInfo | `<cam>_optical_frame` | real intrinsics at the image's size, one per image, same stamp |
| `/tf_static` | tf2_msgs/TFMessage | `base_link` -> `<cam>_optical_frame`, `base_link` -> `lidar` | written once at the start, offered transient_local (latched) |
| `/tf` | tf2_msgs/TFMessage | `odom` -> `base_link` | ground-truth ego motion, first frame = identity |
| `gt/odom` | nav_msgs/Odometry | `odom` -> `base_link` | the same ground truth, in its own namespace so it is never mistaken for the estimate `odom` |
| `lidar/points` | sensor_msgs/PointCloud2 | `lidar` | float32 x, y, z, intensity (nuScenes: every sweep) |

Stamps are the dataset's (header stamp = bag log time). Ground-truth odometry is
``T_odom_base(t) = T_world_ego(t0)^-1 T_world_ego(t)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from vfdepth_ros import conversions as cv
from vfdepth_ros.bag import common as C
from vfdepth_ros.bag.common import BagError

log = logging.getLogger(__name__)

DDAD_CAMERAS = ("CAMERA_01", "CAMERA_05", "CAMERA_06", "CAMERA_07", "CAMERA_08", "CAMERA_09")
NUSC_CAMERAS = ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK_LEFT", "CAM_BACK_RIGHT", "CAM_BACK")
_KIND_ORDER = {"ego": 0, "lidar": 1, "image": 2}


@dataclass
class CameraSpec:
    """One camera of the rig: topic name, intrinsics at (height, width), extrinsics T_ego_cam (camera -> vehicle)."""

    name: str
    K: np.ndarray
    height: int
    width: int
    T_ego_cam: np.ndarray


@dataclass
class Event:
    """One thing to write at `stamp_ns`. kind 'image': load() -> ('raw', HxWx3 uint8 RGB) or
    ('encoded', bytes, 'jpeg'|'png'); 'lidar': load() -> (N, >=4) points in the lidar frame;
    'ego': load() -> T_world_ego (4x4)."""

    stamp_ns: int
    kind: str
    load: Callable[[], Any]
    cam: int = -1


@dataclass
class Recording:
    """A drive ready to be written: the rig, the lidar mounting, and time-ordered events."""

    cameras: List[CameraSpec]
    events: List[Event]
    T_ego_lidar: Optional[np.ndarray] = None
    description: str = ""
    extra: Dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ helpers
def _T_from_pose(translation: Sequence[float], q_wxyz: Sequence[float]) -> np.ndarray:
    q = np.asarray(q_wxyz, dtype=np.float64)
    w, x, y, z = q / np.linalg.norm(q)
    R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                  [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                  [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = translation
    return T


def _dgp_pose(p: dict) -> np.ndarray:
    r, t = p["rotation"], p["translation"]
    return _T_from_pose([t["x"], t["y"], t["z"]], [r["qw"], r["qx"], r["qy"], r["qz"]])


def ddad_stamp_ns(datum: dict, filename: str) -> int:
    """A DGP datum's stamp in ns since the epoch, by the DDAD loader's rule
    (:func:`vfdepth_core.datasets.ddad.datum_stamp_ns`; DGP's sample scene writes timestamps 10x too
    large, year 2464, which builtin_interfaces/Time cannot hold, and then the file name is used)."""
    from vfdepth_core.datasets.ddad import datum_stamp_ns

    return int(datum_stamp_ns(datum, filename))


def _read_jpeg_bytes(path: Path) -> Callable[[], Tuple[str, bytes, str]]:
    def load():
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BagError(f"{path}: cannot read image ({exc.strerror})") from None
        fmt = "png" if path.suffix.lower() == ".png" else "jpeg"
        return ("encoded", data, fmt)
    return load


def _decode(data: bytes, where: str) -> np.ndarray:
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise BagError(f"{where}: image data cannot be decoded (corrupt JPEG/PNG?)")
    return img[..., ::-1].copy()


def _encode(rgb: np.ndarray, fmt: str) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png" if fmt == "png" else ".jpg", np.ascontiguousarray(rgb[..., ::-1]),
                           [] if fmt == "png" else [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:  # pragma: no cover
        raise BagError("image encoding failed")
    return buf.tobytes()


# ------------------------------------------------------------------------------------------ DDAD
def _split_name(split: str) -> str:
    names = {"train": "train", "val": "val", "test": "test", "0": "train", "1": "val", "2": "test"}
    if split not in names:
        raise BagError(f"--split {split!r}: choose train or val")
    return names[split]


_MALFORMED = (KeyError, TypeError, ValueError, IndexError, AttributeError)


def ddad_recording(ddad_json: str | Path, split: str = "val", scene: int = 0, cameras: Sequence[str] = DDAD_CAMERAS,
                   lidar: bool = True) -> Recording:
    """Read one scene of a DDAD (DGP) dataset file with the core's validated readers
    (vfdepth_core.datasets.ddad, as training does); malformed files raise one-line DatasetErrors."""
    from vfdepth_core.datasets.common import DatasetError, read_json
    from vfdepth_core.datasets.ddad import read_scene_files

    ddad_json = Path(ddad_json)
    if not ddad_json.is_file():
        raise BagError(f"{ddad_json}: no such DDAD dataset file (give the path to ddad.json)")
    files = read_scene_files(ddad_json, _split_name(split))
    if not 0 <= scene < len(files):
        raise BagError(f"--scene {scene}: split {split!r} of {ddad_json} has scenes 0..{len(files) - 1}")
    scene_json = ddad_json.parent / files[scene]
    if not scene_json.is_file():
        raise BagError(f"{scene_json}: scene file listed in {ddad_json} does not exist")
    try:
        return _ddad_scene(read_json(scene_json, "scene JSON"), scene_json, cameras, lidar,
                           f"DDAD {ddad_json} split {split} scene {scene} ({scene_json.name})")
    except _MALFORMED as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{scene_json}: malformed DGP scene JSON ({type(exc).__name__}: {exc})") from None


def _ddad_scene(sj: dict, scene_json: Path, cameras: Sequence[str], lidar: bool, description: str) -> Recording:
    from vfdepth_core.datasets.ddad import read_calibration, read_lidar_npz

    scene_dir = scene_json.parent
    data = {d["key"]: d for d in sj["data"]}
    samples = sj["samples"]
    if not samples:
        raise BagError(f"{scene_json}: scene has no samples")
    calib_path = scene_dir / "calibration" / f"{samples[0]['calibration_key']}.json"
    K, T_ego_cam, T_ego_sensor = read_calibration(calib_path, cameras)
    first = [data[k] for k in samples[0]["datum_keys"] if k in data]
    cam_datum = {d["id"]["name"]: d for d in first if "image" in d["datum"]}
    specs: List[CameraSpec] = []
    for i, cam in enumerate(cameras):
        if cam not in cam_datum:
            raise BagError(f"camera {cam!r}: the first sample of {scene_json} has no image of it "
                           f"(it has {sorted(cam_datum)})")
        img = cam_datum[cam]["datum"]["image"]
        specs.append(CameraSpec(cam.lower(), K[i], int(img["height"]), int(img["width"]), T_ego_cam[i]))
    T_ego_lidar = T_ego_sensor.get("LIDAR", np.eye(4))

    events: List[Event] = []
    for sample in samples:
        datums = {data[k]["id"]["name"]: data[k] for k in sample["datum_keys"] if k in data}
        for ci, cam in enumerate(cameras):
            d = datums.get(cam)
            if d is None:
                log.warning("sample %s has no %s image; skipped", sample["id"].get("index"), cam)
                continue
            t = ddad_stamp_ns(d, d["datum"]["image"]["filename"])
            events.append(Event(t, "image", _read_jpeg_bytes(scene_dir / d["datum"]["image"]["filename"]), ci))
            if ci == 0:  # ego pose at the image stamp: T_world_ego = T_world_cam T_cam_ego
                T_world_ego = _dgp_pose(d["datum"]["image"]["pose"]) @ np.linalg.inv(specs[0].T_ego_cam)
                events.append(Event(t, "ego", (lambda T=T_world_ego: T)))
        if lidar and "LIDAR" in datums:
            d = datums["LIDAR"]
            path = str(scene_dir / d["datum"]["point_cloud"]["filename"])
            t_lidar = ddad_stamp_ns(d, d["datum"]["point_cloud"]["filename"])
            events.append(Event(t_lidar, "lidar", (lambda path=path: read_lidar_npz(path))))
            # the LIDAR pose is world-from-vehicle at the sweep's stamp: ground truth there too
            T_world_ego_l = _dgp_pose(d["datum"]["point_cloud"]["pose"])
            events.append(Event(t_lidar, "ego", (lambda T=T_world_ego_l: T)))
    return Recording(specs, events, T_ego_lidar, description, {"dataset": "ddad", "scene": scene_dir.name})


# ------------------------------------------------------------------------------------------ nuScenes
def nuscenes_recording(dataroot: str | Path, version: str = "v1.0-mini", scene: str = "scene-0061",
                       cameras: Sequence[str] = NUSC_CAMERAS, lidar: bool = True, sweeps: bool = True) -> Recording:
    """One nuScenes scene through nuscenes-devkit, opened and read with the core's validated readers
    (vfdepth_core.datasets.nuscenes): every camera and LIDAR_TOP sample_data from the scene's first
    sample to its last (sweeps included unless `sweeps` is False)."""
    from vfdepth_core.datasets.common import DatasetError
    from vfdepth_core.datasets.nuscenes import open_nuscenes

    dataroot = Path(dataroot)
    if not dataroot.is_dir():
        raise BagError(f"{dataroot}: no such nuScenes dataroot directory")
    if not (dataroot / version).is_dir():
        have = sorted(p.name for p in dataroot.iterdir() if p.is_dir() and p.name.startswith("v1.0"))
        raise BagError(f"{dataroot}: no version {version!r} here (found {have or 'none'}); pass --version")
    nusc = open_nuscenes(dataroot, version)
    try:
        return _nuscenes_scene(nusc, dataroot, version, scene, cameras, lidar, sweeps)
    except _MALFORMED as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{dataroot / version}: malformed nuScenes records for scene {scene} "
                           f"({type(exc).__name__}: {exc})") from None


def _nuscenes_scene(nusc, dataroot: Path, version: str, scene: str, cameras: Sequence[str], lidar: bool,
                    sweeps: bool) -> Recording:
    from vfdepth_core.datasets.nuscenes import read_pcd_bin

    by_name = {s["name"]: s for s in nusc.scene}
    if scene not in by_name:
        raise BagError(f"scene {scene!r} not in {dataroot}/{version} (it has {', '.join(sorted(by_name)[:8])}"
                       f"{', ...' if len(by_name) > 8 else ''})")
    sc = by_name[scene]
    first = nusc.get("sample", sc["first_sample_token"])
    last = nusc.get("sample", sc["last_sample_token"])

    def chain(channel: str):
        """A channel's sample_data up to and including its data of the last sample (a camera of the last
        key frame may be stamped after that sample's LIDAR time)."""
        end_us = last["timestamp"]
        if channel in last["data"]:
            end_us = max(end_us, nusc.get("sample_data", last["data"][channel])["timestamp"])
        sd = nusc.get("sample_data", first["data"][channel])
        while sd is not None and sd["timestamp"] <= end_us:
            if sweeps or sd["is_key_frame"]:
                yield sd
            sd = nusc.get("sample_data", sd["next"]) if sd["next"] else None

    def cs_T(sd) -> np.ndarray:
        cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        return _T_from_pose(cs["translation"], cs["rotation"])

    specs: List[CameraSpec] = []
    events: List[Event] = []
    for ci, channel in enumerate(cameras):
        if channel not in first["data"]:
            raise BagError(f"camera {channel!r} not in scene {scene} (it has {sorted(first['data'])})")
        sd0 = nusc.get("sample_data", first["data"][channel])
        cs = nusc.get("calibrated_sensor", sd0["calibrated_sensor_token"])
        K = np.asarray(cs["camera_intrinsic"], float)
        if K.shape != (3, 3):
            raise BagError(f"{dataroot / version}/calibrated_sensor.json: {channel}'s camera_intrinsic is not 3x3 "
                           f"(shape {K.shape})")
        specs.append(CameraSpec(channel.lower(), K, int(sd0["height"]), int(sd0["width"]), cs_T(sd0)))
        for sd in chain(channel):
            events.append(Event(sd["timestamp"] * 1000, "image", _read_jpeg_bytes(dataroot / sd["filename"]), ci))
    T_ego_lidar = None
    if lidar:
        if "LIDAR_TOP" not in first["data"]:
            raise BagError(f"scene {scene} has no LIDAR_TOP; pass --no-lidar")
        sd0 = nusc.get("sample_data", first["data"]["LIDAR_TOP"])
        T_ego_lidar = cs_T(sd0)
        for sd in chain("LIDAR_TOP"):
            path = str(dataroot / sd["filename"])
            events.append(Event(sd["timestamp"] * 1000, "lidar", (lambda path=path: read_pcd_bin(path))))
    # ground-truth ego poses: one per LIDAR_TOP sample_data (20 Hz), else per front-camera frame
    pose_channel = "LIDAR_TOP" if lidar else cameras[0]
    for sd in chain(pose_channel):
        ep = nusc.get("ego_pose", sd["ego_pose_token"])
        T = _T_from_pose(ep["translation"], ep["rotation"])
        events.append(Event(ep["timestamp"] * 1000, "ego", (lambda T=T: T)))
    return Recording(specs, events, T_ego_lidar, f"nuScenes {dataroot} {version} {scene}",
                     {"dataset": "nuscenes", "scene": scene})


# ------------------------------------------------------------------------------------------ synthetic
def drive_recording(drive: Any, lidar: bool = True) -> Recording:
    """A synthetic `Drive` (vfdepth_core.datasets.synthetic) -> Recording.

    Uses the Drive's duck-typed fields: camera names, K (N,3,3) at the images' size, T_ego_cam (N,4,4),
    per frame images (F,N,H,W,3) uint8, T_world_ego (F,4,4), stamp_ns (F,) or (F,N), and optional
    LIDAR points per frame.
    """
    from vfdepth_ros.bag import synth_adapter

    return synth_adapter.recording_from_drive(drive, lidar=lidar)


# ------------------------------------------------------------------------------------------ writing
def _parse_resize(resize: Optional[str]) -> Optional[Tuple[int, int]]:
    if not resize:
        return None
    try:
        w, h = (int(v) for v in resize.lower().split("x"))
        assert w > 0 and h > 0
    except (ValueError, AssertionError):
        raise BagError(f"--resize {resize!r}: give WIDTHxHEIGHT, e.g. 640x384") from None
    return h, w


def write_recording(rec: Recording, out: str | Path, storage: str = "mcap", compressed: bool = False,
                    resize: Optional[str] = None, overwrite: bool = False, progress: bool = True) -> Dict[str, int]:
    """Write `rec` as a ROS 2 bag; returns message counts per topic."""
    import torch
    from tqdm import tqdm

    from vfdepth_core.geometry import resize_intrinsics

    size = _parse_resize(resize)
    events = sorted(rec.events, key=lambda e: (e.stamp_ns, _KIND_ORDER[e.kind], e.cam))
    if not events:
        raise BagError(f"{rec.description}: nothing to write (no frames)")
    cams = rec.cameras
    Ks, sizes = [], []
    for cam in cams:
        if size is None:
            Ks.append(np.asarray(cam.K, float))
            sizes.append((cam.height, cam.width))
        else:
            Ks.append(resize_intrinsics(torch.as_tensor(cam.K, dtype=torch.float64), (cam.height, cam.width), size).numpy())
            sizes.append(size)

    ego = [e for e in events if e.kind == "ego"]
    ego_T = [np.asarray(e.load(), float) for e in ego]
    ego_stamps = np.array([e.stamp_ns for e in ego], dtype=np.int64)
    T_ego0_world = np.linalg.inv(ego_T[0]) if ego_T else np.eye(4)

    with C.BagWriter(out, storage=storage, overwrite=overwrite) as bw:
        for k, v in rec.extra.items():
            bw.writer.set_custom_data(f"vfdepth.{k}", str(v))
        bw.add_topic(C.TF_STATIC, "tf2_msgs/msg/TFMessage", latched=True)
        for cam in cams:
            bw.add_topic(C.image_topic(cam.name, compressed), "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image")
            bw.add_topic(C.info_topic(cam.name), "sensor_msgs/msg/CameraInfo")
        if ego_T:
            bw.add_topic(C.TF, "tf2_msgs/msg/TFMessage")
            bw.add_topic(C.GT_ODOM, "nav_msgs/msg/Odometry")
        if any(e.kind == "lidar" for e in events):
            bw.add_topic(C.LIDAR_POINTS, "sensor_msgs/msg/PointCloud2")

        t0 = events[0].stamp_ns
        statics = [cv.matrix_to_transform(cam.T_ego_cam, C.BASE_FRAME, C.camera_frame(cam.name), t0, cv.BAG)
                   for cam in cams]
        statics.append(cv.matrix_to_transform(rec.T_ego_lidar if rec.T_ego_lidar is not None else np.eye(4),
                                              C.BASE_FRAME, C.LIDAR_FRAME, t0, cv.BAG))
        bw.write(C.TF_STATIC, t0, C.serialize(cv.tf_message(statics, cv.BAG)))

        ego_i = 0
        for ev in tqdm(events, desc=f"writing {Path(out).name}", unit="msg", disable=not progress, leave=False):
            t = ev.stamp_ns
            if ev.kind == "ego":
                T_odom_base = T_ego0_world @ ego_T[ego_i]
                lin, ang = _twist(ego_T, ego_stamps, ego_i)
                ego_i += 1
                tf = cv.matrix_to_transform(T_odom_base, C.ODOM_FRAME, C.BASE_FRAME, t, cv.BAG)
                bw.write(C.TF, t, C.serialize(cv.tf_message([tf], cv.BAG)))
                bw.write(C.GT_ODOM, t, C.serialize(cv.matrix_to_odometry(T_odom_base, t, C.ODOM_FRAME, C.BASE_FRAME,
                                                                         lin, ang, types=cv.BAG)))
            elif ev.kind == "lidar":
                bw.write(C.LIDAR_POINTS, t, C.serialize(cv.xyzi_to_pointcloud2(ev.load(), cv.make_header(t, C.LIDAR_FRAME, cv.BAG), cv.BAG)))
            else:
                cam = cams[ev.cam]
                frame = C.camera_frame(cam.name)
                h, w = sizes[ev.cam]
                header = cv.make_header(t, frame, cv.BAG)
                payload = ev.load()
                where = f"{cam.name} image at {t} ns"
                if payload[0] == "encoded" and compressed and size is None:
                    msg = cv.compressed_image(payload[1], payload[2], header, cv.BAG)
                else:
                    rgb = _decode(payload[1], where) if payload[0] == "encoded" else np.asarray(payload[1], np.uint8)
                    if size is not None and rgb.shape[:2] != size:
                        import cv2

                        rgb = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)
                    elif size is None and rgb.shape[:2] != (cam.height, cam.width):
                        raise BagError(f"{where}: image is {rgb.shape[1]}x{rgb.shape[0]}, calibration says "
                                       f"{cam.width}x{cam.height}")
                    if compressed:
                        fmt = payload[2] if payload[0] == "encoded" else "png"
                        msg = cv.compressed_image(_encode(rgb, fmt), fmt, header, cv.BAG)
                    else:
                        msg = cv.numpy_to_image(rgb, "rgb8", header, cv.BAG)
                # camera_info first: a node that caches the latest intrinsics has them when the image lands
                bw.write(C.info_topic(cam.name), t, C.serialize(cv.K_to_camera_info(Ks[ev.cam], (h, w), header, types=cv.BAG)))
                bw.write(C.image_topic(cam.name, compressed), t, C.serialize(msg))
        counts = dict(bw.counts)
    log.info("wrote %s: %d messages on %d topics", out, sum(counts.values()), len(counts))
    return counts


def _twist(ego_T: List[np.ndarray], stamps: np.ndarray, i: int) -> Tuple[np.ndarray, np.ndarray]:
    """Body-frame linear (m/s) and angular (rad/s) velocity at pose i by finite differences."""
    if len(ego_T) < 2:
        return np.zeros(3), np.zeros(3)
    a, b = (i, i + 1) if i + 1 < len(ego_T) else (i - 1, i)
    dt = (stamps[b] - stamps[a]) * 1e-9
    if dt <= 0:
        return np.zeros(3), np.zeros(3)
    T_a_b = np.linalg.inv(ego_T[a]) @ ego_T[b]
    R = T_a_b[:3, :3]
    angle = np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))
    axis = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    n = np.linalg.norm(axis)
    rotvec = axis / n * angle if n > 1e-12 else np.zeros(3)
    return T_a_b[:3, 3] / dt, rotvec / dt
