"""Optimised vs unoptimised paths of VFDepth, measured in the same run (latency p50/p95, throughput, peak memory).

    .venv/bin/python benchmarks/bench_perf.py                          # small + paper configs, CPU, 2 threads
    .venv/bin/python benchmarks/bench_perf.py --configs small --threads 1 --onnx
    .venv/bin/python benchmarks/bench_perf.py --device cuda            # on a GPU machine (fp16 + bf16 autocast)

Per config (each in its own subprocess, so peak memory is per config) and device:
  depth forward (6 cameras, batch 1), pose forward, depth + one virtual view, the Predictor end to end
  (depth + pose + virtual view, sets/s), and for the small config the training step (forward, all losses,
  backward, Adam). Variants: ``reference`` (grid_sample path, contiguous NCHW, fp32), ``uncached`` (fast
  path but rig look-ups rebuilt every call), ``fast`` (precomputed gathers), ``fast_cl`` (+ channels_last),
  and autocast (``bf16`` on CPU; ``fp16`` and ``bf16`` on CUDA) on top, with its max relative depth
  difference against fp32. Ratios are speed-ups over ``reference``. ``--onnx`` adds onnxruntime (CPU or
  CUDA provider) on the exported graph. Load average is recorded with every config. JSON: results/bench/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_model import CONFIGS, RELEASED_S, p95, ring_rig, run_config_process

REPO = Path(__file__).resolve().parent.parent


def _stats(times):
    return {"p50_s": statistics.median(times), "p95_s": p95(times), "n": len(times)}


def run_one(name: str, args) -> dict:
    import torch

    from vfdepth_core.config import Config, with_overrides
    from vfdepth_core.inference import Predictor, VirtualCamera
    from vfdepth_core.losses import compute_losses
    from vfdepth_core.model import VFDepth

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(dev)) if cuda else (lambda: None)
    cfg = with_overrides(Config(), CONFIGS[name])
    H, W = cfg.training.height, cfg.training.width
    model = VFDepth(cfg, load_imagenet=False).to(dev).eval()
    K, T = ring_rig(H, W)
    K, T = K[None].to(dev), T[None].to(dev)
    Kv, Tv = K[:, :1].clone(), T[:, :1].clone()
    Tv[..., 2, 3] += 2.0
    imgs = torch.rand(1, 2, 6, 3, H, W, device=dev)
    mask = torch.ones(1, 6, 1, H, W, device=dev)
    reps = args.repeats if name == "small" else max(2, args.repeats // 2)

    def timeit(fn, n):
        fn()
        ts = []
        for _ in range(n):
            sync()
            t = time.perf_counter()
            fn()
            sync()
            ts.append(time.perf_counter() - t)
        return _stats(ts)

    variants = {"reference": dict(fast=False, cl=False, amp=None, cache=True),
                "uncached": dict(fast=True, cl=True, amp=None, cache=False),
                "fast": dict(fast=True, cl=False, amp=None, cache=True),
                "fast_cl": dict(fast=True, cl=True, amp=None, cache=True)}
    amps = ["fp16", "bf16"] if cuda else ["bf16"]
    for a in amps:
        variants[f"fast_cl_{a}"] = dict(fast=True, cl=True, amp=a, cache=True)
    dtypes = {"fp16": torch.float16, "bf16": torch.bfloat16}

    def configure(v):
        model.set_fast(v["fast"]).set_channels_last(v["cl"])
        model.rig_cache.enabled = v["cache"]
        return (lambda: torch.autocast(dev.type, dtype=dtypes[v["amp"]])) if v["amp"] else contextlib.nullcontext

    res = {"config": name, "height": H, "width": W, "device": str(dev), "threads": args.threads,
           "torch": torch.__version__, "loadavg_start": os.getloadavg(), "variants": {}}
    depth_ref = None
    for vname, v in variants.items():
        ac = configure(v)
        if vname == "uncached" and name != "small" and not args.all_variants:
            continue

        def depth():
            with torch.no_grad(), ac():
                return model.predict_depth(imgs[:, 0], K, T, mask)[0]

        def pose():
            with torch.no_grad(), ac():
                return model.predict_pose(imgs[:, 1], imgs[:, 0], K, T, mask)

        def virtual():
            with torch.no_grad(), ac():
                return model.predict_depth(imgs[:, 0], K, T, mask, (Kv, Tv))

        r = {"depth": timeit(depth, reps), "pose": timeit(pose, reps), "depth_plus_virtual": timeit(virtual, reps),
             "loadavg": os.getloadavg()}
        d = model.to_depth(depth(), K).float()
        if vname == "reference":
            depth_ref = d
        r["depth_max_rel_diff_vs_reference"] = float(((d - depth_ref).abs() / depth_ref).max())
        res["variants"][vname] = r
    ref = res["variants"]["reference"]
    for vname, r in res["variants"].items():
        r["speedup_vs_reference"] = {k: ref[k]["p50_s"] / r[k]["p50_s"] for k in ("depth", "pose", "depth_plus_virtual")}

    model.rig_cache.enabled = True
    # end to end: Predictor.predict with previous frame and one virtual view (what the node calls)
    for pname, amp in [("predictor_fp32", "none")] + [(f"predictor_{a}", a) for a in amps]:
        pred = Predictor(cfg, model.set_fast(True), device=dev, amp=amp)
        u8 = (imgs * 255).to(torch.uint8).cpu()
        vc = VirtualCamera(Kv[0].cpu(), Tv[0].cpu())
        st = timeit(lambda: pred.predict(u8[0, 0], K[0].cpu(), T[0].cpu(), prev_images=u8[0, 1], virtual=vc), reps)
        st["sets_per_s"] = 1.0 / st["p50_s"]
        res[pname] = st
    if args.onnx and name == "small":
        res["onnx"] = bench_onnx(model, K, T, Kv, Tv, imgs, reps, args)

    if name == "small" and not args.no_train:
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        batch = {"image": imgs[:, [0, 1, 1]], "image_aug": imgs[:, [0, 1, 1]], "K": K, "T_ego_cam": T, "mask": mask}
        res["train_step"] = {}
        for vname in ["reference", "fast_cl"] + [f"fast_cl_{a}" for a in amps]:
            ac = configure(variants[vname])

            def step():
                with ac():
                    out = model(batch)
                    total, _ = compute_losses(batch, out, cfg)
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()

            res["train_step"][vname] = timeit(step, max(1, args.train_repeats))
            res["train_step"][vname]["loadavg"] = os.getloadavg()
        r0 = res["train_step"]["reference"]["p50_s"]
        for v in res["train_step"].values():
            v["speedup_vs_reference"] = r0 / v["p50_s"]
    if cuda:
        res["peak_mem_gb"] = torch.cuda.max_memory_allocated(dev) / 1e9
        res["peak_mem_kind"] = "cuda_max_memory_allocated"
    else:
        res["peak_mem_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        res["peak_mem_kind"] = "rss"
    res["released_code"] = RELEASED_S.get(name, {})
    res["loadavg_end"] = os.getloadavg()
    return res


def bench_onnx(model, K, T, Kv, Tv, imgs, reps, args) -> dict:
    import numpy as np
    import onnxruntime as ort
    import torch

    from vfdepth_core.export import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model.cpu(), Path(tmp) / "m.onnx", K.cpu(), T.cpu(), virtual=(Kv.cpu(), Tv.cpu()))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        prov = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=prov)
        x = imgs[:, 0].cpu().numpy()
        xp = imgs[:, 1].cpu().numpy()
        run = lambda: sess.run(None, {"images": x, "prev_images": xp})  # noqa: E731
        run()
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            out = run()
            ts.append(time.perf_counter() - t)
    model.to(imgs.device)
    with torch.no_grad():
        d = model.predict_depth(imgs[:, 0], K, T)[0].cpu().numpy()
    st = _stats(ts)
    st.update(providers=prov, what="depth + pose + 1 virtual view", loadavg=os.getloadavg(),
              disp_max_abs_diff_vs_torch=float(np.abs(out[0] - d).max()))
    return st


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["small", "paper"], choices=sorted(CONFIGS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--train-repeats", type=int, default=2)
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available, else cpu)")
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--onnx", action="store_true", help="also time onnxruntime on the exported graph (small config)")
    ap.add_argument("--all-variants", action="store_true", help="also the uncached variant at the paper config")
    ap.add_argument("--json", default=None, help="default results/bench/bench_perf_<device>.json")
    ap.add_argument("--only", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.only:
        print(json.dumps(run_one(args.only, args)))
        return 0
    results = []
    for name in args.configs:
        cmd = [sys.executable, __file__, "--only", name, "--threads", str(args.threads), "--repeats", str(args.repeats),
               "--train-repeats", str(args.train_repeats), "--device", args.device]
        cmd += [f for f, on in (("--no-train", args.no_train), ("--onnx", args.onnx),
                                ("--all-variants", args.all_variants)) if on]
        r = run_config_process(cmd, args.threads)
        if r is None:
            return 1
        results.append(r)
        print(f"== {name}: 6x{r['height']}x{r['width']}, {r['device']}, {r['threads']} threads, "
              f"load avg {r['loadavg_start'][0]:.2f} -> {r['loadavg_end'][0]:.2f}")
        for vname, v in r["variants"].items():
            print(f"   {vname:14s} depth p50 {v['depth']['p50_s']:.3f} s p95 {v['depth']['p95_s']:.3f} s | pose p50 "
                  f"{v['pose']['p50_s']:.3f} s | depth+virtual {v['depth_plus_virtual']['p50_s']:.3f} s | speed-up "
                  f"x{v['speedup_vs_reference']['depth']:.2f}/x{v['speedup_vs_reference']['pose']:.2f} | max rel "
                  f"depth diff {v['depth_max_rel_diff_vs_reference']:.1e}")
        for k in [k for k in r if k.startswith("predictor_")]:
            print(f"   {k:14s} end to end (depth+pose+virtual) p50 {r[k]['p50_s']:.3f} s, {r[k]['sets_per_s']:.2f} sets/s")
        if "onnx" in r:
            print(f"   onnxruntime    p50 {r['onnx']['p50_s']:.3f} s ({r['onnx']['what']}), disp diff "
                  f"{r['onnx']['disp_max_abs_diff_vs_torch']:.1e}")
        for vname, v in r.get("train_step", {}).items():
            print(f"   train step {vname:12s} p50 {v['p50_s']:.2f} s (x{v['speedup_vs_reference']:.2f})")
        print(f"   peak memory ({r['peak_mem_kind']}) {r['peak_mem_gb']:.2f} GB; released code {r['released_code']}")
    out = Path(args.json or REPO / "results" / "bench" / f"bench_perf_{args.device.split(':')[0]}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"results": results}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
