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
(below 1: threads idle, e.g. during Python work). ``convolutions (fwd+bwd)``: the time of every conv of
the step, forward (aten::convolution) and backward (aten::convolution_backward), from the profiled step's
operator events, as a share of that step's wall time: what the paper's architecture costs in conv arithmetic
on this CPU whatever the code around it does. Writes results/bench/train_step_<config>.json.

Side by side with the paper's released code (issue 18's ratio):

    python benchmarks/bench_train_step.py --original /path/to/VFDepth [--configs small] [--reps 5]

builds the released code's own training step (its VFDepthAlgo, losses and Adam; benchmarks/original_step.py
says what is stood in for) at the same config and on the same batch as ours, in one process, and times them
interleaved (released, ours, released, ours, ... after one warm-up step each; data loading excluded from
both). Prints and writes (results/bench/train_step_vs_original_<config>.json) both medians, ours / released,
the pairwise ratios, the load average at each pair and the thread count; then profiled steps (two of each,
alternating, the shorter kept) give each side's convolutions' time (forward + backward) and share, and our
convs' share x our median over the released step's median: the ratio that the same convs alone already
cost. With --original the profile tables are not produced (run without it for those); without --original
no side-by-side figure is produced.
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


def build(name: str, args):
    """(cfg, load(i) -> collated batch, model in train mode, Adam, weight average or None) of a named config."""
    import torch
    from torch.utils.data import default_collate

    from vfdepth_core.config import load_config
    from vfdepth_core.datasets import build_dataset
    from vfdepth_core.model import VFDepth
    from vfdepth_core.training.ema import WeightEMA
    from vfdepth_core.training.optim import make_adam

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
    return cfg, load, model, opt, ema


def run_one(name: str, args) -> dict:
    import torch

    from vfdepth_core import losses
    from vfdepth_core.training.optim import autocast, grads_finite

    cfg, load, model, opt, ema = build(name, args)
    t = cfg.training
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
    bwd, conv = profiled_backward(step, timers, args.steps + 1)

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
    res["convolutions"] = conv
    return res


def profiled_backward(step, timers: Timers, i: int):
    """From one profiled step: the backward time per forward label (each autograd node's evaluation goes to
    the innermost label around the forward op that created it, by sequence number), and the step's
    convolutions (conv_time)."""
    from torch.profiler import ProfilerActivity, profile

    timers.profiling = True
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        t0 = time.perf_counter()
        step(i)
        wall = time.perf_counter() - t0
    timers.profiling = False
    timers.take()
    labels = set()
    events = prof.events()
    conv = conv_time(events, wall)
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
    return dict(out), conv


CONV_OPS = {"aten::convolution": "fwd", "aten::convolution_backward": "bwd"}


def conv_time(events, step_wall_s: float) -> dict:
    """Every convolution of a profiled step: forward (aten::convolution) and backward
    (aten::convolution_backward) wall time on the calling thread (intra-op threads included), outermost
    calls only; totals, share of the profiled step's wall time, and per weight shape (out x in x kh x kw)."""
    tot = {"fwd": 0.0, "bwd": 0.0}
    by_w = defaultdict(lambda: {"fwd_s": 0.0, "bwd_s": 0.0, "calls": 0})
    for e in events:
        kind = CONV_OPS.get(e.name)
        if kind is None:
            continue
        p = e.cpu_parent
        while p is not None and p.name != e.name:
            p = p.cpu_parent
        if p is not None:
            continue
        s = e.cpu_time_total / 1e6
        tot[kind] += s
        shapes = list(e.input_shapes or [])
        w = shapes[1] if kind == "fwd" and len(shapes) > 1 else shapes[2] if len(shapes) > 2 else []
        row = by_w["x".join(map(str, w)) or "?"]
        row[f"{kind}_s"] += s
        row["calls"] += kind == "fwd"
    total = tot["fwd"] + tot["bwd"]
    top = dict(sorted(by_w.items(), key=lambda kv: -(kv[1]["fwd_s"] + kv[1]["bwd_s"])))
    return {"fwd_s": tot["fwd"], "bwd_s": tot["bwd"], "total_s": total, "profiled_step_s": step_wall_s,
            "share": total / max(step_wall_s, 1e-9), "by_weight_shape": top}


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
    c = r.get("convolutions")
    if c:
        print(f"  convolutions (fwd+bwd), profiled step: {c['total_s']:.3f} s of {c['profiled_step_s']:.3f} s = "
              f"{c['share']:.1%} (fwd {c['fwd_s']:.3f}, bwd {c['bwd_s']:.3f}; {c['share'] * step:.3f} s of the "
              "median step at that share); largest by weight shape:")
        for w, v in list(c["by_weight_shape"].items())[:6]:
            print(f"    {w:24s} x{v['calls']:<3d} fwd {v['fwd_s']:6.3f}  bwd {v['bwd_s']:6.3f}")


# ---- side by side with the released code -------------------------------------------------------------


def side_by_side(name: str, args) -> dict:
    """The released code's step and ours at config `name` on one batch, interleaved (see the docstring)."""
    import datetime

    import torch

    from original_step import released_step
    from vfdepth_core import losses
    from vfdepth_core.training.optim import autocast, grads_finite

    cfg, load, model, opt, ema = build(name, args)
    batch = load(0)

    def ours():
        opt.zero_grad(set_to_none=True)
        with autocast("cpu", cfg.training.amp):
            outputs = model(batch)
        total, _ = losses.compute_losses(batch, outputs, cfg)
        total.backward()
        if bool(torch.isfinite(total.detach())) and grads_finite(model.parameters()):
            opt.step()
            if ema is not None:
                ema.update(model)

    released = released_step(Path(args.original), cfg, batch)
    released(), ours()  # warm-up: first-call allocations, our rig look-ups
    t_rel, t_ours, loads = [], [], []
    for _ in range(args.reps):
        for fn, times in ((released, t_rel), (ours, t_ours)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        loads.append(os.getloadavg()[0])
        print(f"pair {len(t_rel)}: released {t_rel[-1]:.2f} s, ours {t_ours[-1]:.2f} s, load {loads[-1]:.2f}",
              file=sys.stderr, flush=True)
    m_rel, m_ours = statistics.median(t_rel), statistics.median(t_ours)
    pairwise = [b / a for a, b in zip(t_rel, t_ours)]
    # profiled twice each, alternating; the less disturbed (shorter) profiled step of each side is kept
    tries = [(who, profiled_convs(fn)) for _ in range(2) for who, fn in (("released", released), ("ours", ours))]
    convs = {who: min((c for w, c in tries if w == who), key=lambda c: c["profiled_step_s"])
             for who in ("released", "ours")}
    return {"config": name, "original": str(Path(args.original).resolve()), "height": cfg.training.height,
            "width": cfg.training.width, "voxel_size": list(cfg.model.voxel_size),
            "proj_d_bins": cfg.model.proj_d_bins, "batch_size": 1, "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "released_s": m_rel, "ours_s": m_ours, "ratio": m_ours / m_rel, "pairwise_ratios": pairwise,
            "pairwise_ratio_median": statistics.median(pairwise), "released_all_s": t_rel, "ours_all_s": t_ours,
            "loadavg_per_pair": loads, "convolutions": convs,
            # the conv share of our profiled step applied to our median: robust to load changing between the
            # timed pairs and the profiled steps (both sides of a share see the same load)
            "ours_convs_over_released_step": convs["ours"]["share"] * m_ours / m_rel}


def profiled_convs(step) -> dict:
    """conv_time of one profiled call of `step` (shapes recorded), with the number of conv calls."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        t0 = time.perf_counter()
        step()
        wall = time.perf_counter() - t0
    c = conv_time(prof.events(), wall)
    c["calls"] = sum(v["calls"] for v in c["by_weight_shape"].values())
    return c


def print_side_by_side(r: dict) -> None:
    print(f"\n== side by side with the released code ({r['original']}), {r['config']}: 6 x {r['height']}x{r['width']}, "
          f"grid {'x'.join(map(str, r['voxel_size']))}, {r['proj_d_bins']} bins, batch 1, {r['threads']} threads, "
          f"{len(r['released_all_s'])} interleaved pairs, {r['utc']}")
    print(f"  released code: median {r['released_s']:.2f} s  ({', '.join(f'{t:.2f}' for t in r['released_all_s'])})")
    print(f"  ours:          median {r['ours_s']:.2f} s  ({', '.join(f'{t:.2f}' for t in r['ours_all_s'])})")
    print(f"  ours / released: {r['ratio']:.2f} (pairwise {', '.join(f'{x:.2f}' for x in r['pairwise_ratios'])}; "
          f"median {r['pairwise_ratio_median']:.2f})")
    print(f"  load average (1 min) at each pair: {', '.join(f'{x:.2f}' for x in r['loadavg_per_pair'])}")
    for who, c in r["convolutions"].items():
        print(f"  convolutions (fwd+bwd), profiled step, {who:8s}: {c['total_s']:.2f} s of "
              f"{c['profiled_step_s']:.2f} s = {c['share']:.0%} ({c['calls']} conv calls; largest: "
              + ", ".join(f"{w} {v['fwd_s'] + v['bwd_s']:.2f} s" for w, v in list(c["by_weight_shape"].items())[:3])
              + ")")
    print(f"  our convolutions alone (their share x our median) / the released step's median: "
          f"{r['ours_convs_over_released_step']:.2f} (the floor for any code running these convs with these "
          "kernels, fp32, on this CPU)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=None, choices=("learning", "small", "paper"),
                    help="default: learning paper; with --original: small")
    ap.add_argument("--original", default=None,
                    help="a checkout of the paper's released VFDepth code: time its training step side by side with "
                         "ours instead of profiling ours")
    ap.add_argument("--reps", type=int, default=5, help="interleaved pairs of steps with --original")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per config (after one warm-up step)")
    ap.add_argument("--data", default=None, help="a synthetic/DDAD ddad.json (default: a generated one-scene world)")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides, e.g. training.amp=bf16")
    ap.add_argument("--out", default=str(REPO / "results" / "bench"))
    ap.add_argument("--only", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    problem = check_side_by_side_args(args)
    if problem:
        ap.error(problem)
    if args.only:
        print(json.dumps(side_by_side(args.only, args) if args.original else run_one(args.only, args)))
        return 0
    from bench_model import run_config_process

    data_world(args)  # generate once, outside the timed processes
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.configs:
        cmd = [sys.executable, __file__, "--only", name, "--threads", str(args.threads), "--steps", str(args.steps)]
        cmd += ["--data", args.data] if args.data else []
        cmd += ["--original", args.original, "--reps", str(args.reps)] if args.original else []
        for s in args.set:
            cmd += ["--set", s]
        r = run_config_process(cmd, args.threads)
        if r is None:
            return 1
        if args.original:
            print_side_by_side(r)
            (out / f"train_step_vs_original_{name}.json").write_text(json.dumps(r, indent=2))
        else:
            print_table(r)
            (out / f"train_step_{name}.json").write_text(json.dumps(r, indent=2))
    if not args.original:
        print("\nno side-by-side figure against the paper's released code: pass --original /path/to/VFDepth for one")
    return 0


def check_side_by_side_args(args) -> str | None:
    """Fill in the default configs; with --original, why the arguments cannot give a side-by-side (or None)."""
    if args.configs is None:
        args.configs = ["small"] if args.original else ["learning", "paper"]
    if args.original is None:
        return None
    from original_step import released_code_problem

    problem = released_code_problem(Path(args.original))
    if problem:
        return problem
    if "learning" in args.configs:
        return ("--original: the learning config's objective (photometric pyramid, weight average) is not in the "
                "released code; use --configs small or paper")
    if args.reps < 1:
        return f"--reps {args.reps}: need at least one pair of steps"
    return None


if __name__ == "__main__":
    sys.exit(main())
