"""Geometry with known answers: back-projection by hand, round trips, warps, voxel look-ups, intrinsics
scaling against a real resize, rotations, rig motion, gradcheck. cpu + cuda (skipped without a GPU)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vfdepth_core import geometry as g
from vfdepth_core.geometry import ShapeError, VoxelGrid

F64 = torch.float64


def rand_rotations(n: int, dtype=F64, device="cpu", generator=None) -> torch.Tensor:
    q = torch.randn(n, 4, dtype=dtype, generator=generator).to(device)
    return g.quat_to_rotmat(q)


def rand_transforms(n: int, dtype=F64, device="cpu", scale_t: float = 2.0) -> torch.Tensor:
    R = rand_rotations(n, dtype, device)
    t = (torch.rand(n, 3, dtype=dtype) * 2 - 1).to(device) * scale_t
    return g.make_transform(R, t)


def K_of(fx, fy, cx, cy, skew=0.0, device="cpu", dtype=F64):
    return g.intrinsics_matrix(fx, fy, cx, cy, skew).to(device=device, dtype=dtype)


# --------------------------------------------------------------------------------------------------
# Back-projection / projection


def test_backproject_known_pixel_by_hand(device):
    H, W = 6, 8
    K = K_of(100.0, 120.0, 4.0, 3.0, device=device)
    depth = torch.ones(1, 1, H, W, dtype=F64, device=device)
    depth[0, 0, 1, 6] = 5.0  # pixel u=6 (column), v=1 (row)
    pts = g.backproject(depth, torch.linalg.inv(K))  # (1, 3, H*W)
    assert pts.shape == (1, 3, H * W)
    p = pts[0, :, 1 * W + 6]
    # X = (u - cx) Z / fx, Y = (v - cy) Z / fy, Z = depth
    expected = torch.tensor([(6 - 4) * 5.0 / 100.0, (1 - 3) * 5.0 / 120.0, 5.0], dtype=F64, device=device)
    torch.testing.assert_close(p, expected)
    # the principal point back-projects onto the optical axis
    torch.testing.assert_close(pts[0, :, 3 * W + 4], torch.tensor([0.0, 0.0, 1.0], dtype=F64, device=device))


def test_project_known_point(device):
    K = K_of(500.0, 400.0, 320.0, 240.0, device=device)
    p = torch.tensor([[1.0], [-2.0], [10.0]], dtype=F64, device=device)
    uv, z = g.project(K, p)
    torch.testing.assert_close(uv[:, 0], torch.tensor([320 + 500 * 0.1, 240 - 400 * 0.2], dtype=F64, device=device))
    assert z.item() == 10.0


@pytest.mark.parametrize("lead", [(), (3,), (2, 6)])
def test_project_after_backproject_is_identity(device, lead):
    H, W = 5, 7
    K = K_of(80.0, 90.0, 3.2, 2.1, skew=0.5, device=device).expand(*lead, 3, 3)
    depth = (torch.rand(*lead, 1, H, W, dtype=F64) * 50 + 0.5).to(device)
    pts = g.backproject(depth, torch.linalg.inv(K))
    uv, z = g.project(K, pts)
    pix = g.pixel_grid(H, W, device=device, dtype=F64)
    torch.testing.assert_close(uv, pix[:2].expand_as(uv))
    torch.testing.assert_close(z.reshape(*lead, 1, H, W), depth)


def test_pixel_grid_is_row_major_with_integer_centres():
    pix = g.pixel_grid(2, 3)
    assert pix.tolist() == [[0, 1, 2, 0, 1, 2], [0, 0, 0, 1, 1, 1], [1, 1, 1, 1, 1, 1]]


def test_in_image_and_normalize_pixels_corners():
    H, W = 4, 6
    uv = torch.tensor([[0.0, 5.0, 5.01, 2.0], [0.0, 3.0, 1.0, 1.0]])[None]
    z = torch.tensor([[1.0, 1.0, 1.0, -1.0]])[None]
    assert g.in_image(uv, z, H, W).tolist() == [[True, True, False, False]]
    n = g.normalize_pixels(uv, H, W)
    torch.testing.assert_close(n[0, 0], torch.tensor([-1.0, -1.0]))
    torch.testing.assert_close(n[0, 1], torch.tensor([1.0, 1.0]))


# --------------------------------------------------------------------------------------------------
# Warps


def test_identity_pose_warp_reproduces_the_image(device):
    B, C, H, W = 2, 3, 6, 9
    src = torch.rand(B, C, H, W, dtype=F64).to(device)
    depth = (torch.rand(B, 1, H, W, dtype=F64) * 20 + 1).to(device)
    K = K_of(10.0, 11.0, 4.0, 2.5, device=device).expand(B, 3, 3)
    T = torch.eye(4, dtype=F64, device=device).expand(B, 4, 4)
    warped, valid = g.warp_image(src, depth, K, K, T)
    torch.testing.assert_close(warped, src, atol=1e-10, rtol=0)
    assert valid.shape == (B, 1, H, W) and bool((valid == 1).all())


def test_pure_translation_shifts_pixels_by_fx_t_over_z(device):
    H, W, fx, Z, tx = 8, 16, 20.0, 10.0, 1.5  # shift fx * tx / Z = 3 px
    K = K_of(fx, fx, 7.5, 3.5, device=device)[None]
    depth = torch.full((1, 1, H, W), Z, dtype=F64, device=device)
    T = g.make_transform(torch.eye(3, dtype=F64, device=device), torch.tensor([tx, 0.0, 0.0], dtype=F64,
                                                                                  device=device))[None]
    # where each target pixel lands in the source image
    p = g.transform_points(T, g.backproject(depth, torch.linalg.inv(K)))
    uv, _ = g.project(K, p)
    pix = g.pixel_grid(H, W, device=device, dtype=F64)
    torch.testing.assert_close(uv[0, 0] - pix[0], torch.full((H * W,), fx * tx / Z, dtype=F64, device=device))
    torch.testing.assert_close(uv[0, 1], pix[1])
    # and the warp samples the source there: a ramp src(u, v) = u reads back u + 3 where valid
    u = torch.arange(W, dtype=F64, device=device).expand(1, 1, H, W)
    warped, valid = g.warp_image(u, depth, K, K, T)
    shift = int(round(fx * tx / Z))
    assert bool((valid[..., : W - shift] == 1).all()) and bool((valid[..., W - shift:] == 0).all())
    torch.testing.assert_close(warped[..., : W - shift], u[..., : W - shift] + shift)


def test_forward_motion_moves_pixels_away_from_the_principal_point(device):
    """Camera moving forward by 1 m: a point at Z=10 appears at (u-cx) * 10/9 from the centre in the source."""
    K = K_of(50.0, 50.0, 10.0, 10.0, device=device)
    p = torch.tensor([[2.0], [1.0], [10.0]], dtype=F64, device=device)
    T_src_tgt = g.make_transform(torch.eye(3, dtype=F64, device=device),
                                 torch.tensor([0.0, 0.0, -1.0], dtype=F64, device=device))
    uv_t, _ = g.project(K, p)
    uv_s, z_s = g.project(K, g.transform_points(T_src_tgt, p))
    assert z_s.item() == pytest.approx(9.0)
    torch.testing.assert_close(uv_s - 10.0, (uv_t - 10.0) * 10.0 / 9.0)


# --------------------------------------------------------------------------------------------------
# Intrinsics


@pytest.mark.parametrize("src_hw, dst_hw", [((64, 96), (32, 48)), ((40, 60), (100, 150)), ((48, 64), (36, 40))])
def test_intrinsics_scaling_matches_an_actual_resize(src_hw, dst_hw):
    """Render a Gaussian blob centred on a projected point, resize the image, find the blob's centre:
    it sits where the scaled K projects the same point (half-pixel rule), not at u * s."""
    H, W = src_hw
    Hd, Wd = dst_hw
    K = K_of(60.0, 55.0, 0.45 * W, 0.55 * H)
    p = torch.tensor([[0.7], [-0.4], [5.0]], dtype=F64)
    (u0, v0), _ = g.project(K, p)
    u0, v0 = u0.item(), v0.item()
    v, u = torch.meshgrid(torch.arange(H, dtype=F64), torch.arange(W, dtype=F64), indexing="ij")
    sigma = 4.0
    img = torch.exp(-((u - u0) ** 2 + (v - v0) ** 2) / (2 * sigma ** 2))[None, None]
    small = F.interpolate(img, size=(Hd, Wd), mode="bilinear", align_corners=False, antialias=True)[0, 0]
    vd, ud = torch.meshgrid(torch.arange(Hd, dtype=F64), torch.arange(Wd, dtype=F64), indexing="ij")
    cu = float((small * ud).sum() / small.sum())
    cv = float((small * vd).sum() / small.sum())
    K2 = g.resize_intrinsics(K, (H, W), (Hd, Wd))
    (u1, v1), _ = g.project(K2, p)
    assert abs(cu - u1.item()) < 0.02 and abs(cv - v1.item()) < 0.02
    # the naive rule c' = c * s misses by (s - 1) / 2 pixels, visibly for a factor-2 resize
    naive_u = u0 * Wd / W
    if abs(Wd / W - 1) >= 0.5:
        assert abs(cu - naive_u) > 0.2


def test_scale_intrinsics_formula_and_round_trip():
    K = K_of(100.0, 110.0, 63.5, 47.5, skew=0.25)
    K2 = g.scale_intrinsics(K, 0.5, 0.25)
    torch.testing.assert_close(K2, K_of(50.0, 27.5, (63.5 + 0.5) * 0.5 - 0.5, (47.5 + 0.5) * 0.25 - 0.5, 0.125))
    torch.testing.assert_close(g.scale_intrinsics(K2, 2.0, 4.0), K)
    # the centre of an even image stays the centre: (W-1)/2 -> (W'-1)/2
    Kc = K_of(10.0, 10.0, (640 - 1) / 2, (384 - 1) / 2)
    Kr = g.resize_intrinsics(Kc, (384, 640), (192, 320))
    assert Kr[0, 2].item() == pytest.approx((320 - 1) / 2) and Kr[1, 2].item() == pytest.approx((192 - 1) / 2)


def test_resize_intrinsics_each_scales_every_camera_from_its_own_size():
    K = torch.stack([K_of(100.0, 110.0, 63.5, 47.5), K_of(40.0, 40.0, 20.0, 10.0)])[None].expand(2, 2, 3, 3)
    out = g.resize_intrinsics_each(K, [(96, 128), (24, 40)], (48, 64))
    torch.testing.assert_close(out[:, 0], g.resize_intrinsics(K[:, 0], (96, 128), (48, 64)), rtol=0, atol=0)
    torch.testing.assert_close(out[:, 1], g.resize_intrinsics(K[:, 1], (24, 40), (48, 64)), rtol=0, atol=0)


def test_fused_points_known_answer():
    """Two 4x6 cameras at 2 m: every 2nd pixel back-projected by hand and moved by T_ego_cam; a pixel beyond
    max_depth_m and a zero depth are dropped; colours are the image's at the kept pixels."""
    K = K_of(10.0, 10.0, 2.5, 1.5).expand(2, 3, 3)
    T = torch.eye(4, dtype=F64).repeat(2, 1, 1)
    T[1, :3, 3] = torch.tensor([1.0, 2.0, 3.0])
    depth = torch.full((2, 1, 4, 6), 2.0, dtype=F64)
    depth[0, 0, 0, 2], depth[1, 0, 2, 4] = 50.0, 0.0
    images = torch.rand(2, 3, 4, 6, generator=torch.Generator().manual_seed(0))
    xyz, rgb = g.fused_points(depth, K, T, images, decimation=2, max_depth_m=10.0)
    kept = [(c, v, u) for c in range(2) for v in (0, 2) for u in (0, 2, 4) if (c, v, u) not in ((0, 0, 2), (1, 2, 4))]
    want = [[(u - 2.5) / 10 * 2 + T[c, 0, 3], (v - 1.5) / 10 * 2 + T[c, 1, 3], 2.0 + T[c, 2, 3]] for c, v, u in kept]
    assert xyz.dtype == torch.float32 and rgb.dtype == torch.uint8 and xyz.shape == (10, 3)
    torch.testing.assert_close(xyz, torch.tensor(want, dtype=torch.float32))
    want_rgb = torch.stack([(images[c, :, v, u] * 255).round() for c, v, u in kept]).to(torch.uint8)
    torch.testing.assert_close(rgb, want_rgb, rtol=0, atol=0)


def test_crop_intrinsics_shifts_the_principal_point():
    K = K_of(100.0, 100.0, 50.0, 40.0)
    p = torch.tensor([[0.3], [0.2], [2.0]], dtype=F64)
    uv, _ = g.project(K, p)
    uvc, _ = g.project(g.crop_intrinsics(K, top=7, left=11), p)
    torch.testing.assert_close(uvc, uv - torch.tensor([[11.0], [7.0]], dtype=F64))


# --------------------------------------------------------------------------------------------------
# Transforms and rotations


def test_transform_inverse_and_compose(device):
    T_ab = rand_transforms(5, device=device)
    T_bc = rand_transforms(5, device=device)
    eye = torch.eye(4, dtype=F64, device=device).expand(5, 4, 4)
    torch.testing.assert_close(T_ab @ g.invert_transform(T_ab), eye)
    torch.testing.assert_close(g.invert_transform(T_ab), torch.linalg.inv(T_ab))
    torch.testing.assert_close(g.compose(T_ab, T_bc), T_ab @ T_bc)
    p_c = torch.randn(5, 3, 4, dtype=F64, device=device)
    torch.testing.assert_close(g.transform_points(g.compose(T_ab, T_bc), p_c),
                               g.transform_points(T_ab, g.transform_points(T_bc, p_c)))


def test_known_rotations():
    x = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    y = torch.tensor([0.0, 1.0, 0.0], dtype=F64)
    z = torch.tensor([0.0, 0.0, 1.0], dtype=F64)
    Rz90 = g.axis_angle_to_rotmat(torch.tensor([0.0, 0.0, math.pi / 2], dtype=F64))
    torch.testing.assert_close(Rz90 @ x, y)
    # quaternion (w, x, y, z) of 90 degrees about z
    q = torch.tensor([math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)], dtype=F64)
    torch.testing.assert_close(g.quat_to_rotmat(q), Rz90)
    # euler in degrees, about the vehicle axes: yaw 90 turns forward (x) to left (y), roll 90 turns y to z
    torch.testing.assert_close(g.euler_to_rotmat(0.0, 0.0, 90.0) @ x, y)
    torch.testing.assert_close(g.euler_to_rotmat(90.0, 0.0, 0.0) @ y, z)
    torch.testing.assert_close(g.euler_to_rotmat(0.0, 90.0, 0.0) @ z, x)
    torch.testing.assert_close(g.euler_to_rotmat(0.0, 0.0, math.pi / 2, degrees=False), Rz90)


def test_quaternion_round_trip(device):
    q = torch.randn(200, 4, dtype=F64).to(device)
    q = q / q.norm(dim=-1, keepdim=True)
    q = q * torch.where(q[:, :1] < 0, -1.0, 1.0)
    R = g.quat_to_rotmat(q)
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=F64, device=device).expand(200, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(200, dtype=F64, device=device))
    torch.testing.assert_close(g.rotmat_to_quat(R), q)
    # a non-unit quaternion is normalised first
    torch.testing.assert_close(g.quat_to_rotmat(3.0 * q), R)


ANGLES = [0.0, 1e-12, 1e-7, 1e-4, 0.3, 1.0, 2.5, math.pi - 1e-3, math.pi - 1e-6, math.pi]


@pytest.mark.parametrize("angle", ANGLES)
def test_axis_angle_round_trip_including_near_zero_and_pi(angle, device):
    axes = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, -2.0, 0.5], [-0.3, 0.2, 0.9]], dtype=F64)
    axes = (axes / axes.norm(dim=-1, keepdim=True)).to(device)
    v = axes * angle
    R = g.axis_angle_to_rotmat(v)
    # against the closed form (Rodrigues, evaluated directly)
    Kx = g._skew(axes)
    R_ref = torch.eye(3, dtype=F64, device=device) + math.sin(angle) * Kx + (1 - math.cos(angle)) * Kx @ Kx
    torch.testing.assert_close(R, R_ref, atol=1e-12, rtol=0)
    v2 = g.rotmat_to_axis_angle(R)
    assert torch.isfinite(v2).all()
    torch.testing.assert_close(v2.norm(dim=-1), torch.full((4,), angle, dtype=F64, device=device), atol=1e-9, rtol=0)
    if angle < math.pi - 1e-5:  # at pi, v and -v are the same rotation
        torch.testing.assert_close(v2, v, atol=1e-9, rtol=0)
    torch.testing.assert_close(g.axis_angle_to_rotmat(v2), R, atol=1e-9, rtol=0)


@pytest.mark.parametrize("rpy", [(0.0, 0.0, 0.0), (15.0, 15.0, 40.0), (-170.0, 60.0, 179.9), (1e-6, -1e-6, 180.0)])
def test_euler_matches_composed_axis_angles_and_round_trips(rpy):
    roll, pitch, yaw = rpy
    R = g.euler_to_rotmat(roll, pitch, yaw)
    d = math.pi / 180
    ref = (g.axis_angle_to_rotmat(torch.tensor([0.0, 0.0, yaw * d], dtype=F64))
           @ g.axis_angle_to_rotmat(torch.tensor([0.0, pitch * d, 0.0], dtype=F64))
           @ g.axis_angle_to_rotmat(torch.tensor([roll * d, 0.0, 0.0], dtype=F64)))
    torch.testing.assert_close(R, ref)
    torch.testing.assert_close(g.quat_to_rotmat(g.rotmat_to_quat(R)), R)
    torch.testing.assert_close(g.axis_angle_to_rotmat(g.rotmat_to_axis_angle(R)), R, atol=1e-9, rtol=0)


def test_pose_vec_to_transform():
    T = g.pose_vec_to_transform(torch.tensor([0.0, 0.0, math.pi / 2], dtype=F64), torch.tensor([1.0, 2.0, 3.0],
                                                                                                 dtype=F64))
    p = torch.tensor([[1.0], [0.0], [0.0]], dtype=F64)
    torch.testing.assert_close(g.transform_points(T, p), torch.tensor([[1.0], [3.0], [3.0]], dtype=F64))


# --------------------------------------------------------------------------------------------------
# Rig motion


def test_distribute_motion_gives_each_camera_its_true_motion(device):
    B, N = 2, 6
    T_ego_cam = rand_transforms(B * N, device=device).reshape(B, N, 4, 4)
    # world poses of the vehicle at target (current) and source (context) time
    T_world_egotgt = rand_transforms(B, device=device)
    yaw = g.euler_to_rotmat(0.0, 0.0, 5.0).to(device)
    T_egotgt_egosrc = g.make_transform(yaw, torch.tensor([1.2, 0.1, 0.0], dtype=F64, device=device)).expand(B, 4, 4)
    T_world_egosrc = T_world_egotgt @ T_egotgt_egosrc
    # ground truth per camera, straight from world poses: T_csrc_ctgt = (T_world_egosrc T_ego_c)^-1 T_world_egotgt T_ego_c
    T_world_ctgt = T_world_egotgt[:, None] @ T_ego_cam
    T_world_csrc = T_world_egosrc[:, None] @ T_ego_cam
    truth = torch.linalg.inv(T_world_csrc) @ T_world_ctgt
    T_egosrc_egotgt = torch.linalg.inv(T_world_egosrc) @ T_world_egotgt
    T_c0 = g.ego_motion_to_camera(T_egosrc_egotgt, T_ego_cam[:, 0])  # the canonical (front camera) motion
    torch.testing.assert_close(T_c0, truth[:, 0])
    torch.testing.assert_close(g.distribute_motion(T_c0, T_ego_cam), truth)
    torch.testing.assert_close(g.camera_motion_to_ego(T_c0, T_ego_cam[:, 0]), T_egosrc_egotgt)
    # with another reference camera
    torch.testing.assert_close(g.distribute_motion(truth[:, 3], T_ego_cam, ref_cam=3), truth)
    # a static world point seen by camera 4 maps through its motion: p_csrc = T_csrc_ctgt p_ctgt
    p_world = torch.tensor([[3.0], [-1.0], [0.5]], dtype=F64, device=device).expand(B, 3, 1)
    p_ctgt = g.transform_points(torch.linalg.inv(T_world_ctgt[:, 4]), p_world)
    p_csrc = g.transform_points(torch.linalg.inv(T_world_csrc[:, 4]), p_world)
    torch.testing.assert_close(g.transform_points(g.distribute_motion(T_c0, T_ego_cam)[:, 4], p_ctgt), p_csrc)


# --------------------------------------------------------------------------------------------------
# Voxel grid


def test_paper_grid_point_lands_in_expected_voxel():
    grid = VoxelGrid((100, 100, 20), (1.0, 1.0, 1.5), (-50.0, -50.0, -15.0))
    p = torch.tensor([[0.3, -49.9, 49.99, 50.0], [-0.2, 49.5, 0.0, 0.0], [-14.0, 14.9, 0.0, 0.0]])
    idx, inside = grid.point_to_index(p)
    assert idx[:, 0].tolist() == [50, 49, 0]  # floor((0.3+50)/1), floor((-0.2+50)/1), floor((-14+15)/1.5)
    assert idx[:, 1].tolist() == [0, 99, 19]
    assert inside.tolist() == [True, True, True, False]  # x = 50.0 is past the last voxel
    flat = (idx[0, 0] * 100 + idx[1, 0]) * 20 + idx[2, 0]
    centre = grid.centers()[:, flat]
    torch.testing.assert_close(centre, torch.tensor([0.5, -0.5, -15.0 + 1.5 * 0 + 0.75]))
    assert grid.num_voxels == 200_000


def test_voxel_centres_round_trip_through_point_to_index():
    grid = VoxelGrid((4, 3, 2), (1.0, 2.0, 0.5), (-2.0, -3.0, -1.0))
    c = grid.centers(dtype=F64)
    idx, inside = grid.point_to_index(c)
    assert bool(inside.all())
    flat = (idx[0] * 3 + idx[1]) * 2 + idx[2]
    assert flat.tolist() == list(range(grid.num_voxels))


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_voxelgrid_normalize_puts_centres_on_grid_sample_integer_positions(mode, device):
    grid = VoxelGrid((4, 3, 5), (1.0, 2.0, 0.5), (-2.0, -3.0, -1.0))
    X, Y, Z = grid.size
    volume = torch.arange(grid.num_voxels, dtype=F64, device=device).reshape(1, 1, X, Y, Z)  # (C, D=X, H=Y, W=Z)
    c = grid.centers(device=device, dtype=F64)
    coords = grid.normalize(c)  # (P, 3)
    out = F.grid_sample(volume, coords.reshape(1, 1, 1, -1, 3), mode=mode, align_corners=True)
    torch.testing.assert_close(out.reshape(-1), torch.arange(grid.num_voxels, dtype=F64, device=device),
                               atol=1e-9, rtol=0)
    # half-way between two x-neighbours samples their mean (the value is linear in the index)
    mid = (c[:, 0:1] + c[:, Y * Z: Y * Z + 1]) / 2
    val = F.grid_sample(volume, grid.normalize(mid).reshape(1, 1, 1, 1, 3), mode="bilinear", align_corners=True)
    assert val.item() == pytest.approx(Y * Z / 2)


# --------------------------------------------------------------------------------------------------
# Gradients (float64)


def test_gradcheck_backproject():
    depth = (torch.rand(1, 1, 3, 4, dtype=F64) * 5 + 1).requires_grad_()
    K_inv = torch.linalg.inv(K_of(5.0, 6.0, 1.5, 1.0)).requires_grad_()
    assert torch.autograd.gradcheck(g.backproject, (depth, K_inv))


def test_gradcheck_project():
    K = K_of(5.0, 6.0, 1.5, 1.0).requires_grad_()
    p = torch.cat([torch.randn(2, 7, dtype=F64), torch.rand(1, 7, dtype=F64) * 5 + 1]).requires_grad_()
    assert torch.autograd.gradcheck(lambda K_, p_: g.project(K_, p_)[0], (K, p))


@pytest.mark.parametrize("scale", [1.0, 1e-5, 3.0])
def test_gradcheck_axis_angle_to_rotmat(scale):
    v = (torch.randn(4, 3, dtype=F64) * scale).requires_grad_()
    assert torch.autograd.gradcheck(g.axis_angle_to_rotmat, (v,))


def test_axis_angle_gradient_is_finite_at_zero():
    v = torch.zeros(3, dtype=F64, requires_grad=True)
    R = g.axis_angle_to_rotmat(v)
    (R * torch.randn(3, 3, dtype=F64)).sum().backward()
    assert torch.isfinite(v.grad).all()


def test_gradcheck_warp():
    B, C, H, W = 1, 2, 4, 5
    src = torch.rand(B, C, H, W, dtype=F64, requires_grad=True)
    depth = (torch.rand(B, 1, H, W, dtype=F64) * 2 + 8).requires_grad_()
    K = K_of(4.0, 4.0, 2.0, 1.5)[None]
    T = g.pose_vec_to_transform(torch.tensor([[0.01, -0.02, 0.015]], dtype=F64),
                                torch.tensor([[0.13, 0.07, -0.05]], dtype=F64))
    assert torch.autograd.gradcheck(lambda s, d: g.warp_image(s, d, K, K, T)[0], (src, depth))


# --------------------------------------------------------------------------------------------------
# Shapes, dtypes and errors


def test_float32_in_float32_out(device):
    depth = torch.rand(2, 6, 1, 4, 5, device=device) + 1
    K = K_of(5.0, 5.0, 2.0, 1.5, device=device, dtype=torch.float32).expand(2, 6, 3, 3)
    pts = g.backproject(depth, torch.linalg.inv(K))
    uv, z = g.project(K, pts)
    assert pts.dtype == uv.dtype == torch.float32 and pts.shape == (2, 6, 3, 20) and uv.device.type == device.type


@pytest.mark.parametrize("call, name", [
    (lambda: g.backproject(torch.rand(4, 5), torch.eye(3)), "depth"),
    (lambda: g.backproject(torch.rand(1, 1, 4, 5), torch.eye(4)), "K_inv"),
    (lambda: g.project(torch.eye(3)[:2], torch.rand(3, 5)), "K"),
    (lambda: g.project(torch.eye(3), torch.rand(4, 5)), "p_cam"),
    (lambda: g.transform_points(torch.eye(3), torch.rand(3, 5)), "T_b_a"),
    (lambda: g.make_transform(torch.eye(3), torch.zeros(4)), "t"),
    (lambda: g.quat_to_rotmat(torch.zeros(3)), "q_wxyz"),
    (lambda: g.axis_angle_to_rotmat(torch.zeros(4)), "rotvec"),
    (lambda: g.distribute_motion(torch.eye(4)[None], torch.eye(4)[None]), "T_ego_cam"),
    (lambda: g.scale_intrinsics([[1, 0, 0]], 1.0, 1.0), "K"),
    (lambda: g.warp_image(torch.rand(3, 4, 5), torch.rand(1, 1, 4, 5), torch.eye(3)[None], torch.eye(3)[None],
                          torch.eye(4)[None]), "src"),
])
def test_shape_errors_name_the_argument(call, name):
    with pytest.raises(ShapeError) as exc:
        call()
    msg = str(exc.value)
    assert msg.startswith(f"{name} must "), msg
    assert "\n" not in msg
    assert isinstance(exc.value, ValueError)


def test_mounted_camera_pose_follows_rep103_body_and_opencv_optical_axes():
    """Known answers: unturned, the camera looks along the vehicle's +x with image-down = vehicle -z and
    image-right = vehicle -y; yaw 90 deg looks left (+y); pitch 90 deg looks down (-z); position is kept."""
    T = g.mounted_camera_pose(1.5, -0.2, 1.6, 0.0, 0.0, 0.0)
    assert T.dtype == torch.float64
    torch.testing.assert_close(T[:3, 2], torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(T[:3, 1], torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64))
    torch.testing.assert_close(T[:3, 0], torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(T[:3, 3], torch.tensor([1.5, -0.2, 1.6], dtype=torch.float64))
    left = g.mounted_camera_pose(0, 0, 0, 0.0, 0.0, 90.0)
    torch.testing.assert_close(left[:3, 2], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), atol=1e-12, rtol=0)
    down = g.mounted_camera_pose(0, 0, 0, 0.0, 90.0, 0.0)
    torch.testing.assert_close(down[:3, 2], torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64), atol=1e-12, rtol=0)
    # radians give the same pose
    torch.testing.assert_close(g.mounted_camera_pose(0, 0, 0, 0.1, 0.2, 0.3, degrees=False),
                               g.mounted_camera_pose(0, 0, 0, *(math.degrees(a) for a in (0.1, 0.2, 0.3))))
