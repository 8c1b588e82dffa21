"""Message <-> array conversions: the only module that reads or writes ROS message fields.

One codec for the node (rclpy messages), the bag tools and the viewer (messages of the `rosbags`
typestore, deserialised from or serialised to CDR). Decoders read fields by name, so they take either
kind; encoders build the kind named by ``types``: :data:`RCLPY` (default) or :data:`BAG`. Nothing here
imports rclpy or a message package at import time: the bag tools run without ROS.

* ``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8, 8UC1, 8UC3, mono16, 16UC1, 32FC1) <-> numpy,
  honouring ``step`` (row padding) and ``is_bigendian``; depth images (32FC1 m, 16UC1/mono16 mm) -> metres;
* ``sensor_msgs/CompressedImage`` (JPEG/PNG, via OpenCV) <-> numpy;
* ``sensor_msgs/CameraInfo`` <-> K (3x3) + (H, W), and camera info scaled to another image size;
* ``sensor_msgs/PointCloud2``: any layout -> field arrays; xyz + rgb (packed into a float32, as rviz
  expects) and xyz + intensity packing;
* ``nav_msgs/Odometry``, ``geometry_msgs/TransformStamped`` and ``tf2_msgs/TFMessage`` from a 4x4
  ``T_parent_child``, and transforms/poses/odometry -> 4x4 (quaternions: ``vfdepth_core.geometry``);
* ``rosgraph_msgs/Clock``, ``diagnostic_msgs/DiagnosticArray``; header/stamp helpers (``stamp_ns`` <-> ``Time``).

Arrays are numpy; images are ``(H, W, 3)`` uint8 RGB, ``(H, W)`` for single-channel encodings.
Malformed input (unknown encoding, garbage bytes, size mismatch, NaN calibration) raises
:class:`ConversionError` with a one-line message naming the field.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from vfdepth_ros.errors import ConversionError


# --------------------------------------------------------------------------------------------------
# Message classes: rclpy's generated ones (to publish) or rosbags' (to serialise into a bag)

@lru_cache(maxsize=1)
def typestore():
    """The ROS 2 kilted message definitions (rosbags' built-in store) the bag tools read and write."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


@dataclass(frozen=True)
class MessageTypes:
    """Where encoders take message classes from: ``rclpy`` (generated Python packages) or ``bag``
    (the rosbags typestore; its messages need every field, which the encoders always give)."""

    kind: str

    def new(self, msgtype: str, **fields: Any):
        """An instance of 'pkg/msg/Name' with `fields`."""
        if self.kind == "bag":
            return typestore().types[msgtype](**fields)
        pkg, sub, name = msgtype.split("/")
        return getattr(importlib.import_module(f"{pkg}.{sub}"), name)(**fields)

    def blob(self, arr: np.ndarray):
        """A uint8[] field value: bytes for rclpy (fast path of its setter), a uint8 view for rosbags."""
        flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
        return flat if self.kind == "bag" else flat.tobytes()


RCLPY = MessageTypes("rclpy")
BAG = MessageTypes("bag")


# --------------------------------------------------------------------------------------------------
# Stamps and headers

def stamp_to_ns(stamp) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(stamp_ns: int, types: MessageTypes = RCLPY):
    """Integer nanoseconds -> builtin_interfaces/Time (int32 seconds >= 0)."""
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    if not 0 <= sec < 2**31:
        raise ConversionError(f"stamp_ns {stamp_ns} does not fit builtin_interfaces/Time (0 <= sec < 2^31)")
    return types.new("builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec)


def make_header(stamp_ns: int, frame_id: str, types: MessageTypes = RCLPY):
    """std_msgs/Header from a stamp in nanoseconds and a frame id."""
    return types.new("std_msgs/msg/Header", stamp=ns_to_stamp(stamp_ns, types), frame_id=str(frame_id))


def copy_header(header, frame_id: Optional[str] = None, types: MessageTypes = RCLPY):
    """A copy of `header` (optionally with another frame id)."""
    return make_header(stamp_to_ns(header.stamp), header.frame_id if frame_id is None else frame_id, types)


def header_stamp_ns(msg) -> int:
    """Stamp of a message with a ``header`` field, in nanoseconds."""
    return stamp_to_ns(msg.header.stamp)


def clock(stamp_ns: int, types: MessageTypes = RCLPY):
    """rosgraph_msgs/Clock at `stamp_ns`."""
    return types.new("rosgraph_msgs/msg/Clock", clock=ns_to_stamp(stamp_ns, types))


# --------------------------------------------------------------------------------------------------
# Raw images

# encoding -> (numpy dtype (little-endian form), channels)
ENCODINGS: Dict[str, Tuple[str, int]] = {
    "rgb8": ("u1", 3), "bgr8": ("u1", 3), "rgba8": ("u1", 4), "bgra8": ("u1", 4),
    "mono8": ("u1", 1), "8UC1": ("u1", 1), "8UC3": ("u1", 3),
    "mono16": ("u2", 1), "16UC1": ("u2", 1), "32FC1": ("f4", 1),
}
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC3", "8UC1")
DEPTH_ENCODINGS = ("32FC1", "16UC1", "mono16")  # metres; 16-bit depth is millimetres (REP 118)
_CANONICAL = {e.lower(): e for e in ENCODINGS}


def _image_bytes(data) -> np.ndarray:
    """A uint8 view of a message's ``data`` (array.array, bytes, list, ndarray)."""
    if isinstance(data, np.ndarray):
        return data.view(np.uint8).ravel()
    try:
        return np.frombuffer(memoryview(data), dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8)


def _encoding(msg) -> str:
    """The message's encoding in ENCODINGS' spelling (bags sometimes hold '32fc1'), else ConversionError."""
    enc = _CANONICAL.get(str(msg.encoding).lower())
    if enc is None:
        raise ConversionError(f"Image.encoding '{msg.encoding}' is not supported (use one of {', '.join(ENCODINGS)})")
    return enc


def image_to_numpy(msg) -> np.ndarray:
    """sensor_msgs/Image -> (H, W) or (H, W, C) array of the encoding's dtype (native byte order)."""
    enc = _encoding(msg)
    kind, channels = ENCODINGS[enc]
    H, W = int(msg.height), int(msg.width)
    if H <= 0 or W <= 0:
        raise ConversionError(f"Image has an empty size {W}x{H} (width x height)")
    itemsize = np.dtype(kind).itemsize
    row_bytes = W * channels * itemsize
    step = int(msg.step)
    if step < row_bytes:
        raise ConversionError(f"Image.step {step} is smaller than width*channels*bytes = {row_bytes} for {enc} {W}x{H}")
    raw = _image_bytes(msg.data)
    if raw.size < step * (H - 1) + row_bytes:
        raise ConversionError(f"Image.data has {raw.size} bytes, {enc} {W}x{H} with step {step} needs {step * H}")
    rows = raw[: step * H] if raw.size >= step * H else np.concatenate([raw, np.zeros(step * H - raw.size, np.uint8)])
    rows = rows.reshape(H, step)[:, :row_bytes]
    dtype = np.dtype(kind).newbyteorder(">" if msg.is_bigendian else "<") if itemsize > 1 else np.dtype(kind)
    arr = np.ascontiguousarray(rows).view(dtype).reshape(H, W, channels)
    if itemsize > 1:
        arr = arr.astype(np.dtype(kind).newbyteorder("="), copy=False)
    return arr[:, :, 0] if channels == 1 else arr


def numpy_to_image(arr: np.ndarray, encoding: str, header=None, types: MessageTypes = RCLPY):
    """(H, W) / (H, W, C) array -> sensor_msgs/Image (native byte order, no row padding)."""
    if encoding not in ENCODINGS:
        raise ConversionError(f"encoding '{encoding}' is not supported (use one of {', '.join(ENCODINGS)})")
    kind, channels = ENCODINGS[encoding]
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] != channels:
        raise ConversionError(f"array of shape {arr.shape} does not fit encoding {encoding} ({channels} channel(s))")
    arr = np.ascontiguousarray(arr, dtype=np.dtype(kind).newbyteorder("="))
    H, W = arr.shape[:2]
    return types.new("sensor_msgs/msg/Image", header=header if header is not None else make_header(0, "", types),
                     height=H, width=W, encoding=encoding,
                     is_bigendian=int(sys.byteorder == "big" and arr.dtype.itemsize > 1),
                     step=W * channels * arr.dtype.itemsize, data=types.blob(arr))


def to_rgb8(arr: np.ndarray, encoding: str) -> np.ndarray:
    """A decoded colour/mono image of `encoding` -> (H, W, 3) uint8 RGB."""
    if encoding not in COLOR_ENCODINGS:
        raise ConversionError(f"encoding '{encoding}' is not a colour image encoding (use one of {', '.join(COLOR_ENCODINGS)})")
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if encoding in ("bgr8", "bgra8"):
        return np.ascontiguousarray(arr[:, :, 2::-1])
    return np.ascontiguousarray(arr[:, :, :3])


def image_to_rgb(msg) -> np.ndarray:
    """sensor_msgs/Image of a colour or mono encoding -> (H, W, 3) uint8 RGB."""
    enc = _encoding(msg)
    if enc not in COLOR_ENCODINGS:
        raise ConversionError(
            f"Image.encoding '{msg.encoding}' is not a camera image encoding (use one of {', '.join(COLOR_ENCODINGS)})")
    return to_rgb8(image_to_numpy(msg), enc)


def image_to_array(msg) -> np.ndarray:
    """sensor_msgs/Image -> (H, W) float32 metres for a depth encoding (32FC1; 16UC1/mono16 in mm),
    (H, W) uint8 for mono8/8UC1, else (H, W, 3) uint8 RGB; always a writable array of its own."""
    enc = _encoding(msg)
    arr = image_to_numpy(msg)
    if enc in DEPTH_ENCODINGS:
        return arr.astype(np.float32) if enc == "32FC1" else arr.astype(np.float32) / 1000.0
    return np.require(arr if arr.ndim == 2 else to_rgb8(arr, enc), requirements="W")


def depth_to_image(depth_m: np.ndarray, header, types: MessageTypes = RCLPY):
    """(H, W) depth in metres -> 32FC1 Image with `header`."""
    depth_m = np.asarray(depth_m, dtype=np.float32)
    if depth_m.ndim != 2:
        raise ConversionError(f"depth must be (H, W), got shape {depth_m.shape}")
    return numpy_to_image(depth_m, "32FC1", header, types)


# --------------------------------------------------------------------------------------------------
# Compressed images

def compressed_to_rgb(msg) -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG/PNG) -> (H, W, 3) uint8 RGB."""
    import cv2

    fmt = (msg.format or "").lower()
    if fmt and not any(k in fmt for k in ("jpeg", "jpg", "png")):
        raise ConversionError(f"CompressedImage.format '{msg.format}' is not supported (use jpeg or png)")
    raw = _image_bytes(msg.data)
    if raw.size == 0:
        raise ConversionError("CompressedImage.data is empty")
    img = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ConversionError(f"CompressedImage.data ({raw.size} bytes, format '{msg.format}') is not a decodable JPEG/PNG")
    if img.dtype != np.uint8:
        raise ConversionError(f"CompressedImage decodes to {img.dtype}, expected 8-bit colour")
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img[:, :, ::-1])


def compressed_image(data: bytes, fmt: str, header, types: MessageTypes = RCLPY):
    """sensor_msgs/CompressedImage holding already encoded bytes with format string `fmt`."""
    return types.new("sensor_msgs/msg/CompressedImage", header=header, format=fmt,
                     data=types.blob(np.frombuffer(data, dtype=np.uint8)))


def rgb_to_compressed(rgb: np.ndarray, fmt: str = "jpeg", header=None, jpeg_quality: int = 90,
                      types: MessageTypes = RCLPY):
    """(H, W, 3) uint8 RGB -> CompressedImage ('jpeg' or 'png'), format string as image_transport writes it."""
    import cv2

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ConversionError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    fmt = fmt.lower()
    if fmt in ("jpeg", "jpg"):
        ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), int(jpeg_quality)])
        fmt_str = "rgb8; jpeg compressed bgr8"
    elif fmt == "png":
        ok, buf = cv2.imencode(".png", rgb[:, :, ::-1])
        fmt_str = "rgb8; png compressed bgr8"
    else:
        raise ConversionError(f"compression format '{fmt}' is not supported (use jpeg or png)")
    if not ok:
        raise ConversionError(f"OpenCV failed to encode a {rgb.shape} image as {fmt}")
    return compressed_image(buf.tobytes(), fmt_str, header if header is not None else make_header(0, "", types), types)


# --------------------------------------------------------------------------------------------------
# Camera info

def camera_info_to_K(msg) -> Tuple[np.ndarray, Tuple[int, int]]:
    """sensor_msgs/CameraInfo -> (K (3, 3) float64, (H, W)). Rejects NaN/inf, non-positive focal lengths
    and an empty size."""
    K = np.array(msg.k, dtype=np.float64)  # a copy: a bag message's k is a read-only view of its bytes
    if K.size != 9:
        raise ConversionError(f"CameraInfo.k must have 9 values, got {K.size}")
    K = K.reshape(3, 3)
    if not np.isfinite(K).all():
        raise ConversionError(f"CameraInfo.k contains NaN/inf (frame '{msg.header.frame_id}')")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ConversionError(f"CameraInfo.k has non-positive focal lengths fx={K[0, 0]}, fy={K[1, 1]}")
    H, W = int(msg.height), int(msg.width)
    if H <= 0 or W <= 0:
        raise ConversionError(f"CameraInfo has an empty size {W}x{H} (width x height)")
    return K, (H, W)


def K_to_camera_info(K: np.ndarray, hw: Tuple[int, int], header=None, distortion_model: str = "plumb_bob",
                     d: Sequence[float] = (0.0,) * 5, types: MessageTypes = RCLPY):
    """K (3, 3) + (H, W) -> CameraInfo with R = I and P = [K | 0] (a rectified pinhole camera)."""
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    P = np.zeros((3, 4))
    P[:, :3] = K
    roi = types.new("sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return types.new("sensor_msgs/msg/CameraInfo", header=header if header is not None else make_header(0, "", types),
                     height=int(hw[0]), width=int(hw[1]), distortion_model=distortion_model,
                     d=np.asarray(d, dtype=np.float64), k=K.reshape(-1), r=np.eye(3).reshape(-1), p=P.reshape(-1),
                     binning_x=0, binning_y=0, roi=roi)


def scale_K(K: np.ndarray, src_hw: Tuple[int, int], dst_hw: Tuple[int, int]) -> np.ndarray:
    """K (3, 3) numpy for an image resized from src_hw to dst_hw (geometry.resize_intrinsics)."""
    import torch

    from vfdepth_core import geometry

    Kt = torch.as_tensor(np.asarray(K, dtype=np.float64))
    return geometry.resize_intrinsics(Kt, tuple(src_hw), tuple(dst_hw)).numpy()


def scaled_camera_info(msg, dst_hw: Tuple[int, int], header=None, types: MessageTypes = RCLPY):
    """The camera info of `msg`'s camera for an image resized to dst_hw = (H', W')."""
    K, src_hw = camera_info_to_K(msg)
    return K_to_camera_info(scale_K(K, src_hw, dst_hw), dst_hw, header if header is not None else msg.header,
                            distortion_model=msg.distortion_model or "plumb_bob", d=list(msg.d) or (0.0,) * 5,
                            types=types)


# --------------------------------------------------------------------------------------------------
# Point clouds

FLOAT32 = 7  # sensor_msgs/PointField datatypes 1..8 -> numpy
_PF_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", FLOAT32: "f4", 8: "f8"}


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 -> (N,) float32 whose bits are 0x00RRGGBB (PCL/rviz packing)."""
    rgb = np.asarray(rgb, dtype=np.uint32)
    packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    return packed.astype("<u4").view("<f4")


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """(N,) float32 (or uint32) packed colours -> (N, 3) uint8."""
    u = np.asarray(packed)
    u = u.astype("<f4").view("<u4") if u.dtype.kind == "f" else u.astype("<u4")
    return np.stack([(u >> 16) & 255, (u >> 8) & 255, u & 255], axis=1).astype(np.uint8)


def float32_pointcloud2(columns: Sequence[Tuple[str, np.ndarray]], header, is_dense: bool,
                        types: MessageTypes = RCLPY):
    """PointCloud2 of one row (height 1), little-endian, one float32 field per (name, (N,) array)."""
    n = len(columns[0][1])
    cloud = np.empty(n, dtype=np.dtype([(name, "<f4") for name, _ in columns]))
    for name, col in columns:
        cloud[name] = col
    fields = [types.new("sensor_msgs/msg/PointField", name=name, offset=4 * i, datatype=FLOAT32, count=1)
              for i, (name, _) in enumerate(columns)]
    step = cloud.dtype.itemsize
    return types.new("sensor_msgs/msg/PointCloud2", header=header, height=1, width=n, fields=fields,
                     is_bigendian=False, point_step=step, row_step=step * n, data=types.blob(cloud),
                     is_dense=bool(is_dense))


def xyzrgb_to_pointcloud2(xyz: np.ndarray, rgb: Optional[np.ndarray], header, types: MessageTypes = RCLPY):
    """(N, 3) float points (+ (N, 3) uint8 colours, white when None) -> PointCloud2 with float32 x, y, z,
    rgb fields, 16 bytes per point."""
    xyz = np.asarray(xyz, dtype=np.float32)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ConversionError(f"xyz must be (N, 3), got {xyz.shape}")
    n = xyz.shape[0]
    rgb = np.full((n, 3), 255, np.uint8) if rgb is None else np.asarray(rgb)
    if rgb.shape != (n, 3):
        raise ConversionError(f"rgb must be (N, 3) = ({n}, 3), got {rgb.shape}")
    cols = [("x", xyz[:, 0]), ("y", xyz[:, 1]), ("z", xyz[:, 2]), ("rgb", pack_rgb(rgb))]
    return float32_pointcloud2(cols, header, bool(np.isfinite(xyz).all()), types)


def xyzi_to_pointcloud2(points: np.ndarray, header, types: MessageTypes = RCLPY):
    """(N, 4) x, y, z, intensity (e.g. LIDAR) -> PointCloud2 with float32 fields x, y, z, intensity."""
    pts = np.asarray(points, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] < 4:
        raise ConversionError(f"points must be (N, 4) x, y, z, intensity, got {pts.shape}")
    return float32_pointcloud2([(name, pts[:, i]) for i, name in enumerate(("x", "y", "z", "intensity"))],
                               header, True, types)


def pointcloud2_to_array(msg, field_names: Iterable[str] = ("x", "y", "z")) -> Dict[str, np.ndarray]:
    """PointCloud2 -> {field name: (N,) array} for the requested fields (any layout/padding/endianness)."""
    by_name = {f.name: f for f in msg.fields}
    width, height, point_step = int(msg.width), int(msg.height), int(msg.point_step)
    n = width * height
    raw = _image_bytes(msg.data)
    if raw.size < n * point_step:
        raise ConversionError(f"PointCloud2.data has {raw.size} bytes, {n} points of {point_step} need {n * point_step}")
    if height > 1 and int(msg.row_step) > width * point_step and raw.size >= height * int(msg.row_step):
        raw = raw[: height * int(msg.row_step)].reshape(height, int(msg.row_step))[:, : width * point_step].ravel()
    names, formats, offsets = [], [], []
    for name in field_names:
        if name not in by_name:
            raise ConversionError(f"PointCloud2 has no field '{name}' (fields: {', '.join(by_name)})")
        f = by_name[name]
        if int(f.datatype) not in _PF_DTYPES:
            raise ConversionError(f"PointCloud2 field '{name}' has unknown datatype {f.datatype}")
        fmt = np.dtype(_PF_DTYPES[int(f.datatype)]).newbyteorder(">" if msg.is_bigendian else "<")
        if int(f.offset) + fmt.itemsize > point_step:
            raise ConversionError(f"PointCloud2 field '{name}' (offset {f.offset}, {fmt.itemsize} bytes) does not fit "
                                  f"in point_step {point_step}")
        names.append(name)
        formats.append(fmt)
        offsets.append(int(f.offset))
    dt = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step})
    arr = np.frombuffer(raw[: n * point_step].tobytes(), dtype=dt, count=n)
    return {name: arr[name].astype(arr[name].dtype.newbyteorder("=")) for name in names}


def pointcloud2_to_xyzrgb(msg) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """PointCloud2 with x, y, z [, rgb or rgba packed 0x00RRGGBB] -> ((N, 3) float32, (N, 3) uint8 or None)."""
    names = {f.name for f in msg.fields}
    colour = "rgb" if "rgb" in names else ("rgba" if "rgba" in names else None)
    fields = pointcloud2_to_array(msg, ("x", "y", "z") + ((colour,) if colour else ()))
    xyz = np.stack([fields["x"], fields["y"], fields["z"]], axis=1).astype(np.float32)
    return xyz, (unpack_rgb(fields[colour]) if colour else None)


def pointcloud2_to_xyzi(msg) -> np.ndarray:
    """PointCloud2 with x, y, z [, intensity] -> (N, 4) float32 (intensity 0 when absent)."""
    names = ("x", "y", "z") + (("intensity",) if any(f.name == "intensity" for f in msg.fields) else ())
    fields = pointcloud2_to_array(msg, names)
    out = np.zeros((len(fields["x"]), 4), np.float32)
    for i, name in enumerate(names):
        out[:, i] = fields[name]
    return out


# --------------------------------------------------------------------------------------------------
# Transforms and odometry

def _check_T(T: np.ndarray, name: str = "T") -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise ConversionError(f"{name} must be a 4x4 matrix, got shape {T.shape}")
    if not np.isfinite(T).all():
        raise ConversionError(f"{name} contains NaN/inf")
    return T


def _quaternion(T: np.ndarray, types: MessageTypes):
    """geometry_msgs/Quaternion of T's rotation."""
    import torch

    from vfdepth_core import geometry

    w, x, y, z = (float(v) for v in geometry.rotmat_to_quat(torch.as_tensor(T[:3, :3])).numpy())
    return types.new("geometry_msgs/msg/Quaternion", x=x, y=y, z=z, w=w)


def _vector3(v: Sequence[float], types: MessageTypes, msgtype: str = "geometry_msgs/msg/Vector3"):
    return types.new(msgtype, x=float(v[0]), y=float(v[1]), z=float(v[2]))


def matrix_to_transform(T_parent_child: np.ndarray, parent: str, child: str, stamp_ns: int,
                        types: MessageTypes = RCLPY):
    """4x4 T_parent_child -> geometry_msgs/TransformStamped (header.frame_id = parent, child_frame_id = child)."""
    T = _check_T(T_parent_child, "T_parent_child")
    transform = types.new("geometry_msgs/msg/Transform", translation=_vector3(T[:3, 3], types),
                          rotation=_quaternion(T, types))
    return types.new("geometry_msgs/msg/TransformStamped", header=make_header(stamp_ns, parent, types),
                     child_frame_id=child, transform=transform)


def transform_to_matrix(msg) -> np.ndarray:
    """geometry_msgs/TransformStamped, Transform or Pose -> 4x4 T_parent_child (float64). Rejects NaN and
    zero quaternions."""
    tf = getattr(msg, "transform", msg)
    t = tf.translation if hasattr(tf, "translation") else tf.position
    q = tf.rotation if hasattr(tf, "rotation") else tf.orientation
    vals = np.array([t.x, t.y, t.z, q.w, q.x, q.y, q.z], dtype=np.float64)
    where = (f"transform {msg.header.frame_id} -> {msg.child_frame_id}" if hasattr(msg, "child_frame_id")
             else f"{type(tf).__name__}")
    if not np.isfinite(vals).all():
        raise ConversionError(f"{where} contains NaN/inf")
    if np.linalg.norm(vals[3:]) < 1e-9:
        raise ConversionError(f"{where} has a zero quaternion")
    import torch

    from vfdepth_core import geometry

    T = np.eye(4)
    T[:3, :3] = geometry.quat_to_rotmat(torch.as_tensor(vals[3:])).numpy()
    T[:3, 3] = vals[:3]
    return T


def tf_message(transforms: Sequence, types: MessageTypes = RCLPY):
    """tf2_msgs/TFMessage holding `transforms` (for rclpy, tf2_msgs must be importable)."""
    try:
        return types.new("tf2_msgs/msg/TFMessage", transforms=list(transforms))
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConversionError("tf2_msgs is not installed (build it into the venv: see README 'ROS 2')") from exc


def matrix_to_odometry(T_odom_base: np.ndarray, stamp_ns: int, odom_frame: str = "odom",
                       base_frame: str = "base_link",
                       twist_linear: Optional[np.ndarray] = None, twist_angular: Optional[np.ndarray] = None,
                       pose_covariance: Optional[np.ndarray] = None,
                       twist_covariance: Optional[np.ndarray] = None, types: MessageTypes = RCLPY):
    """4x4 T_odom_base -> nav_msgs/Odometry (pose in odom, optional twist in base_frame (else 0), optional
    6x6 covariances (else 0) in ROS order x, y, z, rot x, rot y, rot z)."""
    T = _check_T(T_odom_base, "T_odom_base")
    cov = {}
    for name, c in (("pose_covariance", pose_covariance), ("twist_covariance", twist_covariance)):
        c = np.zeros((6, 6)) if c is None else np.asarray(c, dtype=np.float64)
        if c.shape != (6, 6):
            raise ConversionError(f"{name} must be 6x6, got shape {c.shape}")
        cov[name] = c.reshape(-1)
    G = "geometry_msgs/msg/"
    pose = types.new(G + "Pose", position=_vector3(T[:3, 3], types, G + "Point"), orientation=_quaternion(T, types))
    twist = types.new(G + "Twist", linear=_vector3(np.zeros(3) if twist_linear is None else twist_linear, types),
                      angular=_vector3(np.zeros(3) if twist_angular is None else twist_angular, types))
    return types.new("nav_msgs/msg/Odometry", header=make_header(stamp_ns, odom_frame, types), child_frame_id=base_frame,
                     pose=types.new(G + "PoseWithCovariance", pose=pose, covariance=cov["pose_covariance"]),
                     twist=types.new(G + "TwistWithCovariance", twist=twist, covariance=cov["twist_covariance"]))


def odometry_to_matrix(msg) -> np.ndarray:
    """nav_msgs/Odometry -> 4x4 T_<header.frame_id>_<child_frame_id>."""
    return transform_to_matrix(msg.pose.pose)


# --------------------------------------------------------------------------------------------------
# Diagnostics (rclpy only: the node publishes them)

LEVELS = {"OK": 0, "WARN": 1, "ERROR": 2, "STALE": 3}  # diagnostic_msgs/DiagnosticStatus levels


def diagnostic_status(name: str, level: str, message: str, values: Mapping[str, object], hardware_id: str = ""):
    """One DiagnosticStatus; level is 'OK', 'WARN', 'ERROR' or 'STALE'; values become string KeyValues."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    if level not in LEVELS:
        raise ConversionError(f"diagnostic level '{level}' is not one of {', '.join(LEVELS)}")
    return DiagnosticStatus(level=bytes([LEVELS[level]]), name=name, message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()])


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _level_int(level) -> int:
    """DiagnosticStatus.level is a ROS 'byte' (bytes of length 1 in rclpy); as an int."""
    return level if isinstance(level, int) else int.from_bytes(bytes(level), "little")


def diagnostic_array(statuses: Sequence, stamp_ns: int):
    """DiagnosticArray stamped `stamp_ns` holding `statuses`."""
    from diagnostic_msgs.msg import DiagnosticArray

    return DiagnosticArray(header=make_header(stamp_ns, ""), status=list(statuses))


def diagnostics_to_dict(msg) -> Dict[str, Dict[str, object]]:
    """DiagnosticArray -> {status name: {'level': 'OK'|..., 'message': str, 'values': {key: value}}}."""
    names = {v: k for k, v in LEVELS.items()}
    out: Dict[str, Dict[str, object]] = {}
    for s in msg.status:
        level = _level_int(s.level)
        out[s.name] = {"level": names.get(level, str(level)), "message": s.message,
                       "values": {kv.key: kv.value for kv in s.values}}
    return out


__all__: List[str] = [n for n in dir() if not n.startswith("_") and n not in (
    "annotations", "sys", "np", "importlib", "dataclass", "lru_cache")]
