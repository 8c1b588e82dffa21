"""What every surround-view loader shares: the records it produces, broken-sample handling and the sample
dict of docs/ARCHITECTURE.md. The pieces live beside it: :mod:`.errors` (``DatasetError``, also importable
from here), :mod:`.files` (JSON, images, masks), :mod:`.jitter` (colour jitter), :mod:`.lidar` (LIDAR depth
ground truth and its cache), :mod:`.poses` (pose records <-> matrices).

A loader (DDAD, nuScenes) only has to turn its files into :class:`SampleRef` records (paths, calibration,
poses) and say how to read its LIDAR points in each camera's frame; :class:`SurroundDataset` turns a record
into the sample dict:

=============  ======================  ===========================================================
key            shape / type            meaning
=============  ======================  ===========================================================
image          (F, N, 3, H, W) f32     frames in ``frame_ids`` order, resized, values in [0, 1]
image_aug      (F, N, 3, H, W) f32     colour-jittered copy when training (same jitter for all
                                       frames of one camera), else equal to ``image``
K              (N, 3, 3) f32           intrinsics at H x W (half-pixel-correct scaling)
T_ego_cam      (N, 4, 4) f32           camera -> vehicle
mask           (N, 1, H, W) f32        self-occlusion mask, 1 = valid
depth_gt       (N, 1, H, W) f32        metres, 0 = no LIDAR point (only when ``with_depth``)
T_world_ego    (F, 4, 4) f64           vehicle pose per frame
stamp_ns       (F, N) i64              source image timestamps
scene, index   str, int
=============  ======================  ===========================================================
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from vfdepth_core import geometry
from vfdepth_core.datasets.errors import DatasetError
from vfdepth_core.datasets.files import MaskResolver, load_image, load_mask, open_rgb, peek_image
from vfdepth_core.datasets.jitter import apply_jitter, draw_jitter
from vfdepth_core.datasets.lidar import DepthCache, lidar_depth, lidar_depth_paper
from vfdepth_core.datasets.poses import transform_np

logger = logging.getLogger(__name__)

__all__ = ["DatasetError", "FrameRef", "Problem", "SampleRef", "SurroundDataset", "collate_skip_broken"]


# --------------------------------------------------------------------------------------------------
# The records loaders produce and the dataset that turns them into sample dicts


@dataclass
class FrameRef:
    """One time step of a sample: per-camera image files and stamps, and the vehicle pose."""

    image_paths: List[str]
    stamp_ns: List[int]
    T_world_ego: np.ndarray  # (4, 4) float64


@dataclass
class SampleRef:
    """Everything needed to build one sample dict, without reading any pixel."""

    scene: str
    sample: str  # a name unique inside the scene (cache key)
    frames: Dict[int, FrameRef]  # frame id -> frame
    K: np.ndarray  # (N, 3, 3) at the images' own resolution
    T_ego_cam: np.ndarray  # (N, 4, 4)
    # Returns LIDAR points (P, 3) in camera n's frame, for frame 0; None = no LIDAR for this sample.
    lidar_in_cam: Optional[Callable[[int], np.ndarray]] = None
    lidar_path: Optional[str] = None
    extra_files: List[str] = field(default_factory=list)  # other files the sample needs (for scan())


@dataclass
class Problem:
    """One broken sample found by a scan."""

    index: int
    scene: str
    file: str
    message: str

    def __str__(self) -> str:
        return f"sample {self.index} (scene {self.scene}): {self.message}"


class SurroundDataset(torch.utils.data.Dataset):
    """Base class: subclasses fill ``self.refs`` (list of SampleRef), ``self.cameras`` (upper-case sensor
    names) and ``self.data_root``; this class reads pixels and builds the sample dict.

    Args:
        height, width: network resolution.
        frame_ids: frames to return, e.g. (0, -1, 1); refs must hold each of them.
        with_depth: project LIDAR into each camera (``depth_gt``), cached on disk.
        gt_projection: 'paper' (:func:`lidar_depth_paper`) or 'nearest' (:func:`lidar_depth`).
        color_jitter: (brightness, contrast, saturation, hue) strengths for ``image_aug``; None = no jitter.
        mask_path: self-occlusion mask folder (see :class:`MaskResolver`); None = all ones.
        skip_broken: on an unreadable file return None (log a warning, count it in ``num_broken``)
            instead of raising; pair with :func:`collate_skip_broken`.
    """

    def __init__(self, *, height: int, width: int, frame_ids: Sequence[int] = (0, -1, 1), with_depth: bool = False,
                 color_jitter: Optional[Sequence[float]] = None, mask_path: Optional[str] = None,
                 gt_cache: Optional[str] = None, skip_broken: bool = False, gt_projection: str = "paper"):
        self.hw = (int(height), int(width))
        if gt_projection not in ("paper", "nearest"):
            raise DatasetError(f"gt_projection must be 'paper' or 'nearest', got {gt_projection!r}")
        self.gt_projection = gt_projection
        self.frame_ids = tuple(int(f) for f in frame_ids)
        if 0 not in self.frame_ids:
            raise DatasetError(f"frame_ids must contain 0, got {self.frame_ids}")
        self.with_depth = with_depth
        self.color_jitter = tuple(color_jitter) if color_jitter is not None and any(color_jitter) else None
        self.masks = MaskResolver(mask_path)
        self.gt_cache = gt_cache
        self.skip_broken = skip_broken
        self.num_broken = 0
        self.refs: List[SampleRef] = []
        self.cameras: List[str] = []
        self.data_root: Path = Path(".")
        self.cache_settings = ""  # loader choices that change the projected depth (the depth cache's key)
        self._mask_cache: Dict[Tuple[str, Tuple[int, int]], torch.Tensor] = {}
        self._depth_cache: Optional[DepthCache] = None

    # -- public ------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, index: int) -> Optional[dict]:
        if not 0 <= index < len(self.refs):
            raise IndexError(index)
        try:
            return self._build(index)
        except DatasetError as exc:
            if not self.skip_broken:
                raise
            self.num_broken += 1
            logger.warning("skipping broken sample %d (%d so far): %s", index, self.num_broken, exc)
            return None

    def needed_files(self) -> Iterator[Tuple[int, str, str]]:
        """(sample index, path, kind) of every file building the samples reads: each frame's image per
        camera, the LIDAR file when ``with_depth``, the self-occlusion masks and any extra file. Kinds:
        'image', 'LIDAR file', 'mask', 'file'."""
        for i, ref in enumerate(self.refs):
            for fr in ref.frames.values():
                for p in fr.image_paths:
                    yield i, p, "image"
            if self.with_depth and ref.lidar_path:
                yield i, ref.lidar_path, "LIDAR file"
            for cam in self.cameras:
                m = self.masks.path(ref.scene, cam)
                if m is not None:
                    yield i, str(m), "mask"
            for p in ref.extra_files:
                yield i, p, "file"

    def check_file(self, path: str, kind: str, level: str = "decode") -> Optional[str]:
        """None when `path` (of :meth:`needed_files`' `kind`) is fine, else a one-line problem. `level`:
        'exists'; 'header' (also the image header and end marker, the LIDAR file's index); 'decode' (read
        it all, as training does)."""
        try:
            if not os.path.isfile(path):
                return f"{kind} not found: {path}"
            if level == "exists" or kind == "file":
                return None
            if kind == "LIDAR file":
                (self._read_lidar_file if level == "decode" else self._peek_lidar_file)(path)
            elif level == "decode":
                open_rgb(path) if kind == "image" else load_mask(path, (8, 8))
            else:
                peek_image(path, kind)
        except DatasetError as exc:
            return str(exc)
        return None

    def scan(self, check_pixels: bool = True) -> List[Problem]:
        """Check every sample's files (existence; with check_pixels also full decoding of images and
        LIDAR files) and return every problem found, instead of stopping at the first."""
        problems: List[Problem] = []
        seen: Dict[str, Optional[str]] = {}
        for i, p, kind in self.needed_files():
            if p not in seen:
                seen[p] = self.check_file(p, kind, "decode" if check_pixels else "exists")
            if seen[p]:
                problems.append(Problem(i, self.refs[i].scene, p, seen[p]))
        return problems

    # -- hooks -------------------------------------------------------------------------------------

    def _read_lidar_file(self, path: str) -> np.ndarray:
        """Read a LIDAR file (subclasses); raise DatasetError naming it when broken."""
        raise NotImplementedError

    def _peek_lidar_file(self, path: str) -> None:
        """A quick check of a LIDAR file (subclasses may avoid reading it all); DatasetError when broken."""
        self._read_lidar_file(path)

    def _lidar_in_cam(self, path: str, T_cam_lidar: Callable[[int], np.ndarray]) -> Callable[[int], np.ndarray]:
        """A SampleRef's ``lidar_in_cam``: the LIDAR file's points (P, 3) in camera n's frame, the file read
        once for all cameras."""
        def lidar_in_cam(n: int) -> np.ndarray:
            last = getattr(self, "_lidar_last", None)
            if last is None or last[0] != path:
                last = self._lidar_last = (path, self._read_lidar_file(path)[:, :3])
            return transform_np(T_cam_lidar(n), last[1])

        return lidar_in_cam

    # -- internals ---------------------------------------------------------------------------------

    def _mask(self, scene: str, camera: str) -> torch.Tensor:
        p = self.masks.path(scene, camera)
        if p is None:
            return torch.ones(1, *self.hw)
        key = (str(p), self.hw)
        if key not in self._mask_cache:
            self._mask_cache[key] = load_mask(p, self.hw)
        return self._mask_cache[key]

    def _depth(self, ref: SampleRef, hw0: List[Tuple[int, int]], K: np.ndarray) -> torch.Tensor:
        if self._depth_cache is None:
            self._depth_cache = DepthCache(self.data_root, self.gt_cache, f"{self.cache_settings}|{self.gt_projection}")
        out = torch.zeros(len(self.cameras), 1, *self.hw)
        if ref.lidar_in_cam is None:
            return out
        for n, cam in enumerate(self.cameras):
            d = self._depth_cache.get(ref.scene, ref.sample, cam, self.hw)
            if d is None:
                if self.gt_projection == "paper":
                    d = lidar_depth_paper(ref.lidar_in_cam(n), ref.K[n], hw0[n], self.hw)
                else:
                    d = lidar_depth(ref.lidar_in_cam(n), K[n], self.hw)
                self._depth_cache.put(ref.scene, ref.sample, cam, self.hw, d)
            out[n, 0] = torch.from_numpy(d)
        return out

    def _build(self, index: int) -> dict:
        ref = self.refs[index]
        N, F_ = len(self.cameras), len(self.frame_ids)
        H, W = self.hw
        image = torch.empty(F_, N, 3, H, W)
        hw0: List[Tuple[int, int]] = []
        stamps = np.zeros((F_, N), dtype=np.int64)
        for fi, fid in enumerate(self.frame_ids):
            fr = ref.frames[fid]
            for n in range(N):
                image[fi, n], size0 = load_image(fr.image_paths[n], self.hw)
                if fid == 0:
                    hw0.append(size0)
                stamps[fi, n] = fr.stamp_ns[n]
        K = np.stack([
            geometry.resize_intrinsics(torch.from_numpy(ref.K[n].astype(np.float64)), hw0[n], self.hw).numpy()
            for n in range(N)
        ])
        if self.color_jitter is not None:
            image_aug = torch.stack([apply_jitter(image[:, n], draw_jitter(self.color_jitter)) for n in range(N)], 1)
        else:
            image_aug = image.clone()
        sample = {
            "image": image,
            "image_aug": image_aug,
            "K": torch.from_numpy(K).float(),
            "T_ego_cam": torch.from_numpy(np.asarray(ref.T_ego_cam, dtype=np.float64)).float(),
            "mask": torch.stack([self._mask(ref.scene, cam) for cam in self.cameras]),
            "T_world_ego": torch.from_numpy(np.stack([ref.frames[f].T_world_ego for f in self.frame_ids]).astype(np.float64)),
            "stamp_ns": torch.from_numpy(stamps),
            "scene": ref.scene,
            "index": index,
        }
        if self.with_depth:
            sample["depth_gt"] = self._depth(ref, hw0, K)
        return sample


def collate_skip_broken(batch: List[Optional[dict]]) -> Optional[dict]:
    """DataLoader collate_fn that drops None samples (broken, with ``skip_broken=True``); returns None
    when the whole batch was broken. The dropped count is logged; datasets count in ``num_broken``."""
    from torch.utils.data import default_collate

    kept = [b for b in batch if b is not None]
    if len(kept) < len(batch):
        logger.warning("dropped %d broken sample(s) from a batch of %d", len(batch) - len(kept), len(batch))
    if not kept:
        return None
    return default_collate(kept)
