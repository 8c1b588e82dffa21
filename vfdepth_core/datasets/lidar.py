"""LIDAR depth ground truth (nearest point, or the paper's projection) and its on-disk cache."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch

from vfdepth_core import geometry
from vfdepth_core.datasets.errors import DatasetError

logger = logging.getLogger(__name__)


def lidar_depth(points_cam: np.ndarray, K: np.ndarray, hw: Tuple[int, int]) -> np.ndarray:
    """Sparse depth (H, W) float32 from LIDAR points (P, 3) already in the camera frame and K at hw.
    Nearest point wins; 0 = no point."""
    p = torch.from_numpy(np.ascontiguousarray(points_cam, dtype=np.float64).T)
    d = geometry.points_to_depth_image(torch.from_numpy(np.asarray(K, dtype=np.float64)), p, hw[0], hw[1])
    return d.numpy().astype(np.float32)


def lidar_depth_paper(points_cam: np.ndarray, K0: np.ndarray, hw0: Tuple[int, int], hw: Tuple[int, int]) -> np.ndarray:
    """The paper's ground truth (H, W) float32: LIDAR points (P, 3) in the camera frame projected with K0 at
    the image's own size hw0, pixel = integer part of (u, v), the last point written wins (dgp's
    generate_depth_map); then each pixel's depth moved to (int(row * H / H0), int(col * W / W0)) in row-major
    order, the last one wins (packnet-sfm's resize_depth_preserve). 0 = no point."""
    p = torch.from_numpy(np.ascontiguousarray(points_cam, dtype=np.float64).T)
    uv, z = geometry.project(torch.from_numpy(np.asarray(K0, dtype=np.float64)), p)
    with np.errstate(invalid="ignore"):
        u, v = np.trunc(uv[0].numpy()), np.trunc(uv[1].numpy())  # C casts truncate toward zero
    z = z[0].numpy()
    (H0, W0), (H, W) = hw0, hw
    ok = np.isfinite(u) & np.isfinite(v) & (u >= 0) & (v >= 0) & (u < W0) & (v < H0) & (z > 0)
    full = np.zeros((H0, W0), dtype=np.float32)
    full[v[ok].astype(np.int64), u[ok].astype(np.int64)] = z[ok]  # repeated pixels: the last value stays
    rows, cols = np.nonzero(full > 0)  # row-major order
    r = (rows * (H / H0)).astype(np.int32)
    c = (cols * (W / W0)).astype(np.int32)
    keep = (r < H) & (c < W)
    out = np.zeros((H, W), dtype=np.float32)
    out[r[keep], c[keep]] = full[rows[keep], cols[keep]]
    return out


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/vfdepth (default ~/.cache/vfdepth)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vfdepth"


def _writable_dir(d: Path) -> bool:
    """True when `d` exists or can be made, and a file can be written in it. A folder whose mode has no
    write bit (e.g. a read-only share) counts as read-only even for root, who could write anyway."""
    try:
        probe = d
        while not probe.exists():
            probe = probe.parent
        if not probe.stat().st_mode & 0o222:
            return False
        d.mkdir(parents=True, exist_ok=True)
        if not d.stat().st_mode & 0o222:
            return False
        with tempfile.NamedTemporaryFile(dir=d, prefix=".probe", delete=True):
            pass
        return True
    except OSError:
        return False


class DepthCache:
    """Projected LIDAR depth cached as ``<dir>/<scene>/<sample>_<CAMERA>_<H>x<W>.npz`` (key ``depth``).

    ``<dir>`` is ``<gt_cache or $XDG_CACHE_HOME/vfdepth/depth_gt>/<key>``, never inside the dataset folder (it
    may be read-only or shared). ``<key>`` hashes the dataset's absolute path and `settings` (the loader's
    choices that change the depth, e.g. DDAD's index file and LIDAR name, the nuScenes table version), so two
    datasets never share files; ``<dir>/SOURCE`` names the dataset. Without a writable default folder the
    depth is not cached (a warning); a given gt_cache that is not writable is an error.
    """

    def __init__(self, data_root: str | Path, gt_cache: Optional[str | Path] = None, settings: str = ""):
        data_root = Path(data_root).resolve()
        key = hashlib.sha1(f"{data_root}|{settings}".encode()).hexdigest()[:16]
        base = Path(gt_cache) if gt_cache else user_cache_dir() / "depth_gt"
        self.dir: Optional[Path] = base / key
        if not _writable_dir(self.dir):
            if gt_cache:
                raise DatasetError(f"depth cache folder not writable: {gt_cache} (fix data.gt_cache)")
            logger.warning("depth cache folder %s not writable; projected LIDAR depth is not cached "
                           "(set data.gt_cache to a writable folder)", self.dir)
            self.dir = None
            return
        source = self.dir / "SOURCE"
        if not source.is_file():
            try:
                source.write_text(f"{data_root}\n{settings}\n")
            except OSError:
                pass

    def _path(self, scene: str, sample: str, camera: str, hw: Tuple[int, int]) -> Optional[Path]:
        if self.dir is None:
            return None
        return self.dir / scene / f"{sample}_{camera}_{hw[0]}x{hw[1]}.npz"

    def get(self, scene: str, sample: str, camera: str, hw: Tuple[int, int]) -> Optional[np.ndarray]:
        p = self._path(scene, sample, camera, hw)
        if p is None or not p.is_file():
            return None
        try:
            with np.load(p) as z:
                d = z["depth"]
            if d.shape == tuple(hw):
                return d.astype(np.float32)
        except (OSError, ValueError, KeyError):
            pass
        logger.warning("ignoring broken depth cache file %s", p)
        return None

    def put(self, scene: str, sample: str, camera: str, hw: Tuple[int, int], depth: np.ndarray) -> None:
        p = self._path(scene, sample, camera, hw)
        if p is None:
            return
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".npz.tmp")
            with os.fdopen(fd, "wb") as f:
                np.savez_compressed(f, depth=depth.astype(np.float32))
            os.replace(tmp, p)
        except OSError as exc:
            logger.warning("cannot write depth cache %s: %s", p, exc)
