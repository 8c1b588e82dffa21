"""Optimised model paths give the reference outputs: precomputed ray/fusion gathers vs grid_sample,
channels_last vs contiguous, dense (exportable) vs embedding_bag gathers, bf16 autocast within tolerance."""

import contextlib

import pytest
import torch
import torch.nn.functional as F

from model_helpers import make_batch, make_rig, tiny_config
from vfdepth_core.losses import compute_losses, ssim_loss
from vfdepth_core.model import VFDepth
from vfdepth_core.nn.fusion import build_ray_grid, build_ray_lookup, gather_rays, sample_volume_along_rays
from vfdepth_core.geometry import resize_intrinsics

BF16_DEPTH_RTOL = 0.05  # bf16 autocast (CPU): max relative depth difference vs fp32 allowed here


def _mask(num_cams, H=64, W=96):
    m = torch.ones(num_cams, 1, H, W)
    m[:, :, H - H // 5:, : W // 3] = 0.0  # a self-occlusion corner, so the masked look-ups are exercised
    return m


def _run(model, b, extra=None, amp=None):
    img = b["image_aug"][:, 0]
    ac = torch.autocast("cpu", dtype=amp) if amp else contextlib.nullcontext()
    with torch.no_grad(), ac:
        d, dv = model.predict_depth(img, b["K"], b["T_ego_cam"], b["mask"], extra)
        p = model.predict_pose(b["image_aug"][:, 1], img, b["K"], b["T_ego_cam"], b["mask"])
    return d.float(), (dv.float() if dv is not None else None), p


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = VFDepth(tiny_config(6)).eval()
    b = make_batch(6, batch=2, mask=_mask(6))
    Kv = b["K"][:, :2].clone()
    Tv = b["T_ego_cam"][:, :2].clone()
    Tv[..., 2, 3] += 3.0  # virtual views raised 3 m: rays leave the volume, exercising zero padding
    return model, b, (Kv, Tv)


def test_fast_path_matches_reference(setup):
    model, b, extra = setup
    ref = _run(model.set_fast(False), b, extra)
    fast = _run(model.set_fast(True), b, extra)
    for r, f in zip(ref, fast):
        torch.testing.assert_close(f, r, rtol=1e-5, atol=1e-6)
    assert fast[0].std() > 0


def test_channels_last_matches_contiguous(setup):
    model, b, extra = setup
    ref = _run(model.set_fast(True), b, extra)
    try:
        cl = _run(model.set_channels_last(True), b, extra)
        assert model.depth_net.encoder.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    finally:
        model.set_channels_last(False)
    for r, f in zip(ref, cl):
        torch.testing.assert_close(f, r, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_within_tolerance(setup):
    model, b, extra = setup
    ref = _run(model, b, extra)
    bf = _run(model, b, extra, amp=torch.bfloat16)
    rel = ((bf[0] - ref[0]).abs() / ref[0]).max().item()
    assert rel < BF16_DEPTH_RTOL, rel
    assert ((bf[1] - ref[1]).abs() / ref[1]).max().item() < BF16_DEPTH_RTOL


@pytest.mark.parametrize("variant", ["fast", "channels_last"])
def test_training_step_gradients_match_reference(variant):
    """Losses and gradients of a training step: fast path vs reference, and (fast path) channels_last vs
    contiguous (the wide convs' inputs are made contiguous under autograd either way)."""
    cfg = tiny_config(6, H=32, W=64)
    b = make_batch(6, H=32, W=64, batch=1, mask=_mask(6, 32, 64))
    grads, totals = [], []
    for alt in (False, True):
        torch.manual_seed(0)
        model = VFDepth(cfg).set_fast(alt) if variant == "fast" else VFDepth(cfg).set_channels_last(alt)
        torch.manual_seed(1)
        total, _ = compute_losses(b, model(b), cfg)
        total.backward()
        totals.append(total.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    torch.testing.assert_close(totals[1], totals[0], rtol=1e-5, atol=1e-7)
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], rtol=1e-3, atol=1e-6, msg=n)


def test_ray_gather_matches_grid_sample():
    torch.manual_seed(0)
    model = VFDepth(tiny_config(6))
    K, T = make_rig(H=64, W=96)
    K8 = resize_intrinsics(K[None].float(), (64, 96), (8, 12))
    T = T[None].float().clone()
    T[:, 3:, 2, 3] += 4.0  # some views partly above the volume
    rays = build_ray_grid(model.grid, K8, T, 8, 12, model.depth_bins)
    X, Y, Z = model.grid.size
    vol = torch.randn(1, X, Y, Z, 5).permute(0, 4, 1, 2, 3)  # row-major memory, like the fusion output
    ref = sample_volume_along_rays(vol, rays, 6)  # (6, 5*D, 8, 12), channel c*D + d
    ref = F.pad(ref, (1, 1, 1, 1), mode="reflect")
    D = model.depth_bins.numel()
    ref = ref.reshape(6, 5, D, 10, 14).transpose(1, 2).reshape(6, D * 5, 10, 14)
    rl = build_ray_lookup(model.grid, rays, 6)
    for dense in (False, True):
        torch.testing.assert_close(gather_rays(vol, rl, dense=dense), ref, rtol=1e-5, atol=1e-5)
    assert (rl.w8 == 0).any() and ref.abs().sum() > 0


def test_ssim_box_filter_matches_avg_pool():
    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 17, 23), torch.rand(2, 3, 17, 23)
    xp, yp = F.pad(x, (1, 1, 1, 1), mode="reflect"), F.pad(y, (1, 1, 1, 1), mode="reflect")
    mx, my = F.avg_pool2d(xp, 3, 1), F.avg_pool2d(yp, 3, 1)
    sx = F.avg_pool2d(xp * xp, 3, 1) - mx ** 2
    sy = F.avg_pool2d(yp * yp, 3, 1) - my ** 2
    sxy = F.avg_pool2d(xp * yp, 3, 1) - mx * my
    num = (2 * mx * my + 0.01 ** 2) * (2 * sxy + 0.03 ** 2)
    den = (mx ** 2 + my ** 2 + 0.01 ** 2) * (sx + sy + 0.03 ** 2)
    ref = ((1 - num / (den + 1e-8)) / 2).clamp(0, 1)
    torch.testing.assert_close(ssim_loss(x, y), ref, rtol=1e-4, atol=1e-5)


def test_skip_decoder_paths_and_virtual_views():
    """model.use_skips (beyond the paper): fast == reference path, cameras use their encoder features and a
    virtual view at a camera's own pose (no image of its own) decodes with zero skips, i.e. differently."""
    torch.manual_seed(0)
    model = VFDepth(tiny_config(6, model__use_skips=True)).eval()
    b = make_batch(6, batch=2, mask=_mask(6))
    extra = (b["K"][:, :2].clone(), b["T_ego_cam"][:, :2].clone())  # virtual views = cameras 0 and 1
    ref = _run(model.set_fast(False), b, extra)
    fast = _run(model.set_fast(True), b, extra)
    for r, f in zip(ref, fast):
        torch.testing.assert_close(f, r, rtol=1e-5, atol=1e-6)
    d, dv, _ = fast
    assert (d[:, :2] - dv).abs().max() > 1e-4  # the cameras' skips matter
    # ...and a model whose skip convs see only zeros for the cameras too decodes them like the virtual views
    dn = model.depth_net
    feats, skips = dn.encode_with_skips(b["image_aug"][:, 0])
    assert [tuple(s.shape[-2:]) for s in skips] == [(16, 24), (32, 48)]
    with torch.no_grad():
        vol = dn.fusion(feats, model.voxel_lookup(b["K"], b["T_ego_cam"], b["mask"], (64, 96)))
        rl = model.ray_lookup(extra[0], extra[1], (64, 96))
        zero = dn.decode_rays(vol, [rl], skips=[torch.zeros_like(s[:4]) for s in skips])
    torch.testing.assert_close(zero, dv, rtol=1e-5, atol=1e-6)


def test_skip_decoder_gradients_reach_early_encoder_levels():
    cfg = tiny_config(6, H=32, W=64, model__use_skips=True)
    b = make_batch(6, H=32, W=64, batch=1, mask=_mask(6, 32, 64))
    torch.manual_seed(0)
    model = VFDepth(cfg)
    total, _ = compute_losses(b, model(b), cfg)
    total.backward()
    conv = model.depth_net.decoder.stages[0][1][0]
    assert conv.in_channels == 64 + 64  # stage output + encoder level 1
    assert model.depth_net.decoder.stages[1][1][0].in_channels == 32 + 64
    g = model.depth_net.encoder.layer1[0].conv1.weight.grad
    assert g is not None and g.abs().sum() > 0


@pytest.mark.parametrize("limit,expected", [(4.0, 4.0), (0.0, 10.0)])
def test_pose_translation_limit_clamps_or_passes(limit, expected):
    """model.pose_translation_limit_m: each translation component is clamped to +-limit (the default 4 m);
    0 passes the head's output through (a clamped component gets no gradient: a run that overshoots stays)."""
    torch.manual_seed(0)
    model = VFDepth(tiny_config(6, model__pose_translation_scale=1.0, model__pose_translation_limit_m=limit)).eval()
    last = model.pose_net.pose_head.pose2
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 10.0, -10.0, 0.5]))
    b = make_batch(6, batch=1)
    T = model.predict_pose(b["image_aug"][:, 1], b["image_aug"][:, 0], b["K"], b["T_ego_cam"])
    torch.testing.assert_close(T[0, :3, 3], torch.tensor([expected, -expected, 0.5]))
    torch.testing.assert_close(T[0, :3, :3], torch.eye(3))
