"""Synthetic drives: an ego vehicle driving a procedural street, rendered by a six-camera rig + LIDAR.

A :class:`Drive` is the in-memory result (the bag and dataset writers consume it):

    drive.name            str, scene name
    drive.rig             str, 'ddad' or 'nuscenes'
    drive.camera_names    tuple of N sensor names in rig order (front, front-left, front-right,
                          back-left, back-right, back), e.g. CAMERA_01, CAMERA_05, ... or CAM_FRONT, ...
    drive.K               (N, 3, 3) float64 intrinsics at the rendered H x W
    drive.T_ego_cam       (N, 4, 4) float64 camera -> vehicle
    drive.mask            (N, H, W) bool self-occlusion mask, True = valid (not the own vehicle)
    drive.frames          list of Frame, 10 Hz:
        frame.stamp_ns    int, nanoseconds
        frame.T_world_ego (4, 4) float64 vehicle pose (world z up; the vehicle frame is x fwd, y left, z up)
        frame.images      (N, H, W, 3) uint8 RGB
        frame.depth       (N, H, W) float32 metres along the optical axis, exact; 0 = sky / own vehicle
        frame.lidar       (P, 4) float32 X, Y, Z (vehicle frame, metres), intensity in [0, 1]
        frame.K, frame.T_ego_cam   the drive's (same arrays; convenience)

All cameras and the LIDAR of one frame see the world at the same instant ``stamp_ns``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Tuple

import numpy as np
import torch

from vfdepth_core import geometry
from vfdepth_core.datasets.synthetic.rigs import RIGS, Rig
from vfdepth_core.datasets.synthetic.world import (TEX_BODY, Boxes, World, depth_of, generate_world, intersect,
                                                   shade)

FRAME_RATE_HZ = 10.0
SPEED_MPS = 10.0
START_STAMP_NS = 1_600_000_000_000_000_000
# The ego vehicle's speed over a drive: 'constant' (SPEED_MPS throughout) or 'varied' (speeding up and slowing
# down between about 5 and 15 m/s, so that a motion that ignores the images cannot score well on translation).
SPEED_PROFILES = ("constant", "varied")
VARIED_SPEED_AMPLITUDE = 0.5  # of SPEED_MPS
VARIED_SPEED_PERIOD_S = (3.0, 6.0)  # drawn per drive


@dataclass(frozen=True)
class SpeedProfile:
    """Speed v(t) = mean_mps * (1 + amplitude * sin(2 pi t / period_s + phase)), m/s; ``distance`` is its
    integral from t = 0 (metres along the lane)."""

    mean_mps: float = SPEED_MPS
    amplitude: float = 0.0
    period_s: float = 1.0
    phase: float = 0.0

    @classmethod
    def named(cls, name: str, seed: int) -> "SpeedProfile":
        """One of SPEED_PROFILES; 'varied' draws its period and phase from `seed` (deterministic)."""
        if name == "constant":
            return cls()
        if name == "varied":
            rng = np.random.default_rng([int(seed), 0x5EED])
            return cls(SPEED_MPS, VARIED_SPEED_AMPLITUDE, float(rng.uniform(*VARIED_SPEED_PERIOD_S)),
                       float(rng.uniform(0.0, 2 * math.pi)))
        raise ValueError(f"unknown speed profile '{name}' (choose from {', '.join(SPEED_PROFILES)})")

    def speed(self, t_s: float) -> float:
        return self.mean_mps * (1.0 + self.amplitude * math.sin(2 * math.pi * t_s / self.period_s + self.phase))

    def distance(self, t_s: float) -> float:
        w = 2 * math.pi / self.period_s
        wobble = self.amplitude / w * (math.cos(self.phase) - math.cos(w * t_s + self.phase))
        return self.mean_mps * (t_s + wobble)

    @property
    def max_mps(self) -> float:
        return self.mean_mps * (1.0 + abs(self.amplitude))


@dataclass
class Frame:
    stamp_ns: int
    T_world_ego: np.ndarray
    images: np.ndarray
    depth: np.ndarray
    lidar: np.ndarray
    K: np.ndarray
    T_ego_cam: np.ndarray


@dataclass
class Drive:
    name: str
    rig: str
    camera_names: Tuple[str, ...]
    K: np.ndarray
    T_ego_cam: np.ndarray
    mask: np.ndarray
    frames: List[Frame] = field(default_factory=list)

    @property
    def hw(self) -> Tuple[int, int]:
        return self.mask.shape[1], self.mask.shape[2]


def _camera_rays(K: np.ndarray, T_ego_cam: np.ndarray, hw: Tuple[int, int], device) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ray directions in the vehicle frame (N, H*W, 3) with camera-z = 1, camera centres (N, 3) and the
    per-pixel angle (N, H*W) (radians) for texture filtering."""
    H, W = hw
    Kt = torch.from_numpy(K).double()
    pix = geometry.pixel_grid(H, W, dtype=torch.float64)  # (3, HW)
    d_cam = torch.linalg.inv(Kt) @ pix  # (N, 3, HW), z = 1
    T = torch.from_numpy(T_ego_cam).double()
    d_ego = (T[:, :3, :3] @ d_cam).transpose(1, 2)
    fx = Kt[:, 0, 0][:, None]
    ang = 1.0 / (fx * d_cam.norm(dim=1) ** 1)  # approx. angle of one pixel along the ray (per unit depth)
    return d_ego.float().to(device), T[:, :3, 3].float().to(device), ang.float().to(device)


def render_cameras(world: World, boxes: Boxes, T_world_ego: np.ndarray, K: np.ndarray, T_ego_cam: np.ndarray,
                   hw: Tuple[int, int], mask: Optional[np.ndarray] = None, device="cpu",
                   rays=None) -> Tuple[np.ndarray, np.ndarray]:
    """Render N cameras: images (N, H, W, 3) uint8 and exact depth (N, H, W) float32 (0 = no surface).

    `mask` (N, H, W) bool (True = valid): pixels outside it show the own vehicle's body (a texture fixed
    in the image) with depth 0.
    """
    H, W = hw
    N = K.shape[0]
    d_ego, c_ego, ang = rays if rays is not None else _camera_rays(K, T_ego_cam, hw, device)
    Tw = torch.from_numpy(T_world_ego).float().to(device)
    images = np.empty((N, H, W, 3), dtype=np.uint8)
    depth = np.empty((N, H, W), dtype=np.float32)
    # boxes near the vehicle only (a camera never sees past ~150 m through a street anyway)
    ego_xy = Tw[:2, 3]
    near = ((boxes.center[:, :2].to(device) - ego_xy).norm(dim=-1) < 160.0).nonzero()[:, 0]
    bx = boxes.select(near.cpu())
    bx = Boxes(*(getattr(bx, f).to(device) for f in Boxes.__dataclass_fields__))
    radius = bx.half.norm(dim=-1)
    for n in range(N):
        origin = Tw[:3, :3] @ c_ego[n] + Tw[:3, 3]
        dirs = d_ego[n] @ Tw[:3, :3].T
        keep = _in_frustum(origin, dirs, hw, bx.center, radius)
        t, b = intersect(origin, dirs, bx.select(keep), terrain=world.terrain)
        b = torch.where(b >= 0, keep[b.clamp_min(0)], b)
        col, _ = shade(world, origin, dirs, t, b, bx, ang[n])
        d = depth_of(t)
        if mask is not None:
            body = torch.from_numpy(~mask[n].reshape(-1)).to(device)
            if body.any():
                col[body] = _body_colour(world, H, W, device)[body]
                d[body] = 0.0
        images[n] = (col.reshape(H, W, 3) * 255.0 + 0.5).clamp(0, 255).byte().cpu().numpy()
        depth[n] = d.reshape(H, W).cpu().numpy()
    return images, depth


def _in_frustum(origin: torch.Tensor, dirs: torch.Tensor, hw: Tuple[int, int], centre: torch.Tensor,
                radius: torch.Tensor) -> torch.Tensor:
    """Indices of boxes whose bounding spheres touch the camera's view frustum (dirs (H*W, 3) world rays,
    row-major)."""
    H, W = hw
    corners = dirs.reshape(H, W, 3)[[0, 0, -1, -1], [0, -1, -1, 0]]  # tl, tr, br, bl
    axis = dirs.reshape(H, W, 3)[H // 2, W // 2]
    rel = centre.to(dirs.dtype) - origin[None]
    keep = (rel @ axis) / axis.norm() > -radius
    for k in range(4):  # the four side planes, normals pointing into the frustum
        nrm = torch.linalg.cross(corners[k], corners[(k + 1) % 4])
        nrm = nrm / nrm.norm()
        if (axis @ nrm) < 0:
            nrm = -nrm
        keep &= rel @ nrm > -radius
    return keep.nonzero()[:, 0]


def _body_colour(world: World, H: int, W: int, device) -> torch.Tensor:
    """The own vehicle's body as seen in a camera: a texture fixed in image coordinates (HW, 3)."""
    v, u = torch.meshgrid(torch.arange(H, device=device, dtype=torch.float32),
                          torch.arange(W, device=device, dtype=torch.float32), indexing="ij")
    u, v = u.reshape(-1) / W * 2.0, v.reshape(-1) / H * 2.0
    pyr = world.pyramid(device)
    g = pyr.sample(torch.full_like(u, TEX_BODY, dtype=torch.long), u, v, torch.full_like(u, 1.0),
                   torch.full_like(u, 1.0 / W))
    tint = torch.tensor([0.25, 0.28, 0.33], device=device)
    return tint * (0.4 + 0.9 * g)[:, None]


def lidar_directions(beams: int = 32, azimuths: int = 1024, elev_deg=(-25.0, 10.0)) -> torch.Tensor:
    """Unit ray directions (beams*azimuths, 3) of a spinning LIDAR in its own (vehicle-aligned) frame."""
    el = torch.deg2rad(torch.linspace(elev_deg[0], elev_deg[1], beams))
    az = torch.arange(azimuths) * (2 * math.pi / azimuths)
    e, a = torch.meshgrid(el, az, indexing="ij")
    return torch.stack([torch.cos(e) * torch.cos(a), torch.cos(e) * torch.sin(a), torch.sin(e)], -1).reshape(-1, 3)


def cast_lidar(world: World, boxes: Boxes, T_world_ego: np.ndarray, mount_m=(0.0, 0.0, 1.9), max_range_m: float = 120.0,
               dirs: Optional[torch.Tensor] = None, device="cpu") -> np.ndarray:
    """LIDAR points (P, 4) float32: X, Y, Z in the vehicle frame and intensity (texture grey value)."""
    Tw = torch.from_numpy(T_world_ego).float().to(device)
    d_ego = (lidar_directions() if dirs is None else dirs).to(device)
    mount = torch.tensor(mount_m, dtype=torch.float32, device=device)
    origin = Tw[:3, :3] @ mount + Tw[:3, 3]
    ego_xy = Tw[:2, 3]
    near = ((boxes.center[:, :2].to(device) - ego_xy).norm(dim=-1) < max_range_m + 30).nonzero()[:, 0]
    bx = boxes.select(near.cpu())
    bx = Boxes(*(getattr(bx, f).to(device) for f in Boxes.__dataclass_fields__))
    dirs_w = d_ego @ Tw[:3, :3].T
    t, b = intersect(origin, dirs_w, bx, terrain=world.terrain)
    ok = torch.isfinite(t) & (t < max_range_m) & (t > 1.0)
    _, g = shade(world, origin, dirs_w[ok], t[ok], b[ok], bx, torch.full((int(ok.sum()),), 0.003, device=device))
    p = mount[None] + d_ego[ok] * t[ok][:, None]
    return torch.cat([p, g[:, None]], 1).cpu().numpy().astype(np.float32)


def ego_pose(world: World, t_s: float, s_start: float = 0.0, speed_mps: float = SPEED_MPS,
             profile: Optional[SpeedProfile] = None) -> np.ndarray:
    """T_world_ego (4, 4) of the ego vehicle at time t_s, driving its lane at constant speed, or as `profile`
    says when given (on terrain: at the ground's height, pitched with its slope)."""
    s = s_start + (profile.distance(t_s) if profile is not None else speed_mps * t_s)
    p, h = world.road.pose_at(s, world.road.lane_offset_m)
    T = np.eye(4)
    T[:2, :2] = [[math.cos(h), -math.sin(h)], [math.sin(h), math.cos(h)]]
    T[:2, 3] = p
    if world.terrain is not None:
        pitch = math.atan(float(world.terrain.slope(p[0])) * math.cos(h))  # nose up on a rising road
        c, s = math.cos(pitch), math.sin(pitch)
        T[:3, :3] = T[:3, :3] @ np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])
        T[2, 3] = float(world.terrain.height(p[0]))
    return T


def iter_frames(world: World, rig: Rig, frames: int, hw: Tuple[int, int], device="cpu",
                with_lidar: bool = True, start_stamp_ns: int = START_STAMP_NS,
                profile: Optional[SpeedProfile] = None) -> Iterator[Frame]:
    """Render `frames` consecutive frames (10 Hz) of the ego drive through `world` (speed: `profile`, default
    constant SPEED_MPS)."""
    K = rig.K(hw)
    T_ego_cam = rig.T_ego_cam
    mask = rig.masks(hw)
    rays = _camera_rays(K, T_ego_cam, hw, device)
    ldirs = lidar_directions()
    for i in range(frames):
        t_s = i / FRAME_RATE_HZ
        T = ego_pose(world, t_s, profile=profile)
        boxes = world.boxes_at(t_s)
        images, depth = render_cameras(world, boxes, T, K, T_ego_cam, hw, mask, device, rays)
        lidar = cast_lidar(world, boxes, T, rig.lidar_mount_m, dirs=ldirs, device=device) if with_lidar \
            else np.zeros((0, 4), np.float32)
        yield Frame(start_stamp_ns + int(round(i * 1e9 / FRAME_RATE_HZ)), T, images, depth, lidar, K, T_ego_cam)


def make_drive(rig: str | Rig = "ddad", frames: int = 20, height: int = 192, width: int = 320, seed: int = 0,
               name: Optional[str] = None, device="cpu", with_lidar: bool = True, progress=None,
               variety: str = "default", speed: str = "constant") -> Drive:
    """Generate and render one drive (deterministic given `seed`). `progress`: called once per frame;
    `variety`: the world generator, one of ``WORLD_VARIETIES`` ('default' or 'varied'); `speed`: the ego
    vehicle's, one of ``SPEED_PROFILES`` ('constant' 10 m/s, or 'varied' about 5 to 15 m/s)."""
    r = RIGS[rig] if isinstance(rig, str) else rig
    hw = (int(height), int(width))
    profile = SpeedProfile.named(speed, seed)
    # long enough for the fastest possible drive (the constant one: SPEED_MPS, its world unchanged)
    world = generate_world(seed, length_m=frames / FRAME_RATE_HZ * profile.max_mps, variety=variety)
    drive = Drive(name or f"synth_{r.name}_{seed:04d}", r.name, r.camera_names, r.K(hw), r.T_ego_cam.copy(),
                  r.masks(hw))
    stamp0 = START_STAMP_NS + seed * 10**12  # drives of different seeds do not share timestamps
    for fr in iter_frames(world, r, frames, hw, device, with_lidar, stamp0, profile=profile):
        drive.frames.append(fr)
        if progress is not None:
            progress()
    return drive
