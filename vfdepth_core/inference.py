"""Inference API: load a checkpoint, predict metric depth, ego motion and virtual-view depth.

    pred = Predictor.from_checkpoint("results/run/weights/last.pt", device=None, amp="none")
    out = pred.predict(images, K, T_ego_cam, prev_images=prev, virtual=VirtualCamera(K_v, T_ego_v))
    out.depth              # (B, N, 1, H, W) metres at the network resolution
    out.T_egoprev_egocur   # (B, 4, 4) vehicle motion, current vehicle frame -> previous one
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vfdepth_core import geometry as geo
from vfdepth_core.checkpoint import load_checkpoint
from vfdepth_core.config import Config, ConfigError, config_from_dict
from vfdepth_core.geometry import ShapeError
from vfdepth_core.model import VFDepth
from vfdepth_core.rig import Rig

logger = logging.getLogger(__name__)

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class VirtualCamera:
    """Virtual views: K (V, 3, 3) at the network resolution and T_ego_cam (V, 4, 4) camera -> vehicle."""

    K: Tensor
    T_ego_cam: Tensor


@dataclass
class Prediction:
    """depth (B, N, 1, H, W) m; K (B, N, 3, 3) at H x W; T_egoprev_egocur (B, 4, 4) or None;
    virtual_depth (B, V, 1, H, W) or None; timings in milliseconds; images: the resized input."""

    depth: Tensor
    K: Tensor
    T_egoprev_egocur: Optional[Tensor] = None
    virtual_depth: Optional[Tensor] = None
    timings: Dict[str, float] = field(default_factory=dict)
    images: Optional[Tensor] = None  # (B, N, 3, H, W) float [0, 1]: the network's input, resized once


def resolve_device(device=None) -> torch.device:
    """None -> CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _as_tensor(name: str, x) -> Tensor:
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    return x


def resize_images(x: Tensor, hw: Tuple[int, int]) -> Tensor:
    """Images (*, 3, H0, W0) float [0, 1] -> (*, 3, H, W): inference's one image resize (bilinear,
    antialiased, pixel-centre aligned as :func:`vfdepth_core.geometry.resize_intrinsics` assumes)."""
    if tuple(x.shape[-2:]) == tuple(hw):
        return x
    y = F.interpolate(x.flatten(0, -4), size=tuple(hw), mode="bilinear", align_corners=False, antialias=True)
    return y.reshape(*x.shape[:-2], *hw).clamp(0, 1)


class Predictor:
    """Runs a :class:`VFDepth` on raw camera images of any size (see the module docstring)."""

    def __init__(self, cfg: Config, model: Optional[VFDepth] = None, device=None, amp: str = "none"):
        if amp not in AMP_DTYPES:
            raise ConfigError(f"amp must be one of {', '.join(AMP_DTYPES)}, got {amp!r}")
        self.cfg = cfg
        self.device = resolve_device(device)
        if model is None:
            logger.warning("Predictor without a checkpoint: the network has random weights (depth is meaningless)")
            model = VFDepth(cfg, load_imagenet=False)
        self.model = model.to(self.device).eval()
        # channels_last (NHWC) activations: faster oneDNN/cuDNN convolutions, identical results
        self.model.set_channels_last(True)
        self.amp = amp
        self.num_cams = len(cfg.data.cameras)
        self.hw = (cfg.training.height, cfg.training.width)
        self._rig_memo: Optional[tuple] = None

    def set_pose_refinement(self, iterations: int) -> None:
        """Switch the photometric refinement of the ego motion (``model.pose_refine_iterations``; beyond the
        paper, 0 = off) for this predictor, whatever the checkpoint's config says."""
        from vfdepth_core.config import with_overrides

        self.cfg = with_overrides(self.cfg, [f"model.pose_refine_iterations={int(iterations)}"])
        if getattr(self, "model", None) is not None:
            self.model.cfg = self.cfg

    @classmethod
    def from_checkpoint(cls, path, device=None, amp: str = "none") -> "Predictor":
        """Build the model from the config stored in the checkpoint and load its weights."""
        ck = load_checkpoint(path, map_location="cpu")
        cfg = config_from_dict(ck["config"], source=str(path), name=ck.get("config_name") or "default")
        model = VFDepth(cfg, load_imagenet=False)
        model.load_state_dict(ck["model"])
        return cls(cfg, model, device=device, amp=amp)

    # ---- input checks -----------------------------------------------------------------------------

    def _images(self, name: str, x, like: Optional[List[Tensor]] = None) -> List[Tensor]:
        """-> N per-camera (B, 3, H_i, W_i) float [0, 1]; like: images whose batch and sizes x must have."""
        N = self.num_cams
        if isinstance(x, (list, tuple)):
            cams = [_as_tensor(name, c)[None] for c in x]
        else:
            x = _as_tensor(name, x)
            cams = list((x[None] if x.dim() == 4 else x).unbind(1)) if x.dim() in (4, 5) else []
        given = [tuple(c.shape[1:]) for c in cams] if isinstance(x, (list, tuple)) else tuple(x.shape)
        if len(cams) != N or any(c.dim() != 4 or c.shape[1] != 3 or min(c.shape[2:]) < 2 for c in cams):
            raise ShapeError(f"{name} must have shape ({N}, 3, H, W) or (B, {N}, 3, H, W) for the config's {N} "
                             f"cameras (or be {N} per-camera (3, H, W)), RGB channels first, got {given}")
        bad = [c.dtype for c in cams if c.dtype != torch.uint8 and not c.is_floating_point()]
        if bad:
            raise ValueError(f"{name} must be uint8 or float in [0, 1], got {bad[0]}")
        if like is not None and len(cams[0]) != len(like[0]):
            raise ShapeError(f"{name} has batch {len(cams[0])}, expected {len(like[0])} like images")
        if like is not None and [c.shape[-2:] for c in cams] != [c.shape[-2:] for c in like]:
            raise ShapeError(f"{name} must have the size of images ({[tuple(c.shape[-2:]) for c in like]}), got "
                             f"{[tuple(c.shape[-2:]) for c in cams]}")
        return [c.float() / 255.0 if c.dtype == torch.uint8 else c.float() for c in cams]

    def _calib(self, name: str, x, B: int, tail, N: Optional[int] = None) -> Tensor:
        x = _as_tensor(name, x)
        given = tuple(x.shape)
        N = self.num_cams if N is None else N
        want = (N, *tail)
        if x.dim() == len(want):
            x = x[None]
        if x.dim() != len(want) + 1 or tuple(x.shape[1:]) != want or x.shape[0] not in (1, B):
            raise ShapeError(f"{name} must have shape {want} or (B, {', '.join(map(str, want))}), got {given}")
        if not x.is_floating_point():
            x = x.double()
        geo.check_finite(name, x)
        return x.expand(B, *want).to(torch.float64)

    def _check_K(self, name: str, K: Tensor) -> None:
        if (K[..., 0, 0] <= 0).any() or (K[..., 1, 1] <= 0).any():
            raise ValueError(f"{name}: focal lengths K[..., 0, 0] and K[..., 1, 1] must be positive")

    def _inputs(self, images, K, T_ego_cam, prev_images):
        """Checked inputs: (per-camera images, prev or None, their sizes, K (B, N, 3, 3) for them, T_ego_cam, B)."""
        imgs = self._images("images", images)
        B, sizes = len(imgs[0]), [tuple(c.shape[-2:]) for c in imgs]
        K = self._calib("K", K, B, (3, 3))
        self._check_K("K", K)
        T = self._calib("T_ego_cam", T_ego_cam, B, (4, 4))
        prev = self._images("prev_images", prev_images, imgs) if prev_images is not None else None
        return imgs, prev, sizes, K, T, B

    def _to_network(self, cams: List[Tensor]) -> Tensor:
        """Per-camera images -> (B, N, 3, H, W) at the network size on the device (the one resize)."""
        return torch.stack([resize_images(c.to(self.device), self.hw) for c in cams], 1)

    # ---- prediction -------------------------------------------------------------------------------

    def _autocast(self):
        dt = AMP_DTYPES[self.amp]
        if dt is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dt)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @torch.no_grad()
    def predict(self, images, K, T_ego_cam, prev_images=None, virtual: Optional[VirtualCamera] = None,
                mask=None) -> Prediction:
        """Depth of every camera (+ ego motion with prev_images, + virtual-view depth with `virtual`).

        images (N, 3, H0, W0) or (B, N, 3, H0, W0), or a sequence of N per-camera (3, H_i, W_i) whose sizes
        may differ (batch 1); uint8 RGB or float [0, 1]; K (..., N, 3, 3) for each camera's image as given;
        T_ego_cam (..., N, 4, 4); prev_images like images; mask (..., N, 1, H0, W0) 1 = valid pixel.
        """
        t0 = time.perf_counter()
        imgs, prev, sizes, K, T, B = self._inputs(images, K, T_ego_cam, prev_images)
        N = self.num_cams
        if mask is not None:
            mask = _as_tensor("mask", mask).float()
            if mask.dim() == 4:
                mask = mask[None]
            if mask.dim() != 5 or tuple(mask.shape[1:3]) != (N, 1) or mask.shape[0] not in (1, B):
                raise ShapeError(f"mask must have shape ({N}, 1, H, W) or (B, {N}, 1, H, W), got {tuple(mask.shape)}")
        Kv = Tv = None
        if virtual is not None:
            Kv = _as_tensor("virtual.K", virtual.K)
            V = Kv.shape[-3] if Kv.dim() >= 3 else 0
            if Kv.dim() not in (3, 4) or V < 1:
                raise ShapeError(f"virtual.K must have shape (V, 3, 3), got {tuple(Kv.shape)}")
            Kv = self._calib("virtual.K", Kv, B, (3, 3), N=V)
            self._check_K("virtual.K", Kv)
            Tv = self._calib("virtual.T_ego_cam", virtual.T_ego_cam, B, (4, 4), N=V)

        H, W = self.hw
        K_net = geo.resize_intrinsics_each(K, sizes, (H, W))
        imgs = self._to_network(imgs)
        K_dev, T_dev, mask_dev, extra = self._rig_on_device(K, T, sizes, K_net, mask, Kv, Tv, B)
        self._sync()
        t1 = time.perf_counter()
        timings = {"preprocess": (t1 - t0) * 1e3}
        m = self.model
        with self._autocast():
            lk = m.voxel_lookup(K_dev, T_dev, mask_dev, (H, W))
            disp, disp_v = m.predict_depth(imgs, K_dev, T_dev, mask_dev, extra, lookup=lk)
            depth = m.to_depth(disp, K_dev)
            vdepth = m.to_depth(disp_v, extra[0]) if disp_v is not None else None
            self._sync()
            t2 = time.perf_counter()
            timings["depth"] = (t2 - t1) * 1e3
            T_ego = None
            if prev is not None:
                prev_net = self._to_network(prev)
                T_c0cur_c0prev = m.predict_pose(prev_net, imgs, K_dev, T_dev, mask_dev, lookup=lk)
                T_c0cur_c0prev = m.refine_pose(T_c0cur_c0prev, depth, prev_net, imgs, K_dev, T_dev, mask_dev)
                T_c0prev_c0cur = geo.invert_transform(T_c0cur_c0prev)
                T_ego = geo.camera_motion_to_ego(T_c0prev_c0cur, T_dev[:, 0])
                self._sync()
                timings["pose"] = (time.perf_counter() - t2) * 1e3
        timings["total"] = (time.perf_counter() - t0) * 1e3
        return Prediction(depth=depth.float(), K=K_net.float().to(self.device), T_egoprev_egocur=T_ego,
                          virtual_depth=vdepth.float() if vdepth is not None else None, timings=timings, images=imgs)

    def _rig_on_device(self, K, T, sizes, K_net, mask, Kv, Tv, B):
        """Calibration (and mask) on the device. An unchanged rig (a :class:`Rig` equal to the last call's,
        compared on the host) reuses the previous call's device tensors: no upload, and the model's rig
        cache then knows them by identity instead of hashing device memory (a host sync on CUDA)."""
        (N, H, W), dev = (K.shape[1], *self.hw), self.device
        key = (_batch_rig(self.cfg.data.cameras, K, T, sizes), B,
               _batch_rig([f"virtual_{i}" for i in range(len(Kv[0]))], Kv, Tv, [(H, W)] * len(Kv[0]))
               if Kv is not None else "no virtual views")
        memo = self._rig_memo
        if None not in key and memo is not None and memo[0] == key and (memo[1] is mask is None or (
                mask is not None and memo[1] is not None and memo[1].shape == mask.shape and torch.equal(memo[1], mask))):
            return memo[2]
        mask_dev = None
        if mask is not None:
            mask_dev = F.interpolate(mask.to(dev).expand(B, *mask.shape[1:]).flatten(0, 1), size=(H, W),
                                     mode="nearest").reshape(B, N, 1, H, W)
        extra = (Kv.float().to(dev), Tv.float().to(dev)) if Kv is not None else None
        value = (K_net.float().to(dev), T.float().to(dev), mask_dev, extra)
        self._rig_memo = (key, None if mask is None else mask.clone(), value)
        return value


def _batch_rig(cameras, K: Tensor, T: Tensor, sizes) -> Optional[Rig]:
    """The Rig of a batch's calibration K (B, N, 3, 3), T (B, N, 4, 4); None when it differs over the batch."""
    if not (torch.equal(K, K[:1].expand_as(K)) and torch.equal(T, T[:1].expand_as(T))):
        return None
    return Rig(tuple(cameras), K[0], T[0], tuple(sizes))


class OnnxPredictor(Predictor):
    """:class:`Predictor`'s predict() on an ONNX graph from :func:`vfdepth_core.export.export_onnx`, run by
    onnxruntime. The rig (and any virtual views) is baked into the graph: predict() checks that the given
    calibration matches it (re-export for another rig). providers: onnxruntime execution providers in
    order of preference (default: TensorRT, CUDA where present, then CPU)."""

    PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")

    def __init__(self, path, providers=None, threads: Optional[int] = None, calib_atol: float = 1e-3):
        import json

        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - onnxruntime is in requirements.txt
            raise ConfigError("backend 'onnx' needs onnxruntime (pip install onnxruntime)") from exc
        path = str(path)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        avail = ort.get_available_providers()
        providers = [p for p in (providers or self.PREFERRED_PROVIDERS) if p in avail] or ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(path, sess_options=opts, providers=providers)
        except Exception as exc:
            raise ConfigError(f"onnx_path {path}: cannot load the ONNX model: {str(exc).splitlines()[0]}") from exc
        meta = self.session.get_modelmeta().custom_metadata_map.get("vfdepth")
        if meta is None:
            raise ConfigError(f"onnx_path {path}: not a vfdepth export (no 'vfdepth' metadata; use "
                              "vfdepth_core.export.export_onnx)")
        meta = json.loads(meta)
        self.cfg = config_from_dict(meta["config"], source=path)
        self.device = torch.device("cpu")
        self.amp = "none"
        self.model = None
        self.num_cams = len(meta["K"])
        self.hw = (int(meta["height"]), int(meta["width"]))
        self.outputs = list(meta["outputs"])
        self.rig_K = torch.tensor(meta["K"], dtype=torch.float64)
        self.rig_T = torch.tensor(meta["T_ego_cam"], dtype=torch.float64)
        self.virtual_K = torch.tensor(meta["virtual_K"], dtype=torch.float64) if meta["virtual_K"] else None
        self.virtual_T = torch.tensor(meta["virtual_T_ego_cam"], dtype=torch.float64) if meta["virtual_T_ego_cam"] else None
        self.providers = self.session.get_providers()
        self.calib_atol = calib_atol
        t = self.cfg.training
        self._depth_args = (t.min_depth, t.max_depth, t.focal_length_scale)

    def _same(self, name: str, got: Tensor, baked: Optional[Tensor]) -> None:
        if baked is None or got.shape[-3:] != baked.shape or not torch.allclose(got, baked.expand_as(got),
                                                                                 atol=self.calib_atol, rtol=1e-5):
            raise ConfigError(f"{name} differs from the rig baked into the ONNX model: re-export it for this rig "
                              "(vfdepth_core.export.export_onnx)")

    def predict(self, images, K, T_ego_cam, prev_images=None, virtual: Optional[VirtualCamera] = None,
                mask=None) -> Prediction:
        """As :meth:`Predictor.predict` (batch 1; mask is baked in at export and ignored here)."""
        from vfdepth_core.model import disp_to_depth

        t0 = time.perf_counter()
        imgs, prev, sizes, K, T, B = self._inputs(images, K, T_ego_cam, prev_images)
        if B != 1:
            raise ShapeError(f"images: the ONNX backend runs batch 1, got batch {B}")
        K_net = geo.resize_intrinsics_each(K, sizes, self.hw)
        self._same("K", K_net, self.rig_K)
        self._same("T_ego_cam", T, self.rig_T)
        if virtual is not None:
            V = self.virtual_K.shape[0] if self.virtual_K is not None else len(virtual.K)
            self._same("virtual.K", self._calib("virtual.K", virtual.K, B, (3, 3), N=V), self.virtual_K)
            self._same("virtual.T_ego_cam", self._calib("virtual.T_ego_cam", virtual.T_ego_cam, B, (4, 4), N=V),
                       self.virtual_T)
        imgs = self._to_network(imgs).contiguous()
        x = imgs.numpy()
        xp = self._to_network(prev).contiguous().numpy() if prev is not None else x
        t1 = time.perf_counter()
        outs = dict(zip(self.outputs, self.session.run(None, {"images": x, "prev_images": xp})))
        t2 = time.perf_counter()
        Kf = K_net.float()
        depth = disp_to_depth(torch.from_numpy(outs["disp"]), Kf, *self._depth_args)
        vdepth = None
        if virtual is not None and "virtual_disp" in outs:
            vdepth = disp_to_depth(torch.from_numpy(outs["virtual_disp"]), self.virtual_K[None].float(),
                                   *self._depth_args)
        T_ego = None
        if prev is not None:
            from vfdepth_core.pose_refine import refine_network_motion

            T_c0cur_c0prev = geo.pose_vec_to_transform(torch.from_numpy(outs["axis_angle"]),
                                                       torch.from_numpy(outs["translation"]))
            T_c0cur_c0prev = refine_network_motion(self.cfg.model, T_c0cur_c0prev, depth, torch.from_numpy(xp),
                                                   imgs, Kf, T.float())
            T_ego = geo.camera_motion_to_ego(geo.invert_transform(T_c0cur_c0prev), T.float()[:, 0])
        timings = {"preprocess": (t1 - t0) * 1e3, "onnx": (t2 - t1) * 1e3, "total": (time.perf_counter() - t0) * 1e3}
        return Prediction(depth=depth, K=Kf, T_egoprev_egocur=T_ego, virtual_depth=vdepth, timings=timings,
                          images=imgs)


__all__ = ["OnnxPredictor", "Prediction", "Predictor", "VirtualCamera", "resize_images", "resolve_device"]
