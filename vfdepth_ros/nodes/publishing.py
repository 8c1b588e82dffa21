"""Outputs of the surround_depth node: per-camera depth and camera_info, odometry, the fused point cloud
and the virtual camera's depth, each with the header of the set it came from."""

from __future__ import annotations

from typing import Tuple

from vfdepth_core import geometry
from vfdepth_ros import conversions as cv
from vfdepth_ros import params as P
from vfdepth_ros.nodes.common import TFMessage
from vfdepth_ros.sync import SyncSet

VIRTUAL_FRAME_SUFFIX = "_vfdepth_virtual"


class PublishingMixin:
    """Builds and publishes the output messages of one processed set.

    A mixin of :class:`~vfdepth_ros.nodes.surround_depth.SurroundDepthNode`: the state it uses is set up in
    that class's ``__init__``."""

    def _publish_depth(self, sset: SyncSet, infos: list, out, net_hw: Tuple[int, int]) -> None:
        """Per camera: depth and its camera_info (the camera's own, scaled to the network size)."""
        for i, msg in enumerate(sset.msgs):
            header = cv.copy_header(msg.header)
            self.pub_depth[i].publish(cv.depth_to_image(out.depth[0, i, 0].cpu().numpy(), header))
            self.pub_depth_info[i].publish(cv.scaled_camera_info(infos[i], net_hw, cv.copy_header(msg.header))
                                           if infos[i] is not None else
                                           cv.K_to_camera_info(out.K[0, i].cpu().numpy(), net_hw, cv.copy_header(msg.header)))

    def _publish_odom(self, stamp: int, T_egoprev_egocur, p: P.NodeParams):
        """Integrate the motion (None: none measured), publish odom; returns the odom -> base transform."""
        st = self.odom.update(stamp, T_egoprev_egocur[0].double().cpu() if T_egoprev_egocur is not None else None)
        self.pub_odom.publish(cv.matrix_to_odometry(st.T_odom_ego, stamp, p.odom_frame, p.base_frame,
                                                    st.twist_linear_mps, st.twist_angular_radps,
                                                    st.pose_covariance, st.twist_covariance))
        return cv.matrix_to_transform(st.T_odom_ego, p.odom_frame, p.base_frame, stamp)

    def _publish_virtual(self, stamp: int, depth_m, virtual, net_hw: Tuple[int, int], p: P.NodeParams):
        """Virtual depth and camera_info; returns the base -> virtual camera transform."""
        vframe = p.base_frame + VIRTUAL_FRAME_SUFFIX
        self.pub_vdepth.publish(cv.depth_to_image(depth_m.float().cpu().numpy(), cv.make_header(stamp, vframe)))
        self.pub_vinfo.publish(cv.K_to_camera_info(virtual.K[0], net_hw, cv.make_header(stamp, vframe)))
        return cv.matrix_to_transform(virtual.T_ego_cam[0], p.base_frame, vframe, stamp)

    def _publish_points(self, stamp: int, out, rig, p: P.NodeParams) -> None:
        """The six depth maps fused into one coloured point cloud in the base frame."""
        xyz, rgb = geometry.fused_points(out.depth[0], out.K[0], rig.T_ego_cam, out.images[0],
                                         p.point_decimation, p.points_max_depth_m)
        header = cv.make_header(stamp, p.base_frame)
        self.pub_points.publish(cv.xyzrgb_to_pointcloud2(xyz.numpy(), rgb.numpy(), header))

    def _publish_tf(self, transforms: list) -> None:
        """The set's transforms (odom -> base, base -> virtual camera) on /tf, when tf2_msgs is installed."""
        if self.pub_tf is not None:
            self.pub_tf.publish(TFMessage(transforms=transforms))
