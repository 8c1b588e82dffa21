"""Trajectory plots and picture files (PNG, animated GIF / MP4)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from vfdepth_core.viz.colorbar import _figure, _render
from vfdepth_core.viz.colors import ArrayLike, _np, to_uint8_rgb


# --------------------------------------------------------------------------------------------------
# trajectories, animations, novel views

def plot_trajectory(est_xyz: Optional[ArrayLike], gt_xyz: Optional[ArrayLike] = None,
                    path: Optional[Union[str, Path]] = None, title: str = "trajectory (top-down)",
                    labels: Tuple[str, str] = ("estimate", "ground truth"), size_px: Tuple[int, int] = (640, 560),
                    dpi: int = 100) -> np.ndarray:
    """Top-down plot (x right, y up, equal axes) of an estimated and/or ground-truth trajectory.

    est_xyz, gt_xyz: (T, 3) or (T, 2) positions in metres in one world frame (align them first).
    Start is marked with a circle, end with a square. Returns the picture (H, W, 3) uint8 and, when
    `path` is given, also writes it there (PNG).
    """
    tracks = []
    for name, xyz, color in ((labels[1], gt_xyz, "#444444"), (labels[0], est_xyz, "#d62728")):
        if xyz is None:
            continue
        a = _np(xyz).astype(np.float64)
        if a.ndim != 2 or a.shape[1] not in (2, 3) or len(a) == 0:
            raise ValueError(f"{name} positions must have shape (T, 3) or (T, 2) with T >= 1, got {a.shape}")
        tracks.append((name, a[:, :2], color))
    if not tracks:
        raise ValueError("plot_trajectory needs est_xyz or gt_xyz")
    fig = _figure(*size_px, dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    for name, xy, color in tracks:
        ls = "--" if name == labels[1] else "-"
        ax.plot(xy[:, 0], xy[:, 1], ls, color=color, lw=1.8, label=name)
        ax.plot(xy[0, 0], xy[0, 1], "o", color=color, ms=7, mfc="white", mew=1.8)
        ax.plot(xy[-1, 0], xy[-1, 1], "s", color=color, ms=7)
    ax.plot([], [], "o", color="k", mfc="white", label="start")
    ax.plot([], [], "s", color="k", label="end")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    fig.tight_layout()
    img = _render(fig)
    if path is not None:
        write_png(path, img)
    return img


def write_png(path: Union[str, Path], image: ArrayLike) -> Path:
    """Write an (H, W, 3) image as PNG, creating the parent folder."""
    from PIL import Image

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8_rgb(image)).save(p, optimize=True)
    return p


def write_gif(frames: Union[ArrayLike, Sequence[ArrayLike]], path: Union[str, Path], fps: float = 5.0,
              loop: int = 0) -> Path:
    """Write frames (T, H, W, 3) as an animated GIF (or MP4 when the suffix is .mp4 and imageio-ffmpeg is
    installed; it is not a dependency). All frames must have the same size."""
    import imageio.v3 as iio

    seq = [to_uint8_rgb(f) for f in (list(frames) if not isinstance(frames, np.ndarray) else frames)]
    if not seq:
        raise ValueError("write_gif needs at least one frame")
    if any(f.shape != seq[0].shape for f in seq):
        raise ValueError(f"all frames must have the same shape, got {sorted({f.shape for f in seq})}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix.lower() == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError as exc:
            raise ValueError(f"{p}: writing MP4 needs the optional package imageio-ffmpeg; "
                             "write a .gif instead or `pip install imageio-ffmpeg`") from exc
        iio.imwrite(p, np.stack(seq), fps=fps, codec="libx264", plugin="FFMPEG")
        return p
    iio.imwrite(p, np.stack(seq), extension=".gif", plugin="pillow", duration=1000.0 / fps, loop=loop)
    return p
