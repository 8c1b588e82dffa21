"""Predict a training run's GPU memory and time per epoch from CPU measurements (no GPU needed).

    .venv/bin/python benchmarks/predict_gpu.py --batch 1 --json results/predict_gpu.json

One training step (forward, all losses, backward) of the paper's config (6 cameras, frames 0/-1/+1,
training.height x width, random images on a DDAD-like ring rig), measured on the CPU:

* parameters, and what they cost with gradients and Adam's two moments (4 x 4 bytes per parameter);
* activation memory: the bytes autograd keeps for the backward pass (every tensor saved for backward
  except the parameters, each storage counted once), which is what dominates a GPU's peak in training;
* the step's floating-point operations (torch.utils.flop_counter: convolutions and matrix products; the
  memory-bound gathers, grid sampling and losses are not counted, so times from it are lower bounds);
* the peak RSS growth of the step, for comparison.

Measured at ``--batch`` and scaled linearly to the paper's batch 2 (activations and FLOPs are linear in the
batch: ``--check_linear`` measures a small config at batch 1 and 2 to show it). Time per epoch is a
prediction from the FLOPs and an assumed sustained throughput, not a GPU measurement.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Training samples per epoch: DDAD train (12,650 samples in 150 scenes, public) minus the two edge samples per
# scene without a temporal neighbour; nuScenes: the paper's train.txt (20,095 sample tokens).
TRAIN_SAMPLES = {"ddad": 12650 - 2 * 150, "nuscenes": 20095}
PAPER_HW = {"ddad": (384, 640), "nuscenes": (352, 640)}


def measure(overrides, batch: int) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from bench_model import ring_rig
    from vfdepth_core.config import Config, with_overrides
    from vfdepth_core.losses import compute_losses
    from vfdepth_core.model import VFDepth

    cfg = with_overrides(Config(), ["model.weights_init=false", *overrides])
    H, W = cfg.training.height, cfg.training.width
    torch.manual_seed(0)
    model = VFDepth(cfg, load_imagenet=False)
    K, T = ring_rig(H, W)
    F, N = len(cfg.training.frame_ids), K.shape[0]
    img = torch.rand(batch, F, N, 3, H, W)
    b = {"image": img, "image_aug": img.clone(), "K": K.expand(batch, -1, -1, -1).contiguous(),
         "T_ego_cam": T.expand(batch, -1, -1, -1).contiguous(), "mask": torch.ones(batch, N, 1, H, W),
         "T_world_ego": torch.eye(4, dtype=torch.float64).expand(batch, F, 4, 4).contiguous()}
    params = {"depth_net": sum(p.numel() for p in model.depth_net.parameters()),
              "pose_net": sum(p.numel() for p in model.pose_net.parameters())}
    # parameters are saved for backward too, but they are counted once with the optimizer state
    seen, saved = {(q.untyped_storage().data_ptr(), q.untyped_storage().nbytes()) for q in model.parameters()}, [0]

    def pack(t):
        st = t.untyped_storage()
        key = (st.data_ptr(), st.nbytes())
        if key not in seen:
            seen.add(key)
            saved[0] += st.nbytes()
        return t

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with FlopCounterMode(display=False) as fc, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        total, _ = compute_losses(b, model(b), cfg)
        total.backward()
    seconds = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"height": H, "width": W, "batch": batch, "cameras": N, "frames": F, "params": params,
            "saved_for_backward_gib": saved[0] / 2**30, "step_gflop": fc.get_total_flops() / 1e9,
            "peak_rss_growth_gib": (rss1 - rss0) / 2**20, "cpu_step_s": seconds}


def predict(m: dict, dataset: str, batch: int = 2, tflops=(20.0, 50.0)) -> dict:
    scale = batch / m["batch"]
    p = sum(m["params"].values())
    act = m["saved_for_backward_gib"] * scale
    states = p * 4 * 4 / 2**30  # weights, gradients, Adam's two moments (fp32)
    steps = TRAIN_SAMPLES[dataset] // batch
    gflop = m["step_gflop"] * scale
    return {"dataset": dataset, "batch": batch, "params_m": p / 1e6, "weights_grads_adam_gib": states,
            "activations_gib": act, "predicted_gpu_gib": states + act, "train_samples": TRAIN_SAMPLES[dataset],
            "steps_per_epoch": steps, "step_tflop": gflop / 1e3,
            "epoch_min": {f"{t:g}_tflops": steps * gflop / (t * 1e3) / 60 for t in tflops}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=1, help="measured batch (scaled to 2); 1 keeps CPU memory small")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dataset", choices=sorted(PAPER_HW), nargs="+", default=sorted(PAPER_HW))
    ap.add_argument("--check_linear", action="store_true", help="also measure a small config at batch 1 and 2")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    out = {"measured": {}, "predicted": {}}
    if args.check_linear:
        small = ["training.height=96", "training.width=160", "model.voxel_size=[50,50,10]",
                 "model.voxel_unit_size=[2.0,2.0,3.0]", "model.proj_d_bins=25"]
        out["linearity"] = [measure(small, b) for b in (1, 2)]
        for r in out["linearity"]:
            print(f"small config batch {r['batch']}: saved {r['saved_for_backward_gib']:.3f} GiB, "
                  f"{r['step_gflop']:.1f} GFLOP")
    for ds in args.dataset:
        H, W = PAPER_HW[ds]
        m = measure([f"training.height={H}", f"training.width={W}"], args.batch)
        out["measured"][ds] = m
        out["predicted"][ds] = pr = predict(m, ds)
        print(f"{ds} {H}x{W}: measured at batch {args.batch} on the CPU in {m['cpu_step_s']:.0f} s: "
              f"saved for backward {m['saved_for_backward_gib']:.2f} GiB, {m['step_gflop']:.0f} GFLOP, "
              f"peak RSS +{m['peak_rss_growth_gib']:.2f} GiB; params {m['params']}")
        print(f"  PREDICTED at batch 2 (not a GPU measurement): {pr['predicted_gpu_gib']:.1f} GiB "
              f"({pr['activations_gib']:.1f} activations + {pr['weights_grads_adam_gib']:.2f} weights/grads/Adam), "
              f"{pr['steps_per_epoch']} steps/epoch of {pr['step_tflop']:.2f} TFLOP; epoch "
              + ", ".join(f"{v:.0f} min at {k.replace('_', ' ')}" for k, v in pr["epoch_min"].items()))
    if args.json:
        from vfdepth_core.training.files import write_json

        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
