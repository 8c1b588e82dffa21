"""Synthetic ego speed profiles (`vfdepth synth --speed`, `bag from-synthetic --speed`): the closed-form
distance, the constant drive unchanged, and a varied drive whose steps really vary."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vfdepth_core.datasets.synthetic import make_drive
from vfdepth_core.datasets.synthetic.drive import FRAME_RATE_HZ, SPEED_MPS, SPEED_PROFILES, SpeedProfile


def _steps_m(drive) -> np.ndarray:
    xy = np.stack([f.T_world_ego[:2, 3] for f in drive.frames])
    return np.linalg.norm(np.diff(xy, axis=0), axis=1)


def test_distance_is_the_integral_of_the_speed():
    prof = SpeedProfile.named("varied", seed=3)
    t = np.linspace(0.0, 4.0, 40001)
    v = np.array([prof.speed(x) for x in t])
    numeric = float(np.sum((v[1:] + v[:-1]) / 2 * np.diff(t)))
    assert prof.distance(0.0) == 0.0
    assert prof.distance(4.0) == pytest.approx(numeric, rel=1e-6)
    assert min(v) >= SPEED_MPS * 0.5 - 1e-9 and max(v) <= prof.max_mps + 1e-9
    assert max(v) - min(v) > 0.5 * SPEED_MPS  # a 3-6 s period in 4 s covers most of its swing


def test_constant_profile_is_the_old_constant_speed():
    prof = SpeedProfile.named("constant", seed=5)
    assert prof.distance(2.5) == pytest.approx(SPEED_MPS * 2.5)
    assert prof.speed(1.0) == SPEED_MPS


def test_profiles_are_deterministic_per_seed_and_names_are_checked():
    assert SpeedProfile.named("varied", 1) == SpeedProfile.named("varied", 1)
    assert SpeedProfile.named("varied", 1) != SpeedProfile.named("varied", 2)
    assert set(SPEED_PROFILES) == {"constant", "varied"}
    with pytest.raises(ValueError, match="unknown speed profile 'fast'.*constant, varied"):
        SpeedProfile.named("fast", 0)


def test_varied_drive_steps_vary_and_constant_drive_is_unchanged():
    kw = dict(frames=12, height=24, width=40, seed=4, with_lidar=False)
    default = make_drive("ddad", **kw)
    constant = make_drive("ddad", speed="constant", **kw)
    for a, b in zip(default.frames, constant.frames):
        np.testing.assert_array_equal(a.T_world_ego, b.T_world_ego)
        np.testing.assert_array_equal(a.images, b.images)
    steps_c = _steps_m(constant)
    np.testing.assert_allclose(steps_c, SPEED_MPS / FRAME_RATE_HZ, rtol=0.02)  # the lane's curvature: chords
    varied = make_drive("ddad", speed="varied", **kw)
    steps_v = _steps_m(varied)
    prof = SpeedProfile.named("varied", 4)
    expect = [prof.distance((i + 1) / FRAME_RATE_HZ) - prof.distance(i / FRAME_RATE_HZ) for i in range(11)]
    np.testing.assert_allclose(steps_v, expect, rtol=0.02)
    assert steps_v.max() - steps_v.min() > 0.3, steps_v  # metres per step: not a constant
    assert all(math.isfinite(float(s)) for s in steps_v)
