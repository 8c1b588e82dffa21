"""A tiny VFDepth overfits one synthetic batch (the whole training path: model, losses, backward, Adam)."""

import torch

from model_helpers import make_batch, tiny_config
from vfdepth_core.losses import compute_losses
from vfdepth_core.model import VFDepth


def test_tiny_model_overfits_one_batch():
    torch.manual_seed(0)
    cfg = tiny_config(3, training__focal_length_scale=40.0, training__spatio=False, training__spatio_temporal=False)
    b = make_batch(3, batch=1)
    model = VFDepth(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = None
    best = float("inf")
    for _ in range(40):
        total, _ = compute_losses(b, model(b), cfg)
        opt.zero_grad()
        total.backward()
        opt.step()
        first = total.item() if first is None else first
        best = min(best, total.item())
        if best < 0.5 * first:
            break
    assert best < 0.5 * first, (first, best)


def test_bf16_training_autocast_runs_on_cpu_with_fp32_geometry():
    """training.amp=bf16 autocasts on a CPU too (it used to be CUDA only, silently fp32 elsewhere); the
    pose matrices and look-ups stay fp32 and the losses (outside autocast) take the outputs as they are."""
    from vfdepth_core.training.optim import autocast

    a = torch.randn(4, 4)
    with autocast("cpu", "bf16"):
        assert torch.mm(a, a).dtype == torch.bfloat16
    with autocast("cpu", "fp16"):  # no fp16 autocast on a CPU: fp32
        assert torch.mm(a, a).dtype == torch.float32
    torch.manual_seed(0)
    cfg = tiny_config(3)
    b = make_batch(3, batch=1)
    model = VFDepth(cfg)
    with autocast("cpu", "bf16"):
        out = model(b)
    assert all(T.dtype == torch.float32 for T in out.T_src_tgt.values())
    assert all(T.dtype == torch.float32 for T in out.T_egosrc_egotgt.values())
    total, terms = compute_losses(b, out, cfg)
    total.backward()
    assert torch.isfinite(total) and set(terms) >= {"reproj", "spatio", "spatio_tempo"}
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
