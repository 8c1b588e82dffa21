"""The paper's ground-truth construction (data.gt_projection 'paper') and its val sample selection."""

from __future__ import annotations

import numpy as np
import pytest

from vfdepth_core.config import load_config
from vfdepth_core.datasets import build_dataset
from vfdepth_core.datasets.lidar import lidar_depth_paper


def test_paper_projection_by_hand():
    K0 = np.array([[100.0, 0.0, 50.0], [0.0, 100.0, 25.0], [0.0, 0.0, 1.0]])  # a 100 x 50 image
    pts = np.array([
        [0.255, 0.10, 1.0],   # u 75.5 -> 75, v 35 -> full (35, 75) -> network (17, 37)
        [0.0, 0.0, 2.0],      # full (25, 50) ...
        [0.004, 0.004, 4.0],  # ... the same full pixel (50.1, 25.1): written last, so 4 m stays (not the nearest)
        [0.03, 0.0, 3.0],     # full (25, 51): with (25, 50) it lands on network (12, 25); later in row order: 3 m
        [0.0, 0.0, -1.0],     # behind the camera
        [-0.505, 0.0, 1.0],   # u -0.5: the integer cast makes it 0, so it is kept (dgp's behaviour)
    ])
    d = lidar_depth_paper(pts, K0, (50, 100), (25, 50))
    assert d.shape == (25, 50) and d.dtype == np.float32
    want = np.zeros((25, 50), np.float32)
    want[17, 37], want[12, 25], want[12, 0] = 1.0, 3.0, 1.0
    np.testing.assert_array_equal(d, want)


def test_val_keeps_samples_with_context_like_the_papers_index(ddad_sample, repo_root):
    cfg = repo_root / "training/configs/ddad/ddad_surround_fusion.yaml"
    base = [f"data.data_path={ddad_sample / 'ddad.json'}", "training.height=64", "training.width=96"]
    paper = build_dataset(load_config(cfg, base), "val")
    every = build_dataset(load_config(cfg, [*base, "eval.eval_all_samples=true"]), "val")
    assert (len(paper), len(every)) == (1, 3)  # the middle sample of three has both neighbours
    assert paper.frame_ids == (0,) and paper.refs[0].sample == every.refs[1].sample


def test_projection_modes_give_different_cache_keys_and_plausible_depth(ddad_sample, repo_root, tmp_path):
    cfg = repo_root / "training/configs/ddad/ddad_surround_fusion.yaml"
    base = [f"data.data_path={ddad_sample / 'ddad.json'}", "training.height=192", "training.width=320",
            f"data.gt_cache={tmp_path}"]
    paper = build_dataset(load_config(cfg, base), "val")[0]["depth_gt"]
    near = build_dataset(load_config(cfg, [*base, "data.gt_projection=nearest"]), "val")[0]["depth_gt"]
    assert len(list(tmp_path.iterdir())) == 2  # one cache folder per projection
    for n in range(6):
        a, b = paper[n, 0].numpy(), near[n, 0].numpy()
        assert abs((a > 0).sum() - (b > 0).sum()) < 0.05 * (b > 0).sum()
        assert np.median(a[a > 0]) == pytest.approx(np.median(b[b > 0]), rel=0.05)
    assert not np.array_equal(paper.numpy(), near.numpy())


def test_nuscenes_split_file_of_sample_tokens_like_the_papers(tmp_path):
    """The paper's nuScenes split files list sample tokens: those samples only, in the file's order."""
    pytest.importorskip("nuscenes")
    from nuscenes.nuscenes import NuScenes

    from tests.data_helpers import NUSC_CAMS, tiny_drive
    from vfdepth_core.datasets.common import DatasetError
    from vfdepth_core.datasets.nuscenes import NuScenesDataset
    from vfdepth_core.datasets.synthetic import write_nuscenes

    write_nuscenes([tiny_drive("nuscenes", frames=6)], tmp_path / "nusc", version="v1.0-mini", splits=["val"],
                   keyframe_every=2)
    nusc = NuScenes("v1.0-mini", str(tmp_path / "nusc"), verbose=False)
    tokens = [s["token"] for s in sorted(nusc.sample, key=lambda s: s["timestamp"])]
    split = tmp_path / "val.txt"
    split.write_text(f"{tokens[2]}\n{tokens[0]}\n")
    ds = NuScenesDataset(tmp_path / "nusc", "v1.0-mini", "val", NUSC_CAMS, 64, 96, frame_ids=(0,),
                         split_file=str(split), nusc=nusc)
    assert [r.sample for r in ds.refs] == [tokens[2], tokens[0]]
    split.write_text("0" * 32 + "\n")
    with pytest.raises(DatasetError, match="sample token 0{32} is not in"):
        NuScenesDataset(tmp_path / "nusc", "v1.0-mini", "val", NUSC_CAMS, 64, 96, frame_ids=(0,),
                        split_file=str(split), nusc=nusc)
