"""``FrameLogger``/``log_frame``: log vfdepth arrays (images, depth, intrinsics, poses, point clouds,
trajectories) to a rerun recording from Python (training, evaluation, the demo, and `vfdepth view`'s bag
reader), with the entity layout of :mod:`vfdepth_ros.viewer.layout`.

Why rerun: it is already a pinned dependency, runs headless (writes a file, no display), and its
recording holds images, depth images with a metre scale, camera frusta, point clouds, transforms and
line strips on a shared timeline, which is everything rviz2 shows, with no ROS install. The file opens
in the rerun viewer (``rerun results/x.rrd``, or in a browser with ``vfdepth view ... --serve``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from vfdepth_ros.conversions import scale_K
from vfdepth_ros.errors import UserError
from vfdepth_ros.viewer.layout import FIXED_FRAME, TIMELINE, WORLD, sanitize


def _rr():
    try:
        import rerun as rr
    except ImportError as exc:  # pragma: no cover - rerun-sdk is pinned in requirements.txt
        raise UserError(f"the viewer needs rerun-sdk ({exc}); run `make install`") from None
    return rr


def _np(x) -> Optional[np.ndarray]:
    """numpy array of an array-like or a (CPU or GPU) torch tensor, duck-typed; None stays None."""
    if x is None:
        return None
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


@dataclass
class _TrajectoryState:
    points: List[np.ndarray] = field(default_factory=list)


class FrameLogger:
    """Log vfdepth frames (arrays) to a rerun recording with the same entity layout as ``vfdepth view``.

    >>> logger = FrameLogger.to_file("results/run.rrd")  # or FrameLogger(rr.RecordingStream(...))
    >>> logger.log_frame(stamp_ns, cameras=names, images=imgs, depth_m=depth, K=K, T_ego_cam=T, ...)
    >>> logger.close()
    """

    def __init__(self, rec=None, application_id: str = "vfdepth", jpeg_quality: int = 85,
                 depth_range_m: Optional[Tuple[float, float]] = None, max_trajectory_points: int = 5000) -> None:
        rr = _rr()
        self.rr = rr
        self.rec = rec if rec is not None else rr.RecordingStream(application_id)
        self.jpeg_quality = int(jpeg_quality)
        self.depth_range_m = depth_range_m
        self.max_trajectory_points = int(max_trajectory_points)
        self._traj: Dict[str, _TrajectoryState] = {}
        self._pinholes: Dict[str, Tuple] = {}
        self._static_done = False
        self._layout: Optional[Tuple[Tuple[str, ...], Tuple[str, ...]]] = None
        self._T_parent: Dict[str, np.ndarray] = {}
        self.path: Optional[Path] = None

    @classmethod
    def to_file(cls, path: str | Path, **kwargs) -> "FrameLogger":
        """A logger that streams into a new ``.rrd`` file (parent folder created)."""
        p = Path(path)
        if p.suffix != ".rrd":
            raise UserError(f"{p}: a rerun recording must end in .rrd")
        p.parent.mkdir(parents=True, exist_ok=True)
        logger = cls(**kwargs)
        logger.rec.save(str(p))
        logger.path = p
        return logger

    # -- primitives -------------------------------------------------------------------------------
    def _static_world(self) -> None:
        if not self._static_done:
            self.rec.log(WORLD, self.rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
            self._static_done = True

    def set_time(self, stamp_ns_: int) -> None:
        self.rec.set_time(TIMELINE, timestamp=np.datetime64(int(stamp_ns_), "ns"))

    def log_transform(self, entity: str, T_parent_child: np.ndarray, static: bool = False) -> None:
        """Pose of `entity` in its parent entity (4x4 T_parent_child)."""
        self._static_world()
        T = np.asarray(T_parent_child, dtype=np.float64)
        self._T_parent[entity] = T
        self.rec.log(entity, self.rr.Transform3D(translation=T[:3, 3], mat3x3=T[:3, :3]), static=static)

    def send_layout(self, image_entities: Sequence[str], depth_entities: Sequence[str]) -> None:
        """Viewer layout: the 3D scene (fixed frame) beside a grid of the camera images and one of the
        depth images. Six cameras whose poses were logged are ordered like the paper (front-left, front,
        front-right / back-left, back, back-right)."""
        import rerun.blueprint as rrb

        key = (tuple(image_entities), tuple(depth_entities))
        if key == self._layout or not (image_entities or depth_entities):
            return
        self._layout = key

        def ordered(ents: Sequence[str]) -> List[str]:
            # Camera views first (paper layout when six), then the rest (e.g. the virtual view).
            rest = sorted(e for e in ents if e not in image_entities and
                          e.rsplit("/", 1)[0] + "/image" not in image_entities)
            ents = sorted(e for e in ents if e not in rest)
            cams = [e.rsplit("/", 1)[0] for e in ents]
            if len(ents) == 6 and all(c in self._T_parent for c in cams):
                from vfdepth_core.viz import surround_order_from_extrinsics

                order = surround_order_from_extrinsics(np.stack([self._T_parent[c] for c in cams]))
                ents = [ents[i] for i in order]
            return ents + rest

        def label(e: str) -> str:
            parts = e.split("/")
            return f"{parts[-2]} {parts[-1]}" if len(parts) >= 2 else e

        grids = []
        for name, ents in (("camera images", image_entities), ("depth", depth_entities)):
            if ents:
                views = [rrb.Spatial2DView(origin="/" + e, name=label(e)) for e in ordered(ents)]
                grids.append(rrb.Grid(*views, grid_columns=3, name=name))
        layout = rrb.Horizontal(rrb.Spatial3DView(origin=f"/{WORLD}", name=f"3D ({FIXED_FRAME} frame)"),
                                rrb.Vertical(*grids), column_shares=[2, 3])
        self.rec.send_blueprint(rrb.Blueprint(layout, collapse_panels=False))

    def log_pinhole(self, entity: str, K: np.ndarray, hw: Tuple[int, int], plane_m: float = 1.0) -> None:
        """Camera intrinsics (OpenCV axes: right, down, forward) for the image(s) logged at `entity`."""
        key = (tuple(np.round(np.asarray(K, float).ravel(), 6)), tuple(hw))
        if self._pinholes.get(entity) == key:
            return
        self._pinholes[entity] = key
        self.rec.log(entity, self.rr.Pinhole(image_from_camera=np.asarray(K, np.float32), resolution=[hw[1], hw[0]],
                                             camera_xyz=self.rr.ViewCoordinates.RDF, image_plane_distance=plane_m),
                     static=True)

    def log_image(self, entity: str, rgb: np.ndarray) -> None:
        img = self.rr.Image(np.ascontiguousarray(rgb, dtype=np.uint8))
        if self.jpeg_quality > 0:
            img = img.compress(jpeg_quality=self.jpeg_quality)
        self.rec.log(entity, img)

    def log_depth(self, entity: str, depth_m: np.ndarray) -> None:
        d = np.nan_to_num(np.asarray(depth_m, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        kw: Dict[str, Any] = {"meter": 1.0, "colormap": "turbo"}  # rerun: low (near) = blue, high (far) = red
        if self.depth_range_m is not None:
            kw["depth_range"] = [float(self.depth_range_m[0]), float(self.depth_range_m[1])]
        self.rec.log(entity, self.rr.DepthImage(d, **kw))

    def log_points(self, entity: str, xyz: np.ndarray, rgb: Optional[np.ndarray] = None, radius_m: float = 0.05) -> None:
        kw: Dict[str, Any] = {"radii": radius_m}
        if rgb is not None and len(rgb) == len(xyz):
            kw["colors"] = np.asarray(rgb, dtype=np.uint8)
        self.rec.log(entity, self.rr.Points3D(np.asarray(xyz, dtype=np.float32), **kw))

    def log_trajectory_point(self, entity: str, xyz: Sequence[float], color=(214, 39, 40)) -> None:
        """Append a position to the path drawn at `entity` and log the path so far."""
        st = self._traj.setdefault(entity, _TrajectoryState())
        st.points.append(np.asarray(xyz, dtype=np.float32)[:3])
        pts = np.stack(st.points)
        if len(pts) > self.max_trajectory_points:
            idx = np.linspace(0, len(pts) - 1, self.max_trajectory_points).round().astype(int)
            pts = pts[idx]
        self.rec.log(entity, self.rr.LineStrips3D([pts], colors=[color], radii=0.1))

    # -- a whole frame ------------------------------------------------------------------------------
    def log_frame(self, stamp_ns: int, cameras: Sequence[str], images: Optional[np.ndarray] = None,
                  depth_m: Optional[np.ndarray] = None, K: Optional[np.ndarray] = None,
                  T_ego_cam: Optional[np.ndarray] = None, T_world_ego: Optional[np.ndarray] = None,
                  T_world_ego_gt: Optional[np.ndarray] = None, points_xyz: Optional[np.ndarray] = None,
                  points_rgb: Optional[np.ndarray] = None, virtual_depth_m: Optional[np.ndarray] = None,
                  virtual_K: Optional[np.ndarray] = None, virtual_T_ego_cam: Optional[np.ndarray] = None,
                  K_image: Optional[np.ndarray] = None) -> None:
        """Log one surround frame at time `stamp_ns`.

        cameras: N names (entity ``world/base_link/<name>``); images (N, H0, W0, 3) uint8 or (N, 3, H0, W0)
        float [0, 1]; depth_m (N, H, W) or (N, 1, H, W) metres; K (N, 3, 3) at depth resolution (H, W);
        K_image (N, 3, 3) at image resolution (default: K scaled to it); T_ego_cam (N, 4, 4) camera ->
        vehicle; T_world_ego (4, 4) estimated vehicle pose (draws ``world/trajectory/odom``), T_world_ego_gt
        ground truth (``world/trajectory/gt_odom``); points (P, 3) metres in the vehicle frame with
        optional (P, 3) uint8 colours; virtual_depth_m (V, H, W) with virtual_K (V, 3, 3) and
        virtual_T_ego_cam (V, 4, 4) (entities ``world/base_link/virtual_<v>``).
        """
        from vfdepth_core.viz import to_uint8_rgb

        self._static_world()
        self.set_time(stamp_ns)
        base = f"{WORLD}/base_link"
        n = len(cameras)

        def arr(name, x, tail_dims):
            if x is None:
                return None
            a = _np(x)
            if a.ndim == tail_dims + 2 and a.shape[0] == 1:
                a = a[0]  # drop a batch dim of 1
            if a.shape[0] != n and name not in ("virtual_depth_m", "virtual_K", "virtual_T_ego_cam"):
                raise UserError(f"log_frame: {name} has {a.shape[0]} entries for {n} cameras")
            return a

        images_a = arr("images", images, 3)
        depth_a = arr("depth_m", depth_m, 2 if depth_m is None or len(depth_m.shape) <= 3 else 3)
        if depth_a is not None and depth_a.ndim == 4:
            depth_a = depth_a[:, 0]
        K_a, Ki_a, T_a = arr("K", K, 2), arr("K_image", K_image, 2), arr("T_ego_cam", T_ego_cam, 2)
        if T_world_ego is not None:
            T = _np(T_world_ego).astype(np.float64).reshape(4, 4)
            self.log_transform(base, T)
            self.log_trajectory_point(f"{WORLD}/trajectory/odom", T[:3, 3])
        if T_world_ego_gt is not None:
            T = _np(T_world_ego_gt).astype(np.float64).reshape(4, 4)
            self.log_trajectory_point(f"{WORLD}/trajectory/gt_odom", T[:3, 3], color=(60, 60, 60))
        for i, cam in enumerate(cameras):
            ent = f"{base}/{sanitize(cam)}"
            if T_a is not None:
                self.log_transform(ent, T_a[i])
            if depth_a is not None:
                if K_a is not None:
                    self.log_pinhole(f"{ent}/depth", K_a[i], depth_a.shape[1:3])
                self.log_depth(f"{ent}/depth", depth_a[i])
            if images_a is not None:
                rgb = to_uint8_rgb(images_a[i])
                Ki = Ki_a[i] if Ki_a is not None else (
                    scale_K(K_a[i], depth_a.shape[1:3], rgb.shape[:2]) if K_a is not None and depth_a is not None
                    else (K_a[i] if K_a is not None else None))
                if Ki is not None:
                    self.log_pinhole(f"{ent}/image", Ki, rgb.shape[:2])
                self.log_image(f"{ent}/image", rgb)
        if points_xyz is not None:
            self.log_points(f"{base}/points", _np(points_xyz).reshape(-1, 3),
                            None if points_rgb is None else _np(points_rgb).reshape(-1, 3))
        if virtual_depth_m is not None:
            vd = _np(virtual_depth_m)
            virt_ents = [f"{base}/virtual_{v}/depth" for v in range(vd.reshape((-1,) + vd.shape[-2:]).shape[0])]
        else:
            virt_ents = []
        self.send_layout([f"{base}/{sanitize(c)}/image" for c in cameras] if images is not None else [],
                         ([f"{base}/{sanitize(c)}/depth" for c in cameras] if depth_m is not None else []) + virt_ents)
        if virtual_depth_m is not None:
            vK, vT = _np(virtual_K), _np(virtual_T_ego_cam)
            vd = vd.reshape((-1,) + vd.shape[-2:])
            for v in range(vd.shape[0]):
                ent = f"{base}/virtual_{v}"
                if vT is not None:
                    self.log_transform(ent, vT.reshape(-1, 4, 4)[v])
                if vK is not None:
                    self.log_pinhole(f"{ent}/depth", vK.reshape(-1, 3, 3)[v], vd.shape[1:])
                self.log_depth(f"{ent}/depth", vd[v])

    def close(self) -> None:
        """Flush and finish the recording (the .rrd file is complete afterwards)."""
        self.rec.flush(blocking=True)
        try:
            self.rec.disconnect()
        except Exception:  # noqa: BLE001 - older/newer SDKs differ; the flush above already wrote the data
            pass


_DEFAULT_LOGGERS: Dict[int, FrameLogger] = {}


def log_frame(rec, stamp_ns: int, cameras: Sequence[str], **arrays) -> FrameLogger:
    """Log one frame to a rerun RecordingStream (see ``FrameLogger.log_frame`` for the arrays).

    Keeps one ``FrameLogger`` per recording so trajectories accumulate across calls; returns it.
    """
    logger = _DEFAULT_LOGGERS.get(id(rec))
    if logger is None or logger.rec is not rec:
        logger = _DEFAULT_LOGGERS[id(rec)] = FrameLogger(rec)
    logger.log_frame(stamp_ns, cameras, **arrays)
    return logger
