"""The projected-LIDAR depth cache lives outside the dataset, keyed per dataset; read-only datasets work."""

from __future__ import annotations

import os
import shutil
import stat

import numpy as np
import pytest

from vfdepth_core.datasets.common import DatasetError
from vfdepth_core.datasets.ddad import DDADDataset
from vfdepth_core.datasets.lidar import DepthCache


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _set_writable(root, on):
    for p in [root, *root.rglob("*")]:
        if not p.is_symlink():
            mode = p.stat().st_mode
            p.chmod(mode | stat.S_IWUSR if on else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture
def readonly_copy(ddad_sample, tmp_path):
    """The DDAD sample copied (without any cache folder someone left in it) and made read-only."""
    dst = tmp_path / "ddad_ro"
    shutil.copytree(ddad_sample, dst, ignore=shutil.ignore_patterns("depth_cache"))
    _set_writable(dst, False)
    yield dst
    _set_writable(dst, True)


def test_read_only_dataset_caches_under_xdg(readonly_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    before = _tree(readonly_copy)
    ds = DDADDataset(readonly_copy / "ddad.json", "val", ["camera_01", "camera_05"], 64, 96, frame_ids=(0,),
                     with_depth=True)
    first = ds[0]["depth_gt"].numpy()
    assert (first > 0).any()
    assert _tree(readonly_copy) == before  # nothing written into the dataset
    files = list((tmp_path / "xdg" / "vfdepth" / "depth_gt").rglob("*.npz"))
    assert len(files) == 2 and all(f.name.endswith("x96.npz") for f in files)
    source = next((tmp_path / "xdg" / "vfdepth" / "depth_gt").glob("*/SOURCE")).read_text()
    assert str(readonly_copy.resolve()) in source
    again = DDADDataset(readonly_copy / "ddad.json", "val", ["camera_01", "camera_05"], 64, 96, frame_ids=(0,),
                        with_depth=True)
    np.testing.assert_array_equal(again[0]["depth_gt"].numpy(), first)  # read back from the cache


def test_two_datasets_and_settings_never_share_a_folder(tmp_path):
    a = DepthCache(tmp_path / "data_a", tmp_path / "cache", "ddad|ddad.json|LIDAR")
    b = DepthCache(tmp_path / "data_b", tmp_path / "cache", "ddad|ddad.json|LIDAR")
    c = DepthCache(tmp_path / "data_a", tmp_path / "cache", "ddad|ddad.json|LIDAR_TOP")
    assert len({a.dir, b.dir, c.dir}) == 3 and all(d.parent == tmp_path / "cache" for d in (a.dir, b.dir, c.dir))
    depth = np.arange(6, dtype=np.float32).reshape(2, 3)
    a.put("s", "0", "CAMERA_01", (2, 3), depth)
    assert b.get("s", "0", "CAMERA_01", (2, 3)) is None
    np.testing.assert_array_equal(a.get("s", "0", "CAMERA_01", (2, 3)), depth)


def test_unwritable_gt_cache_is_an_error_and_default_degrades(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(DatasetError, match="data.gt_cache"):
            DepthCache(tmp_path / "data", ro)
        monkeypatch.setenv("XDG_CACHE_HOME", str(ro))
        c = DepthCache(tmp_path / "data")
        assert c.dir is None and c.get("s", "0", "CAMERA_01", (2, 3)) is None
        c.put("s", "0", "CAMERA_01", (2, 3), np.zeros((2, 3), np.float32))  # a no-op, no error
        assert os.listdir(ro) == []
    finally:
        ro.chmod(0o755)
