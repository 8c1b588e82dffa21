"""Reading dataset files: JSON, images (decoded or only their header checked) and self-occlusion masks."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from PIL import Image

from vfdepth_core.datasets.errors import DatasetError


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
