"""What every surround-view loader shares: the error type, image/mask reading, colour jitter, LIDAR depth
ground truth (with its on-disk cache), broken-sample handling and the sample dict of docs/ARCHITECTURE.md.

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

import hashlib
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from vfdepth_core import geometry

logger = logging.getLogger(__name__)


class DatasetError(ValueError):
    """Broken or missing dataset files; the one-line message names the file and what is missing."""


# --------------------------------------------------------------------------------------------------
# Files


def read_json(path: str | Path, what: str = "file") -> dict:
    """Parse a JSON file, raising DatasetError naming the file when it is missing or broken."""
    import json

    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{what} not found: {p}")
    try:
        with open(p, "r") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{p}: broken JSON ({exc}); re-download or regenerate this {what}") from None


def open_rgb(path: str | Path, min_hw: Optional[Tuple[int, int]] = None) -> Tuple[Image.Image, Tuple[int, int]]:
    """Open and fully decode an image as RGB -> (image, original (H, W)); DatasetError naming the file
    when missing/truncated/corrupt. With `min_hw`, JPEGs are decoded at the smallest DCT scale (1/2,
    1/4, 1/8) that is still at least that large (much faster for DDAD's 1936 x 1216 frames)."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"image not found: {p}")
    try:
        with Image.open(p) as img:
            size0 = (img.size[1], img.size[0])
            if min_hw is not None and img.format == "JPEG":
                img.draft("RGB", (min_hw[1], min_hw[0]))
            img.load()  # decodes everything: a truncated file fails here, not later
            return img.convert("RGB"), size0
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"image unreadable (truncated or corrupt): {p} ({exc})") from None


_END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82"}


def peek_image(path: str | Path, what: str = "image") -> Tuple[int, int]:
    """Header and end marker of an image without decoding it -> (H, W); DatasetError naming the file when
    it is missing, not an image, or cut short (a JPEG/PNG whose last bytes are not its end marker)."""
    p = Path(path)
    try:
        with Image.open(p) as img:
            fmt, (W, H) = img.format, img.size
        with open(p, "rb") as f:
            f.seek(max(0, p.stat().st_size - 16))
            tail = f.read()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"{what} unreadable: {p} ({exc})") from None
    marker = _END_MARKERS.get(fmt)
    if marker is not None and marker not in tail:  # JPEGs may carry a few padding bytes after FFD9
        raise DatasetError(f"{what} truncated (no {fmt} end marker): {p}")
    return H, W


def load_image(path: str | Path, hw: Tuple[int, int]) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Read an RGB image, resize to hw = (H, W) (bilinear, antialiased); returns ((3, H, W) float32 in
    [0, 1], original (H0, W0))."""
    H, W = hw
    img, (H0, W0) = open_rgb(path, hw)
    if img.size != (W, H):
        img = img.resize((W, H), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0), (H0, W0)



def load_mask(path: str | Path, hw: Tuple[int, int]) -> torch.Tensor:
    """Self-occlusion mask PNG (white = valid) -> (1, H, W) float32 of 0/1 at hw = (H, W)."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"mask not found: {p}")
    try:
        with Image.open(p) as img:
            img.load()
            m = img.convert("L")
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"mask unreadable: {p} ({exc})") from None
    H, W = hw
    if m.size != (W, H):
        m = m.resize((W, H), Image.BILINEAR)
    arr = np.asarray(m, dtype=np.float32) / 255.0
    return torch.from_numpy((arr > 0.5).astype(np.float32))[None]


class MaskResolver:
    """Finds the self-occlusion mask PNG of a (scene, camera).

    Layout (the paper's ``ddad_mask``): ``<mask_path>/<set>/<CAMERA>_mask.png``; the set of each scene
    comes from ``<mask_path>/mask_sets.json`` ({scene name: set}) or the paper's ``mask_idx_dict.pkl``
    ({int(scene name): set}); with a single set folder (or the PNGs directly in ``mask_path``) that one is
    used for all scenes. A camera without a PNG in its set (the paper has none for the front camera) gets
    an all-ones mask. ``mask_path=None``: all ones everywhere.
    """

    def __init__(self, mask_path: Optional[str | Path]):
        self.root = Path(mask_path) if mask_path else None
        self.scene_to_set: Dict[str, str] = {}
        self.default_set: Optional[str] = None
        if self.root is None:
            return
        if not self.root.is_dir():
            raise DatasetError(f"mask folder not found: {self.root} (fix data.mask_path or set it to null)")
        js = self.root / "mask_sets.json"
        pkl = self.root / "mask_idx_dict.pkl"
        if js.is_file():
            self.scene_to_set = {str(k): str(v) for k, v in read_json(js, "mask set table").items()}
        elif pkl.is_file():
            import pickle

            try:
                with open(pkl, "rb") as f:
                    table = pickle.load(f)
                self.scene_to_set = {str(int(k)): str(v) for k, v in dict(table).items()}
            except Exception as exc:  # pandas pickles need pandas; say what to do
                raise DatasetError(f"{pkl}: cannot read the mask set table ({exc}); write mask_sets.json "
                                   "({scene name: set}) next to it instead") from None
        sets = sorted(d.name for d in self.root.iterdir() if d.is_dir())
        if any(self.root.glob("*_mask.png")):
            self.default_set = ""
        elif len(sets) == 1:
            self.default_set = sets[0]

    def path(self, scene: str, camera: str) -> Optional[Path]:
        """Mask file for `camera` (upper-case sensor name) in `scene`, or None (= all ones)."""
        if self.root is None:
            return None
        key = scene
        if key not in self.scene_to_set and key.isdigit():
            key = str(int(key))
        s = self.scene_to_set.get(key, self.default_set)
        if s is None:
            raise DatasetError(f"{self.root}: no mask set for scene '{scene}' (add it to mask_sets.json)")
        p = self.root / s / f"{camera}_mask.png" if s else self.root / f"{camera}_mask.png"
        return p if p.is_file() else None


# --------------------------------------------------------------------------------------------------
# Colour jitter (brightness, contrast, saturation, hue), one draw per camera for all its frames


def draw_jitter(strengths: Sequence[float], generator: Optional[torch.Generator] = None) -> dict:
    """Random jitter factors like torchvision's ColorJitter: brightness/contrast/saturation factors in
    [1-s, 1+s], hue shift in [-h, h], and a random order of the four operations."""
    b, c, s, h = (float(x) for x in strengths)

    def u(lo: float, hi: float) -> float:
        return float(lo + (hi - lo) * torch.rand((), generator=generator))

    return {
        "brightness": u(max(0.0, 1 - b), 1 + b) if b > 0 else None,
        "contrast": u(max(0.0, 1 - c), 1 + c) if c > 0 else None,
        "saturation": u(max(0.0, 1 - s), 1 + s) if s > 0 else None,
        "hue": u(-h, h) if h > 0 else None,
        "order": torch.randperm(4, generator=generator).tolist(),
    }


_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _grey(img: torch.Tensor) -> torch.Tensor:
    return (0.299 * img[..., 0, :, :] + 0.587 * img[..., 1, :, :] + 0.114 * img[..., 2, :, :]).unsqueeze(-3)


def apply_jitter(img: torch.Tensor, params: dict) -> torch.Tensor:
    """Apply :func:`draw_jitter` factors to images (*, 3, H, W) in [0, 1].

    Brightness, contrast (towards the mean grey of each image) and saturation (towards its grey image)
    as torchvision defines them; hue as a rotation of the chroma plane in YIQ space by ``hue * 360``
    degrees (a linear 3x3 map: much faster than torchvision's HSV round trip, nearly the same result).
    """
    out = img
    for op in params["order"]:
        if op == 0 and params["brightness"] is not None:
            out = (out * params["brightness"]).clamp(0, 1)
        elif op == 1 and params["contrast"] is not None:
            mean = _grey(out).mean(dim=(-3, -2, -1), keepdim=True)
            out = (mean + params["contrast"] * (out - mean)).clamp(0, 1)
        elif op == 2 and params["saturation"] is not None:
            g = _grey(out)
            out = (g + params["saturation"] * (out - g)).clamp(0, 1)
        elif op == 3 and params["hue"] is not None:
            a = -params["hue"] * 2 * math.pi  # sign chosen to turn hues the way torchvision does
            rot = torch.tensor([[1.0, 0.0, 0.0], [0.0, math.cos(a), -math.sin(a)], [0.0, math.sin(a), math.cos(a)]])
            M = (_YIQ_TO_RGB @ rot @ _RGB_TO_YIQ).to(out.dtype)
            out = torch.einsum("ij,...jhw->...ihw", M, out).clamp(0, 1)
    return out


# --------------------------------------------------------------------------------------------------
# LIDAR depth ground truth and its cache


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


def quat_pose_to_matrix(rotation: dict, translation: dict) -> np.ndarray:
    """DGP-style pose {qw,qx,qy,qz} + {x,y,z} -> 4x4 float64 (T_parent_child)."""
    q = torch.tensor([rotation["qw"], rotation["qx"], rotation["qy"], rotation["qz"]], dtype=torch.float64)
    t = torch.tensor([translation["x"], translation["y"], translation["z"]], dtype=torch.float64)
    return geometry.make_transform(geometry.quat_to_rotmat(q), t).numpy()


def matrix_to_quat_pose(T: np.ndarray) -> Tuple[dict, dict]:
    """4x4 -> DGP-style ({qw,qx,qy,qz}, {x,y,z})."""
    q = geometry.rotmat_to_quat(torch.from_numpy(np.asarray(T, dtype=np.float64)[:3, :3])).tolist()
    t = np.asarray(T, dtype=np.float64)[:3, 3].tolist()
    return ({"qw": q[0], "qx": q[1], "qy": q[2], "qz": q[3]}, {"x": t[0], "y": t[1], "z": t[2]})


def transform_np(T_b_a: np.ndarray, p_a: np.ndarray) -> np.ndarray:
    """Apply a 4x4 to points (P, 3) with the geometry module; returns (P, 3) float64."""
    p = torch.from_numpy(np.ascontiguousarray(p_a[:, :3], dtype=np.float64).T)
    return geometry.transform_points(torch.from_numpy(np.asarray(T_b_a, dtype=np.float64)), p).T.numpy()


def invert_np(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 (float64) via the geometry module."""
    return geometry.invert_transform(torch.from_numpy(np.asarray(T, dtype=np.float64))).numpy()
