"""The surround_depth node's parameters, in one place: declaration, validation, and the mapping
into core objects (model config / Predictor, virtual camera, calibration file).

No message types here and no rclpy import at module level. Each parameter is declared once, as a field
of :class:`NodeParams` (description, dynamic, limits in its metadata); :data:`PARAMETERS` is derived from
the fields. The node declares those and passes their values to :func:`node_params_from_values`, which
returns a frozen :class:`NodeParams` or raises :class:`ParamError` naming the parameter and the fix.
"""

from __future__ import annotations

import logging
import math
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from vfdepth_core import geometry
from vfdepth_core.config import DDAD_CAMERAS, NUSCENES_CAMERAS

logger = logging.getLogger(__name__)

class ParamError(ValueError):
    """A node parameter has a bad value; the message names the parameter and the fix."""


def _param(default: Any, description: str = "", dynamic: bool = False, **limits: Any) -> Any:
    """A NodeParams field and its ROS declaration: description, dynamic (may change while the node runs)
    and limits (lo, strict_lo, choices) checked by node_params_from_values."""
    return field(default=default, metadata=dict(description=description, dynamic=dynamic, **limits))


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter (dotted name for nested fields), derived from a NodeParams field."""

    name: str
    default: Any
    description: str
    dynamic: bool = False
    type: Any = str
    lo: Optional[float] = None
    strict_lo: bool = False
    choices: Tuple[str, ...] = ()


@dataclass(frozen=True)
class VirtualCameraParams:
    x: float = _param(0.0, "virtual camera position in base_frame (m)", True)
    y: float = _param(0.0, "", True)
    z: float = _param(2.0, "", True)
    roll_deg: float = _param(0.0, "virtual camera orientation, Rz(yaw) Ry(pitch) Rx(roll) about base_frame axes; "
                                  "all zero = looking forward along x", True)
    pitch_deg: float = _param(0.0, "", True)
    yaw_deg: float = _param(0.0, "", True)
    fx: float = _param(0.0, "virtual intrinsics for an image of virtual.width x virtual.height; "
                            "fx <= 0 = the first camera's intrinsics", True)
    fy: float = _param(0.0, "", True)
    cx: float = _param(0.0, "", True)
    cy: float = _param(0.0, "", True)
    width: int = _param(0, "size the virtual intrinsics refer to; 0 = network size (output is at network size)",
                        True, lo=0)
    height: int = _param(0, "", True, lo=0)


@dataclass(frozen=True)
class NodeParams:
    """The node's parameters; each field declares one ROS parameter (nested fields as 'virtual.x')."""

    cameras: Tuple[str, ...] = _param(DDAD_CAMERAS, "camera names, in the model's camera order; topics are "
                                                    "<cam>/image_raw ...")
    image_transport: str = _param("raw", "'raw' (<cam>/image_raw, sensor_msgs/Image) or 'compressed' "
                                         "(<cam>/image_raw/compressed)", choices=("raw", "compressed"))
    calibration_source: str = _param("camera_info", "'camera_info' (<cam>/camera_info topics) or 'file' "
                                                    "(calibration_file)", choices=("camera_info", "file"))
    extrinsics_source: str = _param("tf", "'tf' (base_frame -> camera frame on /tf_static or /tf) or 'file' "
                                          "(calibration_file)", choices=("tf", "file"))
    calibration_file: str = _param("", "YAML with per-camera intrinsics and/or T_ego_cam (see README 'ROS 2')")
    base_frame: str = _param("base_link", "vehicle frame (x forward, y left, z up) of the extrinsics, points and "
                                          "odometry")
    odom_frame: str = _param("odom", "fixed frame of the odometry")
    checkpoint: str = _param("", "trained checkpoint (.pt); empty = RANDOM weights with the model_config (tests "
                                 "only)", True)
    model_config: str = _param("", "training YAML whose model is built when checkpoint is empty")
    device: str = _param("auto", "'auto' (CUDA when available), 'cpu' or 'cuda' (or 'cuda:N')")
    amp: str = _param("none", "autocast on the device: 'none', 'fp16' or 'bf16'", choices=("none", "fp16", "bf16"))
    backend: str = _param("torch", "'torch' (checkpoint/model_config) or 'onnx' (onnx_path, run by onnxruntime)",
                          choices=("torch", "onnx"))
    onnx_path: str = _param("", "ONNX model from vfdepth_core.export.export_onnx (backend 'onnx'; its rig must "
                                "match)")
    slop_s: float = _param(0.08, "largest spread of the image stamps of one synchronized set (s)", lo=0,
                           strict_lo=True)
    queue_size: int = _param(10, "images queued per camera by the synchronizer", lo=1)
    inter_message_lower_bound_s: float = _param(0.0, "smallest gap between two images of one camera (s); > 0 emits "
                                                     "sets without waiting for the next frame", lo=0)
    camera_timeout_s: float = _param(1.0, "a camera silent for longer is reported STALE on /diagnostics", True,
                                     lo=0, strict_lo=True)
    max_pose_gap_s: float = _param(0.5, "no ego motion across a larger gap between processed sets (odometry "
                                        "holds)", True, lo=0, strict_lo=True)
    pose_refine_iterations: int = _param(-1, "photometric refinement of the ego motion through the current depth "
                                              "(beyond the paper): Levenberg-Marquardt iterations per pyramid "
                                              "level; -1 = the checkpoint's model.pose_refine_iterations, 0 = off "
                                              "(the paper)", lo=-1)
    point_decimation: int = _param(4, "keep every n-th depth pixel (rows and columns) in the point cloud", True,
                                   lo=1)
    points_max_depth_m: float = _param(80.0, "drop points farther than this from their camera (m)", True, lo=0,
                                       strict_lo=True)
    publish_depth: bool = _param(True, "publish <cam>/depth and <cam>/depth/camera_info", True)
    publish_odom: bool = _param(True, "estimate ego motion; publish odom and the odom -> base transform", True)
    publish_tf: bool = _param(True, "also broadcast odom -> base on /tf", True)
    publish_points: bool = _param(True, "publish the fused point cloud on points", True)
    publish_virtual: bool = _param(True, "publish virtual/depth and virtual/camera_info", True)
    diagnostics_period_s: float = _param(1.0, "period of /diagnostics (s)", lo=0, strict_lo=True)
    autostart: bool = _param(True, "configure and activate at start-up (false: a managed node that waits for "
                                   "`ros2 lifecycle set /surround_depth configure`, then `activate`)")
    virtual: VirtualCameraParams = field(default_factory=VirtualCameraParams)

    @property
    def torch_device(self) -> Optional[str]:
        """None for 'auto' (the Predictor picks CUDA when available)."""
        return None if self.device == "auto" else self.device


def _specs(cls: type, prefix: str = "") -> List[ParamSpec]:
    hints = typing.get_type_hints(cls)
    out: List[ParamSpec] = []
    for f in fields(cls):
        if is_dataclass(hints[f.name]):
            out += _specs(hints[f.name], f"{prefix}{f.name}.")
        else:
            default = list(f.default) if isinstance(f.default, tuple) else f.default
            out.append(ParamSpec(prefix + f.name, default, type=hints[f.name], **f.metadata))
    return out


PARAMETERS: Tuple[ParamSpec, ...] = tuple(_specs(NodeParams))
SPECS: Dict[str, ParamSpec] = {p.name: p for p in PARAMETERS}


def _num(name: str, v: Any, lo: Optional[float] = None, integer: bool = False, strict_lo: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ParamError(f"parameter '{name}' must be a number, got {v!r}")
    if not math.isfinite(float(v)):
        raise ParamError(f"parameter '{name}' must be finite, got {v!r}")
    if integer and float(v) != int(v):
        raise ParamError(f"parameter '{name}' must be an integer, got {v!r}")
    if lo is not None and (v <= lo if strict_lo else v < lo):
        raise ParamError(f"parameter '{name}' must be {'>' if strict_lo else '>='} {lo}, got {v!r}")
    return int(v) if integer else float(v)


def _cameras(cams: Any) -> Tuple[str, ...]:
    if isinstance(cams, str):
        cams = [c.strip() for c in cams.split(",") if c.strip()]
    if not isinstance(cams, (list, tuple)):  # e.g. 'cameras:' left empty in a params file -> None
        raise ParamError(f"parameter 'cameras' must be a list of camera names, got {cams!r}")
    cams = tuple(str(c) for c in cams)
    if not cams:
        raise ParamError("parameter 'cameras' is empty: list the camera names, e.g. [camera_01, camera_05, ...]")
    if len(set(cams)) != len(cams):
        raise ParamError(f"parameter 'cameras' lists a camera twice: {list(cams)}")
    return cams


def _value(s: ParamSpec, v: Any) -> Any:
    """One parameter value checked against its type and limits."""
    if s.type is bool:
        return bool(v)
    if s.type in (int, float):
        return _num(s.name, v, s.lo, s.type is int, s.strict_lo)
    if s.choices and v not in s.choices:
        raise ParamError(f"parameter '{s.name}' must be one of {'|'.join(s.choices)}, got {v!r}")
    return _cameras(v) if s.name == "cameras" else str(v)


def _build(cls: type, v: Mapping[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: _build(hints[f.name], v, f"{prefix}{f.name}.") if is_dataclass(hints[f.name])
                  else v[prefix + f.name] for f in fields(cls)})


def node_params_from_values(values: Mapping[str, Any]) -> NodeParams:
    """Parameter values (name -> value; missing names take their defaults) -> validated NodeParams."""
    unknown = sorted(set(values) - set(SPECS))
    if unknown:
        raise ParamError(f"unknown parameter '{unknown[0]}' (known: {', '.join(SPECS)})")
    v = {s.name: _value(s, values.get(s.name, s.default)) for s in PARAMETERS}
    dev = v["device"]
    if not (dev in ("auto", "cpu", "cuda") or dev.startswith("cuda:")):
        raise ParamError(f"parameter 'device' must be auto|cpu|cuda (or cuda:N), got {dev!r}")
    if (v["calibration_source"] == "file" or v["extrinsics_source"] == "file") and not v["calibration_file"]:
        raise ParamError("parameter 'calibration_file' is empty but calibration_source/extrinsics_source is 'file': "
                         "set it to the rig's calibration YAML")
    for key in ("base_frame", "odom_frame"):
        if not v[key].strip():
            raise ParamError(f"parameter '{key}' is empty: give a frame id")
    if v["virtual.fx"] > 0 and (v["virtual.fy"] <= 0 or v["virtual.width"] <= 0 or v["virtual.height"] <= 0):
        raise ParamError("parameter 'virtual.fx' is set: also set virtual.fy > 0 and virtual.width/virtual.height "
                         "(the image size the intrinsics refer to)")
    return _build(NodeParams, v)


def params_to_values(p: NodeParams) -> Dict[str, Any]:
    """NodeParams -> flat parameter values (the inverse of node_params_from_values)."""
    out: Dict[str, Any] = {}
    for s in PARAMETERS:
        val = p
        for part in s.name.split("."):
            val = getattr(val, part)
        out[s.name] = list(val) if isinstance(val, tuple) else val
    return out


# --------------------------------------------------------------------------------------------------
# Into core objects


def load_predictor(p: NodeParams):
    """The Predictor for these parameters: from `checkpoint`, or random weights from `model_config`.

    Raises ParamError naming the parameter when a file is missing or unreadable."""
    from vfdepth_core.config import ConfigError, load_config
    from vfdepth_core.inference import OnnxPredictor, Predictor

    if p.backend == "onnx":
        if not p.onnx_path or not Path(p.onnx_path).expanduser().is_file():
            raise ParamError(f"parameter 'onnx_path': file '{p.onnx_path}' not found (backend 'onnx' needs a model "
                             "exported by vfdepth_core.export.export_onnx)")
        try:
            pred = OnnxPredictor(Path(p.onnx_path).expanduser())
        except ConfigError as exc:
            raise ParamError(f"parameter 'onnx_path': {exc}") from exc
    elif p.checkpoint:
        path = Path(p.checkpoint).expanduser()
        if not path.is_file():
            raise ParamError(f"parameter 'checkpoint': file {path} not found (give a trained .pt file, or '' with "
                             f"'model_config' for random weights)")
        try:
            pred = Predictor.from_checkpoint(path, device=p.torch_device, amp=p.amp)
        except (ConfigError, KeyError, RuntimeError, OSError, ValueError) as exc:
            raise ParamError(f"parameter 'checkpoint': cannot load {path}: {str(exc).splitlines()[0]}") from exc
    else:
        if not p.model_config:
            raise ParamError("parameters 'checkpoint' and 'model_config' are both empty: set 'checkpoint' to a "
                             "trained model (.pt), or 'model_config' to a training YAML to run random weights")
        path = Path(p.model_config).expanduser()
        if not path.is_file():
            raise ParamError(f"parameter 'model_config': file {path} not found (give a training YAML such as "
                             f"training/configs/synthetic/synthetic_tiny.yaml)")
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            raise ParamError(f"parameter 'model_config': {exc}") from exc
        logger.warning("=" * 78)
        logger.warning("parameter 'checkpoint' is empty: running RANDOM WEIGHTS built from %s -- the depth, "
                       "odometry and virtual view are MEANINGLESS (set 'checkpoint' to a trained model)", path)
        logger.warning("=" * 78)
        pred = Predictor(cfg, device=p.torch_device, amp=p.amp)
    if p.pose_refine_iterations >= 0:
        pred.set_pose_refinement(p.pose_refine_iterations)
    n_model = pred.num_cams
    if n_model != len(p.cameras):
        raise ParamError(f"parameter 'cameras' lists {len(p.cameras)} cameras but the model was trained for "
                         f"{n_model} ({', '.join(pred.cfg.data.cameras)})")
    return pred


def virtual_camera(v: VirtualCameraParams, net_hw: Tuple[int, int], K_ref_net: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Virtual camera parameters -> (K (3, 3) at the network size, T_ego_cam (4, 4)), float64 numpy.

    The pose is the camera body in base_frame (x, y, z; roll/pitch/yaw in degrees, yaw about z up);
    the optical frame follows the OpenCV convention, so all angles zero looks along +x."""
    if v.fx > 0:
        K = geometry.intrinsics_matrix(v.fx, v.fy, v.cx, v.cy).double()
        K = geometry.resize_intrinsics(K, (v.height, v.width), tuple(net_hw))
        K = K.numpy()
    else:
        K = np.asarray(K_ref_net, dtype=np.float64).reshape(3, 3)
    return K, geometry.mounted_camera_pose(v.x, v.y, v.z, v.roll_deg, v.pitch_deg, v.yaw_deg).numpy()


# --------------------------------------------------------------------------------------------------
# Calibration file


@dataclass(frozen=True)
class CameraCalibration:
    frame_id: str
    K: Optional[np.ndarray]  # (3, 3) for an image of hw
    hw: Optional[Tuple[int, int]]
    T_ego_cam: Optional[np.ndarray]  # (4, 4) camera -> base_frame


def load_calibration_file(path: str, cameras: Sequence[str]) -> Dict[str, CameraCalibration]:
    """Read a rig calibration YAML::

        camera_01:
          frame_id: camera_01          # optional, default the camera name
          width: 1936                  # intrinsics (optional when they come from camera_info)
          height: 1216
          K: [fx, 0, cx, 0, fy, cy, 0, 0, 1]    # or fx:, fy:, cx:, cy:
          T_ego_cam: [16 values, row-major]      # or translation: [x, y, z] + rotation_wxyz: [w, x, y, z]

    Raises ParamError naming the file, camera and key."""
    import yaml

    src = Path(path).expanduser()
    where = f"parameter 'calibration_file' ({src})"
    if not src.is_file():
        raise ParamError(f"{where}: file not found")
    try:
        data = yaml.safe_load(src.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamError(f"{where}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise ParamError(f"{where}: expected a mapping camera name -> calibration")
    out: Dict[str, CameraCalibration] = {}
    for cam in cameras:
        if cam not in data:
            raise ParamError(f"{where}: no entry for camera '{cam}'")
        c = data[cam] or {}
        K = hw = T = None
        try:
            if "K" in c or "fx" in c:
                K = (np.asarray(c["K"], dtype=np.float64).reshape(3, 3) if "K" in c else
                     np.array([[c["fx"], 0, c["cx"]], [0, c["fy"], c["cy"]], [0, 0, 1]], dtype=np.float64))
                hw = (int(c["height"]), int(c["width"]))
                if not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0 or min(hw) <= 0:
                    raise ValueError("K must be finite with positive focal lengths and a positive size")
            if "T_ego_cam" in c:
                T = np.asarray(c["T_ego_cam"], dtype=np.float64).reshape(4, 4)
            elif "translation" in c:
                q = torch.as_tensor(np.asarray(c["rotation_wxyz"], dtype=np.float64).reshape(4))
                T = np.eye(4)
                T[:3, :3] = geometry.quat_to_rotmat(q).numpy()
                T[:3, 3] = np.asarray(c["translation"], dtype=np.float64).reshape(3)
            if T is not None and not np.isfinite(T).all():
                raise ValueError("T_ego_cam contains NaN/inf")
        except (KeyError, ValueError, TypeError) as exc:
            raise ParamError(f"{where}: camera '{cam}': {exc}") from exc
        out[cam] = CameraCalibration(frame_id=str(c.get("frame_id", cam)), K=K, hw=hw, T_ego_cam=T)
    return out


def calibration_for(p: NodeParams) -> Dict[str, CameraCalibration]:
    """The calibration file's cameras (empty without one); ParamError when it lacks what the
    calibration/extrinsics sources need."""
    if not p.calibration_file:
        return {}
    calibration = load_calibration_file(p.calibration_file, p.cameras)
    for key, attr, what in (("calibration_source", "K", "intrinsics (K/fx + width/height)"),
                            ("extrinsics_source", "T_ego_cam", "T_ego_cam/translation")):
        missing = [c for c in p.cameras if getattr(p, key) == "file" and getattr(calibration[c], attr) is None]
        if missing:
            raise ParamError(f"parameter 'calibration_file' ({p.calibration_file}): camera '{missing[0]}' has no "
                             f"{what} but {key} is 'file'")
    return calibration


def with_values(p: NodeParams, changes: Mapping[str, Any]) -> NodeParams:
    """NodeParams with some parameter values changed (validated as a whole)."""
    values = params_to_values(p)
    values.update(changes)
    return node_params_from_values(values)


__all__ = ["PARAMETERS", "SPECS", "ParamSpec", "ParamError", "NodeParams", "VirtualCameraParams",
           "node_params_from_values", "params_to_values", "with_values", "load_predictor", "virtual_camera",
           "CameraCalibration", "load_calibration_file", "calibration_for", "DDAD_CAMERAS", "NUSCENES_CAMERAS"]
