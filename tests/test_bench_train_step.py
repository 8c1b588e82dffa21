"""benchmarks/bench_train_step.py: the --original side-by-side's argument checks and input conversion, and the
convolution totals of a profiled step (the benchmark itself and the released code are not run here)."""

import importlib
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    return importlib.import_module("bench_train_step")


@pytest.fixture()
def ostep(bench):
    return importlib.import_module("original_step")


def fake_release(root: Path, ostep, skip: str = "") -> Path:
    for f in ostep.RELEASED_FILES:
        if f != skip:
            (root / f).parent.mkdir(parents=True, exist_ok=True)
            (root / f).write_text("")
    return root


def parse(bench, argv):
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", nargs="+", default=None)
    ap.add_argument("--original", default=None)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    return args, bench.check_side_by_side_args(args)


def test_without_original_the_profile_configs_and_no_error(bench):
    args, problem = parse(bench, [])
    assert problem is None and args.configs == ["learning", "paper"]


def test_original_that_is_not_a_folder_is_refused(bench, tmp_path):
    _, problem = parse(bench, ["--original", str(tmp_path / "nowhere")])
    assert "is not a folder" in problem


def test_original_without_the_released_files_names_the_missing_one(bench, ostep, tmp_path):
    fake_release(tmp_path, ostep, skip="models/vfdepth.py")
    _, problem = parse(bench, ["--original", str(tmp_path)])
    assert "is not the released VFDepth code" in problem and "models/vfdepth.py is missing" in problem


def test_original_defaults_to_the_small_config_and_refuses_learning(bench, ostep, tmp_path):
    fake_release(tmp_path, ostep)
    args, problem = parse(bench, ["--original", str(tmp_path)])
    assert problem is None and args.configs == ["small"]
    _, problem = parse(bench, ["--original", str(tmp_path), "--configs", "small", "learning"])
    assert "learning config" in problem
    _, problem = parse(bench, ["--original", str(tmp_path), "--reps", "0"])
    assert "--reps 0" in problem


def test_main_exits_with_the_reason_when_original_is_not_the_released_code(bench, tmp_path, capsys):
    (tmp_path / "README.md").write_text("something else")
    with pytest.raises(SystemExit) as e:
        bench.main(["--original", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "is not the released VFDepth code: models/vfdepth.py is missing" in err


def test_released_step_refuses_a_wrong_folder_before_importing_anything(ostep, tmp_path):
    with pytest.raises(ValueError, match="is not the released VFDepth code"):
        ostep.released_step(tmp_path, cfg=None, batch={})
    assert "models.vfdepth" not in sys.modules


def test_released_inputs_known_answer(ostep):
    g = torch.Generator().manual_seed(0)
    B, F_, N, H, W = 1, 3, 2, 4, 6
    image = torch.rand(B, F_, N, 3, H, W, generator=g)
    K = torch.tensor([[100.0, 0, 2.5], [0, 90.0, 1.5], [0, 0, 1]]).expand(B, N, 3, 3)
    T = torch.eye(4).expand(B, N, 4, 4)
    batch = {"image": image, "image_aug": image + 1, "K": K, "T_ego_cam": T, "mask": torch.ones(B, N, 1, H, W)}
    inp = ostep.released_inputs(batch, (0, -1, 1))
    for i, f in enumerate((0, -1, 1)):
        assert torch.equal(inp[("color", f, 0)], image[:, i])
        assert torch.equal(inp[("color_aug", f, 0)], image[:, i] + 1)
    assert inp[("K", 0)].shape == (B, N, 4, 4)
    torch.testing.assert_close(inp[("K", 3)][0, 1, :3, :3], torch.tensor([[12.5, 0, 2.5 / 8], [0, 11.25, 1.5 / 8],
                                                                          [0, 0, 1]]))
    torch.testing.assert_close(inp[("inv_K", 3)] @ inp[("K", 3)], torch.eye(4).expand(B, N, 4, 4), atol=1e-5, rtol=0)
    assert torch.equal(inp["extrinsics"], T) and inp["mask"].shape == (B, N, 1, H, W)


def test_conv_time_counts_each_conv_once_forward_and_backward(bench):
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 5, 1))
    x = torch.rand(1, 3, 16, 16)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        net(x).sum().backward()
    c = bench.conv_time(prof.events(), step_wall_s=10.0)
    assert list(c["by_weight_shape"]) and set(c["by_weight_shape"]) == {"4x3x3x3", "5x4x1x1"}
    for row in c["by_weight_shape"].values():
        assert row["calls"] == 1 and row["fwd_s"] > 0 and row["bwd_s"] > 0
    assert c["total_s"] == pytest.approx(c["fwd_s"] + c["bwd_s"])
    assert c["share"] == pytest.approx(c["total_s"] / 10.0)
