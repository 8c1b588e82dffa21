"""Small pieces the training and evaluation scripts compose: distributed set-up, a resumable sampler,
per-sample seeding of data augmentation, RNG state capture, a non-finite loss guard, checkpoint
compatibility checks and image summaries.

Nothing here builds a model or a loss; ``training/train.py`` wires these together.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler, Sampler

from vfdepth_core.config import Config, ConfigError, config_to_dict

logger = logging.getLogger(__name__)


class TrainingAbort(RuntimeError):
    """Training cannot go on (e.g. too many consecutive non-finite losses); the message says why."""


# --------------------------------------------------------------------------------------------------
# Distributed


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True when RANK/WORLD_SIZE/LOCAL_RANK come from torchrun (or another launcher)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def pick_device(local_rank: int = 0, gpus: Sequence[int] = (), device: Optional[str] = None) -> str:
    """'cuda:<id>' when CUDA is available (id from `gpus[local_rank]` when given), else 'cpu'."""
    if device:
        return device
    if torch.cuda.is_available():
        ids = list(gpus) if gpus else list(range(torch.cuda.device_count()))
        gid = ids[local_rank] if local_rank < len(ids) else local_rank % max(1, torch.cuda.device_count())
        return f"cuda:{gid}"
    return "cpu"


def init_distributed(gpus: Sequence[int] = (), device: Optional[str] = None) -> DistInfo:
    """Join the process group named by the environment (torchrun); single process otherwise.

    Backend: nccl on CUDA, gloo on the CPU.
    """
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) <= 1:
        return DistInfo(device=pick_device(0, gpus, device))
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local = int(os.environ["LOCAL_RANK"])
    dev = pick_device(local, gpus, device)
    backend = "nccl" if dev.startswith("cuda") else "gloo"
    if dev.startswith("cuda"):
        torch.cuda.set_device(torch.device(dev))
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    logger.info("rank %d/%d (local %d) on %s, backend %s", rank, world, local, dev, backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def free_port() -> int:
    """A free TCP port on the loopback interface (for spawned process groups)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def barrier(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of a tensor over ranks (identity in a single process)."""
    if not info.distributed:
        return x
    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y / info.world_size


# --------------------------------------------------------------------------------------------------
# Data order and augmentation seeding


class ResumableSampler(Sampler[int]):
    """Seeded shuffling sampler, split across ranks like DistributedSampler, that can start mid-epoch.

    The order of epoch `e` depends only on (seed, e); ``set_position(e, k)`` makes the next iteration
    yield this rank's indices of epoch `e` from the k-th on. ``state_dict()`` records where the trainer is.
    """

    def __init__(self, dataset_len: int, seed: int = 0, rank: int = 0, world_size: int = 1, shuffle: bool = True,
                 drop_last: bool = False):
        self._inner = DistributedSampler(range(dataset_len), num_replicas=world_size, rank=rank, shuffle=shuffle,
                                         seed=seed, drop_last=drop_last)
        self.epoch = 0
        self.start = 0

    def set_position(self, epoch: int, start: int = 0) -> None:
        self.epoch = int(epoch)
        self.start = int(start)
        self._inner.set_epoch(self.epoch)

    def set_epoch(self, epoch: int) -> None:
        self.set_position(epoch, 0)

    def epoch_indices(self) -> List[int]:
        return list(iter(self._inner))

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices()[self.start:])

    def __len__(self) -> int:
        return max(0, len(self._inner) - self.start)

    @property
    def per_epoch(self) -> int:
        return len(self._inner)


class SeededSamples(Dataset):
    """Wraps a dataset so each item's random augmentation depends only on (seed, epoch, index).

    The wrapped ``__getitem__`` runs under a forked torch/numpy/python RNG seeded from those three
    numbers, so colour jitter is the same whether or not training was resumed and whatever the number
    of loader workers, and the caller's RNG streams are left untouched.
    """

    def __init__(self, dataset: Dataset, seed: int = 0):
        self.dataset = dataset
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        s = (self.seed * 1_000_003 + self.epoch * 10_007 + int(index)) % (2**31 - 1)
        py_state = random.getstate()
        np_state = np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s)
            random.seed(s)
            np.random.seed(s)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)

    def __getattr__(self, name: str) -> Any:  # cameras, num_broken, ... of the wrapped dataset
        if name in ("dataset", "seed", "epoch"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


# --------------------------------------------------------------------------------------------------
# Seeding (checkpoint RNG capture/restore lives in vfdepth_core.checkpoint)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


# --------------------------------------------------------------------------------------------------
# Weight average


class WeightEMA:
    """Exponential moving average of a model's weights and buffers (training.ema_decay).

    The decay ramps up as min(decay, (1 + n) / (10 + n)) over the first updates n, so the average is not
    dominated by the random initial weights; integer buffers (BatchNorm counters) are copied.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = float(decay)
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """shadow <- d shadow + (1 - d) weights, as one lerp per tensor (one pass instead of two)."""
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        floats, targets = [], []
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if s.dtype.is_floating_point:
                floats.append(s)
                targets.append(v.detach().to(s.dtype))
            else:
                s.copy_(v)
        if floats:
            torch._foreach_lerp_(floats, targets, 1.0 - d)

    def state_dict(self) -> dict:
        return self.shadow

    def load_state_dict(self, state: dict, updates: int) -> None:
        missing = set(self.shadow) ^ set(state)
        if missing:
            raise ValueError(f"weight average does not fit the model (keys {sorted(missing)[:3]}...)")
        for k, v in state.items():
            self.shadow[k].copy_(v)
        self.updates = int(updates)


# --------------------------------------------------------------------------------------------------
# Non-finite losses


class NonFiniteGuard:
    """Counts steps whose loss is NaN/inf; raises TrainingAbort after `max_consecutive` in a row."""

    def __init__(self, max_consecutive: int = 20):
        self.max_consecutive = int(max_consecutive)
        self.total = 0
        self.consecutive = 0

    def check(self, loss: torch.Tensor, step: int) -> bool:
        """True when `loss` is finite (take the step); False when the step must be skipped."""
        if bool(torch.isfinite(loss.detach()).all()):
            self.consecutive = 0
            return True
        self.total += 1
        self.consecutive += 1
        logger.warning("non-finite loss at step %d: step skipped (%d skipped in total, %d in a row)",
                       step, self.total, self.consecutive)
        if self.consecutive >= self.max_consecutive:
            raise TrainingAbort(
                f"{self.consecutive} consecutive non-finite losses (last at step {step}); lower "
                f"training.learning_rate or check the data (training.max_bad_steps={self.max_consecutive})"
            )
        return False

    def state_dict(self) -> dict:
        return {"total": self.total, "consecutive": self.consecutive}

    def load_state_dict(self, s: dict) -> None:
        self.total = int(s.get("total", 0))
        self.consecutive = int(s.get("consecutive", 0))


def grads_finite(parameters) -> bool:
    """True when every gradient is finite.

    Fast path: one sum per gradient (a NaN or inf anywhere makes its sum non-finite), a tenth of the time of
    isfinite().all() on this CPU (34 M gradients: 0.14 s vs 1.3 s); only when a sum is not finite (a NaN/inf, or
    finite values overflowing the sum) are the elements checked one by one, so the answer is exact."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return True
    if bool(torch.isfinite(torch.stack([g.sum(dtype=torch.float32) for g in grads])).all()):
        return True
    return all(bool(torch.isfinite(g).all()) for g in grads)


def make_adam(params, lr: float, device: str) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch has one for the device (CPU since 2.4, CUDA): the same
    update up to float rounding (tests/test_train_step_speed.py), 2.7x faster than the per-tensor loop on
    this CPU (34 M parameters: 0.41 s vs 1.10 s)."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device/dtype
        return torch.optim.Adam(params, lr=lr)


# --------------------------------------------------------------------------------------------------
# Checkpoint compatibility

# Keys that change the network's parameters or the meaning of its inputs/outputs.
ARCH_KEYS = {
    "model": ("num_layers", "depth_model", "pose_model", "fusion_level", "fusion_feat_in_dim", "use_skips",
              "voxel_size", "voxel_pre_dim", "proj_d_bins",
              # conventions an imported checkpoint of the released code needs (vfdepth import-original)
              "voxel_center_offset", "voxel_depth_scale", "overlap_pair_order", "feature_intrinsics", "mask_resize",
              "voxel_border_margin_px"),
    "data": ("cameras",),
}


def incompatible_keys(saved: dict, current: Config) -> List[str]:
    """Names ('model.voxel_size: 20x.. vs ..') of architecture keys that differ between a checkpoint's
    saved config dict and `current`."""
    now = config_to_dict(current)
    diffs = []
    for section, keys in ARCH_KEYS.items():
        for k in keys:
            a = (saved.get(section) or {}).get(k)
            b = now[section][k]
            if section == "data" and k == "cameras":
                a = len(a) if a is not None else None
                b = len(b)
            if a is not None and _norm(a) != _norm(b):
                diffs.append(f"{section}.{k}: checkpoint {a!r} vs config {b!r}")
    return diffs


def _norm(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def check_checkpoint_compatible(saved_cfg: Optional[dict], current: Config, path: str) -> None:
    """Raise ConfigError naming the differing keys when a checkpoint cannot load into `current`'s model."""
    if not saved_cfg:
        return
    diffs = incompatible_keys(saved_cfg, current)
    if diffs:
        raise ConfigError(
            f"checkpoint {path} was trained with an incompatible config ({'; '.join(diffs)}); "
            f"use the checkpoint's config or a matching --config_file"
        )


# --------------------------------------------------------------------------------------------------
# Dataset sanity checks (before the loaders, for one clear message)


def check_dataset_kind(data_path: str, dataset: str, config_path: str = "<config>") -> None:
    """Raise DatasetError when `data.data_path` is missing or plainly belongs to another dataset kind."""
    from vfdepth_core.datasets.common import DatasetError

    p = Path(data_path)
    if not p.exists():
        raise DatasetError(f"data.data_path {p} does not exist (config {config_path}); point it at the "
                           f"dataset or override it with --set data.data_path=...")
    if dataset in ("ddad", "synthetic"):
        if p.is_dir():
            if any(p.glob("v1.0-*")):
                raise DatasetError(f"data.data_path {p} is a nuScenes dataroot but data.dataset is '{dataset}' "
                                   f"(config {config_path}); use a nuScenes config or set data.dataset=nuscenes")
            raise DatasetError(f"data.data_path {p} is a folder; data.dataset '{dataset}' needs the DGP "
                               f"dataset JSON (e.g. .../ddad.json)")
    elif dataset == "nuscenes":
        if p.is_file():
            raise DatasetError(f"data.data_path {p} is a file but data.dataset is 'nuscenes' (config "
                               f"{config_path}); a DDAD/synthetic ddad.json needs a ddad or synthetic config")
        if not any(p.glob("v1.0-*")):
            raise DatasetError(f"data.data_path {p} holds no nuScenes tables (v1.0-*/) (config {config_path})")


def check_nonempty(ds, split: str, data_path: str) -> None:
    from vfdepth_core.datasets.common import DatasetError

    if len(ds) == 0:
        raise DatasetError(f"the {split} split of {data_path} has no samples (check data.data_path and the "
                           f"dataset's scene splits)")


# --------------------------------------------------------------------------------------------------
# Evaluation loop (shared by train.py validation and eval.py)


def batch_to_device(batch: dict, device: str) -> dict:
    """Move the tensors of a collated sample dict to `device` (other values as they are)."""
    non_blocking = device.startswith("cuda")
    return {k: (v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v)
            for k, v in batch.items()}


@torch.no_grad()
def predict_batch_depth(model, batch: dict, use_mask: bool = True) -> torch.Tensor:
    """Depth (B, N, 1, H, W) metres of frame 0 of a collated batch with a VFDepth model (eval mode)."""
    core = model.module if hasattr(model, "module") else model
    images = batch["image"][:, 0]
    mask = batch.get("mask") if use_mask else None
    disp, _ = core.predict_depth(images, batch["K"], batch["T_ego_cam"], mask)
    return core.to_depth(disp, batch["K"])


@torch.no_grad()
def evaluate_depth_model(model, loader, camera_names: Sequence[str], device: str, min_depth: float,
                         max_depth: float, max_samples: Optional[int] = None, on_batch=None,
                         keep_gt: bool = False, amp: str = "none", unit: str = "batch", median: str = "lower") -> dict:
    """Run `model` over `loader` and aggregate the paper's metrics (see vfdepth_core.metrics; `unit` and
    `median` are eval.eval_unit and eval.eval_median).

    on_batch(batch, depth, errors_by_scaling) is called per batch (visualisation, saving).
    keep_gt: also return ``gt_values`` (list per sample-camera of 1-D float32 valid GT) for baselines.
    Returns the accumulator result plus ``seconds`` and, with keep_gt, ``gt_values``.
    """
    import time

    from vfdepth_core.metrics import DepthMetricAccumulator, valid_depth_mask

    was_training = model.training
    model.eval()
    acc = DepthMetricAccumulator(camera_names, min_depth, max_depth, unit=unit, median=median)
    gt_values: List[np.ndarray] = []
    t0 = time.perf_counter()
    seen = 0
    try:
        for batch in loader:
            if batch is None:
                continue
            if "depth_gt" not in batch:
                raise ValueError("the validation split returns no depth_gt; add gt_depth to data.val_requirements")
            if max_samples is not None and seen >= max_samples:
                break
            batch = batch_to_device(batch, device)
            with _autocast(device, amp):
                depth = predict_batch_depth(model, batch).float()
            gt = batch["depth_gt"].float()
            mask = batch.get("mask")
            errs = acc.update(depth, gt, mask)
            if keep_gt:
                valid = valid_depth_mask(gt, mask, min_depth, max_depth)
                for b in range(gt.shape[0]):
                    for n in range(gt.shape[1]):
                        gt_values.append(gt[b, n][valid[b, n]].cpu().numpy().astype(np.float32))
            if on_batch is not None:
                on_batch(batch, depth, errs)
            seen += gt.shape[0]
    finally:
        model.train(was_training)
    res = acc.result()
    res["seconds"] = time.perf_counter() - t0
    if keep_gt:
        res["gt_values"] = gt_values
    return res


def split_gt_prior(cfg, split: str = "train") -> dict:
    """The best per-pixel prior of a split (the training scenes, for a baseline): per camera and pixel, the
    depth minimising abs_rel over the split's GT at the network's resolution (valid pixels as the
    protocol: eval range and self-occlusion mask; :func:`vfdepth_core.metrics.per_pixel_prior`).
    Returns ``prior`` (N, H, W) float64 tensor, metres, pixels never measured filled with ``fallback_m``
    (the best constant of the split's GT), ``samples`` and ``pixels_never_measured``."""
    from torch.utils.data import DataLoader

    from vfdepth_core.config import with_overrides
    from vfdepth_core.datasets import build_dataset, collate_skip_broken
    from vfdepth_core.metrics import constant_depth_baseline, per_pixel_prior, valid_depth_mask

    reqs = "(gt_pose, gt_depth, mask)"
    cfg_gt = with_overrides(cfg, [f"data.train_requirements={reqs}", f"data.val_requirements={reqs}"])
    ds = build_dataset(cfg_gt, split, frame_ids=(0,), skip_broken=True)
    gts, valids = [], []
    for batch in DataLoader(ds, batch_size=1, shuffle=False, collate_fn=collate_skip_broken):
        if batch is None:
            continue
        gt = batch["depth_gt"][:, :, 0].float()
        valid = valid_depth_mask(gt, None if batch.get("mask") is None else batch["mask"][:, :, 0],
                                 cfg.eval.eval_min_depth, cfg.eval.eval_max_depth)
        gts.append(gt.numpy().astype(np.float32))
        valids.append(valid.numpy())
    if not gts:
        raise ValueError(f"split {split!r} of {cfg.data.data_path} has no sample with depth GT: no per-pixel prior")
    g, v = np.concatenate(gts), np.concatenate(valids)
    prior = per_pixel_prior(g, v, per_image_dims=2)  # (S, N, H, W): the protocol averages per image
    fallback = constant_depth_baseline(g[v])["abs_rel_optimal"]["value_m"]
    filled = np.where(np.isfinite(prior), prior, fallback)
    return {"prior": torch.from_numpy(filled), "fallback_m": fallback, "samples": int(g.shape[0]),
            "pixels_never_measured": int((~np.isfinite(prior)).sum())}


def _autocast(device: str, amp: str):
    """Autocast context for training.amp on `device`: bf16 on CUDA and CPU, fp16 on CUDA only (on a CPU
    fp16 runs in fp32: CPU fp16 kernels are slower than fp32 ones)."""
    import contextlib

    if amp == "none" or (amp == "fp16" and not device.startswith("cuda")):
        return contextlib.nullcontext()
    return torch.autocast("cuda" if device.startswith("cuda") else "cpu",
                          dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


# --------------------------------------------------------------------------------------------------
# Files


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write text through a temp file + os.replace, so readers never see a partial file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return p


_EPOCH_CKPT = re.compile(r"epoch_(\d+)\.pt")


def prune_epoch_checkpoints(ckpt_dir: str | Path, keep_last: int, keep_every: int = 0) -> List[Path]:
    """Delete ``epoch_NNN.pt`` files in `ckpt_dir` except the newest `keep_last` (0 = keep all) and
    those of every `keep_every`-th epoch (NNN is the 0-based epoch: epochs K, 2K, ... are NNN = K-1, ...).
    Other files (latest.pt, best.pt) are never touched. Returns the deleted paths."""
    if keep_last <= 0:
        return []
    found = sorted((int(m.group(1)), p) for p in Path(ckpt_dir).iterdir() if (m := _EPOCH_CKPT.fullmatch(p.name)))
    doomed = [p for n, p in found[:-keep_last] if not (keep_every > 0 and (n + 1) % keep_every == 0)]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


def disk_use(folder: str | Path) -> Tuple[int, int]:
    """(number of files, bytes) directly in `folder`."""
    sizes = [p.stat().st_size for p in Path(folder).iterdir() if p.is_file()]
    return len(sizes), sum(sizes)


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return str(o)


# --------------------------------------------------------------------------------------------------
# Image summaries (uint8 HxWx3 numpy arrays)


def _viz():
    try:
        from vfdepth_core import viz  # noqa: WPS433

        return viz
    except ImportError:  # the viz module is optional for training
        return None


def colorize_depth_np(depth_m: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """(H, W) metres -> (H, W, 3) uint8, inverse-depth colour scale (near = bright)."""
    viz = _viz()
    if viz is not None and hasattr(viz, "colorize_depth"):
        try:
            return np.asarray(viz.colorize_depth(depth_m, vmin=vmin, vmax=vmax))
        except Exception as exc:  # noqa: BLE001 - summaries must never stop training
            logger.debug("viz.colorize_depth failed (%s); using the local colormap", exc)
    import matplotlib

    d = np.clip(np.nan_to_num(depth_m, nan=vmax), vmin, vmax)
    x = (1.0 / d - 1.0 / vmax) / max(1.0 / vmin - 1.0 / vmax, 1e-12)
    rgb = matplotlib.colormaps["magma"](np.clip(x, 0, 1))[..., :3]
    return (rgb * 255).astype(np.uint8)


def tile(images: Sequence[np.ndarray], ncols: int = 3) -> np.ndarray:
    """Tile equally sized (H, W, 3) uint8 images into a grid."""
    viz = _viz()
    if viz is not None and hasattr(viz, "mosaic"):
        try:
            return np.asarray(viz.mosaic(list(images), ncols=ncols))
        except Exception as exc:  # noqa: BLE001
            logger.debug("viz.mosaic failed (%s); using the local tiling", exc)
    n = len(images)
    rows = int(math.ceil(n / ncols))
    H, W = images[0].shape[:2]
    out = np.zeros((rows * H, ncols * W, 3), np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, ncols)
        out[r * H:(r + 1) * H, c * W:(c + 1) * W] = im
    return out


def image_to_uint8(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) float [0, 1] -> (H, W, 3) uint8."""
    return (img.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def depth_mosaic(depth: torch.Tensor, vmin: float, vmax: float, ncols: int = 3) -> np.ndarray:
    """(N, 1, H, W) metres -> one mosaic image of all cameras."""
    return tile([colorize_depth_np(d[0].detach().float().cpu().numpy(), vmin, vmax) for d in depth], ncols)


def rgb_mosaic(images: torch.Tensor, ncols: int = 3) -> np.ndarray:
    """(N, 3, H, W) in [0, 1] -> one mosaic image."""
    return tile([image_to_uint8(im) for im in images], ncols)


def write_png(path: str | Path, image: np.ndarray) -> Path:
    from PIL import Image

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image)).save(p)
    return p


__all__ = [
    "ARCH_KEYS",
    "DistInfo",
    "NonFiniteGuard",
    "ResumableSampler",
    "SeededSamples",
    "TrainingAbort",
    "all_reduce_mean",
    "atomic_write_text",
    "barrier",
    "batch_to_device",
    "check_dataset_kind",
    "check_nonempty",
    "evaluate_depth_model",
    "split_gt_prior",
    "predict_batch_depth",
    "check_checkpoint_compatible",
    "colorize_depth_np",
    "depth_mosaic",
    "disk_use",
    "free_port",
    "grads_finite",
    "image_to_uint8",
    "incompatible_keys",
    "init_distributed",
    "launched_by_torchrun",
    "pick_device",
    "prune_epoch_checkpoints",
    "rgb_mosaic",
    "seed_everything",
    "tile",
    "write_json",
    "write_png",
]
