"""ONNX export of the inference graph (fixed rig) runs in onnxruntime and matches the PyTorch Predictor."""

import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from model_helpers import make_rig, tiny_config  # noqa: E402
from vfdepth_core.config import ConfigError  # noqa: E402
from vfdepth_core.export import export_onnx  # noqa: E402
from vfdepth_core.inference import OnnxPredictor, Predictor, VirtualCamera  # noqa: E402
from vfdepth_core.model import VFDepth  # noqa: E402

DEPTH_RTOL = 1e-4  # max relative depth difference ONNX (onnxruntime CPU, fp32) vs PyTorch fp32
POSE_ATOL = 1e-5


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    cfg = tiny_config(6)
    model = VFDepth(cfg).eval()
    K, T = make_rig(H=64, W=96)
    Kv, Tv = K[:1].clone(), T[:1].clone()
    Tv[:, 2, 3] += 2.0
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "vfdepth.onnx", K[None], T[None],
                       virtual=(Kv[None], Tv[None]))
    return Predictor(cfg, model, device="cpu"), OnnxPredictor(path, threads=1), K, T, VirtualCamera(Kv.float(), Tv.float())


def test_onnx_matches_torch(exported):
    ref_pred, onnx_pred, K, T, virt = exported
    g = torch.Generator().manual_seed(3)
    imgs = (torch.rand(6, 3, 128, 192, generator=g) * 255).to(torch.uint8)  # 2x the network size: resized
    prev = (torch.rand(6, 3, 128, 192, generator=g) * 255).to(torch.uint8)
    K_in = K.clone()
    K_in[:, :2] *= 2.0
    K_in[:, :2, 2] += 0.5
    a = ref_pred.predict(imgs, K_in, T, prev_images=prev, virtual=virt)
    b = onnx_pred.predict(imgs, K_in, T, prev_images=prev, virtual=virt)
    assert b.depth.shape == a.depth.shape == (1, 6, 1, 64, 96)
    assert ((b.depth - a.depth).abs() / a.depth).max() < DEPTH_RTOL
    assert ((b.virtual_depth - a.virtual_depth).abs() / a.virtual_depth).max() < DEPTH_RTOL
    torch.testing.assert_close(b.T_egoprev_egocur, a.T_egoprev_egocur, rtol=0, atol=POSE_ATOL)
    assert onnx_pred.predict(imgs, K_in, T).T_egoprev_egocur is None


def test_onnx_rejects_another_rig(exported):
    _, onnx_pred, K, T, _ = exported
    T2 = T.clone()
    T2[0, 0, 3] += 0.5
    with pytest.raises(ConfigError, match="T_ego_cam differs"):
        onnx_pred.predict(torch.rand(6, 3, 64, 96), K, T2)
