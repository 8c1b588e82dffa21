"""benchmarks/learning.py: the training overrides it applies (the benchmark itself runs for an hour: make learning)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("learning_bench", ROOT / "benchmarks" / "learning.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_overrides_come_first_and_user_sets_win(bench):
    args = bench.parse_args(["--set", "loss.photo_pyramid=1"])
    assert args.set[: len(bench.BENCH_SETS)] == list(bench.BENCH_SETS)
    assert args.set[-1] == "loss.photo_pyramid=1"  # applied last, so it wins
    assert bench.parse_args(["--paper_objective"]).set == []


def test_benchmark_overrides_make_a_valid_config(bench, tmp_path):
    from vfdepth_core.config import load_config

    cfg = load_config(bench.CONFIG, list(bench.BENCH_SETS))
    assert cfg.loss.photo_pyramid == 0 and cfg.loss.spatio_coeff == 0.3 and cfg.training.amp == "bf16"
    paper = load_config(bench.CONFIG, [])
    assert paper.loss.photo_pyramid == 0 and paper.loss.spatio_coeff == 0.03 and paper.loss.spatio_tempo_coeff == 0.1
