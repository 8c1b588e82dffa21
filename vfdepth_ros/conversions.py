"""Message <-> array conversions: the only module that reads or writes ROS message fields.

Everything the node graph needs without ``cv_bridge``, ``sensor_msgs_py`` or ``tf2_ros``:

* ``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8, mono16, 16UC1, 32FC1) <-> numpy, honouring
  ``step`` (row padding) and ``is_bigendian``;
* ``sensor_msgs/CompressedImage`` (JPEG/PNG, via OpenCV) <-> numpy;
* ``sensor_msgs/CameraInfo`` <-> K (3x3) + (H, W), and camera info scaled to another image size;
* ``sensor_msgs/PointCloud2`` xyz + rgb (float32 x, y, z and the rgb packed into a float32, as rviz
  expects) packing and unpacking;
* ``nav_msgs/Odometry``, ``geometry_msgs/TransformStamped`` and ``tf2_msgs/TFMessage`` from a 4x4
  ``T_parent_child``, and ``TransformStamped`` -> 4x4;
* ``diagnostic_msgs/DiagnosticArray`` building; header/stamp helpers (``stamp_ns`` <-> ``Time``).

Arrays are numpy; images are ``(H, W, 3)`` uint8 RGB, ``(H, W)`` for single-channel encodings.
Malformed input (unknown encoding, garbage bytes, size mismatch, NaN calibration) raises
:class:`ConversionError` with a one-line message naming the field.
"""

from __future__ import annotations

import sys
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import TransformStamped
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from vfdepth_core import geometry


class ConversionError(ValueError):
    """A message could not be converted; the message names the field and what was wrong."""


# --------------------------------------------------------------------------------------------------
# Stamps and headers

def stamp_to_ns(stamp: Time) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(stamp_ns: int) -> Time:
    """Integer nanoseconds (>= 0) -> builtin_interfaces/Time."""
    stamp_ns = int(stamp_ns)
    if stamp_ns < 0:
        raise ConversionError(f"stamp_ns must be >= 0, got {stamp_ns}")
    return Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)


def make_header(stamp_ns: int, frame_id: str) -> Header:
    """std_msgs/Header from a stamp in nanoseconds and a frame id."""
    return Header(stamp=ns_to_stamp(stamp_ns), frame_id=str(frame_id))


def copy_header(header: Header, frame_id: Optional[str] = None) -> Header:
    """A copy of `header` (optionally with another frame id)."""
    return Header(stamp=Time(sec=header.stamp.sec, nanosec=header.stamp.nanosec),
                  frame_id=header.frame_id if frame_id is None else frame_id)


def header_stamp_ns(msg) -> int:
    """Stamp of a message with a ``header`` field, in nanoseconds."""
    return stamp_to_ns(msg.header.stamp)


# --------------------------------------------------------------------------------------------------
# Raw images

# encoding -> (numpy dtype (little-endian form), channels)
ENCODINGS: Dict[str, Tuple[str, int]] = {
    "rgb8": ("u1", 3), "bgr8": ("u1", 3), "rgba8": ("u1", 4), "bgra8": ("u1", 4),
    "mono8": ("u1", 1), "8UC1": ("u1", 1), "8UC3": ("u1", 3),
    "mono16": ("u2", 1), "16UC1": ("u2", 1), "32FC1": ("f4", 1),
}
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC3", "8UC1")


def _image_bytes(data) -> np.ndarray:
    """A uint8 view of a message's ``data`` (array.array, bytes, list, ndarray)."""
    if isinstance(data, np.ndarray):
        return data.view(np.uint8).ravel()
    try:
        return np.frombuffer(memoryview(data), dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8)


def image_to_numpy(msg: Image) -> np.ndarray:
    """sensor_msgs/Image -> (H, W) or (H, W, C) array of the encoding's dtype (native byte order)."""
    enc = msg.encoding
    if enc not in ENCODINGS:
        raise ConversionError(f"Image.encoding '{enc}' is not supported (use one of {', '.join(ENCODINGS)})")
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


def numpy_to_image(arr: np.ndarray, encoding: str, header: Optional[Header] = None) -> Image:
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
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width, msg.encoding = H, W, encoding
    msg.is_bigendian = int(sys.byteorder == "big" and arr.dtype.itemsize > 1)
    msg.step = W * channels * arr.dtype.itemsize
    msg.data = arr.tobytes()
    return msg


def to_rgb8(arr: np.ndarray, encoding: str) -> np.ndarray:
    """A decoded colour/mono image of `encoding` -> (H, W, 3) uint8 RGB."""
    if encoding not in COLOR_ENCODINGS:
        raise ConversionError(f"encoding '{encoding}' is not a colour image encoding (use one of {', '.join(COLOR_ENCODINGS)})")
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if encoding in ("bgr8", "bgra8"):
        return np.ascontiguousarray(arr[:, :, 2::-1])
    return np.ascontiguousarray(arr[:, :, :3])


def image_to_rgb(msg: Image) -> np.ndarray:
    """sensor_msgs/Image of a colour or mono encoding -> (H, W, 3) uint8 RGB."""
    if msg.encoding not in COLOR_ENCODINGS:
        raise ConversionError(
            f"Image.encoding '{msg.encoding}' is not a camera image encoding (use one of {', '.join(COLOR_ENCODINGS)})")
    return to_rgb8(image_to_numpy(msg), msg.encoding)


def depth_to_image(depth_m: np.ndarray, header: Header) -> Image:
    """(H, W) depth in metres -> 32FC1 Image with `header`."""
    depth_m = np.asarray(depth_m, dtype=np.float32)
    if depth_m.ndim != 2:
        raise ConversionError(f"depth must be (H, W), got shape {depth_m.shape}")
    return numpy_to_image(depth_m, "32FC1", header)


# --------------------------------------------------------------------------------------------------
# Compressed images

def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
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


def rgb_to_compressed(rgb: np.ndarray, fmt: str = "jpeg", header: Optional[Header] = None,
                      jpeg_quality: int = 90) -> CompressedImage:
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
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = fmt_str
    msg.data = buf.tobytes()
    return msg


def resize_rgb(rgb: np.ndarray, hw: Tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, C) uint8 image to hw = (H', W') (area when shrinking, linear when growing).

    OpenCV's resize uses the pixel-centre convention that geometry.resize_intrinsics assumes."""
    import cv2

    H, W = hw
    if rgb.shape[:2] == (H, W):
        return rgb
    interp = cv2.INTER_AREA if H <= rgb.shape[0] and W <= rgb.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(rgb, (int(W), int(H)), interpolation=interp)


# --------------------------------------------------------------------------------------------------
# Camera info

def camera_info_to_K(msg: CameraInfo) -> Tuple[np.ndarray, Tuple[int, int]]:
    """sensor_msgs/CameraInfo -> (K (3, 3) float64, (H, W)). Rejects NaN/inf, non-positive focal lengths
    and an empty size."""
    K = np.asarray(msg.k, dtype=np.float64)
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


def K_to_camera_info(K: np.ndarray, hw: Tuple[int, int], header: Optional[Header] = None,
                     distortion_model: str = "plumb_bob", d: Sequence[float] = (0.0,) * 5) -> CameraInfo:
    """K (3, 3) + (H, W) -> CameraInfo with R = I and P = [K | 0] (a rectified pinhole camera)."""
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    msg = CameraInfo()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(hw[0]), int(hw[1])
    msg.distortion_model = distortion_model
    msg.d = [float(v) for v in d]
    msg.k = [float(v) for v in K.ravel()]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    P = np.zeros((3, 4))
    P[:, :3] = K
    msg.p = [float(v) for v in P.ravel()]
    return msg


def scale_K(K: np.ndarray, src_hw: Tuple[int, int], dst_hw: Tuple[int, int]) -> np.ndarray:
    """K (3, 3) numpy for an image resized from src_hw to dst_hw (geometry.resize_intrinsics)."""
    Kt = torch.as_tensor(np.asarray(K, dtype=np.float64))
    return geometry.resize_intrinsics(Kt, tuple(src_hw), tuple(dst_hw)).numpy()


def scaled_camera_info(msg: CameraInfo, dst_hw: Tuple[int, int], header: Optional[Header] = None) -> CameraInfo:
    """The camera info of `msg`'s camera for an image resized to dst_hw = (H', W')."""
    K, src_hw = camera_info_to_K(msg)
    out = K_to_camera_info(scale_K(K, src_hw, dst_hw), dst_hw, header if header is not None else msg.header,
                           distortion_model=msg.distortion_model or "plumb_bob", d=list(msg.d) or (0.0,) * 5)
    return out


# --------------------------------------------------------------------------------------------------
# Point clouds

_PC_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<f4")])
_PF_DTYPES = {PointField.INT8: "i1", PointField.UINT8: "u1", PointField.INT16: "i2", PointField.UINT16: "u2",
              PointField.INT32: "i4", PointField.UINT32: "u4", PointField.FLOAT32: "f4", PointField.FLOAT64: "f8"}


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 -> (N,) float32 whose bits are 0x00RRGGBB (PCL/rviz packing)."""
    rgb = np.asarray(rgb, dtype=np.uint32)
    packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    return packed.astype("<u4").view("<f4")


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """(N,) float32 packed colours -> (N, 3) uint8."""
    u = np.asarray(packed, dtype="<f4").view("<u4")
    return np.stack([(u >> 16) & 255, (u >> 8) & 255, u & 255], axis=1).astype(np.uint8)


def xyzrgb_to_pointcloud2(xyz: np.ndarray, rgb: Optional[np.ndarray], header: Header) -> PointCloud2:
    """(N, 3) float points (+ (N, 3) uint8 colours) -> PointCloud2 with float32 x, y, z, rgb fields,
    16 bytes per point, one row (height 1), little-endian."""
    xyz = np.asarray(xyz, dtype=np.float32)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ConversionError(f"xyz must be (N, 3), got {xyz.shape}")
    n = xyz.shape[0]
    cloud = np.empty(n, dtype=_PC_DTYPE)
    cloud["x"], cloud["y"], cloud["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    if rgb is None:
        rgb = np.full((n, 3), 255, np.uint8)
    rgb = np.asarray(rgb)
    if rgb.shape != (n, 3):
        raise ConversionError(f"rgb must be (N, 3) = ({n}, 3), got {rgb.shape}")
    cloud["rgb"] = pack_rgb(rgb)
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = 1, n
    msg.fields = [PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                  for i, name in enumerate(("x", "y", "z", "rgb"))]
    msg.is_bigendian = False
    msg.point_step = _PC_DTYPE.itemsize
    msg.row_step = msg.point_step * n
    msg.is_dense = bool(np.isfinite(xyz).all())
    msg.data = cloud.tobytes()
    return msg


def pointcloud2_to_array(msg: PointCloud2, field_names: Iterable[str] = ("x", "y", "z")) -> Dict[str, np.ndarray]:
    """PointCloud2 -> {field name: (N,) array} for the requested fields (any layout/padding/endianness)."""
    by_name = {f.name: f for f in msg.fields}
    n = int(msg.width) * int(msg.height)
    raw = _image_bytes(msg.data)
    if raw.size < n * int(msg.point_step):
        raise ConversionError(f"PointCloud2.data has {raw.size} bytes, {n} points of {msg.point_step} need {n * msg.point_step}")
    names, formats, offsets = [], [], []
    for name in field_names:
        if name not in by_name:
            raise ConversionError(f"PointCloud2 has no field '{name}' (fields: {', '.join(by_name)})")
        f = by_name[name]
        if f.datatype not in _PF_DTYPES:
            raise ConversionError(f"PointCloud2 field '{name}' has unknown datatype {f.datatype}")
        fmt = np.dtype(_PF_DTYPES[f.datatype]).newbyteorder(">" if msg.is_bigendian else "<")
        if int(f.offset) + fmt.itemsize > int(msg.point_step):
            raise ConversionError(f"PointCloud2 field '{name}' (offset {f.offset}, {fmt.itemsize} bytes) does not fit "
                                  f"in point_step {msg.point_step}")
        names.append(name)
        formats.append(fmt)
        offsets.append(f.offset)
    dt = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": int(msg.point_step)})
    rows = raw[: n * int(msg.point_step)]
    arr = np.frombuffer(rows.tobytes(), dtype=dt, count=n)
    return {name: arr[name].astype(arr[name].dtype.newbyteorder("=")) for name in names}


def pointcloud2_to_xyzrgb(msg: PointCloud2) -> Tuple[np.ndarray, np.ndarray]:
    """PointCloud2 with x, y, z, rgb -> ((N, 3) float32, (N, 3) uint8)."""
    fields = pointcloud2_to_array(msg, ("x", "y", "z", "rgb"))
    xyz = np.stack([fields["x"], fields["y"], fields["z"]], axis=1).astype(np.float32)
    rgb_field = fields["rgb"]
    packed = rgb_field.astype("<f4") if rgb_field.dtype.kind == "f" else rgb_field.astype("<u4").view("<f4")
    return xyz, unpack_rgb(packed)


# --------------------------------------------------------------------------------------------------
# Transforms and odometry

def _check_T(T: np.ndarray, name: str = "T") -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise ConversionError(f"{name} must be a 4x4 matrix, got shape {T.shape}")
    if not np.isfinite(T).all():
        raise ConversionError(f"{name} contains NaN/inf")
    return T


def _quat_xyzw(T: np.ndarray) -> Tuple[float, float, float, float]:
    q = geometry.rotmat_to_quat(torch.as_tensor(T[:3, :3])).numpy()  # (w, x, y, z)
    return float(q[1]), float(q[2]), float(q[3]), float(q[0])


def matrix_to_transform(T_parent_child: np.ndarray, parent: str, child: str, stamp_ns: int) -> TransformStamped:
    """4x4 T_parent_child -> geometry_msgs/TransformStamped (header.frame_id = parent, child_frame_id = child)."""
    T = _check_T(T_parent_child, "T_parent_child")
    msg = TransformStamped()
    msg.header = make_header(stamp_ns, parent)
    msg.child_frame_id = child
    msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = (float(v) for v in T[:3, 3])
    q = msg.transform.rotation
    q.x, q.y, q.z, q.w = _quat_xyzw(T)
    return msg


def transform_to_matrix(msg: TransformStamped) -> np.ndarray:
    """geometry_msgs/TransformStamped -> 4x4 T_parent_child (float64). Rejects NaN and zero quaternions."""
    t, q = msg.transform.translation, msg.transform.rotation
    vals = np.array([t.x, t.y, t.z, q.w, q.x, q.y, q.z], dtype=np.float64)
    if not np.isfinite(vals).all():
        raise ConversionError(f"transform {msg.header.frame_id} -> {msg.child_frame_id} contains NaN/inf")
    if np.linalg.norm(vals[3:]) < 1e-9:
        raise ConversionError(f"transform {msg.header.frame_id} -> {msg.child_frame_id} has a zero quaternion")
    T = np.eye(4)
    T[:3, :3] = geometry.quat_to_rotmat(torch.as_tensor(vals[3:])).numpy()
    T[:3, 3] = vals[:3]
    return T


def tf_message(transforms: Sequence[TransformStamped]):
    """tf2_msgs/TFMessage holding `transforms` (tf2_msgs must be importable)."""
    try:
        from tf2_msgs.msg import TFMessage
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConversionError("tf2_msgs is not installed (build it into the venv: see README 'ROS 2')") from exc
    return TFMessage(transforms=list(transforms))


def matrix_to_odometry(T_odom_base: np.ndarray, stamp_ns: int, odom_frame: str = "odom",
                       base_frame: str = "base_link",
                       twist_linear: Optional[np.ndarray] = None, twist_angular: Optional[np.ndarray] = None,
                       pose_covariance: Optional[np.ndarray] = None,
                       twist_covariance: Optional[np.ndarray] = None) -> Odometry:
    """4x4 T_odom_base -> nav_msgs/Odometry (pose in odom, optional twist in base_frame, optional 6x6
    covariances in ROS order x, y, z, rot x, rot y, rot z)."""
    T = _check_T(T_odom_base, "T_odom_base")
    msg = Odometry()
    msg.header = make_header(stamp_ns, odom_frame)
    msg.child_frame_id = base_frame
    p = msg.pose.pose.position
    p.x, p.y, p.z = (float(v) for v in T[:3, 3])
    o = msg.pose.pose.orientation
    o.x, o.y, o.z, o.w = _quat_xyzw(T)
    if twist_linear is not None:
        msg.twist.twist.linear.x, msg.twist.twist.linear.y, msg.twist.twist.linear.z = (float(v) for v in twist_linear)
    if twist_angular is not None:
        msg.twist.twist.angular.x, msg.twist.twist.angular.y, msg.twist.twist.angular.z = (float(v) for v in twist_angular)
    for name, cov, target in (("pose_covariance", pose_covariance, msg.pose), ("twist_covariance", twist_covariance, msg.twist)):
        if cov is not None:
            c = np.asarray(cov, dtype=np.float64)
            if c.shape != (6, 6):
                raise ConversionError(f"{name} must be 6x6, got shape {c.shape}")
            target.covariance = [float(v) for v in c.reshape(-1)]
    return msg


def odometry_to_matrix(msg: Odometry) -> np.ndarray:
    """nav_msgs/Odometry -> 4x4 T_<header.frame_id>_<child_frame_id>."""
    ts = TransformStamped()
    ts.header, ts.child_frame_id = msg.header, msg.child_frame_id
    p, o = msg.pose.pose.position, msg.pose.pose.orientation
    ts.transform.translation.x, ts.transform.translation.y, ts.transform.translation.z = p.x, p.y, p.z
    ts.transform.rotation = o
    return transform_to_matrix(ts)


# --------------------------------------------------------------------------------------------------
# Diagnostics

LEVELS = {"OK": DiagnosticStatus.OK, "WARN": DiagnosticStatus.WARN, "ERROR": DiagnosticStatus.ERROR,
          "STALE": DiagnosticStatus.STALE}


def diagnostic_status(name: str, level: str, message: str, values: Mapping[str, object],
                      hardware_id: str = "") -> DiagnosticStatus:
    """One DiagnosticStatus; level is 'OK', 'WARN', 'ERROR' or 'STALE'; values become string KeyValues."""
    if level not in LEVELS:
        raise ConversionError(f"diagnostic level '{level}' is not one of {', '.join(LEVELS)}")
    return DiagnosticStatus(level=LEVELS[level], name=name, message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()])


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _level_int(level) -> int:
    """DiagnosticStatus.level is a ROS 'byte' (bytes of length 1 in rclpy); as an int."""
    return level if isinstance(level, int) else int.from_bytes(bytes(level), "little")


def diagnostic_array(statuses: Sequence[DiagnosticStatus], stamp_ns: int) -> DiagnosticArray:
    """DiagnosticArray stamped `stamp_ns` holding `statuses`."""
    return DiagnosticArray(header=make_header(stamp_ns, ""), status=list(statuses))


def diagnostics_to_dict(msg: DiagnosticArray) -> Dict[str, Dict[str, object]]:
    """DiagnosticArray -> {status name: {'level': 'OK'|..., 'message': str, 'values': {key: value}}}."""
    names = {_level_int(v): k for k, v in LEVELS.items()}
    out: Dict[str, Dict[str, object]] = {}
    for s in msg.status:
        level = _level_int(s.level)
        out[s.name] = {"level": names.get(level, str(level)), "message": s.message,
                       "values": {kv.key: kv.value for kv in s.values}}
    return out


__all__: List[str] = [n for n in dir() if not n.startswith("_") and n not in ("annotations", "sys", "np", "torch")]
