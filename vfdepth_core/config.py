"""Experiment configuration: YAML files into nested frozen dataclasses.

The key names are the ones of the paper's released configs (``voxel_size``, ``proj_d_bins``,
``spatio_coeff``, ...), so its users can bring their YAML files as they are. A few keys go beyond the
paper; each says so in its comment.

    cfg = load_config("training/configs/ddad/ddad_surround_fusion.yaml",
                      overrides=["training.learning_rate=2e-4"])
    cfg.model.voxel_size        # (100, 100, 20)
    save_config(cfg, run_dir / "config.yaml")

Unknown keys, wrong types and unreadable files raise :class:`ConfigError`, whose one-line message
names the file and the key.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Optional, Tuple

import yaml

logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A user mistake in a config file or override; the message names the file and key."""


@dataclass(frozen=True)
class DDPConfig:
    ddp_enable: bool = False
    world_size: int = 1
    gpus: Tuple[int, ...] = (0,)


@dataclass(frozen=True)
class ModelConfig:
    num_layers: int = 18
    # The paper: True = both ResNet-18 encoders start from ImageNet (torchvision's ResNet18_Weights.IMAGENET1K_V1,
    # read from / downloaded once into $TORCH_HOME/hub/checkpoints; the pose net's 6-channel conv1 gets the
    # kernel repeated and halved). False = random init (the synthetic configs, the demo and the tests).
    weights_init: bool = True
    # Beyond the paper: a local ImageNet ResNet-18 state-dict file read instead of torchvision's cache.
    weights_path: Optional[str] = None
    # Beyond the paper: start the disparity head so that its first predictions sit near this depth (m)
    # instead of the sigmoid's midpoint (about 3 m at the paper's range, under 2 m for side cameras at
    # 192x320). None = the paper's initialisation.
    init_depth_m: Optional[float] = None
    # The pose head's output scale for translation (metres per unit of its last conv). The paper: 0.01, as
    # for rotation (radians), so a random-init head starts near no motion and must grow its output ~100x to
    # reach ~1 m per frame. Beyond the paper, a larger value lets a short run learn the metric motion.
    pose_translation_scale: float = 0.01
    # This project's guard (not in the paper's equations): each translation component of the fused pose net
    # is clamped to +-this many metres; 0 = no clamp. A component beyond it gets no gradient, so a pose net
    # that overshoots there during training stays there (measured on the varied world, training/README.md).
    pose_translation_limit_m: float = 4.0
    # Beyond the paper: refine the pose network's motion at inference (Predictor, node, motion evaluation;
    # training is unchanged) by direct photometric alignment of the previous frame's images onto the current
    # ones through the current frame's predicted depth (vfdepth_core.pose_refine: robust Levenberg-Marquardt
    # on the six motion parameters, coarse to fine, on images at most pose_refine_max_width wide).
    # 0 = the paper: the pose network's motion as it is. Iterations per pyramid level.
    pose_refine_iterations: int = 0
    pose_refine_levels: int = 3
    pose_refine_max_width: int = 320
    depth_model: str = "fusion"  # 'fusion' (VFDepth) or 'fsm' (per-camera baseline)
    pose_model: str = "fusion"
    fusion_level: int = 2
    fusion_feat_in_dim: int = 256
    # The paper's decoder has no skips (False). True, beyond the paper: its first two stages also take the
    # encoder's 1/4- and 1/2-scale features (virtual views, which have no image, get zeros there).
    use_skips: bool = False
    voxel_unit_size: Tuple[float, float, float] = (1.0, 1.0, 1.5)
    voxel_size: Tuple[int, int, int] = (100, 100, 20)
    voxel_str_p: Tuple[float, float, float] = (-50.0, -50.0, -15.0)
    voxel_pre_dim: Tuple[int, ...] = (64,)
    proj_d_bins: int = 50
    proj_d_str: float = 2.0
    proj_d_end: float = 50.0
    # Compatibility with the released code (training/README.md, "Importing the paper's weights"). Each
    # default is this project's convention, kept for new trainings because it is geometrically consistent;
    # `vfdepth import-original` writes the released code's value, with which an imported checkpoint
    # reproduces the original's outputs.
    # Voxel i's centre sits at voxel_str_p + (i + voxel_center_offset) * voxel_unit_size. 0.5: voxel_str_p is
    # the grid's corner, as its name says; the released code: 0.0 (its first centre on voxel_str_p).
    voxel_center_offset: float = 0.5
    # The voxel depth channel is camera-frame depth (m) / voxel_depth_scale. 100 m: a fixed physical scale;
    # the released code divides by voxel_size[0] (a voxel count: 100 at its DDAD config, so the same there).
    voxel_depth_scale: float = 100.0
    # Which camera of a two-camera voxel fills the overlap MLP's first input slot. 'rig': the right-hand
    # camera of the pair (from the calibration, independent of how cameras are listed); 'index_groups': the
    # released code's fixed groups by list position ((0, 3, 4) first, (1, 2, 5) second; (0) / (1, 2) for
    # three cameras), where two cameras of one group are summed into one slot.
    overlap_pair_order: str = "rig"
    # Intrinsics of the 1/8-scale features: 'half_pixel' (c' = (c + 0.5) s - 0.5, consistent with the
    # integer pixel centres of every grid here) or 'plain' (c' = c s, the released code).
    feature_intrinsics: str = "half_pixel"
    # Self-occlusion mask down to the 1/8 feature grid: 'area' (the fraction of valid pixels) or 'bilinear'
    # (align_corners=True, the released code).
    mask_resize: str = "area"
    # A voxel whose centre projects up to this many pixels outside the feature map (h x w, pixel centres at
    # 0..w-1) still counts as seen by that camera. 1e-3: absorbs round-off, so a voxel on the border is
    # seen whatever the last bit; the released code: 0.0 (it tests normalised coordinates against +-1).
    voxel_border_margin_px: float = 1e-3


# The datasets' camera sets, named once here (the sensor names lower-cased; the synthetic rigs use them too),
# in the paper's neighbour-ring order: front, front-left, front-right, back-left, back-right, back.
DDAD_CAMERAS: Tuple[str, ...] = ("camera_01", "camera_05", "camera_06", "camera_07", "camera_08", "camera_09")
NUSCENES_CAMERAS: Tuple[str, ...] = ("cam_front", "cam_front_left", "cam_front_right", "cam_back_left",
                                     "cam_back_right", "cam_back")


@dataclass(frozen=True)
class DataConfig:
    data_path: str = "./input_data/DDAD/ddad_train_val/ddad.json"
    log_dir: str = "./results/"
    dataset: str = "ddad"  # 'ddad', 'nuscenes' or 'synthetic'
    back_context: int = 1
    forward_context: int = 1
    depth_type: str = "lidar"
    cameras: Tuple[str, ...] = DDAD_CAMERAS
    train_requirements: Tuple[str, ...] = ("gt_pose", "mask")
    val_requirements: Tuple[str, ...] = ("gt_pose", "gt_depth", "mask")
    # Beyond the paper: dataset facts that the paper hard-codes.
    # Neighbour cameras per camera (indices into `cameras`) for the spatial losses; empty = the
    # paper's six-camera ring (front, front-left, front-right, back-left, back-right, back).
    neighbors: Tuple[Tuple[int, ...], ...] = ()
    mask_path: Optional[str] = None  # folder of self-occlusion mask PNGs (the paper's ddad_mask layout)
    version: str = "v1.0-trainval"  # nuScenes table version
    train_split: Optional[str] = None  # text file of scene names/indices; None = dataset default
    val_split: Optional[str] = None
    # Beyond the paper: the folder for cached projected LIDAR depth (a subfolder per dataset, keyed by its
    # absolute path and settings); None = $XDG_CACHE_HOME/vfdepth/depth_gt (~/.cache/...). Never the dataset.
    gt_cache: Optional[str] = None
    # How LIDAR becomes ground-truth depth at network size. 'paper': projected at the image's own size with
    # the camera's K, pixel = integer part of (u, v), the last point written wins; then every point moved to
    # pixel int(row * H / H0), int(col * W / W0), the last one wins (dgp's generate_depth_map + packnet's
    # resize_depth_preserve). 'nearest' (beyond the paper): projected at network size with the scaled K,
    # nearest pixel centre, the nearest point wins.
    gt_projection: str = "paper"


@dataclass(frozen=True)
class TrainingConfig:
    height: int = 384
    width: int = 640
    scales: Tuple[int, ...] = (0,)
    frame_ids: Tuple[int, ...] = (0, -1, 1)
    batch_size: int = 2
    num_workers: int = 8
    learning_rate: float = 1e-4
    num_epochs: int = 20
    scheduler_step_size: int = 15
    min_depth: float = 1.5
    max_depth: float = 200.0
    spatio: bool = True
    spatio_temporal: bool = True
    intensity_align: bool = True
    focal_length_scale: float = 300.0
    aug_depth: bool = False
    aug_angle: Tuple[float, float, float] = (15.0, 15.0, 40.0)  # roll, pitch, yaw in DEGREES
    # Beyond the paper:
    color_jitter: Tuple[float, float, float, float] = (0.2, 0.2, 0.2, 0.05)
    seed: int = 0
    max_steps: Optional[int] = None  # stop after this many optimizer steps (benchmarks, smoke runs)
    max_minutes: Optional[float] = None  # stop after this much wall time, saving a checkpoint
    amp: str = "none"  # 'none', 'bf16' (CUDA and CPU) or 'fp16' (CUDA; fp32 on a CPU) autocast of the network
    # Accepted so the paper's baseline configs load as they are (they put it under training); the
    # eval section's syn_visualize is the one that is used.
    syn_visualize: bool = False
    # Training loop (beyond the paper): abort after this many consecutive non-finite losses (each
    # such step is skipped without an optimizer update); depth metrics on the val split every this
    # many epochs (0 = never).
    max_bad_steps: int = 20
    val_every_epochs: int = 1
    val_every_steps: Optional[int] = None  # also every this many steps (learning curves)
    checkpoint_minutes: float = 10.0  # rewrite <run>/checkpoints/latest.pt at least this often
    # Learning-rate schedule: 'step' (the paper: StepLR, x0.1 every scheduler_step_size epochs) or, beyond
    # the paper, 'linear': from learning_rate down to learning_rate * lr_final_fraction over the run's
    # budget (max_minutes of training time, counted across resumes, else max_steps, else all epochs), for
    # time-bounded runs that never reach the paper's epoch 15.
    lr_schedule: str = "step"
    lr_final_fraction: float = 0.05
    # Beyond the paper: keep an exponential moving average of the weights with this decay (0 = off). The
    # checkpoint's "model" is then the average (what eval.py, the node and Predictor load) and
    # "model_train" the optimizer's weights (what --resume continues); validation scores the average.
    ema_decay: float = 0.0
    # Beyond the paper (0 = off, the paper): clip the gradient's global L2 norm to this value before each
    # optimizer step. The step's norm (before clipping) is logged either way (train_log.jsonl 'grad_norm').
    grad_clip_norm: float = 0.0
    # Beyond the paper (0 = off, the paper): ramp the learning rate linearly from 1/N of its value up to it
    # over the first N optimizer steps, on top of lr_schedule. Adam's first steps move every weight by about
    # the learning rate whatever the gradient; an unnormalised head (the pose net's) can run away there.
    lr_warmup_steps: int = 0


@dataclass(frozen=True)
class LossConfig:
    disparity_smoothness: float = 0.001
    spatio_coeff: float = 0.03
    spatio_tempo_coeff: float = 0.1
    pose_loss_coeff: float = 0.0
    depth_con_coeff: float = 0.03
    depth_sm_coeff: float = 0.05
    # Beyond the paper (default off = the paper's self-supervised objective): weight of an L1 loss on
    # log depth against LIDAR/ground-truth depth, for quick supervised warm starts (the demo uses it).
    # Needs gt_depth in data.train_requirements.
    gt_depth_coeff: float = 0.0
    # Beyond the paper (default 0 = the paper's objective): also score the temporal, spatial and
    # spatio-temporal photometric terms on this many coarser copies of the images (area-downsampled x2,
    # x4, ...; depth downsampled with them), averaged with the full-resolution terms. Halving the image
    # halves every pixel displacement, so a depth that is still far off (a parked car 3 m away that
    # starts at 10 m moves about 50 px per frame in a side camera at 192x320) still gets a useful gradient.
    photo_pyramid: int = 0


@dataclass(frozen=True)
class EvalConfig:
    eval_batch_size: int = 1
    eval_num_workers: int = 4
    eval_min_depth: float = 0.0
    eval_max_depth: float = 200.0
    eval_visualize: bool = False
    syn_visualize: bool = False
    syn_idx: Optional[int] = 0  # the paper's baseline configs write None
    # Beyond the paper: evaluate at most this many validation samples (None = all).
    eval_max_samples: Optional[int] = None
    # The paper's protocol (vfdepth_core/metrics.py, training/README.md), each one key away from an option
    # beyond it. eval_unit 'batch': per camera, the valid pixels of the eval_batch_size images of a batch
    # are pooled for the median ratio and the errors, and scores are means over batches; 'image': per image.
    eval_unit: str = "batch"
    # 'lower': torch.median's lower middle value (the paper); 'mean': the average of the two middle values.
    eval_median: str = "lower"
    # False (the paper): DDAD val/test keep only samples whose training.frame_ids context frames exist (the
    # dgp index the paper's loader uses); True: every sample. nuScenes evaluates every sample either way.
    eval_all_samples: bool = False


@dataclass(frozen=True)
class LoadConfig:
    pretrain: bool = False
    weights: str = "weights_19"
    models_to_load: Tuple[str, ...] = ("depth_net", "pose_net")
    load_weights_dir: Optional[str] = None


@dataclass(frozen=True)
class LoggingConfig:
    early_phase: int = 5000
    log_frequency: int = 1000
    late_log_frequency: int = 5000
    save_frequency: int = 1
    # Beyond the paper (which keeps every epoch's weights): keep only the newest this many
    # checkpoints/epoch_NNN.pt (0 = keep all, the paper's behaviour), plus those of every
    # keep_every_epochs-th epoch (0 = none); keep_best writes checkpoints/best.pt, the weights of the
    # validation with the lowest metric abs_rel. latest.pt (what --resume reads) is always kept.
    keep_last_checkpoints: int = 2
    keep_every_epochs: int = 0
    keep_best: bool = True


@dataclass(frozen=True)
class Config:
    ddp: DDPConfig = field(default_factory=DDPConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    load: LoadConfig = field(default_factory=LoadConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    # The config's name (file stem): results go to <log_dir>/<name>/. Not a YAML key.
    name: str = "default"


# --------------------------------------------------------------------------------------------------
# Coercion of YAML values into the annotated field types.


def _parse_paren_list(value: str) -> list:
    """The paper writes some lists as '(gt_pose, mask)'; read them as lists of strings."""
    inner = value.strip()[1:-1]
    return [v.strip().strip("'\"") for v in inner.split(",") if v.strip()]


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:  # Optional[X]
        if value is None or value == "None":  # the paper's files write Python's None
            return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(value, non_none[0], where)
    if origin in (tuple, Tuple):
        if isinstance(value, str) and value.strip().startswith("("):
            value = _parse_paren_list(value)
        if not isinstance(value, (list, tuple)):
            value = [value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, got {list(value)!r}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args))
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):  # YAML integers are unbounded: no float() round trip (OverflowError)
            return value
        try:
            f = float(value)
        except (ValueError, OverflowError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
        if not math.isfinite(f) or f != int(f):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def _build(cls: type, data: Any, source: str, section: str = "") -> Any:
    """Instantiate dataclass `cls` from `data`; errors read '<source>: ... key '<section>.<key>' ...'."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        what = f"section '{section}'" if section else "the top level"
        raise ConfigError(f"{source}: {what} must be a mapping of keys, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{section}.{key}" if section else str(key)
        if key not in known or key == "name":
            where = f"known keys in {section}" if section else "known sections"
            raise ConfigError(
                f"{source}: unknown key '{dotted}' ({where}: {', '.join(k for k in known if k != 'name')})"
            )
        tp = hints[key]
        if is_dataclass(tp):
            kwargs[key] = _build(tp, value, source, dotted)
        else:
            kwargs[key] = _coerce(value, tp, f"{source}: key '{dotted}'")
    return cls(**kwargs)


def _set_path(tree: dict, dotted: str, raw_value: str, source: str) -> None:
    """Apply one `section.key=value` override to the YAML tree; unknown keys are named here."""
    parts = dotted.split(".")
    if len(parts) != 2:
        raise ConfigError(f"override '{dotted}' must be <section>.<key>=<value>, e.g. training.learning_rate=2e-4")
    section, key = parts
    sections = {f.name: f for f in fields(Config) if f.name != "name"}
    if section not in sections:
        raise ConfigError(f"override '{dotted}': unknown section '{section}' (known sections: {', '.join(sections)})")
    section_cls = typing.get_type_hints(Config)[section]
    keys = [f.name for f in fields(section_cls)]
    if key not in keys:
        raise ConfigError(f"override '{dotted}': unknown key '{dotted}' (known keys in {section}: {', '.join(keys)})")
    if tree.get(section) is None:
        tree[section] = {}
    if not isinstance(tree[section], dict):
        raise ConfigError(f"{source}: section '{section}' must be a mapping of keys, got {type(tree[section]).__name__}")
    try:
        tree[section][key] = yaml.safe_load(raw_value) if raw_value != "" else ""
    except yaml.YAMLError:
        raise ConfigError(f"override '{dotted}={raw_value}': the value is not valid YAML (quote it or fix the brackets)") from None


def config_from_dict(tree: dict, source: str = "<dict>", name: str = "default") -> Config:
    """Build a Config from a nested dict as read from YAML; errors name `source`."""
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    cfg = _build(Config, tree, source)
    cfg = replace(cfg, name=name)
    validate(cfg, source)
    return cfg


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """Read a YAML config (or the defaults when `path` is None) and apply `section.key=value` overrides."""
    tree: dict = {}
    source = "<defaults>"
    name = "default"
    if path is not None:
        p = Path(path)
        source = str(p)
        name = p.stem
        if not p.is_file():
            raise ConfigError(f"config file not found: {p} (pass an existing YAML file to --config_file)")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{p}: not a UTF-8 text file (byte {exc.start}); give a YAML config") from None
        try:
            tree = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = " ".join(str(getattr(exc, "problem", None) or exc).split())  # one line
            raise ConfigError(f"{p}: broken YAML{at}: {problem}") from None
    for ov in overrides:
        if "=" not in ov:
            raise ConfigError(f"override '{ov}' must look like section.key=value")
        key, val = ov.split("=", 1)
        _set_path(tree, key.strip(), val.strip(), source)
    return config_from_dict(tree, source, name)


def validate(cfg: Config, source: str = "<config>") -> None:
    """Cross-field checks that a single type cannot express."""
    m, t = cfg.model, cfg.training
    if any(v <= 0 for v in m.voxel_size):
        raise ConfigError(f"{source}: model.voxel_size must be positive, got {m.voxel_size}")
    if any(v <= 0 for v in m.voxel_unit_size):
        raise ConfigError(f"{source}: model.voxel_unit_size must be positive, got {m.voxel_unit_size}")
    if not 0 < m.proj_d_str < m.proj_d_end:
        raise ConfigError(f"{source}: need 0 < model.proj_d_str < model.proj_d_end")
    if not m.pose_translation_limit_m >= 0:
        raise ConfigError(f"{source}: model.pose_translation_limit_m must be >= 0 (0 = no clamp), got "
                          f"{m.pose_translation_limit_m}")
    if not m.pose_translation_scale > 0:
        raise ConfigError(f"{source}: model.pose_translation_scale must be positive (the paper: 0.01), got "
                          f"{m.pose_translation_scale}")
    if m.pose_refine_iterations < 0 or not 1 <= m.pose_refine_levels <= 5 or m.pose_refine_max_width < 16:
        raise ConfigError(f"{source}: model.pose_refine_iterations must be >= 0 (0 = the paper: no refinement), "
                          f"pose_refine_levels 1 to 5 and pose_refine_max_width >= 16, got "
                          f"{m.pose_refine_iterations}, {m.pose_refine_levels}, {m.pose_refine_max_width}")
    if m.init_depth_m is not None and not t.min_depth < m.init_depth_m < t.max_depth:
        raise ConfigError(f"{source}: model.init_depth_m must lie between training.min_depth and max_depth")
    if not 0 <= cfg.loss.photo_pyramid <= 3:
        raise ConfigError(f"{source}: loss.photo_pyramid must be 0 (the paper: full resolution only) to 3 coarser "
                          f"levels, got {cfg.loss.photo_pyramid}")
    if cfg.loss.photo_pyramid and (t.height >> cfg.loss.photo_pyramid < 8 or t.width >> cfg.loss.photo_pyramid < 8):
        raise ConfigError(f"{source}: loss.photo_pyramid {cfg.loss.photo_pyramid} would shrink "
                          f"{t.height}x{t.width} images below 8 pixels; use fewer levels")
    if m.proj_d_bins < 1:
        raise ConfigError(f"{source}: model.proj_d_bins must be >= 1")
    for key, allowed in (("overlap_pair_order", ("rig", "index_groups")), ("feature_intrinsics", ("half_pixel", "plain")),
                         ("mask_resize", ("area", "bilinear"))):
        if getattr(m, key) not in allowed:
            raise ConfigError(f"{source}: model.{key} must be one of {', '.join(allowed)}, got {getattr(m, key)!r}")
    if m.overlap_pair_order == "index_groups" and len(cfg.data.cameras) not in (3, 6):
        raise ConfigError(f"{source}: model.overlap_pair_order 'index_groups' (the released code's camera groups) "
                          f"needs 3 or 6 cameras, got {len(cfg.data.cameras)}; use 'rig'")
    if not m.voxel_depth_scale > 0:
        raise ConfigError(f"{source}: model.voxel_depth_scale must be positive (default 100 m), got {m.voxel_depth_scale}")
    if not 0 <= m.voxel_border_margin_px < 0.5:
        raise ConfigError(f"{source}: model.voxel_border_margin_px must lie in [0, 0.5) pixels (default 1e-3), "
                          f"got {m.voxel_border_margin_px}")
    if t.height % 32 or t.width % 32:
        raise ConfigError(
            f"{source}: training.height/width must be multiples of 32 (ResNet strides), got {t.height}x{t.width}"
        )
    if not 0 < t.min_depth < t.max_depth:
        raise ConfigError(f"{source}: need 0 < training.min_depth < training.max_depth")
    if t.amp not in ("none", "bf16", "fp16"):
        raise ConfigError(f"{source}: training.amp must be none, bf16 or fp16, got {t.amp!r}")
    if t.lr_schedule not in ("step", "linear"):
        raise ConfigError(f"{source}: training.lr_schedule must be 'step' (the paper's StepLR) or 'linear', "
                          f"got {t.lr_schedule!r}")
    if not 0.0 <= t.ema_decay < 1.0:
        raise ConfigError(f"{source}: training.ema_decay must lie in [0, 1) (0 = no weight average), got {t.ema_decay}")
    if t.lr_warmup_steps < 0:
        raise ConfigError(f"{source}: training.lr_warmup_steps must be >= 0 (0 = no warm-up, the paper), got "
                          f"{t.lr_warmup_steps}")
    if not t.grad_clip_norm >= 0.0:
        raise ConfigError(f"{source}: training.grad_clip_norm must be >= 0 (0 = no clipping, the paper), got "
                          f"{t.grad_clip_norm}")
    if not 0.0 <= t.lr_final_fraction <= 1.0:
        raise ConfigError(f"{source}: training.lr_final_fraction must lie in [0, 1], got {t.lr_final_fraction}")
    lg = cfg.logging
    if lg.keep_last_checkpoints < 0 or lg.keep_every_epochs < 0:
        raise ConfigError(f"{source}: logging.keep_last_checkpoints and keep_every_epochs must be >= 0 (0 = keep all "
                          f"/ none), got {lg.keep_last_checkpoints} and {lg.keep_every_epochs}")
    if m.depth_model not in ("fusion", "fsm") or m.pose_model not in ("fusion", "fsm"):
        raise ConfigError(f"{source}: model.depth_model/pose_model must be 'fusion' or 'fsm'")
    if cfg.eval.eval_unit not in ("batch", "image"):
        raise ConfigError(f"{source}: eval.eval_unit must be 'batch' (the paper) or 'image', got {cfg.eval.eval_unit!r}")
    if cfg.eval.eval_median not in ("lower", "mean"):
        raise ConfigError(f"{source}: eval.eval_median must be 'lower' (the paper) or 'mean', got {cfg.eval.eval_median!r}")
    if cfg.data.gt_projection not in ("paper", "nearest"):
        raise ConfigError(f"{source}: data.gt_projection must be 'paper' or 'nearest', got {cfg.data.gt_projection!r}")
    if cfg.data.dataset not in ("ddad", "nuscenes", "synthetic"):
        raise ConfigError(f"{source}: data.dataset must be ddad, nuscenes or synthetic, got {cfg.data.dataset!r}")
    if len(cfg.data.cameras) < 1:
        raise ConfigError(f"{source}: data.cameras must name at least one camera")
    if cfg.data.neighbors and len(cfg.data.neighbors) != len(cfg.data.cameras):
        raise ConfigError(f"{source}: data.neighbors needs one entry per camera ({len(cfg.data.cameras)})")
    for nb in cfg.data.neighbors:
        if any(not 0 <= i < len(cfg.data.cameras) for i in nb):
            raise ConfigError(f"{source}: data.neighbors index out of range: {nb}")


def config_to_dict(cfg: Any) -> dict:
    """Plain nested dict (lists instead of tuples) of a Config, for YAML and checkpoints."""

    def conv(v: Any) -> Any:
        if is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in fields(v) if f.name != "name"}
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        return v

    return conv(cfg)


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML (readable back by load_config)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    return p


def with_overrides(cfg: Config, overrides: Iterable[str]) -> Config:
    """Apply `section.key=value` overrides to an existing Config."""
    tree = config_to_dict(cfg)
    for ov in overrides:
        if "=" not in ov:
            raise ConfigError(f"override '{ov}' must look like section.key=value")
        key, val = ov.split("=", 1)
        _set_path(tree, key.strip(), val.strip(), "<override>")
    return config_from_dict(tree, "<override>", cfg.name)


PAPER_NEIGHBORS: Tuple[Tuple[int, int], ...] = ((1, 2), (0, 3), (0, 4), (1, 5), (2, 5), (3, 4))
"""The paper's ring for cameras ordered front, front-left, front-right, back-left, back-right, back."""


def camera_neighbors(data: DataConfig) -> Tuple[Tuple[int, ...], ...]:
    """Neighbour camera indices for the spatial losses: the configured ones, else the paper's ring."""
    if data.neighbors:
        return data.neighbors
    n = len(data.cameras)
    if n == 6:
        return PAPER_NEIGHBORS
    # Any other count: a ring in the listed order.
    return tuple(((i - 1) % n, (i + 1) % n) for i in range(n)) if n > 1 else ((),)


__all__ = [
    "Config",
    "ConfigError",
    "DDAD_CAMERAS",
    "DDPConfig",
    "DataConfig",
    "EvalConfig",
    "LoadConfig",
    "LoggingConfig",
    "LossConfig",
    "ModelConfig",
    "NUSCENES_CAMERAS",
    "TrainingConfig",
    "camera_neighbors",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "save_config",
    "with_overrides",
    "PAPER_NEIGHBORS",
]
_ = dataclasses  # keep the module import for type introspection helpers
