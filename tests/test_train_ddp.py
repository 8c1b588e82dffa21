"""DistributedDataParallel through torchrun: two CPU processes (gloo) on the tiny synthetic config."""

from __future__ import annotations


import pytest
import torch

from train_helpers import TRAIN, make_tiny_dataset, run_script, step_records, tiny_args


@pytest.fixture(scope="module")
def data_json(tmp_path_factory):
    pytest.importorskip("vfdepth_core.datasets.synthetic")
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    return make_tiny_dataset(tmp_path_factory.mktemp("ddp_data"))


@pytest.mark.slow
def test_two_process_gloo_training(data_json, tmp_path):
    from vfdepth_core.training.distributed import free_port

    run = tmp_path / "run"
    prefix = ["-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
              f"--master_port={free_port()}"]
    p = run_script(TRAIN, tiny_args(data_json, run, "--set", "training.max_steps=1", "--device", "cpu",
                                    "--log_level", "DEBUG"), prefix=prefix)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    log = p.stdout + p.stderr
    recs = {r[0]: r for r in step_records(log)}
    assert set(recs) == {0, 1}, log[-3000:]
    # different data per rank ...
    assert recs[0][2] != recs[1][2]
    # ... yet identical parameters after the step: gradients were averaged across ranks
    assert recs[0][3] == recs[1][3]
    assert "backend gloo" in log
    # only rank 0 wrote: one TensorBoard file, one log, the checkpoint holds both ranks' RNG states
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert len((run / "train_log.jsonl").read_text().splitlines()) == 1
    ck = torch.load(run / "checkpoints" / "latest.pt", map_location="cpu", weights_only=True)
    assert ck["step"] == 1 and ck["extra"]["world_size"] == 2
    assert set(ck["extra"]["rng_by_rank"]) == {"0", "1"}
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.yaml", "tensorboard", "train_log.jsonl"]


@pytest.mark.slow
def test_ddp_enable_spawns_workers_without_torchrun(data_json, tmp_path):
    """The paper's `ddp: {ddp_enable: true, world_size: 2}` starts the workers itself."""
    run = tmp_path / "run"
    p = run_script(TRAIN, tiny_args(data_json, run, "--set", "training.max_steps=1", "--set", "ddp.ddp_enable=true",
                                    "--set", "ddp.world_size=2", "--device", "cpu", "--log_level", "DEBUG"))
    log = p.stdout + p.stderr
    assert p.returncode == 0, log[-4000:]
    assert "spawning 2 worker processes" in log
    recs = {r[0]: r for r in step_records(log)}
    assert set(recs) == {0, 1} and recs[0][3] == recs[1][3]
    assert torch.load(run / "checkpoints" / "latest.pt", map_location="cpu", weights_only=True)["step"] == 1
