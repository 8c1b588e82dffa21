"""Refuse a run early with one clear message: a data path of the wrong dataset kind, an empty split, a
checkpoint whose architecture differs from the config's."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

from vfdepth_core.config import Config, ConfigError, config_to_dict
from vfdepth_core.datasets.common import DatasetError

# Keys that change the network's parameters or the meaning of its inputs/outputs.
ARCH_KEYS = {
    "model": ("num_layers", "depth_model", "pose_model", "fusion_level", "fusion_feat_in_dim", "use_skips",
              "voxel_size", "voxel_pre_dim", "proj_d_bins",
              # conventions an imported checkpoint of the released code needs (vfdepth import-original)
              "voxel_center_offset", "voxel_depth_scale", "overlap_pair_order", "feature_intrinsics", "mask_resize",
              "voxel_border_margin_px"),
    "data": ("cameras",),
}


def incompatible_keys(saved: dict, current: Config) -> List[str]:
    """Names ('model.voxel_size: 20x.. vs ..') of architecture keys that differ between a checkpoint's
    saved config dict and `current`."""
    now = config_to_dict(current)
    diffs = []
    for section, keys in ARCH_KEYS.items():
        for k in keys:
            a = (saved.get(section) or {}).get(k)
            b = now[section][k]
            if section == "data" and k == "cameras":
                a = len(a) if a is not None else None
                b = len(b)
            if a is not None and _norm(a) != _norm(b):
                diffs.append(f"{section}.{k}: checkpoint {a!r} vs config {b!r}")
    return diffs


def _norm(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def check_checkpoint_compatible(saved_cfg: Optional[dict], current: Config, path: str) -> None:
    """Raise ConfigError naming the differing keys when a checkpoint cannot load into `current`'s model."""
    if not saved_cfg:
        return
    diffs = incompatible_keys(saved_cfg, current)
    if diffs:
        raise ConfigError(
            f"checkpoint {path} was trained with an incompatible config ({'; '.join(diffs)}); "
            f"use the checkpoint's config or a matching --config_file"
        )


def check_dataset_kind(data_path: str, dataset: str, config_path: str = "<config>") -> None:
    """Raise DatasetError when `data.data_path` is missing or plainly belongs to another dataset kind."""
    p = Path(data_path)
    if not p.exists():
        raise DatasetError(f"data.data_path {p} does not exist (config {config_path}); point it at the "
                           f"dataset or override it with --set data.data_path=...")
    if dataset in ("ddad", "synthetic"):
        if p.is_dir():
            if any(p.glob("v1.0-*")):
                raise DatasetError(f"data.data_path {p} is a nuScenes dataroot but data.dataset is '{dataset}' "
                                   f"(config {config_path}); use a nuScenes config or set data.dataset=nuscenes")
            raise DatasetError(f"data.data_path {p} is a folder; data.dataset '{dataset}' needs the DGP "
                               f"dataset JSON (e.g. .../ddad.json)")
    elif dataset == "nuscenes":
        if p.is_file():
            raise DatasetError(f"data.data_path {p} is a file but data.dataset is 'nuscenes' (config "
                               f"{config_path}); a DDAD/synthetic ddad.json needs a ddad or synthetic config")
        if not any(p.glob("v1.0-*")):
            raise DatasetError(f"data.data_path {p} holds no nuScenes tables (v1.0-*/) (config {config_path})")


def check_nonempty(ds, split: str, data_path: str) -> None:
    """Raise DatasetError when the `split` dataset `ds` has no samples."""
    if len(ds) == 0:
        raise DatasetError(f"the {split} split of {data_path} has no samples (check data.data_path and the "
                           f"dataset's scene splits)")
