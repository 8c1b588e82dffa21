"""Every shipped training config loads with load_config and carries the paper's settings."""

from pathlib import Path

import pytest

from vfdepth_core.config import config_to_dict, load_config, save_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "training" / "configs").glob("*/*.yaml"))
EXPECTED = {
    "ddad/ddad_surround_fusion.yaml",
    "ddad/ddad_surround_fusion_augdepth.yaml",
    "ddad/ddad_baseline.yaml",
    "ddad/ddad_surround_fusion_ddp.yaml",
    "nuscenes/nusc_surround_fusion.yaml",
    "nuscenes/nusc_baseline.yaml",
    "nuscenes/nusc_surround_fusion_ddp.yaml",
    "synthetic/synthetic_cpu.yaml",
    "synthetic/synthetic_tiny.yaml",
}


def _cfg(rel):
    return load_config(ROOT / "training" / "configs" / rel)


def test_all_expected_configs_exist():
    have = {str(p.relative_to(ROOT / "training" / "configs")) for p in CONFIGS}
    assert EXPECTED <= have, f"missing: {EXPECTED - have}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_round_trips(path, tmp_path):
    cfg = load_config(path)
    assert cfg.name == path.stem
    out = save_config(cfg, tmp_path / "config.yaml")
    again = load_config(out)
    assert config_to_dict(again) == config_to_dict(cfg)


def test_ddad_paper_settings():
    c = _cfg("ddad/ddad_surround_fusion.yaml")
    assert (c.training.height, c.training.width) == (384, 640)
    assert c.training.max_depth == 200 and c.eval.eval_max_depth == 200
    assert c.training.num_epochs == 20 and c.training.scheduler_step_size == 15
    assert c.training.learning_rate == pytest.approx(1e-4) and c.training.batch_size == 2
    assert c.model.voxel_size == (100, 100, 20) and c.model.proj_d_bins == 50
    assert c.loss.spatio_coeff == pytest.approx(0.03) and c.loss.spatio_tempo_coeff == pytest.approx(0.1)
    assert not c.training.aug_depth and not c.ddp.ddp_enable
    aug = _cfg("ddad/ddad_surround_fusion_augdepth.yaml")
    assert aug.training.aug_depth and aug.eval.syn_visualize
    assert aug.training.aug_angle == (15.0, 15.0, 40.0)
    base = _cfg("ddad/ddad_baseline.yaml")
    assert base.model.depth_model == "fsm" and base.model.pose_model == "fsm"
    assert base.loss.disparity_smoothness == pytest.approx(0.1)
    ddp = _cfg("ddad/ddad_surround_fusion_ddp.yaml")
    assert ddp.ddp.ddp_enable and ddp.ddp.world_size == 4 and ddp.ddp.gpus == (0, 1, 2, 3)


def test_nuscenes_paper_settings():
    for rel in ("nuscenes/nusc_surround_fusion.yaml", "nuscenes/nusc_baseline.yaml",
                "nuscenes/nusc_surround_fusion_ddp.yaml"):
        c = _cfg(rel)
        assert c.data.dataset == "nuscenes"
        assert (c.training.height, c.training.width) == (352, 640)
        assert c.training.max_depth == 80 and c.eval.eval_max_depth == 80
        assert c.training.num_epochs == 4
        assert len(c.data.cameras) == 6


def test_synthetic_configs_are_small():
    cpu = _cfg("synthetic/synthetic_cpu.yaml")
    assert cpu.data.dataset == "synthetic"
    assert (cpu.training.height, cpu.training.width) == (192, 320)
    assert cpu.model.voxel_size == (50, 50, 10)
    assert cpu.model.voxel_unit_size == (2.0, 2.0, 3.0)
    assert cpu.model.proj_d_bins == 25
    assert cpu.data.data_path.endswith("synthetic_ddad/ddad.json")
    tiny = _cfg("synthetic/synthetic_tiny.yaml")
    assert tiny.training.height * tiny.training.width <= 96 * 160
    assert tiny.model.proj_d_bins <= 16 and tiny.training.batch_size == 1


def test_paper_style_file_with_python_none_loads(tmp_path):
    """The paper's baseline files write `syn_idx: None` and put syn_visualize under training."""
    p = tmp_path / "paper_baseline.yaml"
    p.write_text(
        "model:\n  depth_model: 'fsm'\n  pose_model: 'fsm'\n"
        "training:\n  aug_depth: False\n  syn_visualize: False\n"
        "data:\n  train_requirements: (gt_pose, mask)\n"
        "eval:\n  syn_idx: None\n"
    )
    c = load_config(p)
    assert c.eval.syn_idx is None and c.data.train_requirements == ("gt_pose", "mask")
