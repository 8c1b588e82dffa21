"""Unit tests of vfdepth_core.training: resumable sampler, seeded augmentation, NaN guard, checks."""

from __future__ import annotations

import pytest
import torch

from vfdepth_core import viz
from vfdepth_core.training.checks import check_checkpoint_compatible, check_dataset_kind
from vfdepth_core.training.ema import WeightEMA
from vfdepth_core.training.files import write_json
from vfdepth_core.training.optim import NonFiniteGuard, TrainingAbort, grads_finite
from vfdepth_core.training.sampling import ResumableSampler, SeededSamples
from vfdepth_core.config import ConfigError, config_to_dict, load_config, with_overrides


def test_sampler_epochs_are_seeded_permutations_and_resume_mid_epoch():
    s = ResumableSampler(10, seed=3)
    s.set_epoch(0)
    e0 = list(s)
    s.set_epoch(1)
    e1 = list(s)
    assert sorted(e0) == list(range(10)) and sorted(e1) == list(range(10)) and e0 != e1
    again = ResumableSampler(10, seed=3)
    again.set_position(1, 4)
    assert list(again) == e1[4:] and len(again) == 6 and again.per_epoch == 10


def test_sampler_splits_ranks_disjointly():
    r0 = ResumableSampler(8, seed=0, rank=0, world_size=2)
    r1 = ResumableSampler(8, seed=0, rank=1, world_size=2)
    a, b = list(r0), list(r1)
    assert len(a) == len(b) == 4 and not set(a) & set(b) and sorted(a + b) == list(range(8))


class _RandomItems(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.rand(3)


def test_seeded_samples_depend_only_on_seed_epoch_index():
    ds = SeededSamples(_RandomItems(), seed=1)
    state = torch.get_rng_state()
    a = ds[2]
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
    torch.rand(5)
    assert torch.equal(ds[2], a)
    assert not torch.equal(ds[3], a)
    ds.set_epoch(1)
    assert not torch.equal(ds[2], a)


def test_nonfinite_guard_skips_counts_and_aborts():
    g = NonFiniteGuard(max_consecutive=3)
    assert g.check(torch.tensor(1.0), 1)
    assert not g.check(torch.tensor(float("nan")), 2)
    assert not g.check(torch.tensor(float("inf")), 3)
    assert g.check(torch.tensor(0.5), 4) and g.consecutive == 0 and g.total == 2
    g.check(torch.tensor(float("nan")), 5)
    g.check(torch.tensor(float("nan")), 6)
    with pytest.raises(TrainingAbort, match="3 consecutive non-finite"):
        g.check(torch.tensor(float("nan")), 7)
    h = NonFiniteGuard()
    h.load_state_dict(g.state_dict())
    assert h.total == g.total


def test_grads_finite():
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.tensor([1.0, float("nan")])
    assert not grads_finite([p])
    p.grad = torch.zeros(2)
    assert grads_finite([p])


def test_checkpoint_compatibility_names_the_keys():
    cfg = load_config(None)
    saved = config_to_dict(cfg)
    check_checkpoint_compatible(saved, cfg, "x.pt")
    # runtime keys may change
    check_checkpoint_compatible(saved, with_overrides(cfg, ["training.learning_rate=1", "data.log_dir=/tmp"]), "x.pt")
    other = with_overrides(cfg, ["model.voxel_size=[10, 10, 4]", "model.proj_d_bins=8"])
    with pytest.raises(ConfigError, match=r"x\.pt.*model\.voxel_size.*model\.proj_d_bins"):
        check_checkpoint_compatible(saved, other, "x.pt")


def test_dataset_kind_checks(tmp_path):
    from vfdepth_core.datasets.common import DatasetError

    with pytest.raises(DatasetError, match="does not exist"):
        check_dataset_kind(str(tmp_path / "nope.json"), "ddad")
    (tmp_path / "v1.0-mini").mkdir()
    with pytest.raises(DatasetError, match="nuScenes dataroot"):
        check_dataset_kind(str(tmp_path), "ddad")
    check_dataset_kind(str(tmp_path), "nuscenes")
    f = tmp_path / "ddad.json"
    f.write_text("{}")
    with pytest.raises(DatasetError, match="is a file"):
        check_dataset_kind(str(f), "nuscenes")
    check_dataset_kind(str(f), "synthetic")


def test_write_json_is_atomic_and_handles_numpy(tmp_path):
    import json

    import numpy as np

    p = write_json(tmp_path / "a" / "r.json", {"x": np.float32(1.5), "y": np.arange(2), "t": torch.tensor([1])})
    assert json.loads(p.read_text()) == {"x": 1.5, "y": [0, 1], "t": [1]}
    assert [q.name for q in p.parent.iterdir()] == ["r.json"]


def test_depth_mosaic_shapes():
    m = viz.depth_mosaic(torch.rand(6, 1, 8, 12) * 50 + 1, 1.0, 80.0)
    assert m.dtype.name == "uint8" and m.ndim == 3 and m.shape[2] == 3
    assert m.shape[0] >= 16 and m.shape[1] >= 36


def test_weight_ema_known_answer_and_ramp():
    """Decay ramps as min(decay, (1+n)/(10+n)); float weights average, integer buffers are copied."""
    m = torch.nn.BatchNorm1d(1)
    with torch.no_grad():
        m.weight.fill_(1.0)
    ema = WeightEMA(m, decay=0.5)
    with torch.no_grad():
        m.weight.fill_(3.0)
        m.num_batches_tracked.fill_(7)
    ema.update(m)  # n=1: d = min(0.5, 2/11)
    d = 2.0 / 11.0
    assert float(ema.state_dict()["weight"]) == pytest.approx(d * 1.0 + (1 - d) * 3.0)
    assert int(ema.state_dict()["num_batches_tracked"]) == 7
    for _ in range(20):
        ema.update(m)
    assert float(ema.state_dict()["weight"]) == pytest.approx(3.0, abs=1e-4)
    with torch.no_grad():
        m.weight.fill_(5.0)
    ema.update(m)  # n=22: d = 0.5
    assert float(ema.state_dict()["weight"]) == pytest.approx(0.5 * 3.0 + 0.5 * 5.0, abs=1e-4)
    with pytest.raises(ValueError, match="does not fit"):
        ema.load_state_dict({"weight": torch.ones(1)}, 3)


def test_warmup_factor_ramps_to_one():
    from vfdepth_core.training.optim import warmup_factor

    assert [warmup_factor(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0


def test_step_diagnostics_norm_clip_and_motion_size():
    """Known answers: the logged norm is the gradient's before clipping; with a clip norm the gradient ends
    at exactly that norm, without one it is untouched; the motion size is the mean translation length and
    rotation angle over batch and frames."""
    import math

    from types import SimpleNamespace

    from vfdepth_core import geometry
    from vfdepth_core.training.optim import step_diagnostics

    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
    T1 = geometry.make_transform(geometry.euler_to_rotmat(0.0, 0.0, 10.0).float(), torch.tensor([1.0, 0.0, 0.0]))
    T2 = geometry.make_transform(torch.eye(3), torch.tensor([0.0, 3.0, 0.0]))
    outputs = SimpleNamespace(T_egosrc_egotgt={-1: T1[None], 1: T2[None]})
    d = step_diagnostics([a, b], 0.0, outputs)
    assert d["grad_norm"] == pytest.approx(5.0) and a.grad.tolist() == [3.0, 0.0]  # no clipping
    assert d["pose_t_m"] == pytest.approx(2.0) and d["pose_rot_deg"] == pytest.approx(5.0, abs=1e-3)
    d = step_diagnostics([a, b], 1.0)
    assert d["grad_norm"] == pytest.approx(5.0) and "pose_t_m" not in d
    assert math.hypot(*a.grad.tolist(), *b.grad.tolist()) == pytest.approx(1.0, rel=1e-5)
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
    assert step_diagnostics([a, b], 0.5, outputs, log=False) == {}  # a step that is not logged: clipping only
    assert math.hypot(*a.grad.tolist(), *b.grad.tolist()) == pytest.approx(0.5, rel=1e-5)


def test_warmup_and_clip_keys_refuse_negative_values():
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parents[1] / "training/configs/synthetic/synthetic_cpu.yaml", [])
    assert cfg.training.lr_warmup_steps == 0 and cfg.training.grad_clip_norm == 0.0  # the paper: off
    for key, bad in (("training.lr_warmup_steps", "-1"), ("training.grad_clip_norm", "-0.5")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            with_overrides(cfg, [f"{key}={bad}"])
