"""Import checkpoints of the released VFDepth code (Kim et al., NeurIPS 2022) into a vfdepth checkpoint.

The released code saves one state dict per network in a weights folder, ``weights_<epoch>/depth_net.pth``
and ``pose_net.pth`` (``module.``-prefixed when trained with DDP). :func:`import_original` maps their module
names and tensor layouts onto :class:`vfdepth_core.model.VFDepth`, sets the ``model.*`` compatibility keys
(:data:`COMPAT_KEYS`) so that the imported model reproduces the original's outputs, and writes a checkpoint
that ``Predictor``/the node, ``training/eval.py`` and ``training/train.py --resume`` load.

    vfdepth import-original weights_19/ --config ddad_surround_fusion.yaml -o ddad_vfdepth.pt

Layouts that differ beyond names: the fusion MLPs are 1x1 Conv1d there (weight (O, I, 1)) and Linear here
(O, I); the pose network's bird's-eye view is (y, x) there and (x, y) here, so its 3x3 kernels (BEV
``reduce_dim`` and the pose head's two strided convs) are transposed, which is exact (a convolution of the
transposed image with the transposed kernel is the transposed result, and the head averages over space).
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import torch
from torch import Tensor

from vfdepth_core.checkpoint import CheckpointError, save_checkpoint
from vfdepth_core.config import Config, load_config, save_config, with_overrides

logger = logging.getLogger(__name__)

NETWORK_FILES = {"depth_net": "depth_net.pth", "pose_net": "pose_net.pth"}


def compat_overrides(cfg: Config) -> List[str]:
    """The ``model.*`` overrides with which the project reproduces the released code (training/README.md)."""
    return ["model.voxel_center_offset=0.0", f"model.voxel_depth_scale={float(cfg.model.voxel_size[0])}",
            "model.overlap_pair_order=index_groups", "model.feature_intrinsics=plain", "model.mask_resize=bilinear",
            "model.voxel_border_margin_px=0.0"]


COMPAT_KEYS = ("voxel_center_offset", "voxel_depth_scale", "overlap_pair_order", "feature_intrinsics", "mask_resize",
               "voxel_border_margin_px")


class OriginalImportError(CheckpointError):
    """An original checkpoint cannot be mapped; the message names the file and the keys."""


def _same(x: Tensor) -> Tensor:
    return x


def _squeeze_conv1d(x: Tensor) -> Tensor:
    """Conv1d kernel-size-1 weight (O, I, 1) -> Linear weight (O, I)."""
    return x[..., 0] if x.dim() == 3 and x.shape[-1] == 1 else x


def transpose_kernel(x: Tensor) -> Tensor:
    """Conv2d weight (O, I, kh, kw) -> (O, I, kw, kh): the same filter on a transposed image."""
    return x.transpose(-1, -2).contiguous() if x.dim() == 4 else x


Rule = Tuple[str, str, Callable[[Tensor], Tensor]]

# (pattern on the original key without 'module.', replacement, tensor transform), first match wins.
DEPTH_RULES: Sequence[Rule] = (
    (r"encoder\.encoder\.(?!fc\.)(.+)", r"depth_net.encoder.\1", _same),
    (r"conv1x1\.0\.(weight|bias)", r"depth_net.aggregate.conv1x1.0.\1", _same),
    (r"fusion_net\.conv_overlap\.0\.(weight|bias)", r"depth_net.fusion.conv_overlap.0.\1", _squeeze_conv1d),
    (r"fusion_net\.conv_non_overlap\.0\.(weight|bias)", r"depth_net.fusion.conv_single.0.\1", _squeeze_conv1d),
    (r"fusion_net\.reduce_dim\.0\.(weight|bias)", r"depth_net.reduce_dim.0.0.\1", _same),
    (r"fusion_net\.reduce_dim\.3\.(weight|bias)", r"depth_net.reduce_dim.1.0.\1", _same),
    # decoder.convs in order (upconv 2,0), (2,1), (1,0), (1,1), (0,0), (0,1), (dispconv 0)
    *((rf"decoder\.decoder\.{k}\.0\.(weight|bias)", rf"depth_net.decoder.stages.{k // 2}.{k % 2}.0.\1", _same)
      for k in range(6)),
    (r"decoder\.decoder\.6\.0\.(weight|bias)", r"depth_net.decoder.dispconv.0.\1", _same),
)

POSE_RULES: Sequence[Rule] = (
    (r"encoder\.encoder\.(?!fc\.)(.+)", r"pose_net.encoder.\1", _same),
    (r"conv1x1\.0\.(weight|bias)", r"pose_net.aggregate.conv1x1.0.\1", _same),
    (r"fusion_net\.reduce_dim\.0\.(weight|bias)", r"pose_net.reduce_dim.0.0.\1", transpose_kernel),
    (r"fusion_net\.reduce_dim\.3\.(weight|bias)", r"pose_net.reduce_dim.1.0.\1", transpose_kernel),
    (r"pose_decoder\.net\.0\.(weight|bias)", r"pose_net.pose_head.squeeze.\1", _same),
    (r"pose_decoder\.net\.1\.(weight|bias)", r"pose_net.pose_head.pose0.\1", transpose_kernel),
    (r"pose_decoder\.net\.2\.(weight|bias)", r"pose_net.pose_head.pose1.\1", transpose_kernel),
    (r"pose_decoder\.net\.3\.(weight|bias)", r"pose_net.pose_head.pose2.\1", _same),
)

RULES = {"depth_net": DEPTH_RULES, "pose_net": POSE_RULES}


def _strip_ddp(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key


def map_state_dict(network: str, original: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], List[str]]:
    """An original network's state dict ('depth_net' or 'pose_net') -> (this project's keys and layouts,
    the original keys that no rule maps)."""
    out: Dict[str, Tensor] = {}
    unmapped: List[str] = []
    for key, value in original.items():
        k = _strip_ddp(key)
        for pattern, repl, fn in RULES[network]:
            if re.fullmatch(pattern, k):
                out[re.sub(pattern, repl, k)] = fn(value)
                break
        else:
            unmapped.append(key)
    return out, unmapped


def _listing(names: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_mapped(mapped: Dict[str, Tensor], expected: Dict[str, Tensor], prefixes: Sequence[str], source: str) -> None:
    """Raise OriginalImportError naming the missing keys and shape mismatches of the networks in `prefixes`."""
    want = {k: v for k, v in expected.items() if k.split(".")[0] in prefixes}
    missing = [k for k in want if k not in mapped]
    extra = [k for k in mapped if k not in want]
    shapes = [f"{k} {tuple(mapped[k].shape)} vs {tuple(want[k].shape)}" for k in want
              if k in mapped and tuple(mapped[k].shape) != tuple(want[k].shape)]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensor(s): {_listing(missing)}")
    if extra:
        problems.append(f"unexpected tensor(s): {_listing(extra)}")
    if shapes:
        problems.append(f"shape mismatch (checkpoint vs config): {_listing(shapes, 4)}")
    if problems:
        raise OriginalImportError(f"{source}: does not fit the config's model ({'; '.join(problems)}); pass the "
                                  "config the checkpoint was trained with (model.voxel_size, proj_d_bins, use_skips, "
                                  "fusion_feat_in_dim, data.cameras)")


def read_original(path: Path) -> Dict[str, Dict[str, Tensor]]:
    """The networks found at `path`: a weights folder (depth_net.pth, pose_net.pth) or one of those files."""
    if path.is_dir():
        files = {n: path / f for n, f in NETWORK_FILES.items() if (path / f).is_file()}
        if not files:
            raise OriginalImportError(f"{path}: no {' or '.join(NETWORK_FILES.values())} in this folder (give the "
                                      "original's weights_<epoch> folder)")
    elif path.is_file():
        name = next((n for n, f in NETWORK_FILES.items() if path.name == f), None)
        if name is None:
            raise OriginalImportError(f"{path}: expected a file named {' or '.join(NETWORK_FILES.values())} or "
                                      "the weights folder holding them")
        files = {name: path}
    else:
        raise OriginalImportError(f"{path}: not found (give the original's weights_<epoch> folder or its .pth files)")
    out = {}
    for name, f in files.items():
        try:
            state = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for truncated/foreign files
            raise OriginalImportError(f"{f}: not a readable PyTorch state dict ({type(exc).__name__})") from None
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()) or not state:
            raise OriginalImportError(f"{f}: not a state dict of tensors (the original saves model.state_dict())")
        out[name] = state
    return out


def compat_config(cfg: Config) -> Config:
    """`cfg` with the released code's conventions (:func:`compat_overrides`)."""
    if cfg.model.depth_model != "fusion" or cfg.model.pose_model != "fusion":
        raise OriginalImportError("only the VFDepth fusion networks can be imported (model.depth_model and "
                                  "pose_model 'fusion'); the per-camera 'fsm' baseline is not supported")
    return with_overrides(cfg, compat_overrides(cfg))


def import_original(path: str | Path, cfg: Config, depth_only: bool = False):
    """Build a :class:`VFDepth` with the original weights at `path` and the compatibility keys set.

    Returns (model, compat config). Raises OriginalImportError naming unmapped keys, missing tensors and
    shape mismatches. depth_only: a folder without pose_net.pth is accepted (the pose net keeps random
    weights, so odometry is meaningless).
    """
    from vfdepth_core.model import VFDepth

    path = Path(path)
    cfg = compat_config(cfg)
    networks = read_original(path)
    needed = ("depth_net",) if depth_only else ("depth_net", "pose_net")
    absent = [NETWORK_FILES[n] for n in needed if n not in networks]
    if absent:
        raise OriginalImportError(f"{path}: {', '.join(absent)} not found (both networks are needed for depth and "
                                  "odometry; pass --depth-only to import the depth network alone)")
    model = VFDepth(cfg, load_imagenet=False)
    expected = model.state_dict()
    mapped: Dict[str, Tensor] = {}
    for name, state in networks.items():
        m, unmapped = map_state_dict(name, state)
        if unmapped:
            raise OriginalImportError(f"{path / NETWORK_FILES[name] if path.is_dir() else path}: "
                                      f"{len(unmapped)} key(s) of no known VFDepth module: {_listing(unmapped)} "
                                      f"(is it the original's {name}.pth of the fusion model?)")
        check_mapped(m, expected, (name,), str(path))
        mapped.update(m)
    if depth_only and "pose_net" not in networks:
        logger.warning("%s: no pose_net.pth, the pose network keeps random weights (odometry is meaningless)", path)
        mapped.update({k: v for k, v in expected.items() if k.startswith("pose_net.")})
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in mapped.items()}, strict=True)
    return model, cfg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="the original's weights folder (weights_<epoch>/ with depth_net.pth and "
                                           "pose_net.pth) or one of those files")
    parser.add_argument("--config", required=True, help="the YAML config the original was trained with (its own "
                                                        "config files load as they are)")
    parser.add_argument("-o", "--output", required=True, help="the vfdepth checkpoint to write (.pt); its resolved "
                                                              "config goes next to it as <output>.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="config override, e.g. training.height=384 (repeatable)")
    parser.add_argument("--depth-only", action="store_true", help="accept a folder without pose_net.pth")


def main(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.set)
    model, cfg = import_original(args.checkpoint, cfg, depth_only=args.depth_only)
    out = Path(args.output)
    save_checkpoint(out, model, cfg, extra={"imported_from": str(Path(args.checkpoint).resolve())})
    yaml_path = save_config(cfg, out.with_suffix(".yaml"))
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {out} ({n:,} parameters, config {yaml_path}); compatibility keys: "
          + ", ".join(f"model.{k}={getattr(cfg.model, k)}" for k in COMPAT_KEYS))
    return 0


__all__ = ["COMPAT_KEYS", "OriginalImportError", "compat_config", "compat_overrides", "import_original",
           "map_state_dict", "read_original", "transpose_kernel"]
