"""The paper's per-camera baseline (model.depth_model/pose_model 'fsm'): shapes, per-camera motion, the
pose-consistency loss (known answers), the Predictor, and a training step through train.py."""

import math

import numpy as np
import pytest
import torch

from model_helpers import make_batch, make_rig, tiny_config
from vfdepth_core import geometry as geo
from vfdepth_core.config import ConfigError
from vfdepth_core.inference import Predictor, VirtualCamera
from vfdepth_core.losses import compute_losses, pose_consistency_loss, rotmat_to_euler_xyz
from vfdepth_core.model import VFDepth


def _fsm(**kw):
    return tiny_config(6, model__depth_model="fsm", model__pose_model="fsm", **kw)


@pytest.fixture(scope="module")
def fsm_model():
    torch.manual_seed(0)
    return VFDepth(_fsm())


def test_forward_shapes_and_per_camera_motion(fsm_model):
    b = make_batch(6, batch=2)
    out = fsm_model(b)
    assert out.disp.shape == (2, 6, 1, 64, 96) and ((out.disp > 0) & (out.disp < 1)).all()
    assert torch.isfinite(out.depth).all() and (out.depth > 0).all()
    for f in (-1, 1):
        M = out.T_src_tgt[f]
        assert M.shape == (2, 6, 4, 4)
        torch.testing.assert_close(out.T_c0src_c0tgt[f], M[:, 0])
        # each camera has its own motion: not the reference motion distributed through the extrinsics
        dist = geo.distribute_motion(M[:, 0], b["T_ego_cam"].to(M.dtype))
        assert (dist[:, 1:] - M[:, 1:]).abs().max() > 1e-6
    assert fsm_model.voxel_lookup(b["K"], b["T_ego_cam"], None, (64, 96)) is None  # no volume at all
    n = fsm_model.num_parameters()
    assert n["total"] == n["depth_net"] + n["pose_net"] and n["pose.pose_head"] > 0


def test_euler_xyz_known_answer():
    a, b, c = 0.3, -0.2, 1.1
    Rx = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]], dtype=torch.float64)
    Ry = torch.tensor([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]], dtype=torch.float64)
    Rz = torch.tensor([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]], dtype=torch.float64)
    torch.testing.assert_close(rotmat_to_euler_xyz(Rx @ Ry @ Rz), torch.tensor([a, b, c], dtype=torch.float64))


def test_pose_consistency_zero_for_one_rigid_motion_and_known_when_off():
    _, T = make_rig()
    T = T[None].double()  # (1, 6, 4, 4)
    ref = geo.pose_vec_to_transform(torch.tensor([[0.01, -0.02, 0.05]], dtype=torch.float64),
                                    torch.tensor([[0.3, 0.0, 1.2]], dtype=torch.float64))
    motions = {f: geo.distribute_motion(ref if f > 0 else geo.invert_transform(ref), T) for f in (-1, 1)}
    assert pose_consistency_loss(motions, T) < 1e-9
    off = {f: m.clone() for f, m in motions.items()}
    shift = torch.zeros(3, dtype=torch.float64)
    shift[0] = 0.6
    for f in off:  # camera 3 moves 0.6 m more, along its own x axis
        off[f][0, 3, :3, 3] += shift
    # in camera 0 that is a 0.6 m translation difference for one of the 5 other cameras, in each frame
    want = 0.6 / 6
    torch.testing.assert_close(pose_consistency_loss(off, T), torch.tensor(want, dtype=torch.float64))


def test_losses_include_pose_consistency_only_for_the_baseline(fsm_model):
    b = make_batch(6, batch=1)
    with torch.no_grad():
        out = fsm_model(b)
    _, terms = compute_losses(b, out, _fsm(loss__pose_loss_coeff=0.1))
    assert "pose" in terms and terms["pose"] > 0
    _, terms_fusion = compute_losses(b, out, tiny_config(6, loss__pose_loss_coeff=0.1))
    assert "pose" not in terms_fusion


def test_predictor_runs_the_baseline_and_refuses_virtual_views():
    torch.manual_seed(0)
    pred = Predictor(_fsm(), device="cpu")
    K, T = make_rig()
    img = np.random.default_rng(0).integers(0, 255, (6, 3, 64, 96), dtype=np.uint8)
    out = pred.predict(img, K.numpy(), T.numpy(), prev_images=img)
    assert out.depth.shape == (1, 6, 1, 64, 96) and out.T_egoprev_egocur.shape == (1, 4, 4)
    with pytest.raises(ConfigError, match="fusion"):
        pred.predict(img, K.numpy(), T.numpy(), virtual=VirtualCamera(K[:1], T[:1]))
    with pytest.raises(ConfigError, match="aug_depth"):
        VFDepth(_fsm(training__aug_depth=True))


@pytest.mark.slow
def test_baseline_trains_through_train_py(tmp_path):
    pytest.importorskip("vfdepth_core.datasets.synthetic")
    from train_helpers import TRAIN, make_tiny_dataset, run_script, tiny_args

    data = make_tiny_dataset(tmp_path / "data")
    p = run_script(TRAIN, tiny_args(data, tmp_path / "run", "--set", "training.max_steps=2", "--set",
                                    "model.depth_model=fsm", "--set", "model.pose_model=fsm", "--set",
                                    "loss.pose_loss_coeff=0.1"))
    assert p.returncode == 0, p.stderr[-3000:]
    ck = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", map_location="cpu", weights_only=False)
    assert ck["step"] == 2 and ck["config"]["model"]["depth_model"] == "fsm"
    assert any(k.startswith("depth_net.decoder.post") for k in ck["model"])


def test_onnx_export_refuses_the_baseline_clearly(fsm_model):
    from vfdepth_core.export import InferenceGraph

    K, T = make_rig()
    with pytest.raises(ConfigError, match="fsm"):
        InferenceGraph(fsm_model, K[None].float(), T[None].float())
