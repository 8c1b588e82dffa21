"""model.init_depth_m: the disparity head starts at the requested depth (beyond the paper)."""

from __future__ import annotations

import pytest
import torch

from vfdepth_core.config import ConfigError, load_config
from vfdepth_core.model import VFDepth, disp_to_depth

TINY = "training/configs/synthetic/synthetic_tiny.yaml"


def test_initial_disparity_decodes_to_init_depth(repo_root):
    cfg = load_config(repo_root / TINY, ["model.init_depth_m=12.5", "model.weights_init=false"])
    model = VFDepth(cfg)
    bias = model.depth_net.decoder.dispconv[0].bias
    sig = torch.sigmoid(bias.detach())[None, None, :, None, None]  # (1, 1, 1, 1, 1)
    fls = cfg.training.focal_length_scale
    K = torch.tensor([[fls, 0.0, 10.0], [0.0, fls, 10.0], [0.0, 0.0, 1.0]])[None, None]  # fx = focal scale
    depth = disp_to_depth(sig, K, cfg.training.min_depth, cfg.training.max_depth, fls)
    assert depth.item() == pytest.approx(12.5, rel=1e-4)


def test_default_keeps_the_papers_initialisation(repo_root):
    cfg = load_config(repo_root / TINY, ["model.weights_init=false"])
    torch.manual_seed(0)
    a = VFDepth(cfg).depth_net.decoder.dispconv[0].bias.detach().clone()
    torch.manual_seed(0)
    b = VFDepth(load_config(repo_root / TINY, ["model.weights_init=false", "model.init_depth_m=20"]))
    assert cfg.model.init_depth_m is None
    assert not torch.equal(a, b.depth_net.decoder.dispconv[0].bias.detach())


def test_init_depth_outside_the_depth_range_is_a_config_error(repo_root):
    with pytest.raises(ConfigError, match="init_depth_m"):
        load_config(repo_root / TINY, ["model.init_depth_m=1000"])
