"""Photometric refinement of the ego motion (model.pose_refine_iterations, beyond the paper): known answers
on the exactly rendered room, the paper's behaviour one key away, and the fallback when nothing improves."""

import math

import pytest
import torch

from model_helpers import make_batch, tiny_config
from vfdepth_core import geometry as geo
from vfdepth_core.config import ConfigError, with_overrides
from vfdepth_core.inference import Predictor
from vfdepth_core.model import VFDepth
from vfdepth_core.pose_refine import refine_motion, refine_network_motion


def _room(H=64, W=96):
    """Current frame 0 at the origin, previous frame -1 half a metre back and yawed -2 deg (make_batch)."""
    b = make_batch(6, H, W, frame_ids=(0, -1))
    T_we = b["T_world_ego"][0].double()
    T_egoprev_egocur = torch.linalg.inv(T_we[1]) @ T_we[0]
    T_ec = b["T_ego_cam"][0].double()
    T_true = (geo.ego_motion_to_camera(T_egoprev_egocur, T_ec[0])).float()[None]  # reference camera, prev <- cur
    return b, T_true


def _errors(T, T_true):
    dt = float((T[0, :3, 3] - T_true[0, :3, 3]).norm())
    R = T[0, :3, :3].double().T @ T_true[0, :3, :3].double()
    dr = math.degrees(math.acos(max(-1.0, min(1.0, (float(R.trace()) - 1) / 2))))
    return dt, dr


def _perturbed(T_true, yaw_deg=0.8, scale=0.8):
    T = T_true.clone()
    T[0, :3, 3] *= scale
    R = geo.axis_angle_to_rotmat(torch.tensor([0.0, math.radians(yaw_deg), 0.0]))  # camera y = vertical axis
    return geo.make_transform(R[None], torch.zeros(1, 3)) @ T


def test_refinement_recovers_the_true_motion_from_a_wrong_start():
    b, T_true = _room()
    T0 = _perturbed(T_true)
    dt0, dr0 = _errors(T0, T_true)
    assert dt0 > 0.09 and dr0 > 0.7  # the start is clearly wrong
    res = refine_motion(T0, b["depth_gt"], b["image"][:, 1], b["image"][:, 0], b["K"], b["T_ego_cam"], b["mask"],
                        iterations=8, levels=3)
    dt, dr = _errors(res.T_prev_cur, T_true)
    assert dt < 0.01 and dr < 0.05, (dt, dr)
    assert float(res.cost_after) < 0.2 * float(res.cost_before)


def test_refinement_keeps_the_true_motion():
    b, T_true = _room()
    res = refine_motion(T_true, b["depth_gt"], b["image"][:, 1], b["image"][:, 0], b["K"], b["T_ego_cam"], None)
    dt, dr = _errors(res.T_prev_cur, T_true)
    assert dt < 5e-3 and dr < 0.02, (dt, dr)  # bilinear sampling of the exact render: millimetres


def test_max_width_shrinks_the_images_and_still_converges():
    b, T_true = _room(96, 160)
    res = refine_motion(_perturbed(T_true), b["depth_gt"], b["image"][:, 1], b["image"][:, 0], b["K"],
                        b["T_ego_cam"], None, iterations=8, levels=2, max_width=80)
    dt, dr = _errors(res.T_prev_cur, T_true)
    assert dt < 0.02 and dr < 0.05, (dt, dr)


def test_no_texture_keeps_the_network_motion():
    """Flat images carry no motion: the refinement cannot lower the cost and returns its input exactly."""
    b, T_true = _room()
    flat = torch.full_like(b["image"][:, 0], 0.5)
    T0 = _perturbed(T_true)
    res = refine_motion(T0, b["depth_gt"], flat, flat, b["K"], b["T_ego_cam"], None)
    assert torch.equal(res.T_prev_cur, T0)


def test_zero_iterations_is_the_paper():
    cfg = tiny_config(6)
    assert cfg.model.pose_refine_iterations == 0
    b, T_true = _room()
    T_c0cur_c0prev = geo.invert_transform(_perturbed(T_true))
    same = refine_network_motion(cfg.model, T_c0cur_c0prev, b["depth_gt"], b["image"][:, 1], b["image"][:, 0],
                                 b["K"], b["T_ego_cam"])
    assert same is T_c0cur_c0prev
    on = with_overrides(cfg, ["model.pose_refine_iterations=8"])
    fixed = refine_network_motion(on.model, T_c0cur_c0prev, b["depth_gt"], b["image"][:, 1], b["image"][:, 0],
                                  b["K"], b["T_ego_cam"])
    dt, dr = _errors(geo.invert_transform(fixed), T_true)
    assert dt < 0.01 and dr < 0.05


def test_predictor_switch_changes_only_the_motion():
    torch.manual_seed(0)
    cfg = tiny_config(6)
    b = make_batch(6, frame_ids=(0, -1))
    pred = Predictor(cfg, VFDepth(cfg, load_imagenet=False), device="cpu")
    plain = pred.predict(b["image"][0, 0], b["K"][0], b["T_ego_cam"][0], prev_images=b["image"][0, 1])
    pred.set_pose_refinement(4)
    assert pred.cfg.model.pose_refine_iterations == 4 and pred.model.cfg.model.pose_refine_iterations == 4
    refined = pred.predict(b["image"][0, 0], b["K"][0], b["T_ego_cam"][0], prev_images=b["image"][0, 1])
    torch.testing.assert_close(refined.depth, plain.depth)
    assert torch.isfinite(refined.T_egoprev_egocur).all()
    pred.set_pose_refinement(0)
    again = pred.predict(b["image"][0, 0], b["K"][0], b["T_ego_cam"][0], prev_images=b["image"][0, 1])
    torch.testing.assert_close(again.T_egoprev_egocur, plain.T_egoprev_egocur)


@pytest.mark.parametrize("override", ["model.pose_refine_iterations=-1", "model.pose_refine_levels=0",
                                      "model.pose_refine_max_width=8"])
def test_bad_refinement_keys_are_refused(override):
    with pytest.raises(ConfigError, match="pose_refine"):
        with_overrides(tiny_config(6), [override])


def test_a_lost_network_motion_restarts_from_no_motion():
    """A pose net that is far off (60 deg, 5 m) costs more than no motion on the coarsest level: the
    refinement then starts from no motion and still finds the true motion."""
    b, T_true = _room()
    lost = geo.make_transform(geo.axis_angle_to_rotmat(torch.tensor([[0.0, math.radians(60.0), 0.0]])),
                              torch.tensor([[3.0, 0.0, 4.0]]))
    res = refine_motion(lost, b["depth_gt"], b["image"][:, 1], b["image"][:, 0], b["K"], b["T_ego_cam"], b["mask"],
                        iterations=8, other_starts=[torch.eye(4)[None]])
    dt, dr = _errors(res.T_prev_cur, T_true)
    assert dt < 0.01 and dr < 0.05, (dt, dr)
    stuck = refine_motion(lost, b["depth_gt"], b["image"][:, 1], b["image"][:, 0], b["K"], b["T_ego_cam"], b["mask"],
                          iterations=8)
    assert _errors(stuck.T_prev_cur, T_true)[1] > 10.0  # without the second start it cannot get there
