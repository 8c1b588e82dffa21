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
