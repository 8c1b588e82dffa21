#!/usr/bin/env python3
"""Where the time of one training step goes: data loading, forward per module, losses, backward per module,
optimizer, at the learning benchmark's config and the paper's.

    python benchmarks/bench_train_step.py                          # learning + paper configs, 2 threads
    python benchmarks/bench_train_step.py --configs learning small --steps 5
    python benchmarks/bench_train_step.py --data input_data/learning_synthetic/ddad.json

Configs: ``learning`` (synthetic_cpu.yaml + benchmarks/learning.py's overrides: 128x224, photometric pyramid
3, ...), ``small`` (synthetic_cpu.yaml: 192x320, grid 50x50x10, 25 bins, the paper's objective) and
``paper`` (ddad_surround_fusion.yaml: 384x640, grid 100x100x20, 50 bins), batch 1, each in its own process
with ``--threads`` torch threads. The step is the trainer's (``training/train.py``: forward, losses,
backward, non-finite check, Adam, weight average when configured) on a batch read from a synthetic world
(``--data``, or a one-scene world generated once into results/bench/train_step_world/).

Forward rows are exclusive wall times of the wrapped modules and functions (median over ``--steps`` steps);
backward rows come from one profiled step (each autograd node's time goes to the module whose forward made
it), scaled to the median measured backward time. ``cores busy`` = process CPU time / wall time / threads
(below 1: threads idle, e.g. during Python work). Writes results/bench/train_step_<config>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SYN_CFG = REPO / "training" / "configs" / "synthetic" / "synthetic_cpu.yaml"
PAPER_CFG = REPO / "training" / "configs" / "ddad" / "ddad_surround_fusion.yaml"


def config_sets(name: str):
    """(config file, overrides) of a named config."""
    from learning import BENCH_SETS

    common = ["training.batch_size=1", "training.color_jitter=[0, 0, 0, 0]"]
    if name == "learning":
        return SYN_CFG, list(BENCH_SETS) + common
    if name == "small":
        return SYN_CFG, common
    if name == "paper":
        return PAPER_CFG, common + ["data.dataset=synthetic"]
    raise ValueError(name)


# ---- exclusive timers over wrapped callables ---------------------------------------------------------


class Timers:
    """Exclusive wall time per label of nested wrapped calls; with `profiling`, record_function scopes too."""

    def __init__(self):
        self.acc = defaultdict(float)
        self.stack = []  # [label, start, child time]
        self.profiling = False

    @contextlib.contextmanager
    def scope(self, label: str):
        import torch

        rf = torch.autograd.profiler.record_function(label) if self.profiling else contextlib.nullcontext()
        with rf:
            self.stack.append([label, time.perf_counter(), 0.0])
            try:
                yield
            finally:
                lab, t0, child = self.stack.pop()
                dt = time.perf_counter() - t0
                self.acc[lab] += dt - child
                if self.stack:
                    self.stack[-1][2] += dt

    def wrap(self, owner, attr: str, label: str) -> None:
        """Replace owner.attr (a module's forward, a method or a module-level function) by a timed version."""
        fn = getattr(owner, attr)
        timers = self

        def timed(*a, **kw):
            with timers.scope(label):
                return fn(*a, **kw)

        setattr(owner, attr, timed)

    def take(self) -> dict:
        out = dict(self.acc)
        self.acc.clear()
        return out


def instrument(model, timers: Timers) -> None:
    """Label the modules of one training step (forward and, through the profiler, backward)."""
    from vfdepth_core import losses
    from vfdepth_core.nn import depth as depth_mod

    d, p = model.depth_net, model.pose_net
    timers.wrap(model, "voxel_lookup", "rig look-ups")
    timers.wrap(model, "ray_lookup", "rig look-ups")
    if hasattr(d, "aggregate"):
        timers.wrap(d.encoder, "forward", "depth encoder")
        timers.wrap(d.aggregate, "forward", "depth encoder")
        timers.wrap(d.fusion, "forward", "depth fusion")
        timers.wrap(depth_mod, "gather_rays", "depth rays (volume -> views)")
        timers.wrap(d, "decode_rays", "depth reduce_dim")
        timers.wrap(d.reduce_dim, "forward", "depth reduce_dim")
        timers.wrap(d.decoder, "forward", "depth decoder")
    if hasattr(p, "fusion"):
        timers.wrap(p.encoder, "forward", "pose encoder")
        timers.wrap(p.aggregate, "forward", "pose encoder")
        timers.wrap(p.fusion, "forward", "pose fusion")
        timers.wrap(p, "forward", "pose BEV convs + head")
    for fn, label in (("temporal_loss", "loss: temporal"), ("spatial_loss", "loss: spatial"),
                      ("spatio_temporal_loss", "loss: spatio-temporal"), ("downsample_for_level", "loss: pyramid"),
                      ("edge_aware_smoothness", "loss: smoothness"), ("depth_synthesis_losses", "loss: depth synthesis")):
        timers.wrap(losses, fn, label)


# ---- the step ------------------------------------------------------------------------------------


def data_world(args) -> Path:
    if args.data:
        return Path(args.data)
    out = REPO / "results" / "bench" / "train_step_world"
    if not (out / "ddad.json").exists():
        import subprocess

        subprocess.run([sys.executable, "-m", "vfdepth_ros.cli", "synth", "--rig", "ddad", "--scenes", "1",
                        "--val-scenes", "0", "--frames", "6", "--height", "192", "--width", "320", "--out", str(out)],
                       check=True, cwd=REPO)
    return out / "ddad.json"


def run_one(name: str, args) -> dict:
    import torch
    from torch.utils.data import default_collate

    from vfdepth_core import losses
    from vfdepth_core.config import load_config
    from vfdepth_core.datasets import build_dataset
    from vfdepth_core.model import VFDepth
    from vfdepth_core.training.ema import WeightEMA
    from vfdepth_core.training.optim import autocast, grads_finite, make_adam

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg_file, sets = config_sets(name)
    ds_json = data_world(args)
    cfg = load_config(cfg_file, sets + [f"data.data_path={ds_json}"] + list(args.set))
    t = cfg.training
    ds = build_dataset(cfg, "train")

    def load(i):
        return default_collate([ds[i % len(ds)]])

    model = VFDepth(cfg, load_imagenet=False)
    model.train()
    opt = make_adam(model.parameters(), t.learning_rate, "cpu")
    ema = WeightEMA(model, t.ema_decay) if t.ema_decay > 0 else None
    timers = Timers()
    instrument(model, timers)
    cpu = time.process_time

    def step(i, prof=None):
        r = {}
        c0, w0 = cpu(), time.perf_counter()
        batch = load(i)
        marks = [("data loading", time.perf_counter(), cpu())]
        opt.zero_grad(set_to_none=True)
        with autocast("cpu", t.amp):
            outputs = model(batch)
        marks.append(("forward", time.perf_counter(), cpu()))
        fwd = timers.take()
        total, _ = losses.compute_losses(batch, outputs, cfg)
        marks.append(("losses", time.perf_counter(), cpu()))
        loss_parts = timers.take()
        total.backward()
        marks.append(("backward", time.perf_counter(), cpu()))
        ok = bool(torch.isfinite(total.detach())) and grads_finite(model.parameters())
        if ok:
            opt.step()
            if ema is not None:
                ema.update(model)
        marks.append(("optimizer (+ finite check, EMA)", time.perf_counter(), cpu()))
        prev_w, prev_c = w0, c0
        for lab, w, c in marks:
            r[lab] = {"s": w - prev_w, "busy": (c - prev_c) / max(w - prev_w, 1e-9) / args.threads}
            prev_w, prev_c = w, c
        r["step"] = {"s": marks[-1][1] - w0, "busy": (marks[-1][2] - c0) / (marks[-1][1] - w0) / args.threads}
        r["_fwd"], r["_loss"] = fwd, loss_parts
        return r

    step(0)  # warm-up: builds the rig look-ups (cached per rig afterwards), first-call allocations
    runs = [step(i + 1) for i in range(args.steps)]
    bwd = profiled_backward(step, timers, args.steps + 1)

    def med(key, sub="s"):
        return statistics.median(r[key][sub] for r in runs)

    phases = ["data loading", "forward", "losses", "backward", "optimizer (+ finite check, EMA)", "step"]
    res = {"config": name, "height": t.height, "width": t.width, "voxel_size": list(cfg.model.voxel_size),
           "proj_d_bins": cfg.model.proj_d_bins, "photo_pyramid": cfg.loss.photo_pyramid, "threads": args.threads,
           "steps": args.steps, "torch": torch.__version__, "loadavg": os.getloadavg(),
           "phases": {k: {"s": med(k), "busy": med(k, "busy")} for k in phases}}
    labels = sorted({k for r in runs for k in r["_fwd"]})
    res["forward_by_module"] = {k: statistics.median(r["_fwd"].get(k, 0.0) for r in runs) for k in labels}
    res["forward_by_module"]["forward: other (pose matrices, glue)"] = max(
        0.0, res["phases"]["forward"]["s"] - sum(res["forward_by_module"].values()))
    lk = sorted({k for r in runs for k in r["_loss"]})
    res["losses_by_term"] = {k: statistics.median(r["_loss"].get(k, 0.0) for r in runs) for k in lk}
    total_b = sum(bwd.values()) or 1.0
    scale = res["phases"]["backward"]["s"] / total_b
    res["backward_by_module"] = {k: v * scale for k, v in sorted(bwd.items(), key=lambda kv: -kv[1])}
    return res


def profiled_backward(step, timers: Timers, i: int) -> dict:
    """Backward time per forward label, from one profiled step: each autograd node's evaluation goes to the
    innermost label around the forward op that created it (sequence numbers)."""
    from torch.profiler import ProfilerActivity, profile

    timers.profiling = True
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(i)
    timers.profiling = False
    timers.take()
    labels = set()
    events = prof.events()
    for e in events:
        if e.is_user_annotation or e.name.startswith(("depth", "pose", "rig", "loss")):
            labels.add(e.name)
    seq_label = {}
    for e in events:
        if e.sequence_nr < 0 or e.name.startswith("autograd::engine"):
            continue
        lab, p = None, e.cpu_parent
        while p is not None:
            if p.name in labels:
                lab = p.name
                break
            p = p.cpu_parent
        seq_label.setdefault(e.sequence_nr, lab or "forward: other / losses glue")
    out = defaultdict(float)
    for e in events:
        if e.name.startswith("autograd::engine::evaluate_function"):
            lab = seq_label.get(e.sequence_nr, "unattributed")
            out[lab] += e.cpu_time_total / 1e6
    return dict(out)


def print_table(r: dict) -> None:
    print(f"\n== {r['config']}: 6 x {r['height']}x{r['width']}, grid {'x'.join(map(str, r['voxel_size']))}, "
          f"{r['proj_d_bins']} bins, photo_pyramid {r['photo_pyramid']}, batch 1, {r['threads']} threads, "
          f"median of {r['steps']} steps, load avg {r['loadavg'][0]:.2f}")
    step = r["phases"]["step"]["s"]
    print(f"{'phase':44s} {'s':>7s} {'share':>6s} {'cores busy':>10s}")
    for k, v in r["phases"].items():
        print(f"{k:44s} {v['s']:7.3f} {v['s'] / step:6.1%} {v['busy']:10.2f}")
    for title, key in (("forward by module", "forward_by_module"), ("losses by term", "losses_by_term"),
                       ("backward by module (profiled, scaled)", "backward_by_module")):
        print(f"  {title}:")
        for k, v in sorted(r[key].items(), key=lambda kv: -kv[1]):
            print(f"    {k:42s} {v:7.3f} {v / step:6.1%}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["learning", "paper"], choices=("learning", "small", "paper"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per config (after one warm-up step)")
    ap.add_argument("--data", default=None, help="a synthetic/DDAD ddad.json (default: a generated one-scene world)")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides, e.g. training.amp=bf16")
    ap.add_argument("--out", default=str(REPO / "results" / "bench"))
    ap.add_argument("--only", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.only:
        print(json.dumps(run_one(args.only, args)))
        return 0
    from bench_model import run_config_process

    data_world(args)  # generate once, outside the timed processes
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.configs:
        cmd = [sys.executable, __file__, "--only", name, "--threads", str(args.threads), "--steps", str(args.steps)]
        cmd += ["--data", args.data] if args.data else []
        for s in args.set:
            cmd += ["--set", s]
        r = run_config_process(cmd, args.threads)
        if r is None:
            return 1
        print_table(r)
        (out / f"train_step_{name}.json").write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
