"""`vfdepth evaluate-bag <input bag> <recorded outputs bag>`: score the node graph's recorded outputs
against the input bag's ground truth.

Depth: every ``<cam>/depth`` (32FC1, metres, header copied from the source image) is matched by
camera and stamp to the input's nearest ``lidar/points`` sweep. The sweep goes into the camera through
``/tf_static`` (base_link -> lidar, base_link -> camera frame) and, when the input has ``gt/odom``, the
ego motion between the sweep's and the image's stamps (the same motion compensation as the dataset
loaders); it is projected with the intrinsics of the matching ``<cam>/depth/camera_info`` (the depth
image's size; else the input camera_info scaled to it) using :mod:`vfdepth_core.geometry`. Scores
follow the paper's protocol via :mod:`vfdepth_core.metrics` (metric and median scaling, per camera and
mean; valid = ``min_depth < gt <= max_depth``, prediction clamped to the same range).

Odometry: recorded ``odom`` (nav_msgs/Odometry) against ``gt/odom`` interpolated at the estimate's
stamps, scored by :func:`vfdepth_core.odometry.trajectory_errors`: ATE after SE(3) alignment (and
Sim(3)), metric relative translation/rotation errors per step and per metre, end-point drift and
segment errors.
"""

from __future__ import annotations

import argparse
import json
import logging
from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from vfdepth_ros import conversions as cv
from vfdepth_ros.bag import common as C
from vfdepth_ros.bag.common import BagError

log = logging.getLogger(__name__)


def _t(topic: str) -> str:
    return topic.lstrip("/")


# ------------------------------------------------------------------------------------------ reading
@dataclass
class GroundTruth:
    """What evaluation needs from the input bag."""

    T_base_frame: Dict[str, np.ndarray]  # static transforms base_link -> frame
    lidar_stamps: List[int]
    lidar_points: List[np.ndarray]  # (P, 4) float32 in lidar_frames[i]
    lidar_frames: List[str]
    odom_stamps: np.ndarray  # (M,) int64
    odom_T: np.ndarray  # (M, 4, 4) T_odom_base
    camera_info: Dict[str, Tuple[np.ndarray, int, int, str]]  # cam -> (K, H, W, frame_id)
    dataset: str = ""


def read_ground_truth(path: str | Path, need_lidar: bool = True, allow_damaged: bool = False) -> GroundTruth:
    reader = C.open_reader(path, allow_damaged)
    try:
        topics = {_t(c.topic): c for c in reader.connections}
        for required in ([C.LIDAR_POINTS] if need_lidar else []) + [_t(C.TF_STATIC)]:
            if required not in topics:
                raise BagError(f"{path}: input bag has no {required} topic (it has {', '.join(sorted(topics))}); "
                               "evaluation needs the converter's LIDAR and /tf_static")
        tf: Dict[str, np.ndarray] = {}
        parent: Dict[str, Tuple[str, np.ndarray]] = {}
        lidar_stamps, lidar_points, lidar_frames = [], [], []
        odom_stamps, odom_T = [], []
        infos: Dict[str, Tuple[np.ndarray, int, int, str]] = {}
        wanted = [c for name, c in topics.items()
                  if name in (_t(C.TF_STATIC), C.LIDAR_POINTS, C.GT_ODOM) or name.endswith("/camera_info")]
        for conn, _, raw in C.iter_messages(reader, wanted, allow_damaged=allow_damaged):
            name = _t(conn.topic)
            msg = C.deserialize(raw, conn.msgtype)
            if name == _t(C.TF_STATIC):
                for ts in msg.transforms:
                    parent[ts.child_frame_id] = (ts.header.frame_id, cv.transform_to_matrix(ts))
            elif name == C.LIDAR_POINTS:
                lidar_stamps.append(cv.stamp_to_ns(msg.header.stamp))
                lidar_points.append(cv.pointcloud2_to_xyzi(msg))
                lidar_frames.append(msg.header.frame_id)
            elif name == C.GT_ODOM:
                odom_stamps.append(cv.stamp_to_ns(msg.header.stamp))
                odom_T.append(cv.odometry_to_matrix(msg))
            else:
                cam = name[: -len("/camera_info")]
                if cam not in infos:
                    K, (h, w) = cv.camera_info_to_K(msg)
                    infos[cam] = (K, h, w, msg.header.frame_id)
        # resolve every static frame relative to base_link
        for frame in list(parent):
            T, f, seen = np.eye(4), frame, set()
            while f in parent and f not in seen:
                seen.add(f)
                p, T_p_f = parent[f]
                T = T_p_f @ T
                f = p
            if f == C.BASE_FRAME:
                tf[frame] = T
        tf.setdefault(C.BASE_FRAME, np.eye(4))
        order = np.argsort(odom_stamps, kind="stable")
        return GroundTruth(tf, lidar_stamps, lidar_points, lidar_frames,
                           np.asarray(odom_stamps, np.int64)[order],
                           np.asarray(odom_T, float).reshape(-1, 4, 4)[order], infos)
    finally:
        reader.close()


@dataclass
class Outputs:
    depth: Dict[str, List[Tuple[int, np.ndarray, str]]] = field(default_factory=dict)  # cam -> (stamp, depth, frame)
    depth_info: Dict[str, Dict[int, Tuple[np.ndarray, int, int]]] = field(default_factory=dict)  # cam -> stamp -> K
    odom: List[Tuple[int, np.ndarray]] = field(default_factory=list)


def read_outputs(path: str | Path, odom_topic: str = "odom", allow_damaged: bool = False) -> Outputs:
    reader = C.open_reader(path, allow_damaged)
    out = Outputs()
    try:
        topics = {_t(c.topic): c for c in reader.connections}
        depth_topics = [n for n in topics if n.endswith("/depth") and not n.startswith("virtual")]
        if not depth_topics and _t(odom_topic) not in topics:
            raise BagError(f"{path}: no <cam>/depth and no {odom_topic} topic (it has {', '.join(sorted(topics)) or 'none'}); "
                           "record the node's outputs, e.g. `vfdepth bag record -o out.mcap camera_01/depth ... odom`")
        for n in depth_topics:
            if topics[n].msgtype != "sensor_msgs/msg/Image":
                raise BagError(f"{path}: {n} has type {topics[n].msgtype}, expected sensor_msgs/msg/Image")
        wanted = [topics[n] for n in depth_topics] + [topics[n + "/camera_info"] for n in depth_topics
                                                      if n + "/camera_info" in topics]
        if _t(odom_topic) in topics:
            wanted.append(topics[_t(odom_topic)])
        for conn, _, raw in C.iter_messages(reader, wanted, allow_damaged=allow_damaged):
            name = _t(conn.topic)
            msg = C.deserialize(raw, conn.msgtype)
            t = cv.stamp_to_ns(msg.header.stamp)
            if name == _t(odom_topic):
                out.odom.append((t, cv.odometry_to_matrix(msg)))
            elif name.endswith("/camera_info"):
                cam = name[: -len("/depth/camera_info")]
                K, (h, w) = cv.camera_info_to_K(msg)
                out.depth_info.setdefault(cam, {})[t] = (K, h, w)
            else:
                cam = name[: -len("/depth")]
                out.depth.setdefault(cam, []).append((t, cv.image_to_array(msg), msg.header.frame_id))
    finally:
        reader.close()
    return out


# ------------------------------------------------------------------------------------------ poses
def interpolate_pose(stamps: np.ndarray, Ts: np.ndarray, t: int, max_extrapolation_ns: int = 0) -> Optional[np.ndarray]:
    """Pose at `t` by linear translation + slerp between the neighbouring stamps; None outside the range."""
    import torch

    from vfdepth_core.geometry import axis_angle_to_rotmat, rotmat_to_axis_angle

    if len(stamps) == 0:
        return None
    if t <= stamps[0] or t >= stamps[-1]:
        i = 0 if t <= stamps[0] else len(stamps) - 1
        return Ts[i].copy() if abs(int(stamps[i]) - t) <= max_extrapolation_ns else None
    j = int(np.searchsorted(stamps, t))
    i = j - 1
    a = (t - stamps[i]) / float(stamps[j] - stamps[i])
    T_i_j = np.linalg.inv(Ts[i]) @ Ts[j]
    rv = rotmat_to_axis_angle(torch.as_tensor(T_i_j[:3, :3])).numpy()
    dT = np.eye(4)
    dT[:3, :3] = axis_angle_to_rotmat(torch.as_tensor(rv * a)).numpy()
    dT[:3, 3] = T_i_j[:3, 3] * a
    return Ts[i] @ dT


# ------------------------------------------------------------------------------------------ depth GT
def lidar_depth_image(gt: GroundTruth, cam_frame: str, stamp_ns: int, K: np.ndarray, H: int, W: int,
                      max_dt_ns: int) -> Optional[np.ndarray]:
    """LIDAR depth (H, W) metres (0 = none) for the image of `cam_frame` at `stamp_ns`, or None when no
    sweep lies within `max_dt_ns`."""
    import torch

    from vfdepth_core.geometry import points_to_depth_image

    if not gt.lidar_stamps:
        return None
    j = bisect_left(gt.lidar_stamps, stamp_ns)
    cands = [i for i in (j - 1, j) if 0 <= i < len(gt.lidar_stamps)]
    i = min(cands, key=lambda k: abs(gt.lidar_stamps[k] - stamp_ns))
    if abs(gt.lidar_stamps[i] - stamp_ns) > max_dt_ns:
        return None
    lidar_frame = gt.lidar_frames[i]
    if lidar_frame not in gt.T_base_frame:
        raise BagError(f"no /tf_static transform base_link -> {lidar_frame!r} (the LIDAR frame)")
    if cam_frame not in gt.T_base_frame:
        raise BagError(f"no /tf_static transform base_link -> {cam_frame!r} (a depth image's frame_id)")
    # points: lidar -> base(t_lidar) -> odom -> base(t_image) -> camera
    T_base_lidar = gt.T_base_frame[lidar_frame]
    T_motion = np.eye(4)  # T_base(t_img)_base(t_lidar)
    if len(gt.odom_stamps) >= 2:
        A = interpolate_pose(gt.odom_stamps, gt.odom_T, gt.lidar_stamps[i], max_extrapolation_ns=max_dt_ns)
        B = interpolate_pose(gt.odom_stamps, gt.odom_T, stamp_ns, max_extrapolation_ns=max_dt_ns)
        if A is not None and B is not None:
            T_motion = np.linalg.inv(B) @ A
    T_cam_lidar = np.linalg.inv(gt.T_base_frame[cam_frame]) @ T_motion @ T_base_lidar
    pts = torch.as_tensor(gt.lidar_points[i][:, :3].T, dtype=torch.float64)
    p_cam = torch.as_tensor(T_cam_lidar[:3, :3]) @ pts + torch.as_tensor(T_cam_lidar[:3, 3:4])
    return points_to_depth_image(torch.as_tensor(K, dtype=torch.float64), p_cam, H, W).numpy()


@dataclass
class EvalOptions:
    min_depth: float = 0.0
    max_depth: float = 200.0
    max_lidar_dt_s: float = 0.06
    odom_topic: str = "odom"
    align: str = "se3"
    mask_path: Optional[str] = None  # self-occlusion masks in the paper's ddad_mask layout (as data.mask_path)
    scene: str = ""  # the scene whose mask set applies (needed when the mask table has several sets)
    allow_damaged: bool = False  # score the readable part of damaged bags (warning) instead of an error


class _Masks:
    """Self-occlusion masks per (camera, size), resolved like the training loader does (the same
    :class:`MaskResolver` and :func:`load_mask`), so evaluate-bag scores the pixels eval.py scores."""

    def __init__(self, mask_path: Optional[str], scene: str) -> None:
        from vfdepth_core.datasets.common import DatasetError
        from vfdepth_core.datasets.files import MaskResolver

        self.scene = scene
        self.cache: Dict[Tuple[str, int, int], Optional[np.ndarray]] = {}
        try:
            self.resolver = MaskResolver(mask_path) if mask_path else None
        except DatasetError as exc:
            raise BagError(f"--mask-path: {exc}") from None

    def get(self, cam: str, H: int, W: int):
        if self.resolver is None:
            return None
        key = (cam, H, W)
        if key not in self.cache:
            from vfdepth_core.datasets.common import DatasetError
            from vfdepth_core.datasets.files import load_mask

            try:
                p = self.resolver.path(self.scene, cam.upper())
                self.cache[key] = None if p is None else load_mask(p, (H, W))
            except DatasetError as exc:
                raise BagError(f"--mask-path: {exc}" + (" (give --scene NAME)" if not self.scene else "")) from None
        return self.cache[key]


def evaluate(input_bag: str | Path, outputs_bag: str | Path, opts: EvalOptions = EvalOptions()) -> dict:
    """Scores as a JSON-ready dict: ``depth`` (metrics.DepthMetricAccumulator layout), ``odometry``, counts."""
    out = read_outputs(outputs_bag, opts.odom_topic, opts.allow_damaged)
    gt = read_ground_truth(input_bag, need_lidar=bool(out.depth), allow_damaged=opts.allow_damaged)
    result: dict = {"input_bag": str(input_bag), "outputs_bag": str(outputs_bag),
                    "protocol": {"min_depth": opts.min_depth, "max_depth": opts.max_depth,
                                 "max_lidar_dt_s": opts.max_lidar_dt_s,
                                 "mask": (f"self-occlusion masks from {opts.mask_path}" if opts.mask_path
                                          else "none (all pixels)")}}
    if out.depth:
        result["depth"] = score_depth(out, gt, opts, str(input_bag))
    if out.odom:
        result["odometry"] = evaluate_odometry(out.odom, gt, opts.align)
    return result


def score_depth(out: Outputs, gt: GroundTruth, opts: EvalOptions = EvalOptions(), input_name: str = "the input") -> dict:
    """Depth scores of `out`'s depth images against the LIDAR of `gt` (the ``depth`` block of :func:`evaluate`).
    Any depth source with the outputs' layout can be scored on the same pixels (e.g. a prior)."""
    import torch

    from vfdepth_core.geometry import resize_intrinsics
    from vfdepth_core.metrics import DEPTH_METRICS, SCALINGS, DepthMetricAccumulator

    masks = _Masks(opts.mask_path, opts.scene)
    cams = sorted(out.depth)
    accs = {c: DepthMetricAccumulator([c], opts.min_depth, opts.max_depth) for c in cams}
    matched, unmatched, stamps = {}, {}, set()
    max_dt = int(opts.max_lidar_dt_s * 1e9)
    for cam in cams:
        matched[cam] = unmatched[cam] = 0
        for t, depth, frame in out.depth[cam]:
            H, W = depth.shape
            info = out.depth_info.get(cam, {}).get(t)
            if info is not None and info[1:] == (H, W):
                K = info[0]
            elif cam in gt.camera_info:
                K0, H0, W0, _ = gt.camera_info[cam]
                K = resize_intrinsics(torch.as_tensor(K0), (H0, W0), (H, W)).numpy()
            else:
                raise BagError(f"{cam}/depth at {t}: no {cam}/depth/camera_info in the outputs and no "
                               f"{cam}/camera_info in the input to get intrinsics from")
            frame = frame or (gt.camera_info[cam][3] if cam in gt.camera_info else C.camera_frame(cam))
            d_gt = lidar_depth_image(gt, frame, t, K, H, W, max_dt)
            if d_gt is None:
                unmatched[cam] += 1
                continue
            matched[cam] += 1
            stamps.add(t)
            pred = torch.as_tensor(np.nan_to_num(depth, nan=0.0, posinf=0.0)[None, None, None], dtype=torch.float64)
            m = masks.get(cam, H, W)
            accs[cam].update(pred, torch.as_tensor(d_gt[None, None, None]),
                             None if m is None else m.to(torch.float64)[None, None])
    per = {c: accs[c].result() for c in cams}
    depth_res: dict = {"samples": int(max((matched[c] for c in cams), default=0)),
                       "valid_samples_per_camera": {c: per[c]["valid_samples_per_camera"][c] for c in cams},
                       "matched_per_camera": matched, "unmatched_per_camera": unmatched}
    for s in SCALINGS:
        rows = {c: per[c][s]["per_camera"][c] for c in cams}
        vals = np.array([[np.nan if rows[c][m] is None else rows[c][m] for m in DEPTH_METRICS] for c in cams])
        have = ~np.isnan(vals[:, 0])
        mean = vals[have].mean(0) if have.any() else np.full(len(DEPTH_METRICS), np.nan)
        depth_res[s] = {"per_camera": rows,
                        "mean": {m: (None if np.isnan(v) else float(v)) for m, v in zip(DEPTH_METRICS, mean)}}
    if not any(matched.values()):
        raise BagError(f"no depth output matched a LIDAR sweep within {opts.max_lidar_dt_s} s: the outputs' "
                       f"stamps do not belong to {input_name}?")
    return depth_res


def evaluate_odometry(est: List[Tuple[int, np.ndarray]], gt: GroundTruth, align: str = "se3") -> dict:
    from vfdepth_core.odometry import trajectory_errors

    if len(gt.odom_stamps) < 2:
        raise BagError("the input bag has fewer than two gt/odom messages: no ground-truth trajectory")
    est = sorted(est, key=lambda x: x[0])
    T_est, T_gt = [], []
    for t, T in est:
        G = interpolate_pose(gt.odom_stamps, gt.odom_T, t, max_extrapolation_ns=1_000_000)
        if G is not None:
            T_est.append(T)
            T_gt.append(G)
    if len(T_est) < 2:
        raise BagError(f"only {len(T_est)} odom estimates fall inside the gt/odom time range; cannot score odometry")
    res = trajectory_errors(T_est, T_gt, align=align)
    res["matched"] = len(T_est)
    res["recorded"] = len(est)
    return res


def format_result(res: dict) -> str:
    from vfdepth_core.metrics import format_depth_table

    lines = []
    if "depth" in res:
        d = res["depth"]
        lines.append(f"depth: {sum(d['matched_per_camera'].values())} images matched to LIDAR "
                     f"({sum(d['unmatched_per_camera'].values())} unmatched), range "
                     f"({res['protocol']['min_depth']}, {res['protocol']['max_depth']}] m")
        for s in ("metric", "median"):
            lines.append(format_depth_table(d, s))
            lines.append("")
    if "odometry" in res:
        from vfdepth_core.odometry import format_odometry

        o = res["odometry"]
        lines.append(f"odometry: {o['matched']} poses over {o['path_length_m']:.2f} m, {o['align']} aligned")
        lines.extend(format_odometry(o))
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input_bag", help="the bag that was played (with lidar/points, /tf_static, gt/odom)")
    parser.add_argument("outputs_bag", help="the recorded node outputs (<cam>/depth, <cam>/depth/camera_info, odom)")
    parser.add_argument("--json", default=None, metavar="FILE", help="write the scores as JSON")
    parser.add_argument("--min-depth", type=float, default=None, help="valid GT above this (default 0, or eval config)")
    parser.add_argument("--max-depth", type=float, default=None,
                        help="valid GT up to this and clamp (default 200 m; 80 m for nuScenes bags)")
    parser.add_argument("--config", default=None, help="take eval_min_depth/eval_max_depth from this config file")
    parser.add_argument("--max-lidar-dt", type=float, default=0.06, metavar="S",
                        help="largest image-to-sweep time difference to match (default 0.06 s)")
    parser.add_argument("--mask-path", default=None, metavar="DIR",
                        help="self-occlusion masks (the paper's ddad_mask layout, like data.mask_path): score "
                             "only the pixels eval.py scores (default: all pixels)")
    parser.add_argument("--scene", default="", help="scene name that picks the mask set (when --mask-path has several)")
    parser.add_argument("--odom-topic", default="odom")
    parser.add_argument("--align", default="se3", choices=("se3", "sim3", "none"))
    parser.add_argument("--allow-damaged", action="store_true", help=C.ALLOW_DAMAGED_HELP)


def _dataset_of(path: str | Path, allow_damaged: bool = False) -> str:
    reader = C.open_reader(path, allow_damaged)
    try:
        names = [_t(c.topic) for c in reader.connections]
    finally:
        reader.close()
    return "nuscenes" if any(n.startswith("cam_front") for n in names) else ""


def main(args: argparse.Namespace) -> int:
    min_d, max_d = 0.0, 200.0
    if args.config:
        from vfdepth_core.config import load_config

        cfg = load_config(args.config)
        min_d, max_d = cfg.eval.eval_min_depth, cfg.eval.eval_max_depth
    elif _dataset_of(args.input_bag, args.allow_damaged) == "nuscenes":
        max_d = 80.0
    if args.min_depth is not None:
        min_d = args.min_depth
    if args.max_depth is not None:
        max_d = args.max_depth
    opts = EvalOptions(min_d, max_d, args.max_lidar_dt, args.odom_topic, args.align, args.mask_path, args.scene,
                       allow_damaged=args.allow_damaged)
    res = evaluate(args.input_bag, args.outputs_bag, opts)
    print(format_result(res))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2))
        print(f"wrote {args.json}")
    return 0
