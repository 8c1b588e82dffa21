"""The varied synthetic world (``variety="varied"``): a street whose layout a per-pixel depth prior cannot guess.

Every scene draws its own layout: the number of lanes, lane and sidewalk widths and the ego lane; rolling
terrain (grades up to 8 %, the vehicle pitches with the road); per side a building style (a closed row at
the sidewalk, suburban houses at random setbacks, or open land with far buildings), walls, fences or hedges
close to the road, poles and trees; parked cars at random lateral positions, gaps and densities, vans and
trucks among them; traffic in every lane and a lead car at a random distance (or none). Boxes stand on
the terrain (sunk a little into it where it slopes). Textures, shading and exact depth are the default
world's (:mod:`vfdepth_core.datasets.synthetic.world`); the default world stays as it was.
"""

from __future__ import annotations

import math
from typing import List, Optional

import numpy as np

from vfdepth_core.datasets.synthetic.world import (TEX_BRICK, TEX_CONCRETE, TEX_GRASS, TEX_PAINT, Boxes,
                                                   Mover, Road, Terrain, World, _box, make_textures)

MAX_GRADE = 0.08
KNOT_SPACING_M = 10.0
KIND_BUILDING, KIND_CAR, KIND_OTHER = 0, 1, 2


def make_terrain(rng: np.random.Generator, x0_m: float, x1_m: float) -> Terrain:
    """Rolling ground along x: two sines and a constant grade, scaled so no piece is steeper than MAX_GRADE."""
    xs = np.arange(x0_m, x1_m + KNOT_SPACING_M, KNOT_SPACING_M)
    amp = rng.uniform([0.5, 0.0], [4.0, 1.0])
    lam = rng.uniform([140.0, 50.0], [300.0, 110.0])
    phi = rng.uniform(0, 2 * math.pi, 2)
    z = rng.uniform(-0.04, 0.04) * xs + sum(a * np.sin(2 * math.pi * xs / w + p) for a, w, p in zip(amp, lam, phi))
    steepest = np.abs(np.diff(z) / KNOT_SPACING_M).max()
    if steepest > MAX_GRADE:
        z = z * (MAX_GRADE / steepest)
    return Terrain(xs, z - np.interp(0.0, xs, z))


class _Builder:
    """Collects boxes standing on the terrain along the road."""

    def __init__(self, rng: np.random.Generator, road: Road, terrain: Terrain):
        self.rng, self.road, self.terrain = rng, road, terrain
        self.boxes: List[Boxes] = []

    def add(self, s: float, lateral: float, length: float, width: float, height: float, tex: int, tint, tile: float,
            kind: int, yaw_jitter: float = 0.0, lift: float = 0.0) -> None:
        """A box centred at arc length s, lateral offset (left +), aligned with the road (+ yaw_jitter rad),
        its bottom `lift` metres above the ground there (sunk into the ground where that slopes)."""
        p, h = self.road.pose_at(s, lateral)
        r = 0.5 * math.hypot(length, width)
        ground = self.terrain.height(p[0] + np.linspace(-r, r, 5))
        bottom = float(ground.min()) - 0.2 + lift
        top = float(self.terrain.height(p[0])) + lift + height
        self.boxes.append(_box([p[0], p[1], 0.5 * (top + bottom)], [length / 2, width / 2, 0.5 * (top - bottom)],
                               h + yaw_jitter, tex, np.asarray(tint, dtype=np.float64), tile,
                               self.rng.uniform(0, 50, 2), kind))


def _vehicle_size(rng: np.random.Generator) -> tuple:
    """Length, width, height (m): mostly cars, some vans, trucks and buses."""
    u = rng.random()
    if u < 0.75:
        return rng.uniform(3.6, 5.2), rng.uniform(1.6, 2.0), rng.uniform(1.3, 1.9)
    if u < 0.92:
        return rng.uniform(4.8, 6.5), rng.uniform(1.9, 2.2), rng.uniform(1.9, 2.7)
    return rng.uniform(7.0, 12.0), rng.uniform(2.3, 2.55), rng.uniform(2.8, 3.6)


def _buildings(b: _Builder, side: int, kerb: float, length_m: float) -> None:
    rng = b.rng
    style = rng.choice(["row", "suburb", "open"], p=[0.4, 0.4, 0.2])
    base = rng.uniform(0.0, 2.5)
    s = -120.0 + rng.uniform(0, 10)
    while s < length_m + 150:
        if style == "row":
            w, dep, hgt = rng.uniform(6, 22), rng.uniform(8, 18), rng.uniform(6, 28)
            setback, jit = base + rng.uniform(0, 1.5), 0.03
            gap = rng.uniform(0, 3) if rng.random() < 0.8 else rng.uniform(5, 20)
        elif style == "suburb":
            w, dep, hgt = rng.uniform(7, 16), rng.uniform(7, 14), rng.uniform(3, 9)
            setback, gap, jit = rng.uniform(2, 22), rng.uniform(4, 25), 0.15
        else:
            w, dep, hgt = rng.uniform(10, 40), rng.uniform(10, 30), rng.uniform(4, 20)
            setback, gap, jit = rng.uniform(20, 60), rng.uniform(10, 60), 0.2
        tex = TEX_BRICK if rng.random() < 0.5 else TEX_CONCRETE
        tint = rng.uniform(0.45, 1.0, 3) * (np.array([1.0, 0.8, 0.7]) if tex == TEX_BRICK else 1.0)
        b.add(s + w / 2, side * (kerb + setback + dep / 2), w, dep, hgt, tex, tint, rng.uniform(3.0, 5.0),
              KIND_BUILDING, rng.normal(0, jit))
        s += w + gap


def _boundary(b: _Builder, side: int, kerb: float, sidewalk: float, length_m: float) -> None:
    """Walls, fences or hedges close to the road, in straight pieces of at most 12 m following it."""
    rng = b.rng
    kind = rng.choice(["wall", "fence", "hedge"])
    lateral = kerb + rng.uniform(-0.5 * sidewalk, 1.5)
    hgt = {"wall": rng.uniform(1.0, 3.2), "fence": rng.uniform(0.8, 2.0), "hedge": rng.uniform(0.8, 2.4)}[kind]
    thick = {"wall": 0.3, "fence": 0.12, "hedge": rng.uniform(0.6, 1.2)}[kind]
    tex = {"wall": TEX_BRICK if rng.random() < 0.5 else TEX_CONCRETE, "fence": TEX_CONCRETE, "hedge": TEX_GRASS}[kind]
    tint = np.array([0.3, 0.6, 0.25]) * rng.uniform(0.7, 1.2) if kind == "hedge" else rng.uniform(0.4, 1.0, 3)
    s = -100.0 + rng.uniform(0, 20)
    while s < length_m + 120:
        run = rng.uniform(8, 60)
        end = s + run
        while s < end:
            piece = min(12.0, end - s)
            b.add(s + piece / 2, side * (lateral + thick / 2), piece, thick, hgt, tex, tint, 2.0, KIND_OTHER)
            s += piece
        s += rng.uniform(0, 30) if rng.random() < 0.6 else rng.uniform(30, 80)


def _parked(b: _Builder, side: int, half: float, shoulder: float, length_m: float) -> None:
    rng = b.rng
    density = rng.uniform(0.0, 0.9)
    on_walk = shoulder < 1.6  # no parking strip: cars stand half on the sidewalk
    s = -100.0 + rng.uniform(0, 15)
    while s < length_m + 120:
        L, W, H = _vehicle_size(rng)
        if rng.random() < density:
            base = half + rng.uniform(-0.3, 0.8) if on_walk else half - rng.uniform(0.9, 1.4)
            lateral = max(base + rng.normal(0, 0.3), half - shoulder + 0.3 + W / 2)  # never into a driving lane
            b.add(s + L / 2, side * lateral, L, W, H, TEX_PAINT, rng.uniform(0.15, 1.0, 3),
                  rng.uniform(1.5, 3.0), KIND_CAR, rng.normal(0, 0.06))
        s += L + rng.uniform(0.8, 12.0)


def _street_furniture(b: _Builder, side: int, half: float, sidewalk: float, length_m: float) -> None:
    """Poles at the kerb and trees in the sidewalk or verge."""
    rng = b.rng
    if rng.random() < 0.5:
        s = -100.0 + rng.uniform(0, 20)
        while s < length_m + 120:
            b.add(s, side * (half + 0.4), 0.22, 0.22, rng.uniform(4, 9), TEX_CONCRETE, rng.uniform(0.5, 0.9, 3), 1.0,
                  KIND_OTHER)
            s += rng.uniform(12, 35)
    if rng.random() < 0.45:
        s = -100.0 + rng.uniform(0, 20)
        lat = half + sidewalk * rng.uniform(0.4, 1.6)
        while s < length_m + 120:
            trunk = rng.uniform(1.8, 3.2)
            crown = min(rng.uniform(2.5, 5.5), 2 * (lat - half) + 0.5)  # overhangs the kerb by 0.25 m at most
            b.add(s, side * lat, 0.4, 0.4, trunk, TEX_CONCRETE, np.array([0.45, 0.32, 0.2]), 1.0, KIND_OTHER)
            b.add(s, side * lat, crown, crown, crown * rng.uniform(0.8, 1.3), TEX_GRASS,
                  np.array([0.25, 0.55, 0.2]) * rng.uniform(0.7, 1.3), 3.0, KIND_OTHER, rng.uniform(0, 1.5), trunk)
            s += rng.uniform(8, 25)


def _traffic(rng: np.random.Generator, lanes: int, lane_w: float, ego_lane: int, length_m: float) -> List[Mover]:
    """Oncoming cars, cars in the other lanes of the ego's direction, and maybe a lead car in the ego lane."""
    movers = []

    def car(s0, speed, offset):
        L, W, H = _vehicle_size(rng)
        box = _box([0, 0, 0.5 * (H - 0.15)], [L / 2, W / 2, 0.5 * (H + 0.15)], 0.0, TEX_PAINT,
                   rng.uniform(0.15, 1.0, 3), rng.uniform(1.5, 3.0), rng.uniform(0, 50, 2), KIND_CAR)
        movers.append(Mover(s0, speed, offset, box))

    for _ in range(rng.integers(0, 7)):
        car(rng.uniform(0, length_m + 150), -rng.uniform(6.0, 14.0), (rng.integers(lanes) + 0.5) * lane_w)
    others = [k for k in range(lanes) if k != ego_lane]
    for _ in range(rng.integers(0, 3) if others else 0):
        car(rng.uniform(-40, 90), rng.uniform(7.0, 13.0), -(rng.choice(others) + 0.5) * lane_w)
    if rng.random() < 0.75:
        s0 = rng.uniform(10, 60)
        car(s0, rng.uniform(10.0, 12.0) if s0 < 20 else rng.uniform(7.5, 12.0), -(ego_lane + 0.5) * lane_w)
    return movers


def generate_varied_world(seed: int, length_m: float, textures: Optional[np.ndarray] = None) -> World:
    """A random street of about `length_m` metres (plus margins) with a layout drawn per scene (module doc)."""
    rng = np.random.default_rng(seed)
    lanes = int(rng.choice([1, 1, 2, 2, 3]))
    lane_w = rng.uniform(2.9, 3.8)
    shoulder = rng.uniform(0.3, 2.8)
    half = lanes * lane_w + shoulder
    sidewalk = rng.uniform(1.5, 5.0)
    ego_lane = int(rng.integers(lanes))
    dashes = [0.0] + [sg * k * lane_w for k in range(1, lanes) for sg in (-1, 1)]
    road = Road(rng, length_m, amplitude_scale=rng.uniform(0.4, 1.6), half_width_m=half, sidewalk_m=sidewalk,
                lane_offset_m=-(ego_lane + 0.5) * lane_w, dashes_m=dashes)
    terrain = make_terrain(rng, -250.0, length_m + 250.0)
    textures = make_textures(seed) if textures is None else textures
    b = _Builder(rng, road, terrain)
    for side in (-1, 1):
        kerb = half + sidewalk
        _buildings(b, side, kerb, length_m)
        if rng.random() < 0.5:
            _boundary(b, side, kerb, sidewalk, length_m)
        _parked(b, side, half, shoulder, length_m)
        _street_furniture(b, side, half, sidewalk, length_m)
    movers = _traffic(rng, lanes, lane_w, ego_lane, length_m)
    return World(road, Boxes.cat(b.boxes), movers, textures, terrain=terrain)
