"""tools/make_readme_images.py helpers with known answers (the full render takes a minute: not run here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

TOOL = Path(__file__).resolve().parent.parent / "tools" / "make_readme_images.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("make_readme_images", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _forward_camera(height_m: float) -> np.ndarray:
    """Camera looking along vehicle +x, level, `height_m` above the road (OpenCV optical axes)."""
    T = np.eye(4)
    T[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]
    T[2, 3] = height_m
    return T


def test_flat_ground_depth_known_answer(tool):
    H, W, f, h = 9, 11, 10.0, 1.5
    K = np.array([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1.0]])
    d = tool.flat_ground_depth(K[None], _forward_camera(h)[None], (H, W))[0]
    cy = (H - 1) / 2
    for v in range(H):
        expect = h * f / (v - cy) if v > cy else 0.0  # below the horizon: z = h f / (v - cy); above: none
        np.testing.assert_allclose(d[v], expect, rtol=1e-5)


def test_sweep_cameras(tool):
    K0 = np.array([[100.0, 0, 50], [0, 100.0, 30], [0, 0, 1]])
    T0 = _forward_camera(1.5)
    K, T, rows, cols = tool.sweep_cameras(K0, T0)
    n = sum(len(v) for _, v, _ in tool.SWEEP)
    assert K.shape == (n, 3, 3) and T.shape == (n, 4, 4)
    assert rows == ["roll", "pitch", "yaw", "focal"] and all(len(c) == 5 for c in cols)
    np.testing.assert_allclose(T[:, :3, 3], np.repeat(T0[None, :3, 3], n, 0))  # rotations about the camera
    yaw = rows.index("yaw") * 5
    z_axis = T[yaw:yaw + 5, :3, 2]  # optical axis in the vehicle frame
    np.testing.assert_allclose(np.degrees(np.arctan2(z_axis[:, 1], z_axis[:, 0])), tool.SWEEP[2][1], atol=1e-9)
    pitch = rows.index("pitch") * 5
    assert T[pitch + 4, 2, 2] < 0 < T[pitch, 2, 2]  # +pitch looks down (rotation about y left)
    focal = rows.index("focal") * 5
    np.testing.assert_allclose(K[focal:focal + 5, 0, 0], 100.0 * np.array(tool.SWEEP[3][1]))
    np.testing.assert_allclose(K[focal:focal + 5, :2, 2], np.repeat(K0[None, :2, 2], 5, 0))
