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

The datasets are read by the core's readers, the ones training uses (DDAD: ``vfdepth_core.datasets.ddad
.read_scene``; nuScenes: ``vfdepth_core.datasets.nuscenes``; synthetic drives: ``bag/synth_adapter.py``):
this module only turns what they return into time-ordered events and writes those.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from vfdepth_core import config
from vfdepth_ros import conversions as cv
from vfdepth_ros.bag import common as C
from vfdepth_ros.bag.common import BagError

if TYPE_CHECKING:
    from vfdepth_core.datasets.ddad import DDADScene

log = logging.getLogger(__name__)

# the datasets' sensor names of the camera sets named in vfdepth_core.config
DDAD_CAMERAS = tuple(c.upper() for c in config.DDAD_CAMERAS)
NUSC_CAMERAS = tuple(c.upper() for c in config.NUSCENES_CAMERAS)
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



def ddad_recording(ddad_json: str | Path, split: str = "val", scene: int = 0, cameras: Sequence[str] = DDAD_CAMERAS,
                   lidar: bool = True) -> Recording:
    """One scene of a DDAD (DGP) dataset file, read by the core's DDAD reader (as training reads it):
    the same vehicle poses, calibration, stamps and LIDAR files; malformed files raise one-line DatasetErrors."""
    from vfdepth_core.datasets.ddad import read_scene, read_scene_files

    ddad_json = Path(ddad_json)
    if not ddad_json.is_file():
        raise BagError(f"{ddad_json}: no such DDAD dataset file (give the path to ddad.json)")
    files = read_scene_files(ddad_json, _split_name(split))
    if not 0 <= scene < len(files):
        raise BagError(f"--scene {scene}: split {split!r} of {ddad_json} has scenes 0..{len(files) - 1}")
    scene_json = ddad_json.parent / files[scene]
    sc = read_scene(scene_json, cameras)
    if not sc.samples:
        raise BagError(f"{scene_json}: scene has no samples")
    return _ddad_events(sc, lidar, f"DDAD {ddad_json} split {split} scene {scene} ({scene_json.name})")


def _ddad_events(sc: DDADScene, lidar: bool, description: str) -> Recording:
    """A DDADScene -> Recording: per sample each camera's image and the vehicle pose at the image stamp,
    and with `lidar` the sweep and the vehicle pose at its stamp."""
    from vfdepth_core.datasets.files import peek_image
    from vfdepth_core.datasets.ddad import read_lidar_npz

    first = sc.samples[0]
    K, T_ego_cam = sc.calibration(first)
    specs = [CameraSpec(cam.lower(), K[i], *peek_image(first.image_paths[i]), T_ego_cam[i])  # the loader's size too
             for i, cam in enumerate(sc.cameras)]
    events: List[Event] = []
    for s in sc.samples:
        for ci, path in enumerate(s.image_paths):
            events.append(Event(s.stamp_ns[ci], "image", _read_jpeg_bytes(Path(path)), ci))
        events.append(Event(s.stamp_ns[0], "ego", (lambda T=sc.T_world_ego(s): T)))
        if lidar and s.lidar_path is not None:
            events.append(Event(s.lidar_stamp_ns, "lidar", (lambda path=s.lidar_path: read_lidar_npz(path))))
            events.append(Event(s.lidar_stamp_ns, "ego", (lambda T=sc.T_world_ego_lidar(s): T)))
    return Recording(specs, events, sc.T_ego_lidar(first), description, {"dataset": "ddad", "scene": sc.path.parent.name})


# ------------------------------------------------------------------------------------------ nuScenes
_MALFORMED = (KeyError, TypeError, ValueError, IndexError, AttributeError)


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
    """Every camera and LIDAR_TOP sample_data of the scene (:func:`channel_chain`) with the core reader's
    calibration and stamps; ground-truth ego poses per LIDAR_TOP sample_data (20 Hz), else per first-camera frame."""
    from vfdepth_core.datasets.nuscenes import (camera_intrinsic, channel_chain, ego_pose, read_pcd_bin,
                                                sensor_extrinsic, stamp_ns)

    by_name = {s["name"]: s for s in nusc.scene}
    if scene not in by_name:
        raise BagError(f"scene {scene!r} not in {dataroot}/{version} (it has {', '.join(sorted(by_name)[:8])}"
                       f"{', ...' if len(by_name) > 8 else ''})")
    sc = by_name[scene]
    first = nusc.get("sample", sc["first_sample_token"])
    specs: List[CameraSpec] = []
    events: List[Event] = []
    for ci, channel in enumerate(cameras):
        if channel not in first["data"]:
            raise BagError(f"camera {channel!r} not in scene {scene} (it has {sorted(first['data'])})")
        sd0 = nusc.get("sample_data", first["data"][channel])
        K = camera_intrinsic(nusc, sd0, channel, dataroot / version)
        specs.append(CameraSpec(channel.lower(), K, int(sd0["height"]), int(sd0["width"]), sensor_extrinsic(nusc, sd0)))
        for sd in channel_chain(nusc, sc, channel, sweeps):
            events.append(Event(stamp_ns(sd), "image", _read_jpeg_bytes(dataroot / sd["filename"]), ci))
    T_ego_lidar = None
    if lidar:
        if "LIDAR_TOP" not in first["data"]:
            raise BagError(f"scene {scene} has no LIDAR_TOP; pass --no-lidar")
        T_ego_lidar = sensor_extrinsic(nusc, nusc.get("sample_data", first["data"]["LIDAR_TOP"]))
        for sd in channel_chain(nusc, sc, "LIDAR_TOP", sweeps):
            path = str(dataroot / sd["filename"])
            events.append(Event(stamp_ns(sd), "lidar", (lambda path=path: read_pcd_bin(path))))
    for sd in channel_chain(nusc, sc, "LIDAR_TOP" if lidar else cameras[0], sweeps):
        t, T = ego_pose(nusc, sd)
        events.append(Event(t, "ego", (lambda T=T: T)))
    return Recording(specs, events, T_ego_lidar, f"nuScenes {dataroot} {version} {scene}",
                     {"dataset": "nuscenes", "scene": scene})


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
