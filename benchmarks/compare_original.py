"""Side by side with the paper's released code: an original checkpoint imported with `vfdepth import-original`
must reproduce the original's depth, pose and virtual-view (aug_depth) outputs.

    python benchmarks/compare_original.py --original /path/to/VFDepth [--fx_ratio 0.3] [--out results/compare_original.json]

What it does (CPU, batch 1, about a minute): builds the original's FusedDepthNet/FusedPoseNet from its own
code at a small config (192x320, voxel_size [50,50,10], proj_d_bins 25, six cameras, a self-occlusion mask),
perturbs their random weights strongly so that depth varies like a trained network's, saves them with the
original's own BaseModel.save_model (weights_0/depth_net.pth, pose_net.pth), imports that folder with
`vfdepth import-original`, and runs both on the same images, calibration and mask: depth of every camera,
the canonical pose (axis-angle, translation) and per-camera motion for frames -1 and +1, and depth at
perturbed extrinsics (the original's aug_depth branch, given fixed extrinsics). Ours runs through
Predictor (the node's path) and through the model's reference formulation. It then turns each
compatibility key back to the project's default to show what each one changes.

The original code runs unmodified: missing packages it imports but does not need here are stubbed at run time
(tensorboardX; pytorch3d's axis_angle_to_matrix, replaced by the Rodrigues formula), and torchvision's
resnet18 is given the positional `pretrained` argument the original passes. Without --original (or when the
folder lacks the code) it prints why and exits 0.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import math
import sys
import tempfile
import types
from pathlib import Path

import torch
import torch.nn.functional as F

from vfdepth_core import geometry as geo
from vfdepth_core.config import DDAD_CAMERAS

ROOT = Path(__file__).resolve().parents[1]

CAMERAS = list(DDAD_CAMERAS)
SMALL = {"height": 192, "width": 320, "voxel_size": [50, 50, 10], "voxel_unit_size": [2.0, 2.0, 3.0],
         "voxel_str_p": [-50.0, -50.0, -15.0], "proj_d_bins": 25}


def original_config(aug_depth: bool = True) -> dict:
    """The original's config tree (its YAML sections) at the small config, batch 1."""
    return {
        "ddp": {"ddp_enable": False, "world_size": 1, "gpus": [0]},
        "model": {"num_layers": 18, "weights_init": False, "depth_model": "fusion", "pose_model": "fusion",
                  "fusion_level": 2, "fusion_feat_in_dim": 256, "use_skips": False,
                  "voxel_unit_size": SMALL["voxel_unit_size"], "voxel_size": SMALL["voxel_size"],
                  "voxel_str_p": SMALL["voxel_str_p"], "voxel_pre_dim": [64], "proj_d_bins": SMALL["proj_d_bins"],
                  "proj_d_str": 2, "proj_d_end": 50},
        "data": {"dataset": "ddad", "cameras": CAMERAS, "back_context": 1, "forward_context": 1},
        "training": {"height": SMALL["height"], "width": SMALL["width"], "scales": [0], "frame_ids": [0, -1, 1],
                     "batch_size": 1, "min_depth": 1.5, "max_depth": 200.0, "focal_length_scale": 300,
                     "aug_depth": aug_depth, "aug_angle": [15, 15, 40], "spatio": True, "spatio_temporal": True},
        "eval": {"syn_visualize": False},
    }


def flat_original_cfg(tree: dict) -> dict:
    """What the original's get_config adds (num_cams) on top of the YAML tree."""
    cfg = json.loads(json.dumps(tree))
    cfg["data"]["num_cams"] = len(cfg["data"]["cameras"])
    cfg["model"]["mode"] = "eval"
    return cfg


def install_shims() -> None:
    """Stand-ins for what the original imports but does not need here (see the module docstring)."""
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        stub = types.ModuleType("tensorboardX")
        stub.SummaryWriter = object
        sys.modules["tensorboardX"] = stub
    try:
        import pytorch3d.transforms  # noqa: F401
    except ImportError:
        p3d = types.ModuleType("pytorch3d")
        tr = types.ModuleType("pytorch3d.transforms")
        tr.axis_angle_to_matrix = geo.axis_angle_to_rotmat
        p3d.transforms = tr
        sys.modules["pytorch3d"], sys.modules["pytorch3d.transforms"] = p3d, tr
    import torchvision.models as tvm

    if not getattr(tvm.resnet18, "_positional_pretrained", False):
        orig = tvm.resnet18

        def resnet18(pretrained=False, **kw):
            if pretrained:
                raise RuntimeError("no ImageNet download here: the comparison uses weights_init False")
            kw.setdefault("weights", None)
            return orig(**kw)

        resnet18._positional_pretrained = True
        tvm.resnet18 = resnet18


def load_original(root: Path):
    """The original's network classes, its Pose, BaseModel.save_model and VFDepthAlgo.to_depth."""
    install_shims()
    sys.path.insert(0, str(root))
    # its `models` package imports its datasets (dgp, ...): load the pieces we need without models/__init__
    pkg = types.ModuleType("models")
    pkg.__path__ = [str(root / "models")]
    sys.modules["models"] = pkg
    nets = importlib.import_module("network")
    pose_mod = importlib.import_module("models.geometry.pose")
    base = importlib.import_module("models.base_model")
    tree = ast.parse((root / "models" / "vfdepth.py").read_text())
    fn = next(n for c in tree.body if isinstance(c, ast.ClassDef) for n in c.body
              if isinstance(n, ast.FunctionDef) and n.name == "to_depth")
    ns = {"F": F, "torch": torch}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), str(root / "models" / "vfdepth.py"), "exec"), ns)
    return nets, pose_mod.Pose, base.BaseModel, ns["to_depth"]


@torch.no_grad()
def perturb_(net: torch.nn.Module, gen: torch.Generator, scale: float) -> None:
    """Trained-looking weights: every tensor moved by `scale` times its own spread, BN statistics randomised."""
    for name, t in net.state_dict().items():
        if not t.is_floating_point():
            continue
        if name.endswith("running_var"):
            t.copy_(0.5 + torch.rand(t.shape, generator=gen))
        elif name.endswith("running_mean"):
            t.copy_(0.2 * torch.randn(t.shape, generator=gen))
        else:
            s = float(t.std()) if t.numel() > 1 else 0.1
            t.add_(scale * max(s, 1e-2) * torch.randn(t.shape, generator=gen))


def inputs_for_original(imgs, K, T, mask) -> dict:
    """The original's input dict: frames (-1, 0, +1), K at scales 0 and 3 (its dataset divides rows 0-1 by 2^s)."""
    f32 = lambda x: x.float()  # noqa: E731
    K4 = torch.eye(4, dtype=torch.float64).repeat(1, K.shape[0], 1, 1)
    K4[..., :3, :3] = K
    K4_8 = K4.clone()
    K4_8[..., :2, :] /= 8
    inputs = {("color_aug", f, 0): imgs[i] for i, f in enumerate((-1, 0, 1))}
    inputs.update({("K", 0): f32(K4), ("K", 3): f32(K4_8), ("inv_K", 3): f32(torch.linalg.pinv(K4_8)),
                   "extrinsics": f32(T[None]), "extrinsics_inv": f32(torch.linalg.inv(T[None])), "mask": mask})
    return inputs


@torch.no_grad()
def calibrate_heads_(depth_net, pose_net, inputs: dict) -> None:
    """Rescale the output convs so that outputs look trained: disparity logits spread around the disparity of
    ~15 m (sigmoid not saturated), rotations ~0.02 rad and translations ~1 m per frame (under the 4 m clamp)."""
    dec = depth_net.decoder.convs[("dispconv", 0)][0]
    aug = depth_net.aug_depth
    depth_net.aug_depth = False
    logits = torch.logit(torch.cat([depth_net(inputs)[("cam", c)][("disp", 0)] for c in range(6)]).clamp(1e-6, 1 - 1e-6))
    depth_net.aug_depth = aug
    a = 1.5 / float(logits.std().clamp_min(1e-6))
    dec.weight.mul_(a)
    dec.bias.mul_(a).add_(-3.0 - a * float(logits.median()))
    last = pose_net.pose_decoder.convs[("pose", 2)]
    aa, tr = pose_net(inputs, [0, 1], None)
    for rows, got, want in ((slice(0, 3), aa, 0.02), (slice(3, 6), tr, 1.0)):
        k = want / float(got.abs().max().clamp_min(1e-9))
        last.weight[rows].mul_(k)
        last.bias[rows].mul_(k)


def self_occlusion_mask(H: int, W: int) -> torch.Tensor:
    """(1, 6, 1, H, W): a slanted car body at the bottom of every image, and a mirror across the middle of the
    front-left and front-right images (so that some voxels are seen only by two cameras of one index group)."""
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    mask = (v < 0.8 * H + 0.15 * (u - W / 2)).float().expand(1, 6, 1, H, W).clone()
    mask[:, 1:3, :, int(0.2 * H):int(0.7 * H), int(0.42 * W):int(0.58 * W)] = 0
    return mask


def ring_rig(fx_ratio: float = 0.3):
    """Six cameras (front, front-left, front-right, back-left, back-right, back) on a 2 x 4 m car, K at 192x320
    and T_ego_cam (6, 4, 4) (camera x right, y down, z forward -> vehicle x forward, y left, z up)."""
    H, W = SMALL["height"], SMALL["width"]
    yaws = [0, 60, -60, 120, -120, 180]
    pos = [(2.0, 0, 1.6), (1.5, 0.9, 1.6), (1.5, -0.9, 1.6), (-1.0, 0.9, 1.6), (-1.0, -0.9, 1.6), (-2.0, 0, 1.6)]
    R_ego_optical = torch.tensor([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=torch.float64)
    Ts = []
    for yaw, p in zip(yaws, pos):
        R = geo.euler_to_rotmat(0.0, 3.0, float(yaw)) @ R_ego_optical  # pitched 3 deg down
        Ts.append(geo.make_transform(R, torch.tensor(p, dtype=torch.float64)))
    K = geo.intrinsics_matrix(fx_ratio * W, fx_ratio * W, W / 2 - 0.5 + 3.0, H / 2 - 0.5 - 2.0)
    return K.expand(6, 3, 3).clone(), torch.stack(Ts)


def textured_images(gen: torch.Generator, n: int, H: int, W: int) -> torch.Tensor:
    """Smooth random colour images (n, 3, H, W) in [0, 1] (low-frequency noise plus fine texture)."""
    low = F.interpolate(torch.rand(n, 3, H // 16, W // 16, generator=gen), size=(H, W), mode="bicubic",
                        align_corners=False)
    return (0.7 * low + 0.3 * torch.rand(n, 3, H, W, generator=gen)).clamp(0, 1)


def stats(a: torch.Tensor, b: torch.Tensor) -> dict:
    d = (a.double() - b.double()).abs()
    return {"max_abs": float(d.max()), "mean_abs": float(d.mean()),
            "max_rel": float((d / b.double().abs().clamp_min(1e-12)).max())}


def run(original: Path, out_path: Path, seed: int, scale: float, fx_ratio: float = 0.3) -> dict:
    from vfdepth_core.config import with_overrides
    from vfdepth_core.import_original import COMPAT_KEYS, compat_config
    from vfdepth_core.inference import Predictor, VirtualCamera
    from vfdepth_core.model import VFDepth
    from vfdepth_ros import cli

    nets, Pose, BaseModel, to_depth = load_original(original)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    tree = original_config()
    ocfg = flat_original_cfg(tree)
    depth_net, pose_net = nets.FusedDepthNet(ocfg).eval(), nets.FusedPoseNet(ocfg).eval()
    perturb_(depth_net, gen, scale)
    perturb_(pose_net, gen, scale)

    H, W = SMALL["height"], SMALL["width"]
    K, T = ring_rig(fx_ratio)
    imgs = textured_images(gen, 3 * 6, H, W).reshape(3, 1, 6, 3, H, W)  # frames -1, 0, +1
    mask = self_occlusion_mask(H, W)
    d64 = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    R_aug = geo.euler_to_rotmat(d64(4, -3, 2, 5, -6, 1), d64(2, 3, -2, 1, 2, -4), d64(10, -15, 20, -8, 12, -18))
    T_aug = geo.make_transform(R_aug, torch.zeros(6, 3, dtype=torch.float64)) @ T  # cameras turned about the car

    calibrate_heads_(depth_net, pose_net, inputs_for_original(imgs, K, T, mask))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        holder = types.SimpleNamespace(models={"depth_net": depth_net, "pose_net": pose_net},
                                       optimizer=torch.optim.Adam(list(depth_net.parameters()) + list(pose_net.parameters())),
                                       save_weights_root=str(tmp))
        BaseModel.save_model(holder, 0)  # the original's own checkpoint format: weights_0/{depth,pose}_net.pth
        import yaml

        (tmp / "small.yaml").write_text(yaml.safe_dump(tree))
        ck = tmp / "imported.pt"
        rc = cli.main(["import-original", str(tmp / "weights_0"), "--config", str(tmp / "small.yaml"), "-o", str(ck)])
        if rc != 0:
            raise SystemExit(f"vfdepth import-original failed (exit {rc})")
        pred = Predictor.from_checkpoint(ck, device="cpu")
    compat = {k: getattr(pred.cfg.model, k) for k in COMPAT_KEYS}
    want = {k: getattr(compat_config(pred.cfg).model, k) for k in COMPAT_KEYS}
    if compat != want:
        raise SystemExit(f"the imported checkpoint's compatibility keys {compat} are not the released code's {want}")

    # ---- the original -------------------------------------------------------------------------------
    f32 = lambda x: x.float()  # noqa: E731
    inputs = inputs_for_original(imgs, K, T, mask)
    depth_net.fusion_net.augment_extrinsics = lambda ext: f32(T_aug[None])
    depth_ns = types.SimpleNamespace(min_depth=1.5, max_depth=200.0, height=H, width=W, focal_length_scale=300)
    with torch.no_grad():
        o = depth_net(inputs)
        o_depth = torch.stack([to_depth(depth_ns, o[("cam", c)][("disp", 0)], inputs[("K", 0)][:, c]) for c in range(6)], 1)
        o_aug = torch.stack([to_depth(depth_ns, o[("cam", c)][("disp", 0, "aug")], inputs[("K", 0)][:, c])
                             for c in range(6)], 1)
        o_pose_raw = {f: pose_net(inputs, [-1, 0] if f < 0 else [0, 1], None) for f in (-1, 1)}
        o_poses = Pose(ocfg).compute_pose(pose_net, inputs)
    o_T = {f: torch.stack([o_poses[("cam", c)][("cam_T_cam", 0, f)] for c in range(6)], 1) for f in (-1, 1)}

    # ---- ours: Predictor (the node's path) and the reference formulation -------------------------
    prev, cur, nxt = imgs[0, 0], imgs[1, 0], imgs[2, 0]
    p = pred.predict(cur, K, T, prev_images=prev, virtual=VirtualCamera(K, T_aug), mask=mask[0])
    model = pred.model
    results = {"config": SMALL, "fx_ratio": fx_ratio, "seed": seed, "perturb_scale": scale, "compat_keys": compat,
               "original_depth_m": {"mean": float(o_depth.mean()), "std": float(o_depth.std()),
                                    "min": float(o_depth.min()), "max": float(o_depth.max())}}
    results["predictor"] = {"depth_m": stats(p.depth, o_depth), "virtual_depth_m": stats(p.virtual_depth, o_aug)}

    def ours(m, use_mask=True):
        Kf, Tf = f32(K[None]), f32(T[None])
        mk = mask if use_mask else None
        with torch.no_grad():
            lk = m.voxel_lookup(Kf, Tf, mk, (H, W))
            disp, disp_aug = m.predict_depth(cur[None], Kf, Tf, mk, (Kf, f32(T_aug[None])), lookup=lk)
            out = {"depth": m.to_depth(disp, Kf), "aug": m.to_depth(disp_aug, Kf), "lk": lk}
            for f in (-1, 1):
                early, late = (prev, cur) if f < 0 else (cur, nxt)
                aa, tr = m.pose_net(early[None], late[None], lk)
                T_late_early = m.predict_pose(early[None], late[None], Kf, Tf, mk, lookup=lk)
                T_c0 = geo.invert_transform(T_late_early) if f < 0 else T_late_early
                out[f] = (aa, tr, geo.distribute_motion(T_c0, Tf))
        return out

    model.set_fast(False)
    ref = ours(model)
    model.set_fast(True)
    fast = ours(model)
    lk = fast["lk"]
    merge = lk.pair_merge
    results["voxels"] = {"single": int(lk.single_entry.numel()), "pairs": int(lk.pair_first.numel()),
                         "pairs_same_group": int((merge > 0).sum()) if merge is not None else 0}
    for name, r in (("reference", ref), ("fast", fast)):
        sec = {"depth_m": stats(r["depth"], o_depth), "virtual_depth_m": stats(r["aug"], o_aug)}
        for f in (-1, 1):
            aa, tr, Tc = r[f]
            sec[f"pose_axis_angle_rad[{f}]"] = stats(aa, o_pose_raw[f][0][:, 0, 0])
            sec[f"pose_translation_m[{f}]"] = stats(tr, o_pose_raw[f][1][:, 0, 0])
            sec[f"T_cam[{f}]"] = stats(Tc, o_T[f])
        results[name] = sec

    # ---- each compatibility key back at the project's default ------------------------------------
    ablation = {}
    defaults = type(pred.cfg.model)()
    for key in COMPAT_KEYS:
        cfg = with_overrides(pred.cfg, [f"model.{key}={getattr(defaults, key)}"])
        m = VFDepth(cfg, load_imagenet=False).eval()
        m.load_state_dict(model.state_dict())
        r = ours(m)
        ablation[key] = {"depth_m": stats(r["depth"], o_depth), "translation_m": stats(r[1][1], o_pose_raw[1][1][:, 0, 0])}
    results["with_project_default"] = ablation
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2))
    return results


def print_table(r: dict) -> None:
    o = r["original_depth_m"]
    print(f"original depth over all pixels: mean {o['mean']:.2f} m, std {o['std']:.2f} m, "
          f"range {o['min']:.2f}..{o['max']:.2f} m; voxels: {r['voxels']}")
    print("ours with " + ", ".join(f"model.{k}={v}" for k, v in r["compat_keys"].items()))
    print(f"{'path':<10} {'output':<28} {'max |diff|':>12} {'mean |diff|':>12} {'max rel':>10}")
    for path in ("predictor", "fast", "reference"):
        for k, s in r[path].items():
            print(f"{path:<10} {k:<28} {s['max_abs']:12.3g} {s['mean_abs']:12.3g} {s['max_rel']:10.2g}")
    print("each compatibility key set back to the project's default (depth; translation of frame +1):")
    for k, s in r["with_project_default"].items():
        print(f"  model.{k:<22} depth max {s['depth_m']['max_abs']:.3g} m, mean {s['depth_m']['mean_abs']:.3g} m; "
              f"translation max {s['translation_m']['max_abs']:.3g} m")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--original", default=None, help="a checkout of the released VFDepth code (its root folder)")
    ap.add_argument("--out", default="results/compare_original.json", help="where the figures go (JSON)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--perturb", type=float, default=1.0,
                    help="weight perturbation in units of each tensor's spread (trained-looking weights)")
    ap.add_argument("--fx_ratio", type=float, default=0.3,
                    help="focal length / image width of the six cameras (0.3: 118 degrees; 0.25: 127 degrees)")
    args = ap.parse_args(argv)
    root = Path(args.original) if args.original else None
    if root is None or not (root / "network" / "fusion_depthnet.py").is_file():
        print(f"skipped: the released VFDepth code is not at {root} (pass --original /path/to/VFDepth, the folder "
              "holding network/ and models/)")
        return 0
    torch.set_grad_enabled(False)
    r = run(root.resolve(), Path(args.out), args.seed, args.perturb, args.fx_ratio)
    print_table(r)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
