"""Predictor: checkpoint round trip, resizing with intrinsics, ego motion, virtual views, autocast, bad inputs."""

import numpy as np
import pytest
import torch

from model_helpers import make_batch, make_rig, tiny_config
from vfdepth_core import geometry as geo
from vfdepth_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from vfdepth_core.geometry import ShapeError
from vfdepth_core.inference import Predictor, VirtualCamera
from vfdepth_core.model import VFDepth
from vfdepth_core.rig import Rig


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    cfg = tiny_config(6)
    model = VFDepth(cfg).eval()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    path = tmp_path_factory.mktemp("ck") / "last.pt"
    save_checkpoint(path, model, cfg, opt, step=7, epoch=2, extra={"note": "x"})
    return path, model, cfg


def test_checkpoint_contents(saved):
    path, model, cfg = saved
    ck = load_checkpoint(path)
    assert ck["step"] == 7 and ck["epoch"] == 2 and ck["config_name"] == cfg.name
    assert ck["config"]["model"]["proj_d_bins"] == 4 and ck["extra"] == {"note": "x"}
    assert ck["optimizer"] is not None and "torch" in ck["rng"]
    assert set(ck["model"]) == set(model.state_dict())


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(bad)


def test_predictor_round_trip_matches_model(saved):
    path, model, cfg = saved
    pred = Predictor.from_checkpoint(path, device="cpu")
    b = make_batch(6, batch=1)
    with torch.no_grad():
        disp, _ = model.predict_depth(b["image"][:, 0], b["K"], b["T_ego_cam"], None)
        want = model.to_depth(disp, b["K"])
    out = pred.predict(b["image"][0, 0], b["K"][0], b["T_ego_cam"][0])
    torch.testing.assert_close(out.depth, want, rtol=1e-5, atol=1e-5)
    assert out.T_egoprev_egocur is None and out.virtual_depth is None
    assert {"preprocess", "depth", "total"} <= set(out.timings)


def test_predictor_resizes_uint8_and_scales_intrinsics(saved):
    path, _, cfg = saved
    pred = Predictor.from_checkpoint(path, device="cpu")
    b = make_batch(6, H=128, W=192, batch=2)
    imgs = (b["image"][:, 0] * 255).round().to(torch.uint8)
    prev = (b["image"][:, 1] * 255).round().to(torch.uint8).numpy()
    Kv, Tv = make_rig((30.0, -150.0), H=64, W=96)
    out = pred.predict(imgs, b["K"][0], b["T_ego_cam"][0].numpy(), prev_images=prev, virtual=VirtualCamera(Kv, Tv))
    assert out.depth.shape == (2, 6, 1, 64, 96)
    torch.testing.assert_close(out.K, geo.resize_intrinsics(b["K"], (128, 192), (64, 96)))
    assert out.T_egoprev_egocur.shape == (2, 4, 4)
    R = out.T_egoprev_egocur[:, :3, :3]
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3).expand(2, 3, 3), atol=1e-5, rtol=0)
    assert out.virtual_depth.shape == (2, 2, 1, 64, 96) and torch.isfinite(out.virtual_depth).all()
    assert "pose" in out.timings


def test_predictor_autocast_bf16(saved):
    path, _, _ = saved
    pred = Predictor.from_checkpoint(path, device="cpu", amp="bf16")
    b = make_batch(6, batch=1)
    out = pred.predict(b["image"][0, 0], b["K"][0], b["T_ego_cam"][0], prev_images=b["image"][0, 1])
    ref = Predictor.from_checkpoint(path, device="cpu").predict(b["image"][0, 0], b["K"][0], b["T_ego_cam"][0])
    assert out.depth.dtype == torch.float32 and torch.isfinite(out.depth).all()
    assert ((out.depth - ref.depth).abs() / ref.depth).mean() < 0.1


def test_predictor_rejects_bad_inputs(saved):
    path, _, _ = saved
    pred = Predictor.from_checkpoint(path, device="cpu")
    b = make_batch(6, batch=1)
    img, K, T = b["image"][0, 0], b["K"][0], b["T_ego_cam"][0]
    with pytest.raises(ShapeError, match=r"images.*\(6, 3, H, W\)"):
        pred.predict(img[:5], K, T)
    with pytest.raises(ShapeError, match="images"):
        pred.predict(img.permute(0, 2, 3, 1), K, T)  # channels last
    with pytest.raises(ShapeError, match=r"K must have shape \(6, 3, 3\)"):
        pred.predict(img, K[:4], T)
    with pytest.raises(ShapeError, match="T_ego_cam"):
        pred.predict(img, K, T[:, :3])
    bad_T = T.clone()
    bad_T[0, 0, 3] = float("nan")
    with pytest.raises(ValueError, match="T_ego_cam.*NaN"):
        pred.predict(img, K, bad_T)
    with pytest.raises(ValueError, match="K"):
        pred.predict(img, K * 0, T)
    with pytest.raises(ShapeError, match="prev_images"):
        pred.predict(img, K, T, prev_images=img[:, :, :10])
    with pytest.raises(ShapeError, match="virtual.K"):
        pred.predict(img, K, T, virtual=VirtualCamera(torch.eye(3), torch.eye(4)[None]))
    with pytest.raises(ValueError, match="images"):
        pred.predict(np.zeros((6, 3, 64, 96), dtype=np.int32), K, T)


def test_predictor_reuses_the_rig_without_hashing_device_tensors():
    """An unchanged rig (new numpy arrays, same values) is recognised on the host: the model's rig cache
    computes no digest of device tensors; a changed rig is uploaded and hashed again."""
    torch.manual_seed(0)
    pred = Predictor(tiny_config(6), device="cpu")
    K, T = make_rig()
    img = np.random.default_rng(0).integers(0, 255, (6, 3, 64, 96), dtype=np.uint8)
    a = pred.predict(img, K.numpy().copy(), T.numpy().copy())
    n = pred.model.rig_cache.digests_computed
    b = pred.predict(img, K.numpy().copy(), T.numpy().copy())
    assert pred.model.rig_cache.digests_computed == n
    torch.testing.assert_close(a.depth, b.depth, rtol=0, atol=0)
    T2 = T.clone()
    T2[..., 2, 3] += 0.3
    pred.predict(img, K.numpy(), T2.numpy())
    assert pred.model.rig_cache.digests_computed > n


def test_predictor_takes_per_camera_images_of_any_size_and_resizes_once():
    """Per-camera (3, H_i, W_i) arrays: same sizes give the batched API's result exactly; mixed sizes are
    resized once to the network size (Prediction.images) with each K scaled from its own size, so running
    the network-size images again reproduces the depth."""
    torch.manual_seed(0)
    pred = Predictor(tiny_config(6), device="cpu")
    K, T = make_rig(H=128, W=192)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (6, 3, 128, 192), dtype=np.uint8)
    ref = pred.predict(imgs, K, T)
    out = pred.predict(list(imgs), K.numpy(), T.numpy())
    torch.testing.assert_close(out.depth, ref.depth, rtol=0, atol=0)
    sizes = [(128, 192), (64, 96), (100, 150), (128, 192), (64, 96), (80, 120)]
    mixed = [rng.integers(0, 255, (3, h, w), dtype=np.uint8) for h, w in sizes]
    Ks = torch.stack([geo.resize_intrinsics(K[i], (128, 192), hw) for i, hw in enumerate(sizes)])
    out = pred.predict(mixed, Ks, T, prev_images=mixed)
    assert out.depth.shape == (1, 6, 1, 64, 96) and out.images.shape == (1, 6, 3, 64, 96)
    torch.testing.assert_close(out.K[0], geo.resize_intrinsics(K, (128, 192), (64, 96)).float())
    torch.testing.assert_close(out.images[0, 1], torch.from_numpy(mixed[1]).float() / 255, rtol=0, atol=0)
    again = pred.predict(out.images[0], out.K[0], T)
    torch.testing.assert_close(again.depth, out.depth, rtol=1e-5, atol=1e-5)
    with pytest.raises(ShapeError, match="prev_images must have the size of images"):
        pred.predict(mixed, Ks, T, prev_images=mixed[::-1])
    with pytest.raises(ShapeError, match="images"):
        pred.predict(mixed[:5], Ks, T)


def test_rig_equality_hash_and_resize():
    K, T = make_rig(H=64, W=96)
    a = Rig([f"cam{i}" for i in range(6)], K.numpy(), T.numpy(), [(64, 96)] * 6)
    b = Rig(tuple(f"cam{i}" for i in range(6)), K.clone(), T.clone(), ((64, 96),) * 6)
    assert a == b and hash(a) == hash(b) and a.K.dtype == torch.float64
    T2 = T.clone()
    T2[0, 0, 3] += 1e-9
    assert a != Rig(a.cameras, K, T2, a.image_hw) and a != a.resized((32, 48))
    torch.testing.assert_close(a.resized((32, 48)).K, geo.resize_intrinsics(K, (64, 96), (32, 48)), rtol=0, atol=0)
    with pytest.raises(ShapeError, match="Rig.K"):
        Rig(a.cameras, K[:5], T, a.image_hw)


def test_predictor_without_checkpoint_warns(caplog):
    cfg = tiny_config(3)
    with caplog.at_level("WARNING"):
        p = Predictor(cfg, device="cpu")
    assert "random weights" in caplog.text
    assert p.device.type == "cpu"
