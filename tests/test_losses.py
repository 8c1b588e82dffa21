"""Loss functions: known answers, and warps of an exactly rendered scene with true vs wrong depth/pose."""

import pytest
import torch

from model_helpers import make_batch, tiny_config
from vfdepth_core import geometry as geo
from vfdepth_core.losses import (auto_mask, compute_losses, depth_synthesis_losses, edge_aware_smoothness, gt_depth_loss,
                                 intensity_align, masked_mean_per_camera, photometric_loss, smoothness, ssim_loss,
                                 spatial_loss, temporal_loss, warp_with_mask)
from vfdepth_core.model import ModelOutputs


def test_ssim_known_answer_constant_images():
    a, b = 0.2, 0.6
    x, y = torch.full((1, 3, 5, 6), a, dtype=torch.float64), torch.full((1, 3, 5, 6), b, dtype=torch.float64)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ssim = (2 * a * b + c1) * c2 / ((a * a + b * b + c1) * c2 + 1e-8)  # sigmas vanish; 1e-8 guards the division
    torch.testing.assert_close(ssim_loss(x, y), torch.full((1, 3, 5, 6), (1 - ssim) / 2, dtype=torch.float64), rtol=1e-6, atol=1e-8)
    assert ssim_loss(x, x).abs().max() < 1e-4  # only the 1e-8 division guard remains
    want = 0.85 * (1 - ssim) / 2 + 0.15 * abs(a - b)
    torch.testing.assert_close(photometric_loss(x, y), torch.full((1, 1, 5, 6), want, dtype=torch.float64), rtol=1e-6, atol=1e-8)


def test_ssim_of_textured_image_with_itself_is_zero_and_symmetric():
    x = torch.rand(2, 3, 16, 20, generator=torch.Generator().manual_seed(0))
    y = torch.rand(2, 3, 16, 20, generator=torch.Generator().manual_seed(1))
    assert ssim_loss(x, x).max() < 1e-5
    torch.testing.assert_close(ssim_loss(x, y), ssim_loss(y, x))
    assert ssim_loss(x, y).mean() > 0.2


def test_smoothness_known_answers():
    W, H = 6, 4
    disp = torch.arange(1, W + 1, dtype=torch.float32).expand(1, 1, H, W).contiguous()
    mean = disp.mean()
    flat = torch.zeros(1, 3, H, W)
    # x-gradient of the normalised ramp is 1/mean everywhere, y-gradient 0
    torch.testing.assert_close(edge_aware_smoothness(disp, flat), 1 / mean)
    torch.testing.assert_close(smoothness(disp), 1 / mean)
    ramp = (0.5 * torch.arange(W, dtype=torch.float32)).expand(1, 3, H, W).contiguous()  # image edges of 0.5
    torch.testing.assert_close(edge_aware_smoothness(disp, ramp), torch.exp(torch.tensor(-0.5)) / mean)
    assert smoothness(torch.full((1, 1, H, W), 3.0)) == 0


def test_auto_mask_known_answer():
    reproj = torch.tensor([0.1, 0.3, 0.2]).view(1, 1, 1, 3)
    ident = torch.tensor([0.2, 0.2, 0.25]).view(1, 1, 1, 3)
    assert auto_mask(reproj, ident).flatten().tolist() == [1.0, 0.0, 1.0]


def test_masked_mean_per_camera_averages_cameras():
    loss = torch.tensor([1.0, 3.0]).view(1, 2, 1, 1, 1).expand(2, 2, 1, 2, 2).reshape(4, 1, 2, 2)
    mask = torch.ones_like(loss)
    mask[1, :, 0] = 0  # camera 1 of batch 0 half masked: its mean stays 3
    assert masked_mean_per_camera(loss, mask, 2).item() == pytest.approx(2.0)


def test_intensity_align_recovers_affine_change():
    t = torch.rand(2, 3, 8, 10, generator=torch.Generator().manual_seed(0))
    warped = 1.7 * t + 0.1
    m = torch.ones(2, 1, 8, 10)
    out = intensity_align(warped, m, t, m)
    torch.testing.assert_close(out, t, rtol=1e-4, atol=1e-4)
    empty = torch.zeros_like(m)
    torch.testing.assert_close(intensity_align(warped, empty, t, m), torch.zeros_like(t))


@pytest.fixture(scope="module")
def scene():
    return make_batch(6, H=96, W=160, batch=1)


def _true_motion(b, f_index):
    T_we, T_ec = b["T_world_ego"][0].double(), b["T_ego_cam"][0].double()
    return (geo.invert_transform(T_we[f_index] @ T_ec) @ (T_we[0] @ T_ec)).float()[None]  # (1, N, 4, 4)


def test_true_depth_and_pose_reproduce_target(scene):
    b = scene
    tgt, src = b["image"][0, 0], b["image"][0, 2]  # frame 0 and frame +1 of every camera
    depth, K = b["depth_gt"][0], b["K"][0]
    T = _true_motion(b, 2)[0]
    warped, valid = warp_with_mask(src, torch.ones_like(depth), depth, K, K, T)
    good = (photometric_loss(warped, tgt) * valid).sum() / valid.sum()
    assert valid.mean() > 0.5
    assert good < 0.02
    warped_bad, valid_bad = warp_with_mask(src, torch.ones_like(depth), depth * 0.5, K, K, T)
    bad = (photometric_loss(warped_bad, tgt) * valid_bad).sum() / valid_bad.sum()
    assert bad > 4 * good and bad > 0.04


def test_spatial_warp_with_true_depth_matches_neighbours(scene):
    b = scene
    cfg = tiny_config(6, H=96, W=160)
    from vfdepth_core.config import camera_neighbors

    nb = camera_neighbors(cfg.data)
    kw = dict(images=b["image"], frame_ids=(0, -1, 1), mask=b["mask"], K=b["K"], T_ego_cam=b["T_ego_cam"],
              neighbors=nb, align=True)
    good = spatial_loss(depth=b["depth_gt"], **kw)
    bad = spatial_loss(depth=b["depth_gt"] * 0.5, **kw)
    assert good < 0.03 and bad > 3 * good


def _outputs(b, depth, motions):
    disp = 1.0 / depth
    return ModelOutputs(disp=disp, depth=depth, T_src_tgt=motions)


def test_compute_losses_prefers_true_geometry(scene):
    b = scene
    cfg = tiny_config(6, H=96, W=160)
    true_m = {-1: _true_motion(b, 1), 1: _true_motion(b, 2)}
    total_good, terms_good = compute_losses(b, _outputs(b, b["depth_gt"], true_m), cfg)
    total_bad, terms_bad = compute_losses(b, _outputs(b, b["depth_gt"] * 2.0, true_m), cfg)
    eye = torch.eye(4).expand(1, 6, 4, 4)
    total_nopose, _ = compute_losses(b, _outputs(b, b["depth_gt"], {-1: eye, 1: eye}), cfg)
    for k in ("reproj", "spatio", "spatio_tempo", "smooth", "total"):
        assert k in terms_good
    assert terms_good["reproj"] < 0.03
    assert total_bad > 2 * total_good and total_nopose > 2 * total_good
    assert terms_bad["spatio"] > terms_good["spatio"]
    assert terms_bad["spatio_tempo"] > terms_good["spatio_tempo"]


def test_temporal_auto_mask_excludes_static_pixels(scene):
    b = dict(scene)
    static = b["image"].clone()
    static[:, 1:] = static[:, :1]  # no motion at all: the identity reprojection is perfect
    true_m = {-1: _true_motion(scene, 1), 1: _true_motion(scene, 2)}
    _, amask = temporal_loss(static, (0, -1, 1), b["mask"], b["depth_gt"], b["K"], true_m, False)
    assert amask.mean() < 0.2


def test_depth_synthesis_consistency_zero_for_true_depth(scene):
    from model_helpers import render

    b = scene
    K, T = b["K"], b["T_ego_cam"]
    # a perturbed rig: yaw every camera by 10 degrees about the vehicle origin
    R = geo.euler_to_rotmat(0.0, 0.0, 10.0).float()
    T_rot = geo.make_transform(R, torch.zeros(3))
    T_aug = T_rot @ T
    T_we0 = b["T_world_ego"][0, 0].double()
    _, depth_aug = render(K[0], T_we0 @ T_aug[0].double(), 96, 160)
    nb = ((1, 2), (0, 3), (0, 4), (1, 5), (2, 5), (3, 4))
    con, sm = depth_synthesis_losses(b["depth_gt"], depth_aug[None], 1 / depth_aug[None], b["mask"], K, T, T_aug, nb,
                                     0.5, 80.0)
    con_bad, _ = depth_synthesis_losses(b["depth_gt"], depth_aug[None] * 1.5, 1 / depth_aug[None], b["mask"], K, T,
                                        T_aug, nb, 0.5, 80.0)
    assert con < 0.01 and con_bad > 0.1
    assert torch.isfinite(sm)


def test_gt_depth_loss_known_answer():
    gt = torch.tensor([[0.0, 10.0], [20.0, 300.0]]).reshape(1, 1, 1, 2, 2)  # 0 = no LIDAR, 300 > max depth
    depth = torch.tensor([[5.0, 10.0 * 2.0], [20.0, 1.0]]).reshape(1, 1, 1, 2, 2)
    mask = torch.ones_like(gt)
    want = (abs(torch.log(torch.tensor(2.0))) + 0.0) / 2  # the pixels with GT 10 (x2 off) and 20 (exact)
    torch.testing.assert_close(gt_depth_loss(depth, gt, mask, 200.0), want)
    mask[..., 0, 1] = 0.0  # masked out: only the exact pixel remains
    assert gt_depth_loss(depth, gt, mask, 200.0) == 0.0
    assert gt_depth_loss(depth, torch.zeros_like(gt), mask, 200.0) == 0.0  # no GT at all: zero, no NaN


def test_compute_losses_gt_depth_term_only_when_asked(scene):
    from dataclasses import replace

    b = scene
    cfg = tiny_config(6, H=96, W=160)
    true_m = {-1: _true_motion(b, 1), 1: _true_motion(b, 2)}
    out = _outputs(b, b["depth_gt"] * 2.0, true_m)
    _, terms = compute_losses(b, out, cfg)
    assert "gt_depth" not in terms  # the paper's objective by default
    sup = replace(cfg, loss=replace(cfg.loss, gt_depth_coeff=0.5))
    total, terms_sup = compute_losses(b, out, sup)
    torch.testing.assert_close(terms_sup["gt_depth"], torch.log(torch.tensor(2.0)), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(total, terms["total"] + 0.5 * terms_sup["gt_depth"], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="train_requirements"):
        compute_losses({k: v for k, v in b.items() if k != "depth_gt"}, out, sup)


def test_downsample_for_level_shapes_intrinsics_and_mask():
    from vfdepth_core.losses import downsample_for_level

    images = torch.rand(1, 3, 2, 3, 16, 24)
    mask = torch.ones(1, 2, 1, 16, 24)
    mask[0, 0, 0, 0, 0] = 0.0  # one invalid fine pixel invalidates its coarse pixel only
    depth = torch.full((1, 2, 1, 16, 24), 4.0)
    depth[..., :2, :2] = 8.0
    K = torch.tensor([[10.0, 0, 12.0], [0, 10.0, 8.0], [0, 0, 1]]).expand(1, 2, 3, 3)
    im2, m2, d2, K2 = downsample_for_level(images, mask, depth, K, 1)
    assert im2.shape == (1, 3, 2, 3, 8, 12) and m2.shape == d2.shape == (1, 2, 1, 8, 12)
    torch.testing.assert_close(im2[0, 0, 0, :, 0, 0], images[0, 0, 0, :, :2, :2].mean((-1, -2)))
    assert d2[0, 0, 0, 0, 0] == 8.0 and d2[0, 0, 0, 1, 1] == 4.0
    assert m2[0, 0, 0, 0, 0] == 0 and m2.sum() == 2 * 8 * 12 - 1
    torch.testing.assert_close(K2[0, 0], torch.tensor([[5.0, 0, 5.75], [0, 5.0, 3.75], [0, 0, 1]]))  # (c + 0.5) s - 0.5
    _, _, _, K4 = downsample_for_level(images, mask, depth, K, 2)
    torch.testing.assert_close(K4[0, 0], torch.tensor([[2.5, 0, 2.625], [0, 2.5, 1.625], [0, 0, 1]]))


def test_photo_pyramid_averages_levels_and_still_prefers_true_geometry(scene):
    from dataclasses import replace

    b = scene
    cfg = tiny_config(6, H=96, W=160)
    pyr = replace(cfg, loss=replace(cfg.loss, photo_pyramid=2))
    true_m = {-1: _true_motion(b, 1), 1: _true_motion(b, 2)}
    good = _outputs(b, b["depth_gt"], true_m)
    _, flat = compute_losses(b, good, cfg)
    total, terms = compute_losses(b, good, pyr)
    assert "photo_pyramid" not in flat
    # level 0 terms unchanged; total = (level 0 + 2 x mean of the coarse levels) / 3 + smoothness
    for k in ("reproj", "spatio", "spatio_tempo", "smooth"):
        torch.testing.assert_close(terms[k], flat[k])
    photo0 = flat["total"] - cfg.loss.disparity_smoothness * flat["smooth"]
    want = (photo0 + 2 * terms["photo_pyramid"]) / 3 + cfg.loss.disparity_smoothness * flat["smooth"]
    torch.testing.assert_close(total, want, rtol=1e-5, atol=1e-6)
    bad_total, bad = compute_losses(b, _outputs(b, b["depth_gt"] * 2.0, true_m), pyr)
    assert bad["photo_pyramid"] > 2 * terms["photo_pyramid"] and bad_total > 2 * total
    # gradients reach the full-resolution depth through the coarse levels
    d = b["depth_gt"].clone().requires_grad_(True)
    only_coarse = replace(pyr, training=replace(pyr.training, spatio=False, spatio_temporal=False))
    t, _ = compute_losses(b, _outputs(b, d * 1.5, true_m), only_coarse)
    t.backward()
    assert torch.isfinite(d.grad).all() and (d.grad != 0).float().mean() > 0.5


def test_photo_pyramid_config_is_checked():
    from vfdepth_core.config import ConfigError

    from model_helpers import tiny_config as tc

    with pytest.raises(ConfigError, match="photo_pyramid"):
        tc(6, loss__photo_pyramid=4)
    with pytest.raises(ConfigError, match="below 8 pixels"):
        tc(6, H=32, W=64, loss__photo_pyramid=3)
    assert tc(6, H=64, W=96, loss__photo_pyramid=3).loss.photo_pyramid == 3
