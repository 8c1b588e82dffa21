"""The node runs a checkpoint imported from the released VFDepth code (README: "To run the paper's released
weights").

A weights folder with the original's module names and shapes (tests/test_import_original.py, no download)
for the paper's six DDAD cameras; `vfdepth import-original` converts it, the project's launcher starts the
node on the checkpoint (the graph of `vfdepth launch --camera-set ddad --checkpoint ...`), and the depth it
publishes must be the imported model's (Predictor on the same images, calibration and extrinsics). Twice:
with a small voxel grid, narrow fusion features and a 64x96 network (seconds a frame), and at the paper's
DDAD config as it is (384x640, voxel grid 100x100x20, 50 depth bins, 256 fusion features)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("rclpy", reason="rclpy is not installed")
pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs is not built into this environment (tools/build_tf2_msgs.py)")


from ros_helpers import CAMERAS, IMG_HW, graph_with_rig, spin_until  # noqa: E402
from tests.test_import_original import original_depth_shapes, original_pose_shapes  # noqa: E402
from vfdepth_core.checkpoint import load_checkpoint  # noqa: E402
from vfdepth_core.config import load_config, save_config  # noqa: E402
from vfdepth_ros import conversions as cv  # noqa: E402
from vfdepth_ros import graph as G  # noqa: E402
from vfdepth_ros.toy_rig import frame_images, rig_extrinsics, rig_K  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]
T0 = 1_000 * 1_000_000_000
NET_HW = (64, 96)
# the paper's DDAD config (its cameras) with the small sizes the state dicts of test_import_original use
SMALL_MODEL = ["model.voxel_size=[20,20,8]", "model.voxel_unit_size=[4.0,4.0,2.0]", "model.proj_d_bins=4",
               "model.fusion_feat_in_dim=32", "model.voxel_pre_dim=[8]", "model.weights_init=false",
               f"training.height={NET_HW[0]}", f"training.width={NET_HW[1]}"]
PAPER_CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "ddad" / "ddad_surround_fusion.yaml"
PAPER_HW = (384, 640)
RTOL, ATOL = 1e-4, 1e-4  # node vs Predictor: the same code, float32 in another process


def plausible_state(shapes: dict, seed: int) -> dict:
    """Tensors with the original's names and shapes whose outputs vary like a trained network's at any size:
    weights of spread 1/sqrt(fan-in) (so that activations keep their scale through the layers and the
    disparity sigmoid does not saturate), small biases, unit BN variance."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in shapes.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(7)
        elif k.endswith("running_var") or (k.endswith(".weight") and len(shape) == 1):
            out[k] = 1.0 + 0.1 * torch.rand(shape, generator=g)
        elif k.endswith(".weight"):
            fan_in = math.prod(shape[1:])
            out[k] = torch.randn(shape, generator=g) / math.sqrt(fan_in)
        else:
            out[k] = 0.05 * torch.randn(shape, generator=g)
    return out


def import_ddad(tmp_path, cfg, depth_shapes: dict, pose_shapes: dict):
    """Write an original weights folder with `cfg`'s shapes (pose_net DDP-prefixed), import it with the CLI;
    returns the checkpoint path."""
    from vfdepth_ros import cli

    assert cfg.data.cameras == CAMERAS and cfg.data.dataset == "ddad"
    src = tmp_path / "weights_19"
    src.mkdir()
    torch.save(plausible_state(depth_shapes, 1), src / "depth_net.pth")
    torch.save({"module." + k: v for k, v in plausible_state(pose_shapes, 2).items()}, src / "pose_net.pth")
    cfg_file = save_config(cfg, tmp_path / "ddad.yaml")
    ck = tmp_path / "ddad_vfdepth.pt"
    assert cli.main(["import-original", str(src), "--config", str(cfg_file), "-o", str(ck)]) == 0
    saved = load_checkpoint(ck)["config"]["model"]
    assert saved["overlap_pair_order"] == "index_groups" and saved["voxel_border_margin_px"] == 0.0
    return ck


def import_small_ddad(tmp_path):
    return import_ddad(tmp_path, load_config(None, SMALL_MODEL), original_depth_shapes(), original_pose_shapes())


def node_depth_of_one_frame(ck, domain_id: int, tmp_path, img_hw, net_hw) -> dict:
    """Start the node on `ck` with the project launcher (`vfdepth launch --camera-set ddad --checkpoint ck`),
    wait for its diagnostics to report the checkpoint loaded at `net_hw`, publish frame 0 of the toy rig at
    image size `img_hw` and return {camera: its depth (H, W) float32} (header, encoding and size checked)."""
    graph = G.surround_graph(camera_set="ddad", checkpoint=str(ck),
                             overrides={"device": "cpu", "camera_timeout_s": 600.0, "max_pose_gap_s": 600.0,
                                        "publish_virtual": False, "publish_points": False},
                             respawn=False)
    K = rig_K(img_hw)
    infos = {i: cv.K_to_camera_info(K, img_hw, cv.make_header(T0, cam)) for i, cam in enumerate(CAMERAS)}
    imgs = {i: cv.numpy_to_image(im, "rgb8", cv.make_header(T0, cam))
            for i, (cam, im) in enumerate(zip(CAMERAS, frame_images(0, img_hw)))}
    with graph_with_rig(graph, domain_id, tmp_path / "graph.log") as g:
        ex, rig, out, alive = g.ex, g.rig, g.out, g.alive
        spin_until(ex, lambda: alive() and rig.matched(), 600, "the node's image/camera_info subscriptions")
        rig.publish_tf_static()

        def diag_level():
            msgs = out.get("/diagnostics")
            d = cv.diagnostics_to_dict(msgs[-1]) if msgs else {}
            return d.get("surround_depth: inference", {})

        spin_until(ex, lambda: alive() and diag_level().get("level") == "OK", 300,
                   "diagnostics with the imported checkpoint loaded (level OK, not random weights)")
        d = diag_level()
        assert "processed" in d["message"] and d["values"]["model"] == str(ck), d
        assert d["values"]["network_size"] == f"{net_hw[1]}x{net_hw[0]}", d
        for i in range(len(CAMERAS)):
            rig.info_pubs[i].publish(infos[i])
        sent = rig.publish_frame(0, T0, replace=imgs, info_override=infos)
        spin_until(ex, lambda: alive() and all(out.with_stamp(f"{c}/depth", T0) for c in CAMERAS), 600,
                   "the depth of the first frame from the imported checkpoint")
    got = {}
    for cam in CAMERAS:
        (msg,) = out.with_stamp(f"{cam}/depth", T0)
        assert msg.header.frame_id == sent[cam].header.frame_id == cam
        assert msg.encoding == "32FC1" and (msg.height, msg.width) == tuple(net_hw), (cam, msg.height, msg.width)
        got[cam] = cv.image_to_numpy(msg)
    return got


def predictor_depth(ck, img_hw) -> np.ndarray:
    """(6, H, W) depth of Predictor on the checkpoint, on the node's inputs (frame 0, rig_K(img_hw), the rig)."""
    from vfdepth_core.inference import Predictor

    pred = Predictor.from_checkpoint(ck, device="cpu")
    imgs = torch.from_numpy(np.stack(frame_images(0, img_hw))).permute(0, 3, 1, 2).contiguous()  # (6, 3, H, W) uint8
    want = pred.predict(imgs, torch.from_numpy(rig_K(img_hw)).expand(6, 3, 3),
                        torch.from_numpy(np.stack(rig_extrinsics()))).depth[0, :, 0].numpy()
    assert np.isfinite(want).all()
    # each camera's depth varies over its pixels by far more than the node-vs-Predictor tolerance (not saturated)
    assert (want.std(axis=(1, 2)) > 10 * (ATOL + RTOL * np.abs(want).mean())).all(), want.std(axis=(1, 2))
    return want


def test_node_publishes_the_imported_models_depth(ros_domain_id, tmp_path):
    ck = import_small_ddad(tmp_path)
    got = node_depth_of_one_frame(ck, ros_domain_id, tmp_path, IMG_HW, NET_HW)
    want = predictor_depth(ck, IMG_HW)
    for i, cam in enumerate(CAMERAS):
        np.testing.assert_allclose(got[cam], want[i], rtol=RTOL, atol=ATOL, err_msg=cam)


@pytest.mark.timeout(900)  # about 60 s of CPU (node + Predictor); far longer wall time behind other jobs at nice 19
def test_node_runs_an_imported_checkpoint_at_the_papers_config(ros_domain_id, tmp_path):
    """The paper's DDAD config as it is (training/configs/ddad/ddad_surround_fusion.yaml: 384x640, voxel grid
    100x100x20, 50 depth bins, 256 fusion features, six cameras), the original's full-size tensors."""
    cfg = load_config(PAPER_CONFIG, ["model.weights_init=false"])
    m = cfg.model
    assert (cfg.training.height, cfg.training.width) == PAPER_HW
    assert tuple(m.voxel_size) == (100, 100, 20) and m.proj_d_bins == 50 and m.fusion_feat_in_dim == 256
    ck = import_ddad(tmp_path, cfg, original_depth_shapes(m.fusion_feat_in_dim, m.voxel_pre_dim[0], m.proj_d_bins),
                     original_pose_shapes(m.fusion_feat_in_dim, m.voxel_size[2]))
    got = node_depth_of_one_frame(ck, ros_domain_id, tmp_path, PAPER_HW, PAPER_HW)
    want = predictor_depth(ck, PAPER_HW)
    for i, cam in enumerate(CAMERAS):
        np.testing.assert_allclose(got[cam], want[i], rtol=RTOL, atol=ATOL, err_msg=cam)
