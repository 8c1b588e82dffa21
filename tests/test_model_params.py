"""The paper's default config builds exactly the parameter counts of the released network (DESIGN 5)."""

from vfdepth_core.config import Config
from vfdepth_core.model import VFDepth

EXPECTED = {
    "depth_net": 19_269_233, "depth.encoder": 11_176_512, "depth.conv1x1": 229_632, "depth.fusion_overlap": 32_960,
    "depth.fusion_single": 16_512, "depth.reduce_dim": 7_668_096, "depth.decoder": 145_521,
    "pose_net": 24_768_134, "pose.encoder": 11_185_920, "pose.conv1x1": 229_632, "pose.reduce_dim": 12_137_856,
    "pose.pose_head": 1_214_726, "total": 44_037_367,
}


def test_paper_config_parameter_counts():
    counts = VFDepth(Config(), load_imagenet=False).num_parameters()
    assert counts == EXPECTED


def test_only_reduce_dims_change_with_bins_and_height():
    from vfdepth_core.config import with_overrides

    cfg = with_overrides(Config(), ["model.proj_d_bins=25", "model.voxel_size=[50,50,10]"])
    counts = VFDepth(cfg, load_imagenet=False).num_parameters()
    assert counts["depth.reduce_dim"] == 64 * 25 * 256 * 9 + 256 + 256 * 128 * 9 + 128
    assert counts["pose.reduce_dim"] == 257 * 10 * 256 * 9 + 256 + 256 * 128 * 9 + 128
    for k in ("depth.encoder", "depth.decoder", "pose.encoder", "pose.pose_head", "depth.fusion_overlap"):
        assert counts[k] == EXPECTED[k]
