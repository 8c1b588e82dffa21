"""model.weights_init: ImageNet ResNet-18 through torchvision's weights API and cache; never downloads in tests."""

from __future__ import annotations

import pytest
import torch
import torchvision

from vfdepth_core.config import ConfigError, load_config
from vfdepth_core.model import VFDepth
from vfdepth_core.nn import pretrained
from vfdepth_core.nn.encoder import ResNetEncoder

TINY = "training/configs/synthetic/synthetic_tiny.yaml"


@pytest.fixture
def no_download(monkeypatch, tmp_path):
    """An empty TORCH_HOME in tmp_path, and any download attempt fails the test."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return tmp_path / "torch_home"


def _fake_imagenet(torch_home):
    """A resnet18 state dict with recognisable values, at the official file name in the hub cache."""
    torch.manual_seed(3)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return state, path


def test_cache_file_is_torchvisions_official_name(no_download):
    assert pretrained.imagenet_cache_file() == no_download / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url.endswith("/resnet18-f37072fd.pth")


def test_weights_come_from_the_torch_home_cache(no_download, repo_root):
    state, _ = _fake_imagenet(no_download)
    cfg = load_config(repo_root / TINY, ["model.weights_init=true"])
    model = VFDepth(cfg)
    enc = model.depth_net.encoder
    assert torch.equal(enc.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
    assert torch.equal(enc.bn1.running_var, state["bn1.running_var"])
    assert torch.equal(enc.conv1.weight, state["conv1.weight"])
    pose = model.pose_net.encoder  # two frames stacked: the kernel repeated and halved
    w = state["conv1.weight"]
    assert pose.conv1.weight.shape == (64, 6, 7, 7)
    assert torch.equal(pose.conv1.weight, torch.cat([w, w], 1) / 2)
    assert torch.equal(pose.layer4[0].conv1.weight, state["layer4.0.conv1.weight"])


def test_offline_without_the_file_is_one_clear_error(no_download, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(ConfigError) as err:
        ResNetEncoder(1, weights_init=True)
    msg = str(err.value)
    assert "resnet18-f37072fd.pth" in msg and str(no_download / "hub" / "checkpoints") in msg
    assert "model.weights_init=false" in msg and "\n" not in msg


def test_random_init_reads_nothing(no_download):
    torch.manual_seed(0)
    a = ResNetEncoder(2, weights_init=False)
    assert a.conv1.weight.shape == (64, 6, 7, 7)
    assert not (no_download / "hub").exists()


def test_weights_path_is_read_instead_of_the_cache(no_download, tmp_path):
    torch.manual_seed(5)
    state = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(state, tmp_path / "mine.pth")
    enc = ResNetEncoder(1, weights_path=str(tmp_path / "mine.pth"), weights_init=True)
    assert torch.equal(enc.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    with pytest.raises(ConfigError, match="model.weights_path: file not found"):
        ResNetEncoder(1, weights_path=str(tmp_path / "absent.pth"), weights_init=True)


def test_synthetic_configs_choose_random_init_and_paper_configs_imagenet(repo_root):
    for rel in ("synthetic/synthetic_tiny.yaml", "synthetic/synthetic_cpu.yaml"):
        assert not load_config(repo_root / "training/configs" / rel).model.weights_init
    for rel in ("ddad/ddad_surround_fusion.yaml", "nuscenes/nusc_surround_fusion.yaml", "ddad/ddad_baseline.yaml"):
        cfg = load_config(repo_root / "training/configs" / rel)
        assert cfg.model.weights_init and cfg.model.weights_path is None
