"""The paper's released code's training step, built from its own code, for side-by-side timing
(benchmarks/bench_train_step.py --original PATH).

The step is the released trainer's (trainer/vfdepth_trainer.py): zero_grad, VFDepthAlgo.process_batch
(its FusedDepthNet / FusedPoseNet, Pose, ViewRendering and MultiCamLoss), total_loss.backward(), its
Adam's step. Its config is its own YAML (configs/ddad/ddad_surround_fusion.yaml, read by its own
utils.get_config) with the shared keys (image size, grid, depth bins, depth range, loss switches and
weights, learning rate) set to ours, batch 1 and weights_init False.

It runs unmodified, on the CPU. What it imports but does not need here is stood in for at run time, never
copied: tensorboardX, pytorch3d's axis_angle_to_matrix / matrix_to_euler_angles (our Rodrigues and XYZ
Euler functions), its `dataset` package (dgp; the batch is given, no loader is built), torchvision's
resnet18 with a positional `pretrained`; its hard-coded `.cuda()` on the networks is a no-op while it
builds them, and its `prepare_dataset` is skipped.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from pathlib import Path
from typing import Callable, Optional

# files whose presence says "this folder is the released VFDepth code"
RELEASED_FILES = ("models/vfdepth.py", "network/fusion_depthnet.py", "network/fusion_posenet.py",
                  "trainer/vfdepth_trainer.py", "configs/ddad/ddad_surround_fusion.yaml")
# keys of the released config set from ours (both keep the paper's names)
SHARED_KEYS = {
    "model": ("num_layers", "fusion_level", "fusion_feat_in_dim", "use_skips", "voxel_unit_size", "voxel_size",
              "voxel_str_p", "voxel_pre_dim", "proj_d_bins", "proj_d_str", "proj_d_end", "depth_model",
              "pose_model"),
    "training": ("height", "width", "min_depth", "max_depth", "spatio", "spatio_temporal", "intensity_align",
                 "focal_length_scale", "aug_depth", "aug_angle", "learning_rate"),
    "loss": ("disparity_smoothness", "spatio_coeff", "spatio_tempo_coeff", "pose_loss_coeff"),
}


def released_code_problem(root: Optional[Path]) -> Optional[str]:
    """Why `root` is not a checkout of the released VFDepth code (one line), or None when it is."""
    if root is None:
        return "no --original given"
    if not root.is_dir():
        return f"--original {root} is not a folder (pass the root of a checkout of the released VFDepth code)"
    missing = [f for f in RELEASED_FILES if not (root / f).is_file()]
    if missing:
        return (f"--original {root} is not the released VFDepth code: {missing[0]} is missing (pass the folder "
                "holding models/, network/, trainer/ and configs/)")
    return None


def install_training_shims() -> None:
    """The stand-ins listed in the module docstring (idempotent)."""
    import compare_original as co

    from vfdepth_core.losses import rotmat_to_euler_xyz

    co.install_shims()  # tensorboardX, pytorch3d's axis_angle_to_matrix, resnet18(pretrained)
    tr = sys.modules["pytorch3d.transforms"]
    if not hasattr(tr, "matrix_to_euler_angles"):
        def matrix_to_euler_angles(R, convention):
            if convention != "XYZ":
                raise ValueError(f"only the XYZ convention is stood in for, not {convention}")
            return rotmat_to_euler_xyz(R)

        tr.matrix_to_euler_angles = matrix_to_euler_angles
    if "dataset" not in sys.modules:
        ds = types.ModuleType("dataset")

        def construct_dataset(*a, **kw):
            raise RuntimeError("the side-by-side gives the batch itself: no released dataset is built")

        ds.construct_dataset = construct_dataset
        sys.modules["dataset"] = ds


@contextlib.contextmanager
def cuda_is_a_no_op():
    """Module.cuda() returns the module unchanged (the released code calls it on its networks)."""
    import torch

    saved = torch.nn.Module.cuda
    torch.nn.Module.cuda = lambda self, *a, **kw: self
    try:
        yield
    finally:
        torch.nn.Module.cuda = saved


def released_config(root: Path, cfg) -> dict:
    """The released code's own config tree (its YAML via its get_config) with SHARED_KEYS from `cfg`."""
    utils = importlib.import_module("utils")
    with contextlib.redirect_stdout(sys.stderr):  # its get_config prints the experiment name
        ocfg = utils.get_config(str(root / "configs" / "ddad" / "ddad_surround_fusion.yaml"), mode="train")
    for section, keys in SHARED_KEYS.items():
        ours = getattr(cfg, section)
        for k in keys:
            v = getattr(ours, k)
            ocfg[section][k] = list(v) if isinstance(v, tuple) else v
    ocfg["training"]["batch_size"] = 1
    ocfg["training"]["frame_ids"] = list(cfg.training.frame_ids)
    ocfg["model"]["weights_init"] = False  # no ImageNet download; the cost of a step does not depend on it
    ocfg["load"]["pretrain"] = False
    ocfg["data"]["cameras"] = list(cfg.data.cameras)
    ocfg["data"]["num_cams"] = len(cfg.data.cameras)
    return ocfg


def released_inputs(batch: dict, frame_ids) -> dict:
    """Our collated batch (image (B, F, N, 3, H, W), K (B, N, 3, 3), T_ego_cam, mask) as the released
    loader's dict: colour per frame, K / inv_K at scales 0 and 3 (rows 0-1 divided by 2^s), extrinsics."""
    import torch

    inputs = {}
    for i, f in enumerate(frame_ids):
        inputs[("color", f, 0)] = batch["image"][:, i].clone()
        inputs[("color_aug", f, 0)] = batch["image_aug"][:, i].clone()
    K = batch["K"].double()
    for s in (0, 3):
        K4 = torch.eye(4, dtype=torch.float64).repeat(*K.shape[:2], 1, 1)
        K4[..., :3, :3] = K
        K4[..., :2, :] /= 2 ** s
        inputs[("K", s)] = K4.float()
        inputs[("inv_K", s)] = torch.linalg.pinv(K4).float()
    inputs["extrinsics"] = batch["T_ego_cam"].clone().float()
    inputs["mask"] = batch["mask"].clone().float()
    return inputs


def released_step(root: Path, cfg, batch: dict) -> Callable[[], float]:
    """One released training step on `batch` as a closure (returns the total loss); `root` is checked."""
    problem = released_code_problem(root)
    if problem:
        raise ValueError(problem)
    root = root.resolve()
    install_training_shims()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    vfdepth = importlib.import_module("models.vfdepth")
    if not str(Path(vfdepth.__file__).resolve()).startswith(str(root)):
        raise ValueError(f"models.vfdepth came from {vfdepth.__file__}, not from {root}: run in a fresh process")

    class Released(vfdepth.VFDepthAlgo):
        def prepare_dataset(self, cfg, rank):  # the batch is given
            pass

    with cuda_is_a_no_op(), contextlib.redirect_stdout(sys.stderr):
        algo = Released(released_config(root, cfg), "cpu")
    algo.set_train()
    frame_ids = list(cfg.training.frame_ids)

    def step() -> float:
        algo.optimizer.zero_grad(set_to_none=True)
        _, losses = algo.process_batch(released_inputs(batch, frame_ids), "cpu")
        losses["total_loss"].backward()
        algo.optimizer.step()
        return float(losses["total_loss"].detach())

    return step
