"""VFDepth model: output shapes, gradients, camera-order invariance, rig cache, pose distribution."""

import pytest
import torch

from model_helpers import make_batch, make_rig, tiny_config
from vfdepth_core import geometry as geo
from vfdepth_core.model import VFDepth, augment_extrinsics
from vfdepth_core.nn.fusion import build_voxel_lookup, pair_order


@pytest.fixture(scope="module")
def model6():
    torch.manual_seed(0)
    return VFDepth(tiny_config(6)).eval()


@pytest.mark.parametrize("num_cams", [6, 3])
@pytest.mark.parametrize("batch", [1, 2])
def test_forward_shapes(num_cams, batch):
    torch.manual_seed(0)
    cfg = tiny_config(num_cams, training__aug_depth=True)
    model = VFDepth(cfg)
    b = make_batch(num_cams, batch=batch)
    out = model(b)
    assert out.disp.shape == (batch, num_cams, 1, 64, 96)
    assert out.depth.shape == (batch, num_cams, 1, 64, 96)
    assert out.depth_aug.shape == (batch, num_cams, 1, 64, 96)
    assert out.T_ego_cam_aug.shape == (batch, num_cams, 4, 4)
    assert set(out.T_src_tgt) == {-1, 1}
    for f in (-1, 1):
        assert out.T_src_tgt[f].shape == (batch, num_cams, 4, 4)
        assert out.T_c0src_c0tgt[f].shape == (batch, 4, 4)
        assert out.T_egosrc_egotgt[f].shape == (batch, 4, 4)
    t = cfg.training
    lo = (1 / (1 / t.min_depth)) * b["K"][..., 0, 0].min() / t.focal_length_scale
    hi = t.max_depth * b["K"][..., 0, 0].max() / t.focal_length_scale
    assert torch.isfinite(out.depth).all() and (out.depth >= lo * 0.999).all() and (out.depth <= hi * 1.001).all()


def test_gradients_reach_every_parameter():
    from vfdepth_core.losses import compute_losses

    torch.manual_seed(0)
    cfg = tiny_config(6, training__aug_depth=True)
    model = VFDepth(cfg)
    b = make_batch(6, batch=1)
    total, terms = compute_losses(b, model(b), cfg)
    total.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
            or p.grad.abs().sum() == 0]
    assert dead == []
    assert torch.isfinite(total)


def test_rig_lookup_sees_single_and_overlap_voxels():
    K, T = make_rig(H=64, W=96)
    cfg = tiny_config()
    model = VFDepth(cfg)
    lk = model.voxel_lookup(K[None].float(), T[None].float(), None, (64, 96))
    assert lk.single_entry.numel() > 0 and lk.pair_first.numel() > 0
    # every entry's 4 bilinear weights sum to one and index inside the feature maps of its batch
    assert torch.allclose(lk.pix_w.sum(1), torch.ones(lk.pix_w.shape[0]))
    assert lk.pix_idx.min() >= 0 and lk.pix_idx.max() < 6 * 8 * 12


def _perm_batch(b, perm):
    out = dict(b)
    for k in ("image", "image_aug"):
        out[k] = b[k][:, :, perm]
    for k in ("K", "T_ego_cam", "mask"):
        out[k] = b[k][:, perm]
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_fused_volume_invariant_to_camera_order(model6, seed):
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(6, generator=g)
    b = make_batch(6, batch=2)
    b["mask"][:, 2, :, :20] = 0  # a self-occlusion region on one camera
    with torch.no_grad():
        vols, poses = [], []
        for bb in (b, _perm_batch(b, perm)):
            imgs, K, T, mask = bb["image_aug"][:, 0], bb["K"], bb["T_ego_cam"], bb["mask"]
            lk = model6.voxel_lookup(K, T, mask, (64, 96))
            vols.append(model6.depth_net.fuse(model6.depth_net.encode(imgs), lk))
            poses.append(lk)
    assert vols[0].abs().sum() > 0
    torch.testing.assert_close(vols[0], vols[1], rtol=1e-5, atol=1e-5)
    # pose-mode averaging too, with features that follow the cameras
    pose_fusion = model6.pose_net.fusion
    f = torch.randn(2, 6, pose_fusion.feat_dim, 8, 12)
    v0 = pose_fusion(f, poses[0])
    v1 = pose_fusion(f[:, perm], poses[1])
    assert v0.abs().sum() > 0
    torch.testing.assert_close(v0, v1, rtol=1e-5, atol=1e-5)


def test_pair_order_is_antisymmetric_rig_property():
    _, T = make_rig()
    order = pair_order(T[None].float())[0]
    off = ~torch.eye(6, dtype=torch.bool)
    assert torch.equal(order[off], ~order.T[off])
    assert order[0, 1] and not order[0, 2]  # front leads front-left (left of it); front-right leads front


def test_cached_equals_uncached(model6):
    b = make_batch(6, batch=2)
    model6.rig_cache.clear()
    with torch.no_grad():
        model6.rig_cache.enabled = True
        a1 = model6(b)
        a2 = model6(b)  # from the cache
        hits = model6.rig_cache.hits
        model6.rig_cache.enabled = False
        u = model6(b)
        model6.rig_cache.enabled = True
    assert hits > 0
    assert torch.equal(a1.disp, a2.disp) and torch.equal(a1.disp, u.disp)
    for f in (-1, 1):
        assert torch.equal(a1.T_src_tgt[f], u.T_src_tgt[f])


def test_cache_distinguishes_rigs(model6):
    b = make_batch(6, batch=1)
    lk1 = model6.voxel_lookup(b["K"], b["T_ego_cam"], b["mask"], (64, 96))
    T2 = b["T_ego_cam"].clone()
    T2[..., 2, 3] += 0.5
    misses = model6.rig_cache.misses
    lk2 = model6.voxel_lookup(b["K"], T2, b["mask"], (64, 96))
    assert model6.rig_cache.misses == misses + 1 and lk1 is not lk2
    assert model6.voxel_lookup(b["K"], b["T_ego_cam"], b["mask"], (64, 96)) is lk1


def test_distributed_motion_is_each_cameras_true_motion(model6):
    b = make_batch(6, batch=1)
    T_we = b["T_world_ego"][0].double()  # frames 0, -1, +1
    T_ec = b["T_ego_cam"][0].double()
    for fi in (1, 2):
        T_egof_ego0 = geo.invert_transform(T_we[fi]) @ T_we[0]
        true_cam = geo.invert_transform(T_we[fi] @ T_ec) @ (T_we[0] @ T_ec)  # camera c at 0 -> camera c at f
        canon = geo.ego_motion_to_camera(T_egof_ego0, T_ec[0])
        dist = geo.distribute_motion(canon[None], T_ec[None])[0]
        torch.testing.assert_close(dist, true_cam, rtol=1e-9, atol=1e-9)
    # the model's per-camera motions are its canonical motion distributed the same way
    with torch.no_grad():
        out = model6(b)
    for f in (-1, 1):
        for c in range(6):
            want = geo.ego_motion_to_camera(out.T_egosrc_egotgt[f][0], b["T_ego_cam"][0, c])
            torch.testing.assert_close(out.T_src_tgt[f][0, c], want, rtol=1e-4, atol=1e-5)


def test_augment_extrinsics_within_degrees():
    _, T = make_rig()
    T = T[None].float()
    Ta = augment_extrinsics(T, (15.0, 15.0, 40.0), generator=torch.Generator().manual_seed(0))
    R_delta = Ta[..., :3, :3] @ T[..., :3, :3].transpose(-1, -2)
    angle = geo.rotmat_to_axis_angle(R_delta.double()).norm(dim=-1)
    assert (angle > 0).all()
    # |roll|,|pitch| <= 7.5 deg and |yaw| <= 20 deg -> total rotation well under 25 deg (radians misuse would give ~rad)
    assert (angle < torch.deg2rad(torch.tensor(25.0, dtype=torch.float64))).all()
    torch.testing.assert_close(Ta[..., :3, 3].norm(dim=-1), T[..., :3, 3].norm(dim=-1))


def test_virtual_views_decode_from_same_volume(model6):
    b = make_batch(6, batch=1)
    K, T = b["K"], b["T_ego_cam"]
    with torch.no_grad():
        disp, disp_v = model6.predict_depth(b["image_aug"][:, 0], K, T, b["mask"], (K[:, :2], T[:, :2]))
    assert disp_v.shape == (1, 2, 1, 64, 96)
    # a virtual camera identical to a real one reproduces that camera's disparity
    torch.testing.assert_close(disp_v, disp[:, :2], rtol=1e-5, atol=1e-5)


def test_voxel_lookup_mask_removes_voxels():
    K, T = make_rig()
    cfg = tiny_config()
    m = VFDepth(cfg)
    grid = m.grid
    K8 = geo.resize_intrinsics(K[None].float(), (64, 96), (8, 12))
    full = build_voxel_lookup(grid, K8, T[None].float(), torch.ones(1, 6, 1, 8, 12), 8, 12)
    mask = torch.ones(1, 6, 1, 8, 12)
    mask[:, 0] = 0
    part = build_voxel_lookup(grid, K8, T[None].float(), mask, 8, 12)
    cams_full = (full.pix_idx[:, 0] // 96)
    cams_part = (part.pix_idx[:, 0] // 96)
    assert (cams_full == 0).any() and not (cams_part == 0).any()


def test_cache_knows_repeated_calibration_by_identity_and_rehashes_changes(model6):
    """The same calibration tensors again: no hashing (on CUDA hashing would copy to the host, a sync);
    a tensor changed in place, or new tensors with new values: hashed and looked up anew."""
    b = make_batch(6, batch=1)
    K, T = b["K"].clone(), b["T_ego_cam"].clone()
    lk1 = model6.voxel_lookup(K, T, None, (64, 96))
    n = model6.rig_cache.digests_computed
    assert model6.voxel_lookup(K, T, None, (64, 96)) is lk1
    assert model6.rig_cache.digests_computed == n  # known by identity
    T[..., 2, 3] += 0.5  # in place: same object, new version
    lk2 = model6.voxel_lookup(K, T, None, (64, 96))
    assert lk2 is not lk1 and model6.rig_cache.digests_computed == n + 1
    T[..., 2, 3] -= 0.5
    assert model6.voxel_lookup(K.clone(), T.clone(), None, (64, 96)) is lk1  # equal values, new objects: hashed


def test_pose_translation_scale_scales_only_translation():
    """model.pose_translation_scale multiplies the head's translation output (the paper: x0.01 like the
    rotation); rotation keeps x0.01."""
    from vfdepth_core.nn.pose import PoseHead

    torch.manual_seed(0)
    paper, wide = PoseHead(8, 16), PoseHead(8, 16, translation_scale=1.0)
    wide.load_state_dict(paper.state_dict())
    x = torch.randn(2, 8, 8, 8)
    r0, t0 = paper(x)
    r1, t1 = wide(x)
    assert torch.allclose(r0, r1) and torch.allclose(t1, 100.0 * t0, rtol=1e-5, atol=1e-7)
    assert t0.abs().max() > 0
