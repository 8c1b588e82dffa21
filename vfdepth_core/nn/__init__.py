"""VFDepth networks: encoder, volumetric fusion, depth decoder, pose network."""

from vfdepth_core.nn.depth import DepthDecoder, FusedDepthNet
from vfdepth_core.nn.encoder import FeatureAggregator, ResNetEncoder
from vfdepth_core.nn.fusion import (RigCache, VolumetricFusion, VoxelLookup, build_ray_grid, build_voxel_lookup,
                                    pair_order)
from vfdepth_core.nn.pose import FusedPoseNet, PoseHead

__all__ = ["DepthDecoder", "FusedDepthNet", "FeatureAggregator", "ResNetEncoder", "RigCache", "VolumetricFusion",
           "VoxelLookup", "build_ray_grid", "build_voxel_lookup", "pair_order", "FusedPoseNet", "PoseHead"]
