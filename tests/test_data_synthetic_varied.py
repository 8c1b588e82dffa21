"""The varied synthetic world: exact depth on rolling terrain, layouts that differ per seed, both rigs and
on-disk formats; and the default world left as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.data_helpers import DDAD_CAMS, relative_depth_error
from tests.test_data_synthetic import _check_round_trip
from vfdepth_core import geometry
from vfdepth_core.datasets.lidar import lidar_depth
from vfdepth_core.datasets.poses import invert_np, transform_np
from vfdepth_core.datasets.synthetic import NUSCENES_RIG, cast_lidar, make_drive, render_cameras, write_ddad
from vfdepth_core.datasets.synthetic.drive import ego_pose
from vfdepth_core.datasets.synthetic.world import Boxes, Terrain, generate_world

NO_TEXTURES = np.zeros((8, 4, 4), np.float32)  # geometry only: skips building the texture photographs


def test_terrain_hit_known_answer():
    """Flat until x = 0, then rising 10 %: a ray from (-10, 0, 1.5) falling 0.05 per metre crosses x = 0 at
    1.0 m height and meets the slope 1.0 / 0.15 m later."""
    ter = Terrain([-100.0, 0.0, 100.0], [0.0, 0.0, 10.0])
    t = ter.intersect(torch.tensor([-10.0, 0.0, 1.5]), torch.tensor([[1.0, 0.0, -0.05], [1.0, 0.0, 0.0],
                                                                     [-1.0, 0.0, -0.05], [0.0, 0.0, 1.0]]))
    assert float(t[0]) == pytest.approx(10.0 + 1.0 / 0.15, rel=1e-5)
    assert float(t[1]) == pytest.approx(10.0 + 1.5 / 0.1, rel=1e-5)  # level ray: the slope still rises to it
    assert float(t[2]) == pytest.approx(30.0, rel=1e-5)  # backwards onto the flat piece (continued as a plane)
    assert not torch.isfinite(t[3])
    assert ter.height(50.0) == pytest.approx(5.0) and ter.slope(50.0) == pytest.approx(0.1)


def _world_points(depth, K, T_world_ego, T_ego_cam, mask):
    """Every valid pixel's 3-D point (P, 3) in the world frame, and the camera centres they were seen from."""
    pts, origins = [], []
    for n in range(depth.shape[0]):
        d = torch.from_numpy(depth[n]).double()[None, None]
        p_cam = geometry.backproject(d, torch.linalg.inv(torch.from_numpy(K[n])))[0]  # (3, HW)
        T_world_cam = T_world_ego @ T_ego_cam[n]
        p = transform_np(T_world_cam, p_cam.T.numpy())
        ok = (depth[n].reshape(-1) > 0) & mask[n].reshape(-1)
        pts.append(p[ok])
        origins.append(np.broadcast_to(T_world_cam[:3, 3], p[ok].shape))
    return np.concatenate(pts), np.concatenate(origins)


def _box_local(boxes: Boxes, p: np.ndarray) -> np.ndarray:
    """|local coordinates| / half size (P, B, 3) of points p (P, 3): max over axes 1 = on the surface."""
    c, s = np.cos(boxes.yaw.double().numpy()), np.sin(boxes.yaw.double().numpy())
    rel = p[:, None] - boxes.center.double().numpy()[None]
    loc = np.stack([c * rel[..., 0] + s * rel[..., 1], -s * rel[..., 0] + c * rel[..., 1], rel[..., 2]], -1)
    return np.abs(loc) / boxes.half.double().numpy()[None]


def test_varied_depth_lies_on_the_world_and_nothing_is_in_front():
    """One frame of the nuScenes-like rig: every depth pixel lies on the terrain or a box, nothing stands
    in front of it, and the LIDAR agrees (the DDAD-like rig goes through the round trip below)."""
    hw, t_s = (40, 64), 0.2
    world = generate_world(4, length_m=3.0, variety="varied")
    boxes = world.boxes_at(t_s)
    T = ego_pose(world, t_s)
    K, T_ego_cam, mask = NUSCENES_RIG.K(hw), NUSCENES_RIG.T_ego_cam, NUSCENES_RIG.masks(hw)
    images, depth = render_cameras(world, boxes, T, K, T_ego_cam, hw, mask)
    p, o = _world_points(depth, K, T, T_ego_cam, mask)
    tol = 2e-3 * np.linalg.norm(p - o, axis=1) + 1e-3
    on_ground = np.abs(p[:, 2] - world.terrain.height(p[:, 0])) < tol
    on_box = (np.abs(_box_local(boxes, p).max(-1) - 1.0) < tol[:, None]).any(1)
    assert (on_ground | on_box).all()
    assert on_ground.mean() > 0.2 and on_box.mean() > 0.1  # both kinds of surface are seen
    assert np.ptp(p[on_ground, 2]) > 0.1  # the ground is not flat
    # nothing in front: 2 % short of each hit the ray is above the ground and outside every box
    q = o + 0.98 * (p - o)
    assert (q[:, 2] > world.terrain.height(q[:, 0]) - 1e-4).all()
    assert (_box_local(boxes, q).max(-1) > 1.0 - 1e-6).all()
    # the ego stands on the road, pitched with it (a rotation)
    assert T[2, 3] == pytest.approx(float(world.terrain.height(T[0, 3])), abs=1e-9)
    assert np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-12) and np.linalg.det(T[:3, :3]) > 0
    # textured: no large region of one colour; the LIDAR sees the same world
    px = images[0][mask[0]]
    assert np.unique(px, axis=0, return_counts=True)[1].max() < 0.05 * len(px)
    lidar = cast_lidar(world, boxes, T, NUSCENES_RIG.lidar_mount_m)
    sparse = lidar_depth(transform_np(invert_np(T_ego_cam[0]), lidar[:, :3]), K[0], hw)
    err = relative_depth_error(sparse, depth[0])
    assert len(err) > 50 and np.median(err) < 0.02


def _layout(seed: int) -> dict:
    w = generate_world(seed, 60.0, textures=NO_TEXTURES, variety="varied")
    b = w.static
    lat = w.road.lateral(b.center[:, 0].double(), b.center[:, 1].double()).abs().numpy()
    return {"half": w.road.half_width_m, "lane": w.road.lane_offset_m, "n": len(b), "lat": lat,
            "kind": b.kind.numpy(), "relief": np.ptp(w.terrain.height(np.arange(-50.0, 110.0, 5.0)))}


def test_varied_layouts_differ_across_seeds():
    lays = [_layout(s) for s in range(6)]
    assert len({round(x["half"], 3) for x in lays}) == 6 and len({x["n"] for x in lays}) >= 4
    assert max(x["relief"] for x in lays) > 1.0
    cars = np.concatenate([x["lat"][x["kind"] == 1] - x["half"] for x in lays])
    houses = np.concatenate([x["lat"][x["kind"] == 0] - x["half"] for x in lays])
    assert len(cars) > 20 and cars.std() > 0.6  # parked cars at varied lateral positions
    assert houses.std() > 5.0  # building setbacks vary
    a, b = _layout(3), _layout(3)
    assert a["n"] == b["n"] and np.array_equal(a["lat"], b["lat"])  # deterministic per seed


def test_unknown_variety_is_a_clear_error():
    with pytest.raises(ValueError, match="variety 'hilly'.*default.*varied"):
        generate_world(0, 10.0, textures=NO_TEXTURES, variety="hilly")


def test_default_world_unchanged():
    """Numbers of generate_world(0, 20) taken from the code before the varied world existed."""
    w = generate_world(0, 20.0, textures=NO_TEXTURES)
    b = w.static
    assert w.terrain is None and len(b) == 55 and int(b.kind.sum()) == 24
    assert b.center[0].tolist() == pytest.approx([-99.6220703125, -14.555968284606934, 8.577970504760742])
    assert b.center.double().sum(0).tolist() == pytest.approx([1734.787537932396, 27.387129321694374,
                                                               205.89623481035233], rel=1e-6)
    assert b.half.double().sum(0).tolist() == pytest.approx([270.31847620010376, 203.8286775946617,
                                                             205.89623481035233], rel=1e-6)
    assert [v for m in w.movers for v in (m.s0, m.speed, m.offset)] == pytest.approx(
        [118.520504, -8.517798, 1.75, 14.844631, -10.904341, 1.75, 88.116345, -7.9553, 1.75,
         28.937262, 10.323957, -1.75], abs=1e-5)
    assert w.road.half_width_m == 7.0 and w.road.lane_offset_m == -1.75 and w.road.dashes_m == (0.0,)


@pytest.mark.slow
def test_varied_round_trip_ddad_layout(tmp_path):
    """A varied drive through the DDAD-layout writer and loader (the writers take any Drive; the nuScenes
    layout's round trip is in test_data_synthetic.py)."""
    from vfdepth_core.datasets.ddad import DDADDataset

    d = make_drive("ddad", frames=3, height=64, width=96, seed=2, variety="varied")
    write_ddad([d], tmp_path / "ddad", splits=["train"])
    ds = DDADDataset(tmp_path / "ddad" / "ddad.json", "train", DDAD_CAMS, 64, 96, with_depth=True,
                     mask_path=str(tmp_path / "ddad" / "masks"), gt_cache=str(tmp_path / "gt"),
                     gt_projection="nearest")  # the synthetic configs' GT: LIDAR projected at this size
    _check_round_trip(ds[0], d, (1, 0, 2), (64, 96))
