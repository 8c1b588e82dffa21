"""Ego-motion: odometry metrics and the integrator that turns per-frame motions into a trajectory.

Frames and shapes
-----------------
* Vehicle frame "ego" (DDAD: x forward, y left, z up). Poses are 4x4 homogeneous transforms named
  ``T_<to>_<from>``: ``T_world_ego[i]`` maps points of the vehicle frame at sample i into a world frame
  (the dataset's, or the odometry's own ``odom`` frame for an estimate).
* A step's motion is ``T_egoprev_egocur = inv(T_world_ego[i-1]) @ T_world_ego[i]``: points of the current
  vehicle frame in the previous one (what :class:`vfdepth_core.inference.Prediction` returns).
* Trajectories are arrays ``(P, 4, 4)`` float64 (numpy or torch accepted), metres and radians inside,
  degrees in reported rotation errors.

Metrics (all small functions, combined by :func:`trajectory_errors`)
--------------------------------------------------------------------
* per-step relative errors (:func:`relative_pose_errors`): metric, no scale alignment; translation in % of
  the true step length summed over the drive, rotation in deg/m and deg/step;
* ATE (:func:`absolute_trajectory_error`): position RMSE after SE(3) (rigid) or Sim(3) (rigid + scale)
  Umeyama alignment; the Sim(3) line separates a scale error from a shape error;
* end-point drift (:func:`endpoint_drift_pct`): last-position error, both trajectories started at the
  same pose, in % of the true path length;
* segment errors (:func:`segment_errors`): KITTI-style relative errors over fixed distances (only the
  distances the drive is long enough for).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

SEGMENT_LENGTHS_M = (10.0, 20.0, 50.0, 100.0, 200.0)
"""Distances of the segment errors (KITTI uses 100..800 m; synthetic drives are tens of metres)."""


# --------------------------------------------------------------------------------------------------
# Helpers


def as_poses(T, name: str = "poses") -> np.ndarray:
    """A sequence of 4x4 transforms (numpy, torch or lists) -> ``(P, 4, 4)`` float64 numpy."""
    try:
        import torch

        if isinstance(T, torch.Tensor):
            T = T.detach().cpu().double().numpy()
        elif len(T) and isinstance(T[0], torch.Tensor):
            T = [t.detach().cpu().double().numpy() for t in T]
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass
    arr = np.asarray(T, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (4, 4):
        raise ValueError(f"{name} must be a sequence of 4x4 transforms (P, 4, 4), got shape {arr.shape}")
    return arr


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of rigid transforms ``(*, 4, 4)`` float64 (through :func:`vfdepth_core.geometry.invert_transform`)."""
    import torch

    from vfdepth_core.geometry import invert_transform

    return invert_transform(torch.from_numpy(np.asarray(T, dtype=np.float64))).numpy()


def rotation_angle_rad(R: np.ndarray) -> np.ndarray:
    """Rotation angle (rad) of rotation matrices ``(*, 3, 3)`` (atan2 form: exact near 0 and 180 deg)."""
    c = (np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0
    w = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    return np.arctan2(np.linalg.norm(w, axis=-1) / 2.0, c)


def rotation_log(R: np.ndarray) -> np.ndarray:
    """Axis-angle vector (rad) of a rotation matrix ``(3, 3)`` -> ``(3,)`` (through the geometry module)."""
    import torch

    from vfdepth_core.geometry import rotmat_to_axis_angle

    return rotmat_to_axis_angle(torch.from_numpy(np.asarray(R, dtype=np.float64))).numpy()


def relative_motions(T_world_ego: np.ndarray) -> np.ndarray:
    """Consecutive motions ``T_egoprev_egocur (P-1, 4, 4)`` of a trajectory ``T_world_ego (P, 4, 4)``."""
    T = as_poses(T_world_ego, "T_world_ego")
    return invert(T[:-1]) @ T[1:]


def chain_motions(T_egoprev_egocur: np.ndarray, T_world_ego0: Optional[np.ndarray] = None) -> np.ndarray:
    """Compose motions ``(P-1, 4, 4)`` into a trajectory ``T_world_ego (P, 4, 4)`` starting at ``T_world_ego0``
    (identity by default)."""
    M = as_poses(T_egoprev_egocur, "T_egoprev_egocur") if len(T_egoprev_egocur) else np.zeros((0, 4, 4))
    out = [np.eye(4) if T_world_ego0 is None else np.asarray(T_world_ego0, dtype=np.float64)]
    for m in M:
        out.append(out[-1] @ m)
    return np.stack(out)


def umeyama_alignment(src: np.ndarray, dst: np.ndarray, with_scale: bool) -> Tuple[np.ndarray, np.ndarray, float]:
    """Similarity ``(R (3, 3), t (3,), s)`` minimising ``sum ||dst - (s R src + t)||^2`` over point sets
    ``(P, 3)`` (Umeyama 1991); ``s = 1`` without scale. With fewer than 3 points the rotation is
    undetermined and left at identity."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    if src.shape[0] < 3:
        var_s = (xs**2).sum()
        s = float(np.sqrt((xd**2).sum() / var_s)) if with_scale and var_s > 0 else 1.0
        return np.eye(3), mu_d - s * mu_s, s
    cov = xd.T @ xs / src.shape[0]
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1
    R = U @ S @ Vt
    s = 1.0
    if with_scale:
        var_s = (xs**2).sum() / src.shape[0]
        s = float(np.trace(np.diag(D) @ S) / var_s) if var_s > 0 else 1.0
    return R, mu_d - s * R @ mu_s, s


# --------------------------------------------------------------------------------------------------
# Metrics


def step_errors(T_est_rel: np.ndarray, T_gt_rel: np.ndarray) -> Dict[str, np.ndarray]:
    """Per-step errors of estimated vs true motions ``T_egoprev_egocur (S, 4, 4)`` (metric, no scaling).

    Returns ``trans_m`` (S,) translation error, ``rot_deg`` (S,) rotation error of ``inv(gt) @ est``, and
    ``step_m`` (S,) the true step length.
    """
    est = as_poses(T_est_rel, "T_est_rel")
    gt = as_poses(T_gt_rel, "T_gt_rel")
    if est.shape != gt.shape:
        raise ValueError(f"estimated and true motions differ in number: {est.shape[0]} vs {gt.shape[0]}")
    E = invert(gt) @ est
    return {"trans_m": np.linalg.norm(E[:, :3, 3], axis=1),
            "rot_deg": np.degrees(rotation_angle_rad(E[:, :3, :3])),
            "step_m": np.linalg.norm(gt[:, :3, 3], axis=1)}


def relative_pose_errors(T_est_rel: np.ndarray, T_gt_rel: np.ndarray) -> dict:
    """Relative (per-step) errors of motions ``(S, 4, 4)``, metric (no scale alignment).

    ``rel_trans_err_pct``: sum of translation errors / true path length x 100; ``rel_rot_err_deg_per_m``:
    sum of rotation errors / path length; ``rpe_trans_m`` / ``rpe_rot_deg``: mean per step;
    ``path_length_m``; ``est_path_length_m`` (how far the estimate travelled); ``steps``. The per-metre
    figures are None on a path shorter than 1 mm.
    """
    e = step_errors(T_est_rel, T_gt_rel)
    path = float(e["step_m"].sum())
    n = len(e["step_m"])
    est_path = float(np.linalg.norm(as_poses(T_est_rel)[:, :3, 3], axis=1).sum()) if n else 0.0
    return {
        "steps": n,
        "path_length_m": path,
        "est_path_length_m": est_path,
        "rpe_trans_m": float(e["trans_m"].mean()) if n else 0.0,
        "rpe_rot_deg": float(e["rot_deg"].mean()) if n else 0.0,
        "rel_trans_err_pct": 100.0 * float(e["trans_m"].sum()) / path if path > 1e-3 else None,
        "rel_rot_err_deg_per_m": float(e["rot_deg"].sum()) / path if path > 1e-3 else None,
    }


def absolute_trajectory_error(T_est: np.ndarray, T_gt: np.ndarray, align: str = "se3") -> dict:
    """Position error of trajectories ``T_world_ego (P, 4, 4)`` after alignment of the estimate onto the
    truth: "se3" (rigid), "sim3" (rigid + scale) or "none".

    Returns ``ate_rmse_m``, ``ate_mean_m``, ``ate_max_m`` and ``align_scale`` (the Sim(3) scale, 1 otherwise).
    """
    if align not in ("se3", "sim3", "none"):
        raise ValueError(f"align must be se3, sim3 or none, got {align!r}")
    p_est, p_gt = as_poses(T_est)[:, :3, 3], as_poses(T_gt)[:, :3, 3]
    if align == "none" or len(p_est) < 2:
        R, t, s = np.eye(3), np.zeros(3), 1.0
    else:
        R, t, s = umeyama_alignment(p_est, p_gt, with_scale=(align == "sim3"))
    err = np.linalg.norm((s * (R @ p_est.T)).T + t - p_gt, axis=1)
    return {"ate_rmse_m": float(np.sqrt((err**2).mean())), "ate_mean_m": float(err.mean()),
            "ate_max_m": float(err.max()), "align_scale": float(s)}


def endpoint_drift_pct(T_est: np.ndarray, T_gt: np.ndarray) -> Optional[float]:
    """Distance between the last positions of both trajectories, each re-expressed relative to its own
    first pose, in % of the true path length (None on a path shorter than 1 mm)."""
    est, gt = as_poses(T_est), as_poses(T_gt)
    e = invert(est[0]) @ est[-1]
    g = invert(gt[0]) @ gt[-1]
    path = float(np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1).sum())
    return 100.0 * float(np.linalg.norm(e[:3, 3] - g[:3, 3])) / path if path > 1e-3 else None


def segment_errors(T_est: np.ndarray, T_gt: np.ndarray, lengths_m: Sequence[float] = SEGMENT_LENGTHS_M) -> List[dict]:
    """KITTI-style segment errors: from every pose i, the first pose j at least L metres further along the
    true path; the error of the estimated relative pose i->j against the true one.

    Returns one row per length the drive is long enough for: ``length_m``, ``segments``,
    ``trans_err_pct`` (mean translation error / L x 100), ``rot_err_deg_per_m`` (mean rotation error / L).
    """
    est, gt = as_poses(T_est), as_poses(T_gt)
    dist = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1))])
    rows = []
    for L in lengths_m:
        t_err, r_err = [], []
        for i in range(len(gt)):
            j = int(np.searchsorted(dist, dist[i] + L))
            if j >= len(gt):
                break
            E = invert(invert(gt[i]) @ gt[j]) @ (invert(est[i]) @ est[j])
            t_err.append(np.linalg.norm(E[:3, 3]) / L)
            r_err.append(np.degrees(rotation_angle_rad(E[:3, :3])) / L)
        if t_err:
            rows.append({"length_m": float(L), "segments": len(t_err), "trans_err_pct": 100.0 * float(np.mean(t_err)),
                         "rot_err_deg_per_m": float(np.mean(r_err))})
    return rows


def trajectory_errors(T_est_list, T_gt_list, align: str = "se3",
                      segment_lengths_m: Sequence[float] = SEGMENT_LENGTHS_M) -> dict:
    """All odometry errors of an estimated trajectory against ground truth.

    T_est_list, T_gt_list: equally long sequences of 4x4 ``T_world_ego`` (numpy or torch); the estimate in
    its own world frame (e.g. odom, first pose = identity). align: the alignment of the main ATE line
    ("se3" default, "sim3" or "none"); the Sim(3) ATE is always reported as well (``ate_sim3_rmse_m``,
    ``sim3_scale``).

    Returns (metres, degrees): ``num_poses``, ``align``, ``align_scale``, ``ate_rmse_m``, ``ate_mean_m``,
    ``ate_max_m``, ``ate_sim3_rmse_m``, ``sim3_scale``, the :func:`relative_pose_errors` keys (metric,
    never scaled), ``drift_pct`` and ``segments`` (:func:`segment_errors`).
    """
    if len(T_est_list) == 0 or len(T_est_list) != len(T_gt_list):
        raise ValueError("T_est_list and T_gt_list must be equally long, non-empty lists of 4x4 poses")
    est, gt = as_poses(T_est_list, "T_est_list"), as_poses(T_gt_list, "T_gt_list")
    ate = absolute_trajectory_error(est, gt, align)
    sim3 = absolute_trajectory_error(est, gt, "sim3")
    out = {"num_poses": int(len(est)), "align": align, **ate,
           "ate_sim3_rmse_m": sim3["ate_rmse_m"], "sim3_scale": sim3["align_scale"]}
    out.update(relative_pose_errors(relative_motions(est), relative_motions(gt)) if len(est) > 1 else
               relative_pose_errors(np.zeros((0, 4, 4)), np.zeros((0, 4, 4))))
    out["drift_pct"] = endpoint_drift_pct(est, gt)
    out["segments"] = segment_errors(est, gt, segment_lengths_m)
    return out


def format_odometry(o: dict, indent: str = "  ") -> List[str]:
    """Text lines of a :func:`trajectory_errors` (or :class:`MotionErrorAccumulator`) result."""
    def f(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    lines = []
    if "ate_rmse_m" in o:
        lines.append(f"{indent}ATE rmse {o['ate_rmse_m']:.3f} m (mean {o['ate_mean_m']:.3f}, max {o['ate_max_m']:.3f}), "
                     f"{o.get('align', 'se3')} aligned; Sim(3) {o['ate_sim3_rmse_m']:.3f} m at scale {o['sim3_scale']:.3f}")
    lines.append(f"{indent}relative translation error {f(o.get('rel_trans_err_pct'), '.2f')} % "
                 f"({o['rpe_trans_m']:.4f} m per step; estimate travelled {o['est_path_length_m']:.2f} m of "
                 f"{o['path_length_m']:.2f} m)")
    lines.append(f"{indent}relative rotation error {f(o.get('rel_rot_err_deg_per_m'), '.4f')} deg/m "
                 f"({o['rpe_rot_deg']:.4f} deg per step)")
    if o.get("drift_pct") is not None:
        lines.append(f"{indent}end-point drift {o['drift_pct']:.2f} % of the path")
    for s in o.get("segments") or []:
        lines.append(f"{indent}segments of {s['length_m']:g} m ({s['segments']}): {s['trans_err_pct']:.2f} %, "
                     f"{s['rot_err_deg_per_m']:.4f} deg/m")
    return lines


# --------------------------------------------------------------------------------------------------
# Scoring a model's canonical motion on a dataset


class MotionErrorAccumulator:
    """Scores predicted vehicle motions between consecutive samples against a dataset's poses.

    ``update(scene, T_est_rel, T_gt_rel)`` takes ``T_egoprev_egocur (B, 4, 4)`` per step; ``result()`` gives the
    :func:`relative_pose_errors` keys overall and per scene, plus the mean ratio of estimated to true step
    length (``scale_ratio``: 1 = metric).
    """

    def __init__(self) -> None:
        self._est: Dict[str, List[np.ndarray]] = {}
        self._gt: Dict[str, List[np.ndarray]] = {}

    def update(self, scene: str, T_est_rel, T_gt_rel) -> None:
        est = as_poses(T_est_rel, "T_est_rel")
        gt = as_poses(T_gt_rel, "T_gt_rel")
        self._est.setdefault(scene, []).extend(est)
        self._gt.setdefault(scene, []).extend(gt)

    @staticmethod
    def _score(est: List[np.ndarray], gt: List[np.ndarray]) -> dict:
        r = relative_pose_errors(np.stack(est), np.stack(gt))
        r["scale_ratio"] = r["est_path_length_m"] / r["path_length_m"] if r["path_length_m"] > 1e-3 else None
        return r

    def result(self, trajectories: bool = True) -> dict:
        """``{"overall": {...}, "per_scene": {scene: {...}}}``; empty dict when nothing was added.

        trajectories: also chain each scene's motions into a trajectory and add its
        :func:`trajectory_errors` as ``per_scene[scene]["trajectory"]`` (ATE, drift, segments) and their
        mean ATE / drift as ``overall["ate_rmse_m"]`` / ``overall["drift_pct"]``; meaningful when each
        scene's steps were added in temporal order and without a missing sample (an unshuffled loader).
        """
        if not self._est:
            return {}
        est = [T for s in self._est for T in self._est[s]]
        gt = [T for s in self._gt for T in self._gt[s]]
        res = {"overall": self._score(est, gt),
               "per_scene": {s: self._score(self._est[s], self._gt[s]) for s in self._est}}
        if trajectories:
            for s, row in res["per_scene"].items():
                row["trajectory"] = trajectory_errors(chain_motions(np.stack(self._est[s])),
                                                      chain_motions(np.stack(self._gt[s])))
            tr = [row["trajectory"] for row in res["per_scene"].values()]
            res["overall"]["ate_rmse_m"] = float(np.mean([t["ate_rmse_m"] for t in tr]))
            drift = [t["drift_pct"] for t in tr if t["drift_pct"] is not None]
            res["overall"]["drift_pct"] = float(np.mean(drift)) if drift else None
        return res


def batch_motion_pairs(batch: dict, frame_ids: Sequence[int]) -> Optional[Tuple[int, int]]:
    """Indices (previous, current) into a batch's frame axis for the motion previous -> current: frames
    -1 -> 0 when the batch has them, else 0 -> +1; None without two consecutive frames or GT poses."""
    if "T_world_ego" not in batch:
        return None
    idx = {int(f): i for i, f in enumerate(frame_ids)}
    if -1 in idx and 0 in idx:
        return idx[-1], idx[0]
    if 0 in idx and 1 in idx:
        return idx[0], idx[1]
    return None


def predict_batch_motion(model, batch: dict, prev: int, cur: int, network_too: bool = False):
    """Canonical vehicle motion ``T_egoprev_egocur (B, 4, 4)`` predicted by a :class:`VFDepth` from the
    batch's frames ``prev`` and ``cur`` (indices into its frame axis), and the dataset's ``(B, 4, 4)``.
    With ``network_too`` also the pose network's own motion, before any refinement, as a third value (the
    same as the first when ``model.pose_refine_iterations`` is 0)."""
    import torch

    from vfdepth_core import geometry as geo

    images = batch["image"]
    K, T_ego_cam = batch["K"], batch["T_ego_cam"]

    def to_ego(T_c0cur_c0prev):
        return geo.camera_motion_to_ego(geo.invert_transform(T_c0cur_c0prev.float()), T_ego_cam[:, 0].float()).double()

    with torch.no_grad():
        mask = batch.get("mask")
        T_net = model.predict_pose(images[:, prev], images[:, cur], K, T_ego_cam, mask)
        T_c0cur_c0prev = T_net
        if model.cfg.model.pose_refine_iterations > 0:  # beyond the paper: through the current frame's depth
            disp, _ = model.predict_depth(images[:, cur], K, T_ego_cam, mask)
            T_c0cur_c0prev = model.refine_pose(T_net, model.to_depth(disp, K), images[:, prev],
                                               images[:, cur], K, T_ego_cam, mask)
        T_est = to_ego(T_c0cur_c0prev)
    T_we = batch["T_world_ego"].double()
    T_gt = torch.linalg.inv(T_we[:, prev]) @ T_we[:, cur]
    if network_too:
        return T_est, T_gt, (T_est if T_c0cur_c0prev is T_net else to_ego(T_net))
    return T_est, T_gt


MOTION_FRAME_IDS = (0, -1)
"""Frames a motion-evaluation dataset loads: the sample and its previous one (motion previous -> current)."""


def evaluate_motion_model(model, loader, device: str = "cpu", max_samples: Optional[int] = None) -> dict:
    """Score a :class:`VFDepth`'s canonical motion between consecutive samples against the dataset's poses.

    loader: batches of a dataset built with two consecutive frames (e.g. :data:`MOTION_FRAME_IDS`) and
    ``T_world_ego``. Returns :meth:`MotionErrorAccumulator.result` plus ``samples`` and ``seconds``; when
    the model refines its motion (``model.pose_refine_iterations`` > 0) also ``network``: the same scores of
    the pose network's own motion on the same pairs, from the same pass (a refinement can hide a pose network
    that learnt nothing).
    """
    import time

    import torch

    from vfdepth_core.training.distributed import batch_to_device

    frame_ids = tuple(getattr(loader.dataset, "frame_ids", MOTION_FRAME_IDS))
    core = model.module if hasattr(model, "module") else model
    was_training = core.training
    core.eval()
    acc = MotionErrorAccumulator()
    acc_net = MotionErrorAccumulator() if core.cfg.model.pose_refine_iterations > 0 else None
    t0, seen = time.perf_counter(), 0
    try:
        for batch in loader:
            if batch is None:
                continue
            if max_samples is not None and seen >= max_samples:
                break
            pair = batch_motion_pairs(batch, frame_ids)
            if pair is None:
                raise ValueError(f"motion evaluation needs two consecutive frames and T_world_ego per sample "
                                 f"(the dataset has frames {frame_ids})")
            batch = batch_to_device(batch, device)
            with torch.no_grad():
                T_est, T_gt, T_net = predict_batch_motion(core, batch, *pair, network_too=True)
            scenes = batch.get("scene") or ["all"] * T_est.shape[0]
            for b in range(T_est.shape[0]):
                acc.update(str(scenes[b]), T_est[b:b + 1], T_gt[b:b + 1])
                if acc_net is not None:
                    acc_net.update(str(scenes[b]), T_net[b:b + 1], T_gt[b:b + 1])
            seen += T_est.shape[0]
    finally:
        core.train(was_training)
    res = acc.result()
    if res:
        res["samples"] = seen
        res["seconds"] = time.perf_counter() - t0
        if acc_net is not None:
            res["network"] = acc_net.result()
    return res


def dataset_motions(ds) -> Dict[str, List[np.ndarray]]:
    """Ground-truth motions ``T_egoprev_egocur`` (4, 4) per scene of a dataset built with frames 0 and -1
    (e.g. :data:`MOTION_FRAME_IDS`), in sample order, from its sample references (no pixel is read)."""
    out: Dict[str, List[np.ndarray]] = {}
    for ref in ds.refs:
        if -1 in ref.frames and 0 in ref.frames:
            T = invert(np.asarray(ref.frames[-1].T_world_ego, dtype=np.float64)) @ ref.frames[0].T_world_ego
            out.setdefault(ref.scene, []).append(T)
    return out


def training_steps(cfg) -> List[np.ndarray]:
    """Every ground-truth motion ``T_egoprev_egocur`` (4, 4) of ``cfg``'s training split, drive after drive:
    what :func:`best_constant_motion` averages. The split is built with :data:`MOTION_FRAME_IDS` (no pixel is
    read); a missing or broken split raises the loader's DatasetError."""
    from vfdepth_core.datasets import build_dataset

    return [T for Ts in dataset_motions(build_dataset(cfg, "train", frame_ids=MOTION_FRAME_IDS)).values() for T in Ts]


def best_constant_motion(motions: Sequence[np.ndarray]) -> np.ndarray:
    """The one motion (4, 4) a predictor that ignores the images would output: the mean translation and the
    rotation of the mean axis-angle of ``motions`` (e.g. every step of the training drives)."""
    M = as_poses(np.stack(list(motions)), "motions")
    T = np.eye(4)
    T[:3, 3] = M[:, :3, 3].mean(0)
    import torch

    from vfdepth_core.geometry import axis_angle_to_rotmat

    T[:3, :3] = axis_angle_to_rotmat(torch.from_numpy(rotation_log(M[:, :3, :3]).mean(0))).numpy()
    return T


def constant_motion_result(T_const: np.ndarray, gt_by_scene: Dict[str, List[np.ndarray]]) -> dict:
    """:meth:`MotionErrorAccumulator.result` of predicting ``T_const`` for every step of ``gt_by_scene``:
    the odometry baseline every learnt motion should beat (the pose analogue of the per-pixel depth prior)."""
    acc = MotionErrorAccumulator()
    for scene, gts in gt_by_scene.items():
        acc.update(scene, np.repeat(np.asarray(T_const, dtype=np.float64)[None], len(gts), 0), np.stack(gts))
    return acc.result()


def _traj(row: dict, key: str):
    return row.get("trajectory", row).get(key)


def format_motion_table(res: dict) -> str:
    """Per-scene and overall motion errors as a table (a :meth:`MotionErrorAccumulator.result`)."""
    head = (f"{'ego-motion':>16s} | {'steps':>5s} {'path m':>7s} {'trans %':>8s} {'m/step':>7s} "
            f"{'deg/m':>7s} {'deg/step':>8s} {'est/gt':>6s} {'ATE m':>6s} {'drift%':>6s}")
    lines = [head, "-" * len(head)]

    def fmt(v, spec, w):
        return f"{'n/a':>{w}s}" if v is None else format(v, f"{w}{spec}")

    rows = list(res["per_scene"].items()) + [("overall", res["overall"])]
    for name, r in rows:
        lines.append(f"{name[-16:]:>16s} | {r['steps']:5d} {r['path_length_m']:7.2f} "
                     f"{fmt(r['rel_trans_err_pct'], '.2f', 8)} {r['rpe_trans_m']:7.4f} "
                     f"{fmt(r['rel_rot_err_deg_per_m'], '.4f', 7)} {r['rpe_rot_deg']:8.4f} "
                     f"{fmt(r['scale_ratio'], '.2f', 6)} {fmt(_traj(r, 'ate_rmse_m'), '.2f', 6)} "
                     f"{fmt(_traj(r, 'drift_pct'), '.1f', 6)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Integration (the node's odometry)


@dataclass(frozen=True)
class OdometryState:
    """The integrated odometry at one image stamp.

    T_odom_ego (4, 4): the vehicle pose in the odometry frame; twist_linear_mps / twist_angular_radps
    (3,) in the vehicle frame (None when no motion was measured at this stamp); pose_covariance and
    twist_covariance (6, 6), ROS order (x, y, z, rot x, rot y, rot z); used_motion: whether this
    stamp's motion entered the pose.
    """

    stamp_ns: int
    T_odom_ego: np.ndarray
    twist_linear_mps: Optional[np.ndarray]
    twist_angular_radps: Optional[np.ndarray]
    pose_covariance: np.ndarray
    twist_covariance: np.ndarray
    used_motion: bool


UNKNOWN_VARIANCE = 1e6
"""Variance given to a twist that was not measured (ROS convention: large = unknown)."""


class OdometryIntegrator:
    """Composes per-frame motions ``T_egoprev_egocur`` into ``T_odom_ego`` (odom = the first frame's pose).

    The caller asks :meth:`motion_wanted` whether a new frame at ``stamp_ns`` should get a motion from
    the previous integrated frame (that frame exists, is older, and at most ``max_pose_gap_s`` back);
    then it calls :meth:`update` with that motion (or None). A frame that never reaches the
    integrator (dropped) needs nothing: the next motion spans from the last integrated frame, so it
    is counted once. After a gap (or a frame without a measured motion) the pose is held, since the
    motion across it is unknown, and its covariance grows by ``gap_variance``.

    Covariance (a diagonal model, documented, not estimated): each integrated step adds a variance of
    ``(trans_sigma_frac * |t| + 1 mm)^2`` per axis and ``(rot_sigma_rad_per_m * |t| + 1e-4 rad)^2`` per
    rotation axis; the twist's is the step's divided by dt^2.
    """

    def __init__(self, max_pose_gap_s: float = 0.5, trans_sigma_frac: float = 0.1,
                 rot_sigma_rad_per_m: float = 0.01, gap_variance: float = 1.0) -> None:
        if not max_pose_gap_s > 0:
            raise ValueError(f"max_pose_gap_s must be positive, got {max_pose_gap_s}")
        self.max_pose_gap_s = float(max_pose_gap_s)
        self.trans_sigma_frac = float(trans_sigma_frac)
        self.rot_sigma_rad_per_m = float(rot_sigma_rad_per_m)
        self.gap_variance = float(gap_variance)
        self.reset()

    def reset(self) -> None:
        """Back to the origin (a new odom frame); the next frame starts the trajectory."""
        self.T_odom_ego = np.eye(4)
        self.pose_var = np.zeros(6)
        self.last_stamp_ns: Optional[int] = None
        self.steps = 0
        self.gaps = 0

    def motion_wanted(self, stamp_ns: int) -> bool:
        """Whether a motion from the last integrated frame to ``stamp_ns`` would be integrated."""
        if self.last_stamp_ns is None:
            return False
        dt = (int(stamp_ns) - self.last_stamp_ns) / 1e9
        return 0 < dt <= self.max_pose_gap_s

    def update(self, stamp_ns: int, T_egoprev_egocur=None) -> OdometryState:
        """Integrate the motion from the last frame to the frame at ``stamp_ns`` (a 4x4, numpy or torch;
        None when there is none) and return the state at ``stamp_ns``. A stamp not newer than the last
        one raises ValueError (reset first after a time jump)."""
        stamp_ns = int(stamp_ns)
        if self.last_stamp_ns is not None and stamp_ns <= self.last_stamp_ns:
            raise ValueError(f"odometry stamp {stamp_ns} is not newer than the last one ({self.last_stamp_ns}); "
                             "reset() the integrator after a time jump")
        wanted = self.motion_wanted(stamp_ns)
        lin = ang = None
        step_var = np.full(6, UNKNOWN_VARIANCE)
        used = False
        if T_egoprev_egocur is not None and wanted:
            M = as_poses([T_egoprev_egocur], "T_egoprev_egocur")[0]
            dt = (stamp_ns - self.last_stamp_ns) / 1e9
            self.T_odom_ego = self.T_odom_ego @ M
            dist = float(np.linalg.norm(M[:3, 3]))
            sv = np.concatenate([np.full(3, (self.trans_sigma_frac * dist + 1e-3) ** 2),
                                 np.full(3, (self.rot_sigma_rad_per_m * dist + 1e-4) ** 2)])
            self.pose_var = self.pose_var + sv
            lin, ang = M[:3, 3] / dt, rotation_log(M[:3, :3]) / dt
            step_var = sv / dt**2
            used = True
            self.steps += 1
        elif self.last_stamp_ns is not None:  # a gap, or no motion measured: the motion since is unknown
            self.pose_var = self.pose_var + self.gap_variance
            self.gaps += 1
        self.last_stamp_ns = stamp_ns
        return OdometryState(stamp_ns, self.T_odom_ego.copy(), lin, ang, np.diag(self.pose_var), np.diag(step_var), used)


__all__ = [
    "SEGMENT_LENGTHS_M",
    "best_constant_motion",
    "constant_motion_result",
    "dataset_motions",
    "MotionErrorAccumulator",
    "OdometryIntegrator",
    "OdometryState",
    "MOTION_FRAME_IDS",
    "evaluate_motion_model",
    "absolute_trajectory_error",
    "batch_motion_pairs",
    "chain_motions",
    "endpoint_drift_pct",
    "format_motion_table",
    "format_odometry",
    "predict_batch_motion",
    "relative_motions",
    "relative_pose_errors",
    "segment_errors",
    "step_errors",
    "training_steps",
    "trajectory_errors",
    "umeyama_alignment",
]
