"""ONNX export of the inference graph (depth, ego motion, virtual views) at a fixed rig and size.

    from vfdepth_core.export import export_onnx
    export_onnx(model, "model.onnx", K, T_ego_cam, virtual=(K_v, T_v))     # K at the network resolution
    pred = OnnxPredictor("model.onnx")                                      # vfdepth_core.inference

The rig look-ups (voxel -> pixel corners, ray samples) are computed once from the given calibration and
become constants of the graph; 5-D grid_sample and embedding_bag are replaced by fixed-width gathers
(Gather + Mul + Add over the 4 bilinear / 8 trilinear corners), which onnxruntime runs on any provider.
Graph inputs: ``images`` and ``prev_images`` (1, N, 3, H, W) float in [0, 1] at the network resolution.
Outputs: ``disp`` (1, N, 1, H, W), ``axis_angle`` (1, 3), ``translation`` (1, 3) (the reference camera's
motion T_ccur_cprev, as :meth:`VFDepth.predict_pose` gives before the transform), and ``virtual_disp``
(1, V, 1, H, W) when virtual views are baked in. The config, calibration and output names are stored in
the model's metadata (``vfdepth``, JSON).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from vfdepth_core.config import config_to_dict
from vfdepth_core.model import VFDepth
from vfdepth_core.nn.fusion import dense_fusion_tables

logger = logging.getLogger(__name__)

OPSET = 17


class InferenceGraph(nn.Module):
    """VFDepth inference with the rig look-ups frozen (batch 1); forward(images, prev_images)."""

    def __init__(self, model: VFDepth, K: Tensor, T_ego_cam: Tensor, mask: Optional[Tensor] = None,
                 virtual: Optional[Tuple[Tensor, Tensor]] = None):
        super().__init__()
        if not (model.fused_depth and model.fused_pose):
            from vfdepth_core.config import ConfigError

            raise ConfigError("ONNX export covers the VFDepth fusion model; this checkpoint is the per-camera "
                              "'fsm' baseline (run it with the PyTorch Predictor)")
        self.model = model
        hw = (model.height, model.width)
        self.lk = model.voxel_lookup(K, T_ego_cam, mask, hw)
        self.tables = dense_fusion_tables(self.lk)
        self.rays = [model.ray_lookup(K, T_ego_cam, hw)]
        if virtual is not None:
            self.rays.append(model.ray_lookup(virtual[0], virtual[1], hw))
        self.num_cams = K.shape[1]

    def forward(self, images: Tensor, prev_images: Tensor):
        dn = self.model.depth_net
        feats, skips = dn.encode_with_skips(images)
        volume = dn.fusion.forward_dense(feats, self.lk, self.tables)
        disp = dn.decode_rays(volume, self.rays, dense=True, skips=skips)
        axis_angle, translation = self.model.pose_net(prev_images, images, self.lk, dense_tables=self.tables)
        out = (disp[:, :self.num_cams], axis_angle, translation)
        if len(self.rays) > 1:
            out = out + (disp[:, self.num_cams:],)
        return out


def export_onnx(model: VFDepth, path, K: Tensor, T_ego_cam: Tensor, mask: Optional[Tensor] = None,
                virtual: Optional[Tuple[Tensor, Tensor]] = None, opset: int = OPSET) -> Path:
    """Export `model` for the rig K (1, N, 3, 3) at the network resolution, T_ego_cam (1, N, 4, 4), optional
    mask (1, N, 1, H, W) and virtual views (K_v (1, V, 3, 3), T_v (1, V, 4, 4)). Returns the path."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    was_cl = model.channels_last
    model.set_channels_last(False)
    K, T = K.float().cpu(), T_ego_cam.float().cpu()
    virt = (virtual[0].float().cpu(), virtual[1].float().cpu()) if virtual is not None else None
    graph = InferenceGraph(model, K, T, mask.float().cpu() if mask is not None else None, virt).eval()
    N = K.shape[1]
    H, W = model.height, model.width
    x = torch.rand(1, N, 3, H, W)
    names = ["disp", "axis_angle", "translation"] + (["virtual_disp"] if virt is not None else [])
    try:
        with torch.no_grad():
            torch.onnx.export(graph, (x, x), str(path), input_names=["images", "prev_images"], output_names=names,
                              opset_version=opset, dynamo=False, do_constant_folding=True)
    finally:
        model.set_channels_last(was_cl)
    meta = {"config": config_to_dict(model.cfg), "K": K[0].tolist(), "T_ego_cam": T[0].tolist(),
            "virtual_K": virt[0][0].tolist() if virt else None, "virtual_T_ego_cam": virt[1][0].tolist() if virt else None,
            "outputs": names, "height": H, "width": W}
    m = onnx.load(str(path))
    entry = m.metadata_props.add()
    entry.key, entry.value = "vfdepth", json.dumps(meta)
    onnx.save(m, str(path))
    logger.info("exported ONNX inference graph to %s (%d cameras, %dx%d, %d virtual views)", path, N, W, H,
                0 if virt is None else virt[0].shape[1])
    return path


__all__ = ["InferenceGraph", "export_onnx"]
