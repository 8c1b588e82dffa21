"""Config: the paper's defaults, YAML round trips, overrides, and one-line errors that name file and key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from vfdepth_core.config import (
    PAPER_NEIGHBORS,
    Config,
    ConfigError,
    DataConfig,
    camera_neighbors,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
    with_overrides,
)


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, f"error message must be one line: {msg!r}"
    return msg


# --------------------------------------------------------------------------------------------------
# Defaults = the paper's DDAD configuration


def test_defaults_are_the_papers():
    cfg = load_config()
    m, t, loss, d = cfg.model, cfg.training, cfg.loss, cfg.data
    assert (m.num_layers, m.fusion_feat_in_dim, m.voxel_pre_dim) == (18, 256, (64,))
    assert m.voxel_size == (100, 100, 20)
    assert m.voxel_unit_size == (1.0, 1.0, 1.5)
    assert m.voxel_str_p == (-50.0, -50.0, -15.0)
    assert (m.proj_d_bins, m.proj_d_str, m.proj_d_end) == (50, 2.0, 50.0)
    assert (t.height, t.width, t.batch_size, t.num_epochs) == (384, 640, 2, 20)
    assert t.learning_rate == 1e-4 and t.scheduler_step_size == 15
    assert (t.min_depth, t.max_depth, t.focal_length_scale) == (1.5, 200.0, 300.0)
    assert t.frame_ids == (0, -1, 1) and t.scales == (0,)
    assert t.aug_angle == (15.0, 15.0, 40.0) and t.color_jitter == (0.2, 0.2, 0.2, 0.05)
    assert (loss.disparity_smoothness, loss.spatio_coeff, loss.spatio_tempo_coeff) == (0.001, 0.03, 0.1)
    assert (loss.depth_con_coeff, loss.depth_sm_coeff) == (0.03, 0.05)
    assert d.cameras == ("camera_01", "camera_05", "camera_06", "camera_07", "camera_08", "camera_09")
    assert cfg.eval.eval_max_depth == 200.0
    assert cfg.name == "default"


def test_config_is_frozen():
    cfg = load_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.training.learning_rate = 1.0  # type: ignore[misc]


def test_paper_neighbour_ring():
    # front, front-left, front-right, back-left, back-right, back
    assert camera_neighbors(DataConfig()) == PAPER_NEIGHBORS
    assert PAPER_NEIGHBORS == ((1, 2), (0, 3), (0, 4), (1, 5), (2, 5), (3, 4))
    for i, nb in enumerate(PAPER_NEIGHBORS):  # symmetric: if j neighbours i, i neighbours j
        assert all(i in PAPER_NEIGHBORS[j] for j in nb)
    five = DataConfig(cameras=tuple("abcde"))
    assert camera_neighbors(five) == ((4, 1), (0, 2), (1, 3), (2, 4), (3, 0))


# --------------------------------------------------------------------------------------------------
# Files


def test_yaml_round_trip(tmp_path):
    cfg = load_config(overrides=["training.learning_rate=2e-4", "model.voxel_size=[50, 50, 10]",
                                 "data.neighbors=[[1, 2], [0, 3], [0, 4], [1, 5], [2, 5], [3, 4]]",
                                 "data.mask_path=/masks", "training.max_steps=7"])
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert path.is_file()
    again = load_config(path)
    assert again.name == "config"
    assert again == dataclasses.replace(cfg, name="config")
    assert again.data.neighbors == PAPER_NEIGHBORS and again.model.voxel_size == (50, 50, 10)
    # the file is plain YAML (lists, no Python tags) and every key is the paper's spelling
    tree = yaml.safe_load(path.read_text())
    assert tree["model"]["voxel_size"] == [50, 50, 10]
    assert set(tree) == {"ddp", "model", "data", "training", "loss", "eval", "load", "logging"}
    assert config_from_dict(config_to_dict(cfg), name=cfg.name) == cfg


def test_partial_file_keeps_other_defaults_and_takes_its_name(tmp_path):
    p = write(tmp_path, "training:\n  batch_size: 4\n  learning_rate: 1e-4\nmodel:\n  proj_d_bins: 25\n",
              name="ddad_small.yaml")
    cfg = load_config(p)
    assert cfg.name == "ddad_small"
    assert cfg.training.batch_size == 4 and cfg.training.learning_rate == 1e-4  # YAML reads "1e-4" as text
    assert cfg.model.proj_d_bins == 25
    assert cfg.model.voxel_size == (100, 100, 20)


def test_empty_file_gives_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == dataclasses.replace(Config(), name="exp")


def test_paren_list_strings_as_in_the_papers_files(tmp_path):
    p = write(tmp_path, "data:\n  train_requirements: (gt_pose, mask)\n  val_requirements: '(gt_pose, gt_depth, mask)'\n"
                        "model:\n  voxel_size: (50, 50, 10)\n")
    cfg = load_config(p)
    assert cfg.data.train_requirements == ("gt_pose", "mask")
    assert cfg.data.val_requirements == ("gt_pose", "gt_depth", "mask")
    assert cfg.model.voxel_size == (50, 50, 10)


def test_papers_none_spelling(tmp_path):
    cfg = load_config(write(tmp_path, "eval:\n  syn_idx: None\nmodel:\n  weights_path: null\n"))
    assert cfg.eval.syn_idx is None and cfg.model.weights_path is None


def test_unknown_key_names_key_and_file(tmp_path):
    p = write(tmp_path, "model:\n  voxel_sise: [1, 2, 3]\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    msg = one_line(exc)
    assert str(p) in msg and "model.voxel_sise" in msg
    assert "voxel_size" in msg  # the known keys are listed


def test_unknown_section_names_section_and_file(tmp_path):
    p = write(tmp_path, "modle:\n  voxel_size: [1, 2, 3]\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    msg = one_line(exc)
    assert str(p) in msg and "'modle'" in msg


def test_name_is_not_a_yaml_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'name'"):
        load_config(write(tmp_path, "name: other\n"))


@pytest.mark.parametrize("text", [
    "model: [1, 2\n",
    "training:\n  height: 384\n   width: 640\n",
    "\ttraining: 1\n",
    "training:\n  learning_rate: 'unterminated\n",
])
def test_broken_yaml_is_a_one_line_error_with_position(tmp_path, text):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    msg = one_line(exc)
    assert msg.startswith(f"{p}: broken YAML at line ")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "nope.yaml")
    assert "nope.yaml" in one_line(exc) and "not found" in str(exc.value)


@pytest.mark.parametrize("text, key, expect", [
    ("training:\n  learning_rate: fast\n", "training.learning_rate", "number"),
    ("training:\n  batch_size: 2.5\n", "training.batch_size", "integer"),
    ("training:\n  batch_size: true\n", "training.batch_size", "integer"),
    ("training:\n  num_epochs: .inf\n", "training.num_epochs", "integer"),
    ("training:\n  spatio: 3\n", "training.spatio", "true/false"),
    ("model:\n  voxel_size: [100, 100]\n", "model.voxel_size", "3 values"),
    ("model:\n  depth_model: [fusion]\n", "model.depth_model", "string"),
    ("loss:\n  spatio_coeff: [0.03]\n", "loss.spatio_coeff", "number"),
])
def test_wrong_types_name_file_and_key(tmp_path, text, key, expect):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    msg = one_line(exc)
    assert str(p) in msg and f"'{key}'" in msg and expect in msg


def test_section_that_is_not_a_mapping(tmp_path):
    p = write(tmp_path, "training: 5\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert str(p) in one_line(exc) and "'training'" in str(exc.value)


@pytest.mark.parametrize("text, fragment", [
    ("training:\n  height: 380\n", "multiples of 32"),
    ("training:\n  min_depth: 300\n", "min_depth"),
    ("model:\n  proj_d_str: 60\n", "proj_d_str"),
    ("model:\n  voxel_size: [0, 100, 20]\n", "voxel_size"),
    ("training:\n  amp: fp8\n", "amp"),
    ("data:\n  dataset: kitti\n", "data.dataset"),
    ("data:\n  neighbors: [[1, 2]]\n", "one entry per camera"),
    ("data:\n  neighbors: [[1, 9], [0], [0], [1], [2], [3]]\n", "out of range"),
])
def test_cross_field_validation(tmp_path, text, fragment):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    msg = one_line(exc)
    assert str(p) in msg and fragment in msg


# --------------------------------------------------------------------------------------------------
# Overrides


def test_override_learning_rate():
    cfg = load_config(overrides=["training.learning_rate=2e-4"])
    assert cfg.training.learning_rate == pytest.approx(2e-4)
    assert isinstance(cfg.training.learning_rate, float)


def test_overrides_on_top_of_a_file(tmp_path):
    p = write(tmp_path, "training:\n  batch_size: 4\n")
    cfg = load_config(p, overrides=["training.batch_size=8", "data.train_requirements=(gt_pose, gt_depth)",
                                    "training.aug_depth=true", "model.voxel_str_p=[-25, -25, -7.5]"])
    assert cfg.training.batch_size == 8
    assert cfg.data.train_requirements == ("gt_pose", "gt_depth")
    assert cfg.training.aug_depth is True
    assert cfg.model.voxel_str_p == (-25.0, -25.0, -7.5)


def test_with_overrides_keeps_name_and_other_values():
    base = dataclasses.replace(load_config(overrides=["training.batch_size=3"]), name="mine")
    cfg = with_overrides(base, ["loss.spatio_coeff=0.5"])
    assert cfg.name == "mine" and cfg.loss.spatio_coeff == 0.5 and cfg.training.batch_size == 3


@pytest.mark.parametrize("override, fragment", [
    ("training.lr=1", "'training.lr'"),
    ("trainin.batch_size=1", "'trainin'"),
    ("batch_size=1", "<section>.<key>"),
    ("model.voxel_size.x=1", "<section>.<key>"),
    ("training.batch_size", "section.key=value"),
    ("data.cameras=[a, b", "not valid YAML"),
    ("training.batch_size=two", "'training.batch_size'"),
])
def test_bad_overrides_are_named(override, fragment):
    with pytest.raises(ConfigError) as exc:
        load_config(overrides=[override])
    assert fragment in one_line(exc)


def _camera_lists(node) -> list:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "cameras"] + [c for v in node.values() for c in _camera_lists(v)]
    return [c for v in node for c in _camera_lists(v)] if isinstance(node, list) else []


def test_shipped_yaml_files_list_the_core_camera_sets():
    """Node parameter files and training configs (YAML cannot import) spell a camera set of vfdepth_core.config."""
    from vfdepth_core.config import DDAD_CAMERAS, NUSCENES_CAMERAS

    root = Path(__file__).resolve().parent.parent
    files = sorted((root / "config").glob("*.yaml")) + sorted((root / "training" / "configs").rglob("*.yaml"))
    lists = [(f.name, tuple(c.lower() for c in cams)) for f in files for cams in _camera_lists(yaml.safe_load(f.read_text()))]
    assert len(lists) >= 12
    assert all(cams in (DDAD_CAMERAS, NUSCENES_CAMERAS) for _, cams in lists), lists
