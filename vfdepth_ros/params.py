"""The surround_depth node's parameters, in one place: declaration table, validation, and the mapping
into core objects (model config / Predictor, virtual camera, calibration file).

No message types here and no rclpy import at module level: the node declares the parameters of
:data:`PARAMETERS` and passes their values to :func:`node_params_from_values`, which returns a frozen
:class:`NodeParams` or raises :class:`ParamError` naming the parameter and the fix.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from vfdepth_core import geometry
from vfdepth_core.config import DDAD_CAMERAS, NUSCENES_CAMERAS

logger = logging.getLogger(__name__)

# OpenCV optical axes (x right, y down, z forward) expressed in a ROS body frame (x forward, y left,
# z up): the rotation T_body_optical used by every camera mounted with roll = pitch = yaw = 0.
R_BODY_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


class ParamError(ValueError):
    """A node parameter has a bad value; the message names the parameter and the fix."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    dynamic: bool = False  # may change while the node runs


PARAMETERS: Tuple[ParamSpec, ...] = (
    ParamSpec("cameras", list(DDAD_CAMERAS), "camera names, in the model's camera order; topics are <cam>/image_raw ..."),
    ParamSpec("image_transport", "raw", "'raw' (<cam>/image_raw, sensor_msgs/Image) or 'compressed' (<cam>/image_raw/compressed)"),
    ParamSpec("calibration_source", "camera_info", "'camera_info' (<cam>/camera_info topics) or 'file' (calibration_file)"),
    ParamSpec("extrinsics_source", "tf", "'tf' (base_frame -> camera frame on /tf_static or /tf) or 'file' (calibration_file)"),
    ParamSpec("calibration_file", "", "YAML with per-camera intrinsics and/or T_ego_cam (see README 'ROS 2')"),
    ParamSpec("base_frame", "base_link", "vehicle frame (x forward, y left, z up) of the extrinsics, points and odometry"),
    ParamSpec("odom_frame", "odom", "fixed frame of the odometry"),
    ParamSpec("checkpoint", "", "trained checkpoint (.pt); empty = RANDOM weights with the model_config (tests only)", True),
    ParamSpec("model_config", "", "training YAML whose model is built when checkpoint is empty"),
    ParamSpec("device", "auto", "'auto' (CUDA when available), 'cpu' or 'cuda' (or 'cuda:N')"),
    ParamSpec("amp", "none", "autocast on the device: 'none', 'fp16' or 'bf16'"),
    ParamSpec("backend", "torch", "'torch' (checkpoint/model_config) or 'onnx' (onnx_path, run by onnxruntime)"),
    ParamSpec("onnx_path", "", "ONNX model from vfdepth_core.export.export_onnx (backend 'onnx'; its rig must match)"),
    ParamSpec("slop_s", 0.08, "largest spread of the image stamps of one synchronized set (s)"),
    ParamSpec("queue_size", 10, "images queued per camera by the synchronizer"),
    ParamSpec("inter_message_lower_bound_s", 0.0,
              "smallest gap between two images of one camera (s); > 0 emits sets without waiting for the next frame"),
    ParamSpec("camera_timeout_s", 1.0, "a camera silent for longer is reported STALE on /diagnostics", True),
    ParamSpec("max_pose_gap_s", 0.5, "no ego motion across a larger gap between processed sets (odometry holds)", True),
    ParamSpec("point_decimation", 4, "keep every n-th depth pixel (rows and columns) in the point cloud", True),
    ParamSpec("points_max_depth_m", 80.0, "drop points farther than this from their camera (m)", True),
    ParamSpec("publish_depth", True, "publish <cam>/depth and <cam>/depth/camera_info", True),
    ParamSpec("publish_odom", True, "estimate ego motion; publish odom and the odom -> base transform", True),
    ParamSpec("publish_tf", True, "also broadcast odom -> base on /tf", True),
    ParamSpec("publish_points", True, "publish the fused point cloud on points", True),
    ParamSpec("publish_virtual", True, "publish virtual/depth and virtual/camera_info", True),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics (s)"),
    ParamSpec("autostart", True, "configure and activate at start-up (false: a managed node that waits for "
                                 "`ros2 lifecycle set /surround_depth configure`, then `activate`)"),
    ParamSpec("virtual.x", 0.0, "virtual camera position in base_frame (m)", True),
    ParamSpec("virtual.y", 0.0, "", True),
    ParamSpec("virtual.z", 2.0, "", True),
    ParamSpec("virtual.roll_deg", 0.0, "virtual camera orientation, Rz(yaw) Ry(pitch) Rx(roll) about base_frame axes; "
                                       "all zero = looking forward along x", True),
    ParamSpec("virtual.pitch_deg", 0.0, "", True),
    ParamSpec("virtual.yaw_deg", 0.0, "", True),
    ParamSpec("virtual.fx", 0.0, "virtual intrinsics for an image of virtual.width x virtual.height; "
                                 "fx <= 0 = the first camera's intrinsics", True),
    ParamSpec("virtual.fy", 0.0, "", True),
    ParamSpec("virtual.cx", 0.0, "", True),
    ParamSpec("virtual.cy", 0.0, "", True),
    ParamSpec("virtual.width", 0, "size the virtual intrinsics refer to; 0 = network size (output is at network size)", True),
    ParamSpec("virtual.height", 0, "", True),
)
SPECS: Dict[str, ParamSpec] = {p.name: p for p in PARAMETERS}

CHOICES = {
    "image_transport": ("raw", "compressed"),
    "calibration_source": ("camera_info", "file"),
    "extrinsics_source": ("tf", "file"),
    "amp": ("none", "fp16", "bf16"),
    "backend": ("torch", "onnx"),
}


@dataclass(frozen=True)
class VirtualCameraParams:
    x: float = 0.0
    y: float = 0.0
    z: float = 2.0
    roll_deg: float = 0.0
    pitch_deg: float = 0.0
    yaw_deg: float = 0.0
    fx: float = 0.0
    fy: float = 0.0
    cx: float = 0.0
    cy: float = 0.0
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class NodeParams:
    cameras: Tuple[str, ...] = DDAD_CAMERAS
    image_transport: str = "raw"
    calibration_source: str = "camera_info"
    extrinsics_source: str = "tf"
    calibration_file: str = ""
    base_frame: str = "base_link"
    odom_frame: str = "odom"
    checkpoint: str = ""
    model_config: str = ""
    device: str = "auto"
    amp: str = "none"
    backend: str = "torch"
    onnx_path: str = ""
    slop_s: float = 0.08
    queue_size: int = 10
    inter_message_lower_bound_s: float = 0.0
    camera_timeout_s: float = 1.0
    max_pose_gap_s: float = 0.5
    point_decimation: int = 4
    points_max_depth_m: float = 80.0
    publish_depth: bool = True
    publish_odom: bool = True
    publish_tf: bool = True
    publish_points: bool = True
    publish_virtual: bool = True
    diagnostics_period_s: float = 1.0
    autostart: bool = True
    virtual: VirtualCameraParams = field(default_factory=VirtualCameraParams)

    @property
    def torch_device(self) -> Optional[str]:
        """None for 'auto' (the Predictor picks CUDA when available)."""
        return None if self.device == "auto" else self.device


def _num(name: str, v: Any, lo: Optional[float] = None, hi: Optional[float] = None, integer: bool = False,
         strict_lo: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ParamError(f"parameter '{name}' must be a number, got {v!r}")
    if not math.isfinite(float(v)):
        raise ParamError(f"parameter '{name}' must be finite, got {v!r}")
    if integer and float(v) != int(v):
        raise ParamError(f"parameter '{name}' must be an integer, got {v!r}")
    if lo is not None and (v <= lo if strict_lo else v < lo):
        raise ParamError(f"parameter '{name}' must be {'>' if strict_lo else '>='} {lo}, got {v!r}")
    if hi is not None and v > hi:
        raise ParamError(f"parameter '{name}' must be <= {hi}, got {v!r}")
    return int(v) if integer else float(v)


def node_params_from_values(values: Mapping[str, Any]) -> NodeParams:
    """Parameter values (name -> value; missing names take their defaults) -> validated NodeParams."""
    unknown = sorted(set(values) - set(SPECS))
    if unknown:
        raise ParamError(f"unknown parameter '{unknown[0]}' (known: {', '.join(SPECS)})")
    v = {p.name: values.get(p.name, p.default) for p in PARAMETERS}
    cams = v["cameras"]
    if isinstance(cams, str):
        cams = [c.strip() for c in cams.split(",") if c.strip()]
    if not isinstance(cams, (list, tuple)):  # e.g. 'cameras:' left empty in a params file -> None
        raise ParamError(f"parameter 'cameras' must be a list of camera names, got {cams!r}")
    cams = tuple(str(c) for c in cams)
    if not cams:
        raise ParamError("parameter 'cameras' is empty: list the camera names, e.g. [camera_01, camera_05, ...]")
    if len(set(cams)) != len(cams):
        raise ParamError(f"parameter 'cameras' lists a camera twice: {list(cams)}")
    for key, choices in CHOICES.items():
        if v[key] not in choices:
            raise ParamError(f"parameter '{key}' must be one of {'|'.join(choices)}, got {v[key]!r}")
    dev = str(v["device"])
    if not (dev in ("auto", "cpu", "cuda") or dev.startswith("cuda:")):
        raise ParamError(f"parameter 'device' must be auto|cpu|cuda (or cuda:N), got {dev!r}")
    if (v["calibration_source"] == "file" or v["extrinsics_source"] == "file") and not v["calibration_file"]:
        raise ParamError("parameter 'calibration_file' is empty but calibration_source/extrinsics_source is 'file': "
                         "set it to the rig's calibration YAML")
    for key in ("base_frame", "odom_frame"):
        if not str(v[key]).strip():
            raise ParamError(f"parameter '{key}' is empty: give a frame id")
    virtual = VirtualCameraParams(
        **{f.name: _num(f"virtual.{f.name}", v[f"virtual.{f.name}"], integer=f.name in ("width", "height"),
                        lo=0 if f.name in ("width", "height") else None)
           for f in fields(VirtualCameraParams)})
    if virtual.fx > 0 and (virtual.fy <= 0 or virtual.width <= 0 or virtual.height <= 0):
        raise ParamError("parameter 'virtual.fx' is set: also set virtual.fy > 0 and virtual.width/virtual.height "
                         "(the image size the intrinsics refer to)")
    return NodeParams(
        cameras=cams, image_transport=v["image_transport"], calibration_source=v["calibration_source"],
        extrinsics_source=v["extrinsics_source"], calibration_file=str(v["calibration_file"]),
        base_frame=str(v["base_frame"]), odom_frame=str(v["odom_frame"]), checkpoint=str(v["checkpoint"]),
        model_config=str(v["model_config"]), device=dev, amp=v["amp"], backend=v["backend"],
        onnx_path=str(v["onnx_path"]),
        slop_s=_num("slop_s", v["slop_s"], lo=0, strict_lo=True),
        queue_size=_num("queue_size", v["queue_size"], lo=1, integer=True),
        inter_message_lower_bound_s=_num("inter_message_lower_bound_s", v["inter_message_lower_bound_s"], lo=0),
        camera_timeout_s=_num("camera_timeout_s", v["camera_timeout_s"], lo=0, strict_lo=True),
        max_pose_gap_s=_num("max_pose_gap_s", v["max_pose_gap_s"], lo=0, strict_lo=True),
        point_decimation=_num("point_decimation", v["point_decimation"], lo=1, integer=True),
        points_max_depth_m=_num("points_max_depth_m", v["points_max_depth_m"], lo=0, strict_lo=True),
        publish_depth=bool(v["publish_depth"]), publish_odom=bool(v["publish_odom"]), publish_tf=bool(v["publish_tf"]),
        publish_points=bool(v["publish_points"]), publish_virtual=bool(v["publish_virtual"]),
        diagnostics_period_s=_num("diagnostics_period_s", v["diagnostics_period_s"], lo=0, strict_lo=True),
        autostart=bool(v["autostart"]),
        virtual=virtual,
    )


def params_to_values(p: NodeParams) -> Dict[str, Any]:
    """NodeParams -> flat parameter values (the inverse of node_params_from_values)."""
    out: Dict[str, Any] = {}
    for f in fields(NodeParams):
        val = getattr(p, f.name)
        if f.name == "virtual":
            for vf in fields(VirtualCameraParams):
                out[f"virtual.{vf.name}"] = getattr(val, vf.name)
        elif f.name == "cameras":
            out[f.name] = list(val)
        else:
            out[f.name] = val
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
    R_ego_body = geometry.euler_to_rotmat(float(v.roll_deg), float(v.pitch_deg), float(v.yaw_deg), degrees=True)
    T = np.eye(4)
    T[:3, :3] = R_ego_body.double().numpy() @ R_BODY_OPTICAL
    T[:3, 3] = (v.x, v.y, v.z)
    return K, T


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


def with_values(p: NodeParams, changes: Mapping[str, Any]) -> NodeParams:
    """NodeParams with some parameter values changed (validated as a whole)."""
    values = params_to_values(p)
    values.update(changes)
    return node_params_from_values(values)


__all__ = ["PARAMETERS", "SPECS", "ParamSpec", "ParamError", "NodeParams", "VirtualCameraParams",
           "node_params_from_values", "params_to_values", "with_values", "load_predictor", "virtual_camera",
           "CameraCalibration", "load_calibration_file", "DDAD_CAMERAS", "NUSCENES_CAMERAS", "R_BODY_OPTICAL"]
