"""A procedural driving world and its vectorised ray caster (torch, CPU or GPU).

The default world is a flat ground plane (z = 0, world frame z up) with a curved two-lane road, sidewalks
and grass, plus yaw-rotated boxes: buildings, parked cars and cars driving along the road. The varied world
(:mod:`vfdepth_core.datasets.synthetic.varied`) adds rolling terrain (a :class:`Terrain`: ground height a
piecewise-linear function of world x) and per-scene road widths, setbacks, walls and object sizes.
Every surface is textured (scikit-image's brick/grass/gravel photographs mixed with 1/f noise, sampled
from a mip pyramid by the pixel's footprint so distant surfaces do not alias); there is no flat colour
anywhere, the sky included. Depth is exact: rays are intersected analytically with the ground (plane or
planar pieces) and the boxes.

Rays are given with direction vectors whose camera-z component is 1, so the hit parameter ``t`` of a
camera ray is its depth along the optical axis; LIDAR rays use unit directions (``t`` = range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

# Surface texture ids
TEX_ASPHALT, TEX_GRASS, TEX_BRICK, TEX_PAINT, TEX_PAVEMENT, TEX_SKY, TEX_CONCRETE, TEX_BODY = range(8)
ROAD_HALF_WIDTH_M = 7.0
SIDEWALK_M = 3.0
LANE_OFFSET_M = -1.75  # ego drives in the right-hand lane (y < 0 of the centre line)
MAX_DEPTH_M = 400.0


def _fractal_noise(size: int, beta: float, rng: np.random.Generator) -> np.ndarray:
    """Tileable 1/f^beta noise (size, size) in [0, 1] (shaped white noise in the Fourier domain)."""
    f = np.fft.fftfreq(size)
    fr = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    fr[0, 0] = 1.0
    spec = np.fft.fft2(rng.standard_normal((size, size))) / fr**beta
    spec[0, 0] = 0
    n = np.real(np.fft.ifft2(spec))
    lo, hi = np.percentile(n, [1, 99])
    return np.clip((n - lo) / (hi - lo + 1e-9), 0, 1)


def _norm(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    lo, hi = np.percentile(a, [1, 99])
    return np.clip((a - lo) / (hi - lo + 1e-9), 0, 1)


def make_textures(seed: int = 0, size: int = 512) -> np.ndarray:
    """The world's grey textures (8, size, size) float32 in [0, 1], indexed by the TEX_* ids."""
    import skimage.data
    from skimage.transform import resize

    rng = np.random.default_rng(seed)

    def photo(name: str) -> np.ndarray:
        a = getattr(skimage.data, name)()
        if a.shape != (size, size):
            a = resize(a, (size, size), anti_aliasing=True, preserve_range=True)
        return _norm(a)

    gravel, grass, brick = photo("gravel"), photo("grass"), photo("brick")
    n1, n2, n3 = (_fractal_noise(size, b, rng) for b in (1.0, 1.6, 2.4))
    yy, xx = np.mgrid[0:size, 0:size]
    tiles = ((xx % 64 < 3) | (yy % 64 < 3)).astype(np.float64)
    tex = np.stack([
        0.6 * gravel + 0.4 * n2,                            # asphalt
        0.75 * grass + 0.25 * n2,                           # grass
        0.85 * brick + 0.15 * n1,                           # brick
        0.5 * n3 + 0.3 * n1 + 0.2 * gravel.T,               # car paint
        0.55 * gravel[::-1] + 0.25 * n1 + 0.2 * (1 - tiles),  # pavement tiles
        n3,                                                 # sky (clouds)
        0.5 * n2 + 0.3 * brick.T + 0.2 * n1,                # concrete
        0.6 * n1 + 0.4 * n3,                                # own vehicle body
    ])
    return np.stack([_norm(t) for t in tex]).astype(np.float32)


class TexturePyramid:
    """Mip pyramid of the texture stack with bilinear look-ups at a footprint-chosen level."""

    def __init__(self, textures: np.ndarray, device=None):
        t = torch.from_numpy(textures).to(device)
        self.levels: List[Tensor] = [t]
        while t.shape[-1] > 4:
            t = torch.nn.functional.avg_pool2d(t[None], 2)[0]
            self.levels.append(t)
        self.size = textures.shape[-1]

    def sample(self, tex: Tensor, u: Tensor, v: Tensor, tile_m: Tensor, footprint_m: Tensor) -> Tensor:
        """Grey value (R,) of texture ids `tex` at surface coords (u, v) metres, tiled every `tile_m` m,
        for a pixel covering `footprint_m` metres of surface."""
        texel = tile_m / self.size
        lvl = torch.log2((footprint_m / texel).clamp_min(1.0)).floor().clamp(0, len(self.levels) - 1).long()
        out = torch.empty_like(u)
        for li in torch.unique(lvl).tolist():
            sel = lvl == li
            img = self.levels[li]
            S = img.shape[-1]
            x = (u[sel] / tile_m[sel]) * S - 0.5
            y = (v[sel] / tile_m[sel]) * S - 0.5
            x0, y0 = torch.floor(x), torch.floor(y)
            fx, fy = x - x0, y - y0
            x0 = x0.long() % S
            y0 = y0.long() % S
            x1, y1 = (x0 + 1) % S, (y0 + 1) % S
            flat = img.reshape(-1)
            base = tex[sel].long() * S * S
            g = lambda yy, xx: flat[base + yy * S + xx]  # noqa: E731
            out[sel] = (g(y0, x0) * (1 - fx) * (1 - fy) + g(y0, x1) * fx * (1 - fy)
                        + g(y1, x0) * (1 - fx) * fy + g(y1, x1) * fx * fy)
        return out


@dataclass
class Boxes:
    """Yaw-rotated boxes in the world frame: centre (B, 3), half size (B, 3), yaw (B,) rad, texture id (B,),
    tint (B, 3) RGB in [0, 1], texture tile (B,) metres, texture offset (B, 2) metres, kind (B,) 0 building
    1 car."""

    center: Tensor
    half: Tensor
    yaw: Tensor
    tex: Tensor
    tint: Tensor
    tile: Tensor
    offset: Tensor
    kind: Tensor

    def __len__(self) -> int:
        return self.center.shape[0]

    def select(self, idx: Tensor) -> "Boxes":
        return Boxes(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))

    @staticmethod
    def cat(parts: List["Boxes"]) -> "Boxes":
        return Boxes(*(torch.cat([getattr(p, f) for p in parts]) for f in Boxes.__dataclass_fields__))


class Road:
    """The road centre line y = f(x) (two sines), with arc-length look-ups for driving along it.

    half_width_m: kerb to centre line; sidewalk_m: sidewalk width; lane_offset_m: the ego lane's centre
    (left +); dashes_m: lateral offsets of the dashed lane lines."""

    def __init__(self, rng: np.random.Generator, length_m: float, amplitude_scale: float = 1.0,
                 half_width_m: float = ROAD_HALF_WIDTH_M, sidewalk_m: float = SIDEWALK_M,
                 lane_offset_m: float = LANE_OFFSET_M, dashes_m: Tuple[float, ...] = (0.0,)):
        self.half_width_m, self.sidewalk_m = half_width_m, sidewalk_m
        self.lane_offset_m, self.dashes_m = lane_offset_m, tuple(dashes_m)
        self.a = rng.uniform([3.0, 1.0], [8.0, 3.0]) * amplitude_scale
        self.lam = rng.uniform([150.0, 60.0], [260.0, 110.0])
        self.phi = rng.uniform(0, 2 * math.pi, 2)
        self.x = np.arange(-200.0, length_m + 200.0, 0.05)
        dydx = self.slope(self.x)
        seg = np.sqrt(1 + dydx**2) * 0.05
        self.s = np.concatenate([[0.0], np.cumsum(seg[:-1])])
        self.s -= np.interp(0.0, self.x, self.s)

    def y(self, x):
        lib = torch if isinstance(x, Tensor) else np
        return sum(a * lib.sin(2 * math.pi * x / l + p) for a, l, p in zip(self.a, self.lam, self.phi))

    def slope(self, x):
        lib = torch if isinstance(x, Tensor) else np
        return sum(a * 2 * math.pi / l * lib.cos(2 * math.pi * x / l + p) for a, l, p in zip(self.a, self.lam, self.phi))

    def lateral(self, x: Tensor, y: Tensor) -> Tensor:
        """Signed distance (approx.) of ground points from the centre line, positive to the left."""
        return (y - self.y(x)) / torch.sqrt(1 + self.slope(x) ** 2)

    def pose_at(self, s: float, offset: float) -> Tuple[np.ndarray, float]:
        """Point (x, y) at arc length s and lateral offset (left +), and the heading (rad)."""
        x = float(np.interp(s, self.s, self.x))
        h = math.atan(float(self.slope(x)))
        p = np.array([x, float(self.y(x))]) + offset * np.array([-math.sin(h), math.cos(h)])
        return p, h


class Terrain:
    """Rolling ground: height z = h(x) (metres, world frame) piecewise linear between knots `x_m` (K,) with
    heights `z_m` (K,); beyond the first and last knot the end pieces continue as planes."""

    def __init__(self, x_m: np.ndarray, z_m: np.ndarray):
        self.x_m = np.asarray(x_m, dtype=np.float64)
        self.z_m = np.asarray(z_m, dtype=np.float64)
        self.grade = np.diff(self.z_m) / np.diff(self.x_m)  # (K-1,) dz/dx of each piece

    def _piece(self, x: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(self.x_m, x, side="right") - 1, 0, len(self.grade) - 1)

    def height(self, x) -> np.ndarray:
        """Ground height (m) at world x (array-like)."""
        x = np.asarray(x, dtype=np.float64)
        i = self._piece(x)
        return self.z_m[i] + self.grade[i] * (x - self.x_m[i])

    def slope(self, x) -> np.ndarray:
        """dz/dx at world x, linearly blended between pieces (for the vehicle's pitch)."""
        mid = 0.5 * (self.x_m[1:] + self.x_m[:-1])
        return np.interp(np.asarray(x, dtype=np.float64), mid, self.grade)

    def normal(self, x: Tensor) -> Tensor:
        """Unit surface normals (R, 3) at world x (R,)."""
        g = torch.from_numpy(self.grade[self._piece(x.detach().cpu().double().numpy())]).to(x.device, x.dtype)
        n = torch.stack([-g, torch.zeros_like(g), torch.ones_like(g)], -1)
        return n / n.norm(dim=-1, keepdim=True)

    def intersect(self, origin: Tensor, dirs: Tensor, reach_m: float = 450.0, chunk: int = 1 << 14) -> Tensor:
        """Ray parameter t (R,) of the first ground hit (inf = none) of rays origin (3,) + t dirs (R, 3)
        (world frame); pieces farther than `reach_m` along x from the origin are not tested."""
        dev, dt = dirs.device, dirs.dtype
        ox = float(origin[0])
        i0 = int(self._piece(np.array(ox - reach_m)))
        i1 = int(self._piece(np.array(ox + reach_m)))
        xs = self.x_m[i0:i1 + 2] - ox  # knots relative to the origin (small numbers: float32 is exact enough)
        g64 = self.grade[i0:i1 + 1]
        # plane z = zs_i + g_i (x - xs_i): t = (zs_i + g_i (ox - xs_i) - oz) / (dz - g_i dx)
        num = torch.from_numpy(self.z_m[i0:i1 + 1] - g64 * xs[:-1] - float(origin[2])).to(dev, dt)  # (S,)
        g = torch.from_numpy(g64).to(dev, dt)
        lo, hi = torch.from_numpy(xs[:-1]).to(dev, dt), torch.from_numpy(xs[1:]).to(dev, dt)
        lo[0], hi[-1] = -math.inf, math.inf  # the end pieces continue as planes
        out = torch.empty(dirs.shape[0], dtype=dt, device=dev)
        for a in range(0, dirs.shape[0], chunk):
            dc = dirs[a:a + chunk]
            den = dc[:, 2:3] - g[None] * dc[:, 0:1]  # (r, S); < 0: the ray comes down onto the piece
            t = num[None] / den.clamp(max=-1e-9)
            x = t * dc[:, 0:1]
            ok = (den < -1e-9) & (t > 0) & (x >= lo[None]) & (x <= hi[None])
            out[a:a + chunk] = torch.where(ok, t, torch.full_like(t, math.inf)).amin(dim=1)
        return out


@dataclass
class Mover:
    """A car driving along the road: arc length s0 at t=0, speed (m/s, signed), lateral offset."""

    s0: float
    speed: float
    offset: float
    box: Boxes  # one box; its centre/yaw are overwritten at each time


class World:
    """Static boxes + moving cars + the road (+ terrain); ``boxes_at(t)`` gives every box at time t (s)."""

    def __init__(self, road: Road, static: Boxes, movers: List[Mover], textures: np.ndarray, sun=(0.4, 0.3, 0.85),
                 terrain: Optional[Terrain] = None):
        self.road = road
        self.terrain = terrain  # None: the flat ground z = 0
        self.static = static
        self.movers = movers
        self.textures = textures
        self.sun = torch.tensor(sun, dtype=torch.float32) / float(np.linalg.norm(sun))
        self._pyr: dict = {}

    def pyramid(self, device) -> TexturePyramid:
        key = str(device)
        if key not in self._pyr:
            self._pyr[key] = TexturePyramid(self.textures, device)
        return self._pyr[key]

    def boxes_at(self, t_s: float) -> Boxes:
        parts = [self.static]
        for m in self.movers:
            p, h = self.road.pose_at(m.s0 + m.speed * t_s, m.offset)
            b = m.box
            c = b.center.clone()
            c[0, 0], c[0, 1] = float(p[0]), float(p[1])
            if self.terrain is not None:
                c[0, 2] += float(self.terrain.height(p[0]))
            yaw = torch.tensor([h + (math.pi if m.speed < 0 else 0.0)], dtype=b.yaw.dtype)
            parts.append(Boxes(c, b.half, yaw, b.tex, b.tint, b.tile, b.offset, b.kind))
        return Boxes.cat(parts) if len(parts) > 1 else self.static


def _box(center, half, yaw, tex, tint, tile, offset, kind) -> Boxes:
    f = lambda v: torch.tensor(np.asarray([v], dtype=np.float32))  # noqa: E731
    return Boxes(f(center), f(half), f(yaw), torch.tensor([tex]), f(tint), f(tile), f(offset), torch.tensor([kind]))


WORLD_VARIETIES = ("default", "varied")


def generate_world(seed: int, length_m: float, textures: Optional[np.ndarray] = None,
                   variety: str = "default") -> World:
    """A random street of about `length_m` metres (plus margins) with buildings, parked and moving cars.

    variety: 'default' (flat, regular street) or 'varied' (:func:`.varied.generate_varied_world`)."""
    if variety == "varied":
        from vfdepth_core.datasets.synthetic.varied import generate_varied_world

        return generate_varied_world(seed, length_m, textures)
    if variety != "default":
        raise ValueError(f"unknown synthetic world variety {variety!r} (use one of {WORLD_VARIETIES})")
    rng = np.random.default_rng(seed)
    road = Road(rng, length_m)
    textures = make_textures(seed) if textures is None else textures
    boxes: List[Boxes] = []
    for side in (-1, 1):
        s = -120.0 + rng.uniform(0, 10)
        while s < length_m + 150:  # buildings
            w = rng.uniform(8, 20)
            depth = rng.uniform(8, 16)
            height = rng.uniform(5, 18)
            setback = ROAD_HALF_WIDTH_M + SIDEWALK_M + rng.uniform(1.0, 6.0) + depth / 2
            p, h = road.pose_at(s + w / 2, side * setback)
            tex = TEX_BRICK if rng.random() < 0.6 else TEX_CONCRETE
            tint = rng.uniform(0.45, 1.0, 3) * (np.array([1.0, 0.8, 0.7]) if tex == TEX_BRICK else 1.0)
            boxes.append(_box([p[0], p[1], height / 2], [w / 2, depth / 2, height / 2], h, tex, tint,
                              rng.uniform(3.0, 5.0), rng.uniform(0, 50, 2), 0))
            s += w + rng.uniform(1.0, 8.0)
        s = -100.0 + rng.uniform(0, 15)
        while s < length_m + 120:  # parked cars
            if rng.random() < 0.55:
                L, Wd, Hh = rng.uniform(3.8, 4.8), rng.uniform(1.7, 1.9), rng.uniform(1.4, 1.7)
                p, h = road.pose_at(s, side * (ROAD_HALF_WIDTH_M - 1.3))
                boxes.append(_box([p[0], p[1], Hh / 2], [L / 2, Wd / 2, Hh / 2], h + rng.normal(0, 0.03), TEX_PAINT,
                                  rng.uniform(0.15, 1.0, 3), rng.uniform(1.5, 3.0), rng.uniform(0, 50, 2), 1))
            s += rng.uniform(6.0, 12.0)
    movers = []
    for k in range(4):  # oncoming traffic in the left lane, and one car ahead in the ego lane
        ahead = k == 3
        L, Wd, Hh = rng.uniform(3.8, 4.8), rng.uniform(1.7, 1.9), rng.uniform(1.4, 1.7)
        speed = rng.uniform(8.0, 11.0) if ahead else -rng.uniform(6.0, 12.0)
        s0 = rng.uniform(25, 45) if ahead else rng.uniform(0, length_m + 100)
        movers.append(Mover(s0, speed, LANE_OFFSET_M if ahead else -LANE_OFFSET_M,
                            _box([0, 0, Hh / 2], [L / 2, Wd / 2, Hh / 2], 0.0, TEX_PAINT, rng.uniform(0.15, 1.0, 3),
                                 rng.uniform(1.5, 3.0), rng.uniform(0, 50, 2), 1)))
    return World(road, Boxes.cat(boxes), movers, textures)


# --------------------------------------------------------------------------------------------------
# Ray casting


def intersect(origin: Tensor, dirs: Tensor, boxes: Boxes, chunk: int = 1 << 15,
              terrain: Optional[Terrain] = None) -> Tuple[Tensor, Tensor]:
    """Nearest hit of rays with the ground (the plane z = 0, or `terrain`) and the boxes.

    origin (3,) world; dirs (R, 3) world (any length: t is in units of it).
    Returns t (R,) (inf = no hit) and box index (R,) (-1 = ground or nothing).
    """
    R = dirs.shape[0]
    dev, dt = dirs.device, dirs.dtype
    if terrain is None:
        t_ground = torch.where(dirs[:, 2] < -1e-9, -origin[2] / dirs[:, 2].clamp(max=-1e-9),
                               torch.full((R,), float("inf"), device=dev, dtype=dt))
    else:
        t_ground = terrain.intersect(origin, dirs)
    best_t = t_ground
    best_b = torch.full((R,), -1, dtype=torch.long, device=dev)
    if len(boxes) > 0:
        c, s = torch.cos(boxes.yaw).to(dt), torch.sin(boxes.yaw).to(dt)
        rel = origin[None, :] - boxes.center.to(dt)  # (B, 3)
        # local = R_yaw^T (p - centre): x' = c x + s y, y' = -s x + c y
        o_l = torch.stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1], rel[:, 2]], -1)  # (B, 3)
        half = boxes.half.to(dt)
        for a in range(0, R, chunk):
            d = dirs[a:a + chunk]
            dx = d[:, None, 0] * c[None] + d[:, None, 1] * s[None]
            dy = -d[:, None, 0] * s[None] + d[:, None, 1] * c[None]
            dz = d[:, None, 2].expand_as(dx)
            tn = tf = None
            for k, dk in enumerate((dx, dy, dz)):
                inv = torch.reciprocal(
                    torch.where(dk.abs() < 1e-12, torch.full_like(dk, 1e-12), dk))
                t1 = (-half[None, :, k] - o_l[None, :, k]) * inv
                t2 = (half[None, :, k] - o_l[None, :, k]) * inv
                lo, hi = torch.minimum(t1, t2), torch.maximum(t1, t2)
                tn = lo if tn is None else torch.maximum(tn, lo)
                tf = hi if tf is None else torch.minimum(tf, hi)
            hit = (tn <= tf) & (tn > 1e-4)
            tn = torch.where(hit, tn, torch.full_like(tn, float("inf")))
            tmin, bidx = tn.min(dim=1)
            closer = tmin < best_t[a:a + chunk]
            best_t[a:a + chunk] = torch.where(closer, tmin, best_t[a:a + chunk])
            best_b[a:a + chunk] = torch.where(closer, bidx, best_b[a:a + chunk])
    return best_t, best_b


def shade(world: World, origin: Tensor, dirs: Tensor, t: Tensor, bidx: Tensor, boxes: Boxes,
          pixel_angle: Tensor) -> Tuple[Tensor, Tensor]:
    """Colour (R, 3) in [0, 1] and grey texture value (R,) of each ray's hit (sky where t is inf).

    pixel_angle (R,): the angle one pixel subtends along the ray (radians), for mip selection.
    """
    dev, dt = dirs.device, dirs.dtype
    pyr = world.pyramid(dev)
    R = dirs.shape[0]
    dnorm = dirs.norm(dim=-1)
    tex = torch.full((R,), TEX_SKY, dtype=torch.long, device=dev)
    u = torch.zeros(R, dtype=dt, device=dev)
    v = torch.zeros(R, dtype=dt, device=dev)
    tile = torch.full((R,), 1.0, dtype=dt, device=dev)
    tint = torch.ones(R, 3, dtype=dt, device=dev)
    normal = torch.zeros(R, 3, dtype=dt, device=dev)
    normal[:, 2] = 1
    extra = torch.ones(R, dtype=dt, device=dev)  # multiplicative pattern (windows, lane paint)
    paint = torch.zeros(R, dtype=dt, device=dev)  # additive white paint (lane markings)
    hit = torch.isfinite(t)
    p = origin[None, :] + dirs * t.clamp(max=1e6)[:, None]

    ground = hit & (bidx < 0)
    if ground.any():
        gx, gy = p[ground, 0], p[ground, 1]
        rd = world.road
        lat = rd.lateral(gx, gy)
        alat = lat.abs()
        road = alat < rd.half_width_m
        walk = (~road) & (alat < rd.half_width_m + rd.sidewalk_m)
        tg = torch.full_like(gx, TEX_GRASS, dtype=torch.long)
        tg[road], tg[walk] = TEX_ASPHALT, TEX_PAVEMENT
        tex[ground] = tg
        u[ground], v[ground] = gx, gy
        tl = torch.full_like(gx, 6.0)
        tl[road], tl[walk] = 8.0, 4.0
        tile[ground] = tl
        col = torch.tensor([[0.45, 0.45, 0.47], [0.35, 0.55, 0.25], [0.75, 0.72, 0.68]], dtype=dt, device=dev)
        which = torch.where(road, 0, torch.where(walk, 2, 1))
        tint[ground] = col[which]
        dash = torch.zeros_like(road)
        for off in rd.dashes_m:
            dash |= ((lat - off).abs() < 0.08) & (torch.remainder(gx, 9.0) < 4.5)
        edge = ((alat - (rd.half_width_m - 0.4)).abs() < 0.08)
        paint[ground] = (dash | edge).to(dt) * 0.55
        if world.terrain is not None:
            normal[ground] = world.terrain.normal(gx)

    onbox = hit & (bidx >= 0)
    if onbox.any():
        b = bidx[onbox]
        c, s = torch.cos(boxes.yaw[b]).to(dt), torch.sin(boxes.yaw[b]).to(dt)
        rel = p[onbox] - boxes.center[b].to(dt)
        lx, ly, lz = c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1], rel[:, 2]
        hb = boxes.half[b].to(dt)
        r = torch.stack([lx / hb[:, 0], ly / hb[:, 1], lz / hb[:, 2]], -1).abs()
        axis = r.argmax(-1)
        off = boxes.offset[b].to(dt)
        zb = lz + hb[:, 2]  # height above the box bottom
        uu = torch.where(axis == 0, ly, lx) + off[:, 0]
        vv = torch.where(axis == 2, ly, zb) + off[:, 1]
        tex[onbox] = boxes.tex[b]
        u[onbox], v[onbox] = uu, vv
        tile[onbox] = boxes.tile[b].to(dt)
        tint[onbox] = boxes.tint[b].to(dt)
        sign = torch.sign(torch.stack([lx, ly, lz], -1).gather(1, axis[:, None]))[:, 0]
        n_local = torch.zeros(len(b), 3, dtype=dt, device=dev)
        n_local.scatter_(1, axis[:, None], sign[:, None])
        normal[onbox] = torch.stack([c * n_local[:, 0] - s * n_local[:, 1], s * n_local[:, 0] + c * n_local[:, 1],
                                     n_local[:, 2]], -1)
        kind = boxes.kind[b]
        wall = axis != 2
        # building windows: a grid of dark panes on the walls
        win_b = (kind == 0) & wall & (torch.remainder(uu, 3.0) > 1.0) & (torch.remainder(vv, 3.2) > 1.2) & (zb > 1.0)
        # car windows: a band on the upper part of the sides
        win_c = (kind == 1) & wall & (zb > 0.55 * 2 * hb[:, 2]) & (zb < 0.9 * 2 * hb[:, 2])
        e = torch.ones(len(b), dtype=dt, device=dev)
        e[win_b] = 0.35
        e[win_c] = 0.25
        extra[onbox] = e

    # footprint of one pixel on the surface: range * pixel angle / |cos(incidence)|
    rng_m = t.clamp(max=1e6) * dnorm
    cosi = ((dirs / dnorm[:, None]) * normal).sum(-1).abs().clamp_min(0.05)
    foot = rng_m * pixel_angle / cosi
    g = torch.zeros(R, dtype=dt, device=dev)
    if hit.any():
        g[hit] = pyr.sample(tex[hit], u[hit], v[hit], tile[hit], foot[hit])
    sun = world.sun.to(dev, dt)
    lambert = 0.55 + 0.45 * (normal @ sun).clamp_min(0)
    col = tint * (0.25 + 0.75 * g)[:, None] * (lambert * extra)[:, None] + paint[:, None]

    sky = ~hit
    if sky.any():
        d = dirs[sky] / dnorm[sky, None]
        el = torch.asin(d[:, 2].clamp(-1, 1))
        az = torch.atan2(d[:, 1], d[:, 0])
        # clouds: the sky texture on a dome (azimuth x elevation), elevation-dependent blue
        su = az * 80.0
        sv = el * 160.0
        cl = pyr.sample(torch.full_like(az, TEX_SKY, dtype=torch.long), su, sv, torch.full_like(az, 40.0),
                        torch.full_like(az, 0.05))
        blue = torch.stack([0.55 - 0.25 * el, 0.7 - 0.2 * el, 0.95 - 0.05 * el], -1).clamp(0, 1)
        col[sky] = blue * (1 - 0.45 * cl[:, None]) + 0.45 * cl[:, None]
        g[sky] = cl
    return col.clamp(0, 1), g


def depth_of(t: Tensor) -> Tensor:
    """Ray parameter -> depth (0 where no hit or beyond MAX_DEPTH_M)."""
    return torch.where(torch.isfinite(t) & (t < MAX_DEPTH_M), t, torch.zeros_like(t))
