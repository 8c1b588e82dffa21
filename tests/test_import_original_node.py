"""The node runs a checkpoint imported from the released VFDepth code (README: "To run the paper's released
weights").

A weights folder with the original's module names and shapes (tests/test_import_original.py, no download)
for the paper's six DDAD cameras (its config, with a small voxel grid, narrow fusion features and a
64x96 network so that a frame takes seconds on a shared CPU; the paper's 384x640 only scales the same
path, and Predictor runs an imported config at 384x640 in test_import_original.py);
`vfdepth import-original` converts it, the project's launcher starts the node on the checkpoint
(the graph of `vfdepth launch --camera-set ddad --checkpoint ...`), and the depth it publishes must be the
imported model's (Predictor on the same images, calibration and extrinsics).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("rclpy", reason="rclpy is not installed")
pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs is not built into this environment (tools/build_tf2_msgs.py)")


from ros_helpers import CAMERAS, IMG_HW, frame_images, graph_with_rig, rig_extrinsics, rig_K, spin_until  # noqa: E402
from tests.test_import_original import original_depth_shapes, original_pose_shapes  # noqa: E402
from vfdepth_core.checkpoint import load_checkpoint  # noqa: E402
from vfdepth_core.config import load_config, save_config  # noqa: E402
from vfdepth_ros import conversions as cv  # noqa: E402
from vfdepth_ros import graph as G  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]
T0 = 1_000 * 1_000_000_000
NET_HW = (64, 96)
# the paper's DDAD config (its cameras) with the small sizes the state dicts of test_import_original use
SMALL_MODEL = ["model.voxel_size=[20,20,8]", "model.voxel_unit_size=[4.0,4.0,2.0]", "model.proj_d_bins=4",
               "model.fusion_feat_in_dim=32", "model.voxel_pre_dim=[8]", "model.weights_init=false",
               f"training.height={NET_HW[0]}", f"training.width={NET_HW[1]}"]


def plausible_state(shapes: dict, seed: int) -> dict:
    """Tensors with the original's names and shapes whose outputs stay finite: small weights, unit BN variance."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in shapes.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(7)
        elif k.endswith("running_var") or (k.endswith(".weight") and len(shape) == 1):
            out[k] = 1.0 + 0.1 * torch.rand(shape, generator=g)
        else:
            out[k] = 0.05 * torch.randn(shape, generator=g)
    return out


def import_small_ddad(tmp_path):
    """Write an original weights folder, import it with the CLI; returns the checkpoint path."""
    from vfdepth_ros import cli

    cfg = load_config(None, SMALL_MODEL)
    assert cfg.data.cameras == CAMERAS and cfg.data.dataset == "ddad"
    src = tmp_path / "weights_19"
    src.mkdir()
    torch.save(plausible_state(original_depth_shapes(), 1), src / "depth_net.pth")
    torch.save({"module." + k: v for k, v in plausible_state(original_pose_shapes(), 2).items()}, src / "pose_net.pth")
    cfg_file = save_config(cfg, tmp_path / "ddad_small.yaml")
    ck = tmp_path / "ddad_vfdepth.pt"
    assert cli.main(["import-original", str(src), "--config", str(cfg_file), "-o", str(ck)]) == 0
    return ck


def test_node_publishes_the_imported_models_depth(ros_domain_id, tmp_path):
    from vfdepth_core.inference import Predictor

    ck = import_small_ddad(tmp_path)
    saved = load_checkpoint(ck)["config"]["model"]
    assert saved["overlap_pair_order"] == "index_groups" and saved["voxel_border_margin_px"] == 0.0
    graph = G.surround_graph(camera_set="ddad", checkpoint=str(ck),
                             overrides={"device": "cpu", "camera_timeout_s": 600.0, "max_pose_gap_s": 600.0,
                                        "publish_virtual": False, "publish_points": False},
                             respawn=False)
    with graph_with_rig(graph, ros_domain_id, tmp_path / "graph.log") as g:
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
        assert d["values"]["network_size"] == f"{NET_HW[1]}x{NET_HW[0]}", d
        for i in range(len(CAMERAS)):
            rig.info_pubs[i].publish(rig.info_msg(i, T0))
        sent = rig.publish_frame(0, T0)
        spin_until(ex, lambda: alive() and all(out.with_stamp(f"{c}/depth", T0) for c in CAMERAS), 600,
                   "the depth of the first frame from the imported checkpoint")

    pred = Predictor.from_checkpoint(ck, device="cpu")
    imgs = torch.from_numpy(np.stack(frame_images(0))).permute(0, 3, 1, 2).contiguous()  # (6, 3, H, W) uint8
    want = pred.predict(imgs, torch.from_numpy(rig_K(IMG_HW)).expand(6, 3, 3),
                        torch.from_numpy(np.stack(rig_extrinsics()))).depth[0, :, 0].numpy()
    assert np.isfinite(want).all() and want.std() > 0
    for i, cam in enumerate(CAMERAS):
        (msg,) = out.with_stamp(f"{cam}/depth", T0)
        assert msg.header.frame_id == sent[cam].header.frame_id == cam
        assert msg.encoding == "32FC1" and (msg.height, msg.width) == NET_HW
        np.testing.assert_allclose(cv.image_to_numpy(msg), want[i], rtol=1e-4, atol=1e-4, err_msg=cam)
