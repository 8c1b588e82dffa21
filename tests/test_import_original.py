"""Importing checkpoints of the released VFDepth code, and the compatibility keys that reproduce it.

The original's state dicts are built here from its module names and shapes (written below, no download and no
original code needed). The side-by-side check against the original code is benchmarks/compare_original.py.
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.model_helpers import make_rig, tiny_config
from vfdepth_core import geometry as geo
from vfdepth_core.checkpoint import load_checkpoint
from vfdepth_core.config import load_config, save_config
from vfdepth_core.import_original import (COMPAT_KEYS, OriginalImportError, import_original, map_state_dict,
                                          transpose_kernel)
from vfdepth_core.nn.fusion import build_voxel_lookup, index_group_order, pair_slots
from vfdepth_core.training.checks import check_checkpoint_compatible

FEAT = 32  # tiny_config's fusion_feat_in_dim
PRE = 8  # voxel_pre_dim
BINS = 4  # proj_d_bins
Z = 8  # voxel_size[2]


def _resnet18_shapes(in_ch: int) -> dict:
    """torchvision resnet18 tensor names/shapes without fc, as the original's encoder.encoder.* holds them."""
    shapes = {"conv1.weight": (64, in_ch, 7, 7)}

    def bn(prefix, c):
        shapes.update({f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                       f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()})

    bn("bn1", 64)
    cin = 64
    for layer, c in enumerate((64, 128, 256, 512), start=1):
        for block in (0, 1):
            p = f"layer{layer}.{block}"
            shapes[f"{p}.conv1.weight"] = (c, cin if block == 0 else c, 3, 3)
            bn(f"{p}.bn1", c)
            shapes[f"{p}.conv2.weight"] = (c, c, 3, 3)
            bn(f"{p}.bn2", c)
            if block == 0 and layer > 1:
                shapes[f"{p}.downsample.0.weight"] = (c, cin, 1, 1)
                bn(f"{p}.downsample.1", c)
        cin = c
    return shapes


def original_depth_shapes(feat: int = FEAT, pre: int = PRE, bins: int = BINS) -> dict:
    """The original depth_net.pth's names and shapes (fusion_feat_in_dim, voxel_pre_dim, proj_d_bins)."""
    s = {f"encoder.encoder.{k}": v for k, v in _resnet18_shapes(3).items()}
    s.update({
        "conv1x1.0.weight": (feat, 896, 1, 1), "conv1x1.0.bias": (feat,),
        "fusion_net.conv_overlap.0.weight": (pre, 2 * (feat + 1), 1), "fusion_net.conv_overlap.0.bias": (pre,),
        "fusion_net.conv_non_overlap.0.weight": (pre, feat + 1, 1), "fusion_net.conv_non_overlap.0.bias": (pre,),
        "fusion_net.reduce_dim.0.weight": (256, pre * bins, 3, 3), "fusion_net.reduce_dim.0.bias": (256,),
        "fusion_net.reduce_dim.3.weight": (128, 256, 3, 3), "fusion_net.reduce_dim.3.bias": (128,),
    })
    for k, (cin, cout) in enumerate([(128, 64), (64, 64), (64, 32), (32, 32), (32, 16), (16, 16), (16, 1)]):
        s[f"decoder.decoder.{k}.0.weight"] = (cout, cin, 3, 3)
        s[f"decoder.decoder.{k}.0.bias"] = (cout,)
    return s


def original_pose_shapes(feat: int = FEAT, z: int = Z) -> dict:
    """The original pose_net.pth's names and shapes (fusion_feat_in_dim, voxel_size[2])."""
    s = {f"encoder.encoder.{k}": v for k, v in _resnet18_shapes(6).items()}
    s.update({
        "conv1x1.0.weight": (feat, 896, 1, 1), "conv1x1.0.bias": (feat,),
        "fusion_net.reduce_dim.0.weight": (256, (feat + 1) * z, 3, 3), "fusion_net.reduce_dim.0.bias": (256,),
        "fusion_net.reduce_dim.3.weight": (128, 256, 3, 3), "fusion_net.reduce_dim.3.bias": (128,),
        "pose_decoder.net.0.weight": (256, 128, 1, 1), "pose_decoder.net.0.bias": (256,),
        "pose_decoder.net.1.weight": (256, 256, 3, 3), "pose_decoder.net.1.bias": (256,),
        "pose_decoder.net.2.weight": (256, 256, 3, 3), "pose_decoder.net.2.bias": (256,),
        "pose_decoder.net.3.weight": (6, 256, 1, 1), "pose_decoder.net.3.bias": (6,),
    })
    return s


def _state(shapes: dict, seed: int, prefix: str = "") -> dict:
    g = torch.Generator().manual_seed(seed)
    return {prefix + k: (torch.tensor(7) if v == () else torch.randn(v, generator=g)) for k, v in shapes.items()}


def write_original(folder: Path, depth: dict = None, pose: dict = None) -> Path:
    """The original's weights folder layout: weights_N/depth_net.pth, pose_net.pth."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(_state(original_depth_shapes(), 1) if depth is None else depth, folder / "depth_net.pth")
    if pose is not False:
        torch.save(_state(original_pose_shapes(), 2, "module.") if pose is None else pose, folder / "pose_net.pth")
    return folder


@pytest.fixture
def cfg():
    return tiny_config()


# ---- key and layout mapping -------------------------------------------------------------------------


def test_mapping_covers_every_original_tensor_with_its_layout(tmp_path, cfg):
    depth, pose = _state(original_depth_shapes(), 1), _state(original_pose_shapes(), 2, "module.")  # DDP-saved pose
    model, ccfg = import_original(write_original(tmp_path / "weights_3", depth, pose), cfg)
    sd = model.state_dict()
    assert len(sd) == len(depth) + len(pose)
    torch.testing.assert_close(sd["depth_net.encoder.layer3.0.downsample.1.running_var"],
                               depth["encoder.encoder.layer3.0.downsample.1.running_var"], rtol=0, atol=0)
    assert sd["depth_net.encoder.bn1.num_batches_tracked"] == 7
    # Conv1d (O, I, 1) -> Linear (O, I)
    assert torch.equal(sd["depth_net.fusion.conv_overlap.0.weight"], depth["fusion_net.conv_overlap.0.weight"][..., 0])
    assert torch.equal(sd["depth_net.fusion.conv_single.0.weight"], depth["fusion_net.conv_non_overlap.0.weight"][..., 0])
    assert torch.equal(sd["depth_net.reduce_dim.1.0.weight"], depth["fusion_net.reduce_dim.3.weight"])
    # decoder order (upconv 2,0), (2,1), (1,0), (1,1), (0,0), (0,1), dispconv
    assert torch.equal(sd["depth_net.decoder.stages.1.1.0.weight"], depth["decoder.decoder.3.0.weight"])
    assert torch.equal(sd["depth_net.decoder.dispconv.0.bias"], depth["decoder.decoder.6.0.bias"])
    # the pose network's BEV is (y, x) there and (x, y) here: its 3x3 kernels are transposed, 1x1 kept
    src = pose["module.fusion_net.reduce_dim.0.weight"]
    assert torch.equal(sd["pose_net.reduce_dim.0.0.weight"], src.transpose(-1, -2))
    assert not torch.equal(sd["pose_net.reduce_dim.0.0.weight"], src)
    assert torch.equal(sd["pose_net.pose_head.pose1.weight"], pose["module.pose_decoder.net.2.weight"].transpose(-1, -2))
    assert torch.equal(sd["pose_net.pose_head.squeeze.weight"], pose["module.pose_decoder.net.0.weight"])
    assert torch.equal(sd["pose_net.encoder.conv1.weight"], pose["module.encoder.encoder.conv1.weight"])
    # the compatibility keys
    m = ccfg.model
    assert tuple(getattr(m, k) for k in COMPAT_KEYS) == (0.0, 20.0, "index_groups", "plain", "bilinear", 0.0)
    assert model.grid.center_offset == 0.0


def test_map_state_dict_reports_unknown_keys():
    mapped, unmapped = map_state_dict("depth_net", {"encoder.encoder.fc.weight": torch.zeros(1),
                                                    "conv1x1.0.weight": torch.zeros(1), "foo.bar": torch.zeros(1)})
    assert list(mapped) == ["depth_net.aggregate.conv1x1.0.weight"]
    assert unmapped == ["encoder.encoder.fc.weight", "foo.bar"]


def test_pose_kernel_transpose_is_the_same_filter_on_the_transposed_bev():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 5, 9, 7, generator=g)  # BEV (C, X, Y) here
    w = torch.randn(4, 5, 3, 3, generator=g)  # a kernel trained on (C, Y, X)
    conv = lambda img, k: F.conv2d(F.pad(img, (1, 1, 1, 1), mode="reflect"), k, stride=2)  # noqa: E731
    torch.testing.assert_close(conv(x, transpose_kernel(w)), conv(x.transpose(-1, -2), w).transpose(-1, -2))
    # known answer: a kernel that picks the row above (y - 1 there) picks the column to the left here (y - 1)
    up = torch.zeros(1, 1, 3, 3)
    up[0, 0, 0, 1] = 1.0
    img = torch.arange(12.0).reshape(1, 1, 3, 4)
    out = F.conv2d(img, transpose_kernel(up), padding=1)
    assert torch.equal(out[0, 0, :, 1:], img[0, 0, :, :-1])


# ---- round trip and the loaders -----------------------------------------------------------------------


def test_round_trip_cli_checkpoint_loads_in_predictor_eval_and_resume(tmp_path):
    from vfdepth_core.inference import Predictor
    from vfdepth_ros import cli

    cfg = tiny_config()
    cfg_file = save_config(cfg, tmp_path / "orig.yaml")  # stands in for the original's YAML (same keys)
    src = write_original(tmp_path / "weights_19")
    out = tmp_path / "imported.pt"
    assert cli.main(["import-original", str(src), "--config", str(cfg_file), "-o", str(out)]) == 0
    ck = load_checkpoint(out)
    for key in COMPAT_KEYS:
        assert key in ck["config"]["model"]
    assert ck["config"]["model"]["overlap_pair_order"] == "index_groups"
    pred = Predictor.from_checkpoint(out, device="cpu")
    model, _ = import_original(src, cfg)
    for k, v in model.state_dict().items():
        assert torch.equal(pred.model.state_dict()[k], v), k
    # train.py --resume: the written YAML matches; the original's YAML (project defaults) is refused by name
    check_checkpoint_compatible(ck["config"], load_config(out.with_suffix(".yaml")), str(out))
    with pytest.raises(Exception, match="voxel_center_offset"):
        check_checkpoint_compatible(ck["config"], load_config(cfg_file), str(out))


@pytest.mark.slow
def test_predictor_runs_an_imported_checkpoint_at_the_papers_size_and_cameras(tmp_path):
    """DDAD's six cameras at 384x640 (a small voxel grid keeps it a few seconds), images of another size."""
    from vfdepth_core.checkpoint import save_checkpoint
    from vfdepth_core.import_original import compat_config
    from vfdepth_core.inference import Predictor, VirtualCamera
    from vfdepth_core.model import VFDepth

    cfg = compat_config(load_config(None, ["model.voxel_size=[20,20,8]", "model.voxel_unit_size=[4,4,2]",
                                           "model.proj_d_bins=8", "model.weights_init=false"]))
    assert cfg.data.cameras == ("camera_01", "camera_05", "camera_06", "camera_07", "camera_08", "camera_09")
    assert (cfg.training.height, cfg.training.width) == (384, 640)
    save_checkpoint(tmp_path / "m.pt", VFDepth(cfg, load_imagenet=False), cfg)
    pred = Predictor.from_checkpoint(tmp_path / "m.pt", device="cpu")
    assert pred.model.cfg.model.overlap_pair_order == "index_groups" and pred.model.grid.center_offset == 0.0
    K, T = make_rig(H=608, W=968)
    imgs = torch.rand(6, 3, 608, 968)
    out = pred.predict(imgs, K, T, prev_images=imgs, virtual=VirtualCamera(K[:1], T[:1]))
    assert out.depth.shape == (1, 6, 1, 384, 640) and torch.isfinite(out.depth).all()
    assert out.virtual_depth.shape == (1, 1, 1, 384, 640) and out.T_egoprev_egocur.shape == (1, 4, 4)


# ---- errors -------------------------------------------------------------------------------------------


def test_partial_checkpoint_names_the_missing_tensor(tmp_path, cfg):
    depth = _state(original_depth_shapes(), 1)
    del depth["fusion_net.conv_overlap.0.bias"]
    with pytest.raises(OriginalImportError, match=r"missing 1 tensor\(s\): depth_net.fusion.conv_overlap.0.bias"):
        import_original(write_original(tmp_path / "w", depth), cfg)


def test_wrong_config_names_the_shape_mismatch(tmp_path):
    cfg = tiny_config(model__proj_d_bins=6)
    with pytest.raises(OriginalImportError, match=r"shape mismatch.*depth_net.reduce_dim.0.0.weight \(256, 32, 3, 3\) "
                                                  r"vs \(256, 48, 3, 3\)"):
        import_original(write_original(tmp_path / "w"), cfg)


def test_foreign_checkpoint_names_the_unknown_keys(tmp_path, cfg):
    depth = _state(original_depth_shapes(), 1)
    depth["head.extra.weight"] = torch.zeros(3)
    with pytest.raises(OriginalImportError, match="1 key.*head.extra.weight"):
        import_original(write_original(tmp_path / "w", depth), cfg)
    (tmp_path / "x").mkdir()
    torch.save({"config": {}, "model": {}}, tmp_path / "x" / "depth_net.pth")
    with pytest.raises(OriginalImportError, match="not a state dict of tensors"):
        import_original(tmp_path / "x" / "depth_net.pth", cfg)
    (tmp_path / "x" / "depth_net.pth").write_bytes(b"garbage")
    with pytest.raises(OriginalImportError, match="not a readable PyTorch state dict"):
        import_original(tmp_path / "x", cfg)
    with pytest.raises(OriginalImportError, match="not found"):
        import_original(tmp_path / "nothing", cfg)


def test_missing_pose_network_needs_depth_only(tmp_path, cfg, capsys):
    from vfdepth_ros import cli

    src = write_original(tmp_path / "w", pose=False)
    with pytest.raises(OriginalImportError, match="pose_net.pth not found.*--depth-only"):
        import_original(src, cfg)
    model, _ = import_original(src, cfg, depth_only=True)
    assert model.depth_net.fusion.conv_single[0].weight.shape == (PRE, FEAT + 1)
    cfg_file = save_config(cfg, tmp_path / "c.yaml")
    assert cli.main(["import-original", str(src), "--config", str(cfg_file), "-o", str(tmp_path / "o.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pose_net.pth not found" in err[0]


# ---- each compatibility switch changes exactly what it names (tiny grids) ------------------------------


def test_voxel_center_offset_moves_centres_by_half_a_voxel_only():
    paper = geo.VoxelGrid((2, 1, 1), (2.0, 1.0, 1.0), (-2.0, 0.0, 0.0), center_offset=0.0)
    ours = geo.VoxelGrid((2, 1, 1), (2.0, 1.0, 1.0), (-2.0, 0.0, 0.0))
    assert paper.centers().tolist() == [[-2.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    assert ours.centers().tolist() == [[-1.0, 1.0], [0.5, 0.5], [0.5, 0.5]]
    for g in (paper, ours):  # each grid's own centres normalise to the corners of grid_sample's range
        torch.testing.assert_close(g.normalize(g.centers())[:, 2], torch.tensor([-1.0, 1.0]))
        assert g.point_to_index(g.centers())[0][0].tolist() == [0, 1]


def test_feature_intrinsics_plain_scales_the_principal_point_without_the_half_pixel():
    K = geo.intrinsics_matrix(80.0, 60.0, 31.5, 23.5)[None]
    plain = geo.resize_intrinsics(K, (48, 64), (6, 8), half_pixel=False)
    half = geo.resize_intrinsics(K, (48, 64), (6, 8))
    assert plain[0].tolist() == [[10.0, 0.0, 3.9375], [0.0, 7.5, 2.9375], [0.0, 0.0, 1.0]]
    assert half[0].tolist() == [[10.0, 0.0, 3.5], [0.0, 7.5, 2.5], [0.0, 0.0, 1.0]]


def test_feature_intrinsics_and_mask_resize_reach_the_model():
    from vfdepth_core.model import VFDepth

    K, T = make_rig(H=32, W=64)
    K, T = K[None].float(), T[None].float()
    mask = torch.zeros(1, 6, 1, 32, 64)
    mask[..., :3, :] = 1  # 3 of 8 pixel rows of the first feature row: 'area' 0.375 (invalid), bilinear 1 (valid)
    lks = {}
    for name, over in (("ours", {}), ("paper", {"model__feature_intrinsics": "plain", "model__mask_resize": "bilinear"})):
        m = VFDepth(tiny_config(H=32, W=64, **over), load_imagenet=False)
        K8, _, _ = m._feat_geometry(K, (32, 64))
        torch.testing.assert_close(K8[..., 0, 2], (K[..., 0, 2] / 8) if name == "paper" else (K[..., 0, 2] + 0.5) / 8 - 0.5)
        lks[name] = m.voxel_lookup(K, T, mask, (32, 64))
    # feature row 0 only: with 'area' nothing there is valid, with 'bilinear' it is
    rows = {k: ((lk.pix_idx[:, 0] % (4 * 8)) // 8) for k, lk in lks.items()}
    assert (rows["ours"] == 0).sum() == 0 and (rows["paper"] == 0).sum() > 0


def _lookup(mask=None, yaws_deg=(0.0, 60.0, -60.0, 120.0, -120.0, 180.0), **kw):
    K, T = make_rig(yaws_deg, H=32, W=48, hfov_deg=140.0)
    grid = geo.VoxelGrid((10, 10, 3), (2.0, 2.0, 1.0), (-10.0, -10.0, -1.0))
    K8 = geo.resize_intrinsics(K[None].float(), (32, 48), (4, 6))
    return build_voxel_lookup(grid, K8, T[None].float(), mask, 4, 6, **kw)


def _entry_cams(lk) -> torch.Tensor:
    """The camera of each entry (batch 1)."""
    return lk.pix_idx[:, 0] // (lk.h * lk.w)


def test_voxel_depth_scale_changes_only_the_depth_channel():
    a, b = _lookup(), _lookup(depth_scale_m=50.0)
    torch.testing.assert_close(b.depth_feat, a.depth_feat * 2.0)
    torch.testing.assert_close(b.pose_dch, a.pose_dch * 2.0)
    assert torch.equal(a.pix_idx, b.pix_idx) and torch.equal(a.pix_w, b.pix_w)
    assert torch.equal(a.pair_first, b.pair_first)


def test_index_group_order_known_answers():
    # groups (0, 3, 4) and (1, 2, 5): cross-group pairs put the first group first, same-group pairs merge
    n1, n2 = torch.tensor([0, 1, 0, 1, 3, 2]), torch.tensor([1, 3, 3, 2, 4, 5])
    leads, merge = index_group_order(n1, n2, 6)
    assert leads.tolist() == [True, False, True, True, True, True]
    assert merge.tolist() == [0, 0, 1, 2, 1, 2]
    with pytest.raises(ValueError, match="3 or 6 cameras"):
        index_group_order(n1, n2, 4)
    f1, f2 = torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[10.0], [20.0], [30.0]])
    lk = types.SimpleNamespace(pair_merge=torch.tensor([0, 1, 2]))
    assert pair_slots(f1, f2, lk).tolist() == [[1.0, 10.0], [22.0, 0.0], [0.0, 33.0]]


def test_overlap_pair_order_changes_only_which_entry_leads():
    a, b = _lookup(), _lookup(pair_order_mode="index_groups")
    assert a.pair_merge is None and b.pair_merge is not None
    assert torch.equal(a.pair_voxel.sort()[0], b.pair_voxel.sort()[0])  # the same overlapped voxels
    pairs = lambda lk: {(int(v), *sorted((int(x), int(y)))) for v, x, y in zip(lk.pair_voxel, lk.pair_first,  # noqa
                                                                                   lk.pair_second)}
    assert pairs(a) == pairs(b)  # the same two cameras per voxel
    cam = lambda e: e // 1  # entries -> their camera below  # noqa: E731
    n = torch.zeros(a.entry_voxel.numel(), dtype=torch.long)
    n[:] = (a.pix_idx[:, 0] // (4 * 6))  # camera of each entry (batch 1)
    first_cam, second_cam = n[cam(b.pair_first)], n[cam(b.pair_second)]
    group = torch.tensor([0, 1, 1, 0, 0, 1])
    cross = b.pair_merge == 0
    assert (group[first_cam[cross]] == 0).all() and (group[second_cam[cross]] == 1).all()
    assert (a.pair_first != b.pair_first).any()  # the rig order differs from the index groups somewhere
    assert torch.equal(a.single_entry, b.single_entry) and torch.equal(a.depth_feat, b.depth_feat)


def test_index_groups_sum_two_cameras_of_one_group_into_one_slot():
    """Front and back cameras masked out, the side cameras at +-30 and +-150 degrees: voxels seen by
    front-left + front-right (group 1, cameras 1 and 2) or by back-left + back-right (group 0, cameras 3 and
    4) are pairs of one group, summed into that group's slot with the other slot zero; cross-group pairs
    keep one camera per slot, group 0 first. The rig order always keeps the two cameras apart."""
    mask = torch.ones(1, 6, 1, 4, 6)
    mask[:, [0, 5]] = 0
    yaws = (0.0, 30.0, -30.0, 150.0, -150.0, 180.0)
    a, b = _lookup(mask, yaws), _lookup(mask, yaws, pair_order_mode="index_groups")
    n = _entry_cams(b)
    c1, c2 = n[b.pair_first], n[b.pair_second]
    assert {(1, 2), (3, 4)} <= {tuple(sorted(p)) for p in zip(c1.tolist(), c2.tolist())}
    group = torch.tensor([0, 1, 1, 0, 0, 1])
    same = group[c1] == group[c2]
    assert torch.equal(b.pair_merge, torch.where(same, group[c1] + 1, torch.zeros_like(c1)))
    feat = (n + 1).float()[:, None]  # each entry's feature: its camera index + 1
    slots = pair_slots(feat[b.pair_first], feat[b.pair_second], b).tolist()
    for x, y, merge, row in zip(c1.tolist(), c2.tolist(), b.pair_merge.tolist(), slots):
        want = {0: [x + 1.0, y + 1.0], 1: [x + y + 2.0, 0.0], 2: [0.0, x + y + 2.0]}[merge]
        assert row == want and (merge or group[x] == 0)
    rig = pair_slots(feat[a.pair_first], feat[a.pair_second], a)
    assert (rig != 0).all()


def _border_lookup(margin_px: float):
    """Three cameras at the vehicle origin looking along x (identical poses), 5 x 3 feature maps, fx 10 and
    principal points 2.0005, 1.9995 and 1.0; six voxels at x = 10 m, y = -3..2 m project to u = X + cx with
    camera X = 3..-2 m, i.e. 5.0005..0.0005, 4.9995..-0.0005 and 4..-1 (v = 1, inside)."""
    _, T = make_rig((0.0, 0.0, 0.0), radius_m=0.0, height_m=0.0)
    K8 = torch.stack([geo.intrinsics_matrix(10.0, 10.0, cx, 1.0) for cx in (2.0005, 1.9995, 1.0)])
    grid = geo.VoxelGrid((1, 6, 1), (1.0, 1.0, 1.0), (10.0, -3.0, 0.0), center_offset=0.0)
    return build_voxel_lookup(grid, K8[None].float(), T[None].float(), None, 3, 5, border_margin_px=margin_px)


def test_voxel_border_margin_decides_only_voxels_just_outside_the_border():
    ours, paper = _border_lookup(1e-3), _border_lookup(0.0)
    seen = lambda lk: {(int(c), int(v)) for c, v in zip(_entry_cams(lk), lk.entry_voxel)}  # noqa: E731
    # exactly on the border (camera 2: u = 4 = w-1 and u = 0) is seen under both rules, 1 px outside under neither
    assert {(2, 0), (2, 4)} <= seen(paper) and (2, 5) not in seen(ours) | seen(paper)
    assert (0, 0) not in seen(ours) | seen(paper)  # u = 5.0005
    # 5e-4 px outside (camera 0 at u = 4.0005, camera 1 at u = -0.0005): seen only with the project's margin
    assert seen(ours) - seen(paper) == {(0, 1), (1, 5)} and seen(paper) <= seen(ours)
    assert ours.count.tolist() == [1, 3, 3, 3, 3, 2] and paper.count.tolist() == [1, 2, 3, 3, 3, 1]
    # the entries both rules keep are the same samples
    keep = torch.tensor([(int(c), int(v)) in seen(paper) for c, v in zip(_entry_cams(ours), ours.entry_voxel)])
    assert torch.equal(ours.pix_idx[keep], paper.pix_idx) and torch.equal(ours.pix_w[keep], paper.pix_w)
    assert torch.equal(ours.depth_feat[keep], paper.depth_feat)


def test_voxel_border_margin_reaches_the_model_and_is_checked(monkeypatch):
    import inspect

    import vfdepth_core.model as model_mod
    from vfdepth_core.config import ConfigError

    seen = []

    def spy(*args, **kw):
        seen.append(inspect.signature(build_voxel_lookup).bind(*args, **kw).arguments["border_margin_px"])
        return build_voxel_lookup(*args, **kw)

    monkeypatch.setattr(model_mod, "build_voxel_lookup", spy)
    K, T = make_rig(H=32, W=64)
    for margin in (1e-3, 0.0):
        m = model_mod.VFDepth(tiny_config(H=32, W=64, model__voxel_border_margin_px=margin), load_imagenet=False)
        m.voxel_lookup(K[None].float(), T[None].float(), None, (32, 64))
    assert seen == [1e-3, 0.0]
    with pytest.raises(ConfigError, match="voxel_border_margin_px"):
        tiny_config(model__voxel_border_margin_px=-1.0)
