"""vfdepth_core.viz: colours at known depths, layouts, colour bars, plots and files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from vfdepth_core import viz


@pytest.fixture(scope="module")
def lut():
    return viz.colormap_lut(viz.DEFAULT_DEPTH_CMAP)


def test_import_does_not_need_torch_or_ros():
    code = ("import sys; import vfdepth_core.viz, numpy as np; "
            "vfdepth_core.viz.colorize_depth(np.ones((4, 4)), 0.5, 2.0); "
            "bad = [m for m in ('torch', 'rclpy', 'rerun') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_colorize_depth_endpoints_and_invalid(lut):
    d = np.array([[2.0, 80.0, 0.0], [np.nan, 1.0, 200.0]])
    out = viz.colorize_depth(d, vmin=2.0, vmax=80.0)
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0], lut[-1])  # vmin (near) -> bright end
    np.testing.assert_array_equal(out[0, 1], lut[0])  # vmax (far) -> dark end
    np.testing.assert_array_equal(out[0, 2], viz.INVALID_COLOR)  # 0 = no depth
    np.testing.assert_array_equal(out[1, 0], viz.INVALID_COLOR)  # NaN
    np.testing.assert_array_equal(out[1, 1], lut[-1])  # nearer than vmin clips to bright
    np.testing.assert_array_equal(out[1, 2], lut[0])  # farther than vmax clips to dark
    assert lut[-1].astype(int).sum() > lut[0].astype(int).sum()  # near really is brighter


def test_colorize_depth_inverse_scaling_midpoint(lut):
    # Halfway in inverse depth between 2 m and 8 m is 1/d = (1/2 + 1/8)/2 -> d = 3.2 m.
    mid_inv = viz.colorize_depth(np.array([[3.2]]), 2.0, 8.0, scale="inverse")[0, 0]
    mid_lin = viz.colorize_depth(np.array([[5.0]]), 2.0, 8.0, scale="linear")[0, 0]
    np.testing.assert_array_equal(mid_inv, lut[128])
    np.testing.assert_array_equal(mid_lin, lut[128])
    # Monotonic: brightness index decreases with depth.
    ramp = viz.colorize_depth(np.linspace(2, 8, 50)[None], 2.0, 8.0)
    idx = [int(np.argmin(np.abs(lut.astype(int) - px.astype(int)).sum(1))) for px in ramp[0]]
    assert all(a >= b for a, b in zip(idx, idx[1:])) and idx[0] == 255 and idx[-1] == 0


def test_colorize_depth_mask_shapes_and_errors():
    d = np.full((1, 4, 5), 10.0, np.float32)  # (1, H, W) accepted
    mask = np.ones((4, 5))
    mask[0, 0] = 0
    out = viz.colorize_depth(d, 5, 20, mask=mask)
    assert out.shape == (4, 5, 3)
    np.testing.assert_array_equal(out[0, 0], viz.INVALID_COLOR)
    assert not np.array_equal(out[1, 1], viz.INVALID_COLOR)
    with pytest.raises(ValueError, match="vmin"):
        viz.colorize_depth(d, 20, 5)
    with pytest.raises(ValueError, match="depth_m"):
        viz.colorize_depth(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="scale"):
        viz.colorize_depth(d, 5, 20, scale="log")
    # All invalid: no crash, all invalid colour.
    np.testing.assert_array_equal(viz.colorize_depth(np.zeros((3, 3))), np.full((3, 3, 3), 128, np.uint8))


def test_depth_range_is_shared_and_robust():
    a = np.full((10, 10), 5.0)
    b = np.full((10, 10), 50.0)
    b[0, 0] = 0
    lo, hi = viz.depth_range([a, b], 0, 100)
    assert (lo, hi) == (5.0, 50.0)
    assert viz.depth_range(np.zeros((2, 2))) == (1.0, 100.0)


def test_colorize_error_abs_rel():
    elut = viz.colormap_lut(viz.DEFAULT_ERROR_CMAP)
    gt = np.array([[10.0, 10.0, 0.0, 10.0]])
    pred = np.array([[10.0, 15.0, 5.0, 12.5]])
    err = viz.abs_rel_error(pred, gt)
    np.testing.assert_allclose(err[0, [0, 1, 3]], [0.0, 0.5, 0.25])
    assert np.isnan(err[0, 2])
    img = viz.colorize_error(pred, gt, vmax=0.5)
    np.testing.assert_array_equal(img[0, 0], elut[0])
    np.testing.assert_array_equal(img[0, 1], elut[-1])
    np.testing.assert_array_equal(img[0, 2], viz.INVALID_COLOR)
    np.testing.assert_array_equal(img[0, 3], elut[128])
    masked = viz.colorize_error(pred, gt, mask=np.array([[1, 0, 1, 1]]))
    np.testing.assert_array_equal(masked[0, 1], viz.INVALID_COLOR)
    absm = viz.colorize_error(pred, gt, vmax=5.0, kind="abs")  # 5 m error = top
    np.testing.assert_array_equal(absm[0, 1], elut[-1])
    with pytest.raises(ValueError, match="same shape"):
        viz.abs_rel_error(np.ones((2, 2)), np.ones((2, 3)))


def test_colorbars_shape_and_content():
    bar = viz.depth_colorbar(120, 2.0, 80.0)
    assert bar.ndim == 3 and bar.shape[0] == 120 and bar.shape[2] == 3 and bar.dtype == np.uint8
    assert bar.std() > 10  # not blank
    lut = viz.colormap_lut()
    # The gradient column holds both colormap ends (bright near the top, dark near the bottom).
    col = bar[:, 4 + 4].astype(int)
    top = col[: 60].tolist()
    bottom = col[60:].tolist()
    d_top = min(np.abs(np.array(top) - lut[-1]).sum(1))
    d_bot = min(np.abs(np.array(bottom) - lut[0]).sum(1))
    assert d_top < 30 and d_bot < 30
    img = viz.depth_with_colorbar(np.full((120, 50), 10.0), 2.0, 80.0)
    assert img.shape[0] == 120 and img.shape[1] == 50 + 4 + bar.shape[1]
    with pytest.raises(ValueError, match="vmin"):
        viz.depth_with_colorbar(np.zeros((120, 50, 3), np.uint8))
    eb = viz.error_colorbar(100, 0.5)
    assert eb.shape[0] == 100 and eb.std() > 10
    with pytest.raises(ValueError, match="height"):
        viz.depth_colorbar(10, 2, 80)


def test_mosaic_positions():
    imgs = np.zeros((5, 4, 6, 3), np.uint8)
    for i in range(5):
        imgs[i] = 10 * (i + 1)
    m = viz.mosaic(imgs, ncols=3, pad=2, background=255)
    assert m.shape == (2 * (4 + 2) + 2, 3 * (6 + 2) + 2, 3)
    for i in range(5):
        r, c = divmod(i, 3)
        y, x = 2 + r * 6, 2 + c * 8
        assert (m[y:y + 4, x:x + 6] == 10 * (i + 1)).all()
    assert (m[0] == 255).all() and (m[8:, 2 + 2 * 8:] == 255).all()  # padding + empty 6th cell
    labelled = viz.mosaic(list(imgs), ncols=3, pad=2, labels=["a", "", "c", "d", "e"])
    assert labelled.shape == m.shape
    assert not np.array_equal(labelled[2:6, 2:8], m[2:6, 2:8])  # label drawn on tile 0
    np.testing.assert_array_equal(labelled[2:6, 10:16], m[2:6, 10:16])  # '' -> no label
    with pytest.raises(ValueError, match="labels"):
        viz.mosaic(imgs, labels=["a"])


def test_surround_layout_paper_order():
    # Dataset order: front, front-left, front-right, back-left, back-right, back.
    imgs = [np.full((3, 4, 3), v, np.uint8) for v in (10, 20, 30, 40, 50, 60)]
    m = viz.surround_layout(imgs, pad=1)
    tile = lambda r, c: m[1 + r * 4, 1 + c * 5, 0]  # noqa: E731
    assert [tile(0, c) for c in range(3)] == [20, 10, 30]  # FL, F, FR
    assert [tile(1, c) for c in range(3)] == [40, 60, 50]  # BL, B, BR


def _yaw_T(yaw_deg):
    # Camera (OpenCV) looking along vehicle direction yaw: z_cam -> (cos, sin, 0), x_cam -> right of that.
    a = np.radians(yaw_deg)
    z = np.array([np.cos(a), np.sin(a), 0.0])
    x = np.array([np.sin(a), -np.cos(a), 0.0])
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], 1)
    return T


def test_surround_order_from_extrinsics_matches_ddad_rig():
    yaws = [3.9, 51.7, -53.1, 123.7, -124.5, -179.0]  # DDAD camera_01, 05, 06, 07, 08, 09 (measured)
    T = np.stack([_yaw_T(y) for y in yaws])
    assert viz.surround_order_from_extrinsics(T) == viz.PAPER_LAYOUT_ORDER
    shuffled = [5, 2, 0, 4, 1, 3]
    order = viz.surround_order_from_extrinsics(T[shuffled])
    assert [shuffled[i] for i in order] == list(viz.PAPER_LAYOUT_ORDER)


def test_overlay_points_colours_and_order(lut):
    img = np.zeros((10, 10, 3), np.uint8)
    uv = np.array([[2, 3], [2, 3], [7.4, 8.2], [50, 50], [1, 1]])
    d = np.array([80.0, 2.0, 80.0, 5.0, -1.0])
    out = viz.overlay_points(img, uv, d, 2.0, 80.0, radius=0)
    np.testing.assert_array_equal(out[3, 2], lut[-1])  # the nearer of two points wins
    np.testing.assert_array_equal(out[8, 7], lut[0])  # rounded to the nearest pixel
    assert out[1, 1].sum() == 0  # negative depth skipped
    assert (out != 0).any(axis=2).sum() == 2
    assert img.sum() == 0  # input untouched
    big = viz.overlay_points(img, uv[:1], d[:1], 2.0, 80.0, radius=1)
    assert (big != 0).any(axis=2).sum() == 9


def test_plot_trajectory_writes_png(tmp_path):
    t = np.linspace(0, np.pi, 30)
    gt = np.stack([10 * np.cos(t), 10 * np.sin(t), 0 * t], 1)
    path = tmp_path / "sub" / "traj.png"
    img = viz.plot_trajectory(gt + 0.3, gt, path=path)
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert img.ndim == 3 and img.dtype == np.uint8 and img.std() > 5
    from PIL import Image

    assert Image.open(path).size == (img.shape[1], img.shape[0])
    only_est = viz.plot_trajectory(gt[:, :2], None)
    assert only_est.shape == img.shape
    with pytest.raises(ValueError, match="needs"):
        viz.plot_trajectory(None, None)


def test_write_gif_roundtrip(tmp_path):
    import imageio.v3 as iio

    frames = [np.full((8, 12, 3), v, np.uint8) for v in (0, 120, 255)]
    path = viz.write_gif(frames, tmp_path / "a.gif", fps=4)
    back = iio.imread(path, index=None)
    assert back.shape[0] == 3 and back.shape[1:3] == (8, 12)
    assert abs(int(back[1, 0, 0, 0]) - 120) <= 2
    with pytest.raises(ValueError, match="same shape"):
        viz.write_gif([frames[0], np.zeros((4, 4, 3), np.uint8)], tmp_path / "b.gif")


def test_novel_view_sweep_layout():
    d = np.full((2, 3, 20, 30), 10.0)
    d[1] = 40.0
    out = viz.novel_view_sweep(d, ["yaw", "focal"], ["-10°", "0°", "+10°"], vmin=5.0, vmax=50.0,
                               pad=2, colorbar=False)
    assert out.shape == (2 * 22 + 2, 3 * 32 + 2, 3)
    near = viz.colorize_depth(np.array([[10.0]]), 5.0, 50.0)[0, 0]
    far = viz.colorize_depth(np.array([[40.0]]), 5.0, 50.0)[0, 0]
    np.testing.assert_array_equal(out[2 + 19, 2 + 29], near)  # bottom-right pixel of tile (0, 0)
    np.testing.assert_array_equal(out[24 + 19, 2 + 29], far)  # tile (1, 0)
    with_bar = viz.novel_view_sweep(d, ["yaw", "focal"], ["a", "b", "c"], vmin=5.0, vmax=50.0)
    assert with_bar.shape[1] > out.shape[1]
    ragged = viz.novel_view_sweep([[d[0, 0]], [d[1, 0], d[1, 1]]], ["roll", "pitch"], [["0°"], ["1°", "2°"]],
                                  colorbar=False)
    assert ragged.ndim == 3
    with pytest.raises(ValueError, match="column labels"):
        viz.novel_view_sweep(d, ["yaw", "focal"], ["a", "b"])


def test_to_uint8_rgb_layouts():
    chw = np.zeros((3, 5, 7), np.float32)
    chw[0] = 1.0
    out = viz.to_uint8_rgb(chw)
    assert out.shape == (5, 7, 3) and out[0, 0].tolist() == [255, 0, 0]
    assert viz.to_uint8_rgb(np.zeros((5, 7))).shape == (5, 7, 3)
