"""Fuzzing (hypothesis) of every parser the project owns: ROS message conversions, the node's TF buffer
and parameters, config YAML, the DGP (DDAD) JSON and calibration files, nuScenes tables, and bag files.

Property for every target: garbage in -> either a correct result or one of the project's own clear error
types (``reliability_helpers.clear_errors``: ConfigError, ShapeError, DatasetError, CheckpointError,
ConversionError, ParamError, GraphError, UserError/BagError) with a one-line message. Anything else
(KeyError, TypeError, numpy's ValueError, an OverflowError, a hang...) fails the test with the example.

Bounded: derandomized profile, 25-60 examples per target, no deadline; ``VFDEPTH_FUZZ_PROFILE=deep``
runs ten times more random examples.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import assume, event, example, given
from hypothesis import strategies as st

from reliability_helpers import (JSON_VALUES, call_expecting_clear_error, corrupted_bytes, fuzz_settings,
                                 mutated_json, write_json)

pytestmark = [pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parent.parent
FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)
ANY_FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                      st.sampled_from([0.0, -0.0, 1e-300, 1e300, -1e300, 1e308, float("nan"), float("inf")]))


# ====================================================================================== ROS messages

ros = pytest.importorskip  # alias, only to make the skip reason below read naturally


def _cv():
    ros("rclpy", reason="rclpy is not installed")
    from vfdepth_ros import conversions as cv

    return cv


ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1", "8UC3", "mono16", "16UC1", "32FC1", "", "jpeg",
             "yuv422", "bayer_rggb8", "64FC1", "rgb16", "RGB8", "\x00"]


@fuzz_settings()
@given(enc=st.one_of(st.sampled_from(ENCODINGS), st.text(max_size=8)), h=st.integers(0, 40), w=st.integers(0, 40),
       step=st.one_of(st.integers(0, 400), st.just(None)), big=st.booleans(), data=st.data())
@example(enc="rgb8", h=2**31 - 1, w=1, step=3, big=False, data=None)
@example(enc="32FC1", h=3, w=5, step=21, big=True, data=None)
def test_fuzz_image_to_numpy(enc, h, w, step, big, data):
    cv = _cv()
    from sensor_msgs.msg import Image

    msg = Image()
    msg.encoding, msg.height, msg.width, msg.is_bigendian = enc, h, w, int(big)
    kind = cv.ENCODINGS.get(enc, ("u1", 3))
    row = w * kind[1] * np.dtype(kind[0]).itemsize
    msg.step = row if step is None else step
    if data is None:
        payload = bytes(min(msg.step * min(h, 64), 1 << 16))
    else:
        size = data.draw(st.one_of(st.just(msg.step * h), st.integers(0, 4096)), label="size")
        payload = data.draw(st.binary(min_size=min(size, 40000), max_size=min(size, 40000)), label="data")
    msg.data = payload
    arr, err = call_expecting_clear_error(lambda: cv.image_to_numpy(msg))
    if err is None:
        assert arr.shape[:2] == (h, w)
        rgb, err2 = call_expecting_clear_error(lambda: cv.image_to_rgb(msg))
        if err2 is None:
            assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8


def _valid_jpeg_png():
    import cv2

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    return {"jpeg": cv2.imencode(".jpg", img)[1].tobytes(), "png": cv2.imencode(".png", img)[1].tobytes(),
            "png16": cv2.imencode(".png", img.astype(np.uint16) * 256)[1].tobytes(),
            "gray": cv2.imencode(".png", img[:, :, 0])[1].tobytes(),
            "rgba": cv2.imencode(".png", np.dstack([img, img[:, :, :1]]))[1].tobytes()}


@fuzz_settings()
@given(which=st.sampled_from(["jpeg", "png", "png16", "gray", "rgba", "random"]), fmt=st.sampled_from(
    ["jpeg", "png", "rgb8; jpeg compressed bgr8", "", "tiff", "PNG", "compressedDepth png"]), data=st.data())
def test_fuzz_compressed_image(which, fmt, data):
    cv = _cv()
    from sensor_msgs.msg import CompressedImage

    if which == "random":
        raw = data.draw(st.binary(max_size=512), label="raw")
    else:
        raw, _ = data.draw(corrupted_bytes(_valid_jpeg_png()[which]), label="corrupted")
    msg = CompressedImage(format=fmt, data=raw)
    rgb, err = call_expecting_clear_error(lambda: cv.compressed_to_rgb(msg))
    if err is None:
        assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8


@fuzz_settings()
@given(k=st.lists(ANY_FLOAT, min_size=0, max_size=12), h=st.integers(0, 5000), w=st.integers(0, 5000),
       dst=st.tuples(st.integers(1, 512), st.integers(1, 512)))
@example(k=[0.0] * 9, h=10, w=10, dst=(8, 8))
@example(k=[float("nan")] * 9, h=10, w=10, dst=(8, 8))
@example(k=[100.0, 0, 50, 0, 100.0, 40, 0, 0, 0], h=80, w=100, dst=(64, 96))
def test_fuzz_camera_info(k, h, w, dst):
    cv = _cv()
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo()
    msg.height, msg.width = h, w
    if len(k) == 9:
        msg.k = k
    else:  # CameraInfo.k is fixed-size: rclpy refuses other lengths; feed them to the parser as a duck type
        msg = type("Info", (), {"k": k, "height": h, "width": w, "header": msg.header, "d": [],
                                "distortion_model": ""})()
    out, err = call_expecting_clear_error(lambda: cv.camera_info_to_K(msg))
    if err is None:
        K, hw = out
        assert np.isfinite(K).all() and K[0, 0] > 0 and K[1, 1] > 0 and min(hw) > 0
        if isinstance(msg, CameraInfo):
            scaled, err2 = call_expecting_clear_error(lambda: cv.scaled_camera_info(msg, dst))
            if err2 is None:
                assert (scaled.height, scaled.width) == dst


PF_TYPES = st.integers(0, 10)


@fuzz_settings()
@given(fields=st.lists(st.tuples(st.sampled_from(["x", "y", "z", "rgb", "intensity", "x"]), st.integers(0, 40),
                                 PF_TYPES, st.integers(0, 3)), max_size=6),
       point_step=st.integers(0, 48), width=st.integers(0, 20), height=st.integers(0, 3), big=st.booleans(),
       data=st.data())
@example(fields=[("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 12, 7, 1)], point_step=8, width=3, height=1,
         big=False, data=None)
@example(fields=[("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 12, 7, 1)], point_step=0, width=3, height=1,
         big=False, data=None)
def test_fuzz_pointcloud2(fields, point_step, width, height, big, data):
    cv = _cv()
    from sensor_msgs.msg import PointCloud2, PointField

    msg = PointCloud2()
    msg.fields = [PointField(name=n, offset=o, datatype=t, count=c) for n, o, t, c in fields]
    msg.point_step, msg.width, msg.height, msg.is_bigendian = point_step, width, height, big
    msg.row_step = point_step * width
    if data is None:
        msg.data = bytes(point_step * width * height)
    else:
        n = data.draw(st.one_of(st.just(point_step * width * height), st.integers(0, 1024)), label="nbytes")
        msg.data = data.draw(st.binary(min_size=n, max_size=n), label="data")
    out, err = call_expecting_clear_error(lambda: cv.pointcloud2_to_array(msg, ("x", "y", "z")))
    if err is None:
        assert all(v.shape == (width * height,) for v in out.values())
        xyzrgb, err2 = call_expecting_clear_error(lambda: cv.pointcloud2_to_xyzrgb(msg))
        if err2 is None:
            assert xyzrgb[0].shape == (width * height, 3) and xyzrgb[1].shape == (width * height, 3)


def test_pointcloud2_round_trip_fuzzed_points():
    """The writer's own layout always reads back (a sanity anchor for the fuzz target above)."""
    cv = _cv()
    rng = np.random.default_rng(1)
    xyz = rng.normal(size=(50, 3)).astype(np.float32)
    rgb = rng.integers(0, 255, (50, 3), dtype=np.uint8)
    back = cv.pointcloud2_to_xyzrgb(cv.xyzrgb_to_pointcloud2(xyz, rgb, cv.make_header(5, "base_link")))
    np.testing.assert_array_equal(back[0], xyz)
    np.testing.assert_array_equal(back[1], rgb)


@fuzz_settings()
@given(vals=st.lists(ANY_FLOAT, min_size=7, max_size=7), parent=st.text(max_size=6), child=st.text(max_size=6))
@example(vals=[0, 0, 0, 0, 0, 0, 0], parent="base_link", child="cam")
@example(vals=[0, 0, 0, 1e308, 1e308, 0, 0], parent="base_link", child="cam")
@example(vals=[0, 0, 0, 1e-200, 0, 0, 0], parent="base_link", child="cam")
def test_fuzz_transform_and_tf_buffer(vals, parent, child):
    """TransformStamped -> 4x4 (what the node's /tf callback does), then into the TF buffer and looked up."""
    cv = _cv()
    from geometry_msgs.msg import TransformStamped

    from vfdepth_ros.nodes.tf_buffer import TfBuffer

    ts = TransformStamped()
    ts.header.frame_id, ts.child_frame_id = parent, child
    t, q = ts.transform.translation, ts.transform.rotation
    t.x, t.y, t.z, q.w, q.x, q.y, q.z = vals
    T, err = call_expecting_clear_error(lambda: cv.transform_to_matrix(ts))
    if err is not None:
        return
    assert np.isfinite(T).all(), f"transform_to_matrix returned a non-finite matrix for {vals}"
    np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-6)
    buf = TfBuffer()
    try:  # the node catches ConversionError and ValueError here (tf_buffer's documented error)
        buf.set(parent, child, T, static=True)
    except ValueError:
        return
    back = buf.lookup(parent, child)
    assert back is not None and np.isfinite(back).all()
    # the odometry parser sees the same numbers
    odom = cv.matrix_to_odometry(T, 0)
    np.testing.assert_allclose(cv.odometry_to_matrix(odom), T, atol=1e-6)


@fuzz_settings()
@given(edges=st.lists(st.tuples(st.sampled_from(["base_link", "odom", "a", "b", "cam", "/a", "map"]),
                                st.sampled_from(["base_link", "odom", "a", "b", "cam", "/b", "map"]), st.booleans()),
                      max_size=12),
       query=st.tuples(st.sampled_from(["base_link", "a", "b", "cam", "x"]), st.sampled_from(["cam", "a", "map", "y"])))
def test_fuzz_tf_buffer_graphs(edges, query):
    """Any sequence of edges (cycles, re-parenting, dynamic over static): lookups end, and are finite."""
    _cv()
    from vfdepth_ros.nodes.tf_buffer import TfBuffer

    buf = TfBuffer()
    rng = np.random.default_rng(len(edges))
    for parent, child, static in edges:
        T = np.eye(4)
        T[:3, 3] = rng.normal(size=3)
        try:
            buf.set(parent, child, T, static)
        except ValueError:
            pass
    out = buf.lookup(*query)
    assert out is None or (out.shape == (4, 4) and np.isfinite(out).all())


@fuzz_settings()
@given(values=st.dictionaries(st.sampled_from(["cameras", "slop_s", "queue_size", "image_transport", "device",
                                               "virtual.fx", "virtual.width", "camera_timeout_s", "point_decimation",
                                               "diagnostics_period_s", "calibration_source", "base_frame",
                                               "inter_message_lower_bound_s", "unknown_param"]),
                              st.one_of(JSON_VALUES, ANY_FLOAT, st.lists(st.text(max_size=4), max_size=7)),
                              max_size=5))
def test_fuzz_node_parameters(values):
    _cv()
    from vfdepth_ros import params as P

    p, err = call_expecting_clear_error(lambda: P.node_params_from_values(values))
    if err is None:
        assert p.slop_s > 0 and p.queue_size >= 1 and p.cameras


@fuzz_settings(40)
@given(data=st.data())
def test_fuzz_calibration_file(tmp_path_factory, data):
    """The node's rig calibration YAML: mutated copies of a valid file, and random text."""
    _cv()
    from vfdepth_ros import params as P

    cams = ["camera_01", "camera_05"]
    good = {c: {"frame_id": c, "width": 96, "height": 64, "K": [50.0, 0, 47.5, 0, 50.0, 31.5, 0, 0, 1],
                "translation": [1.0, 0.0, 1.6], "rotation_wxyz": [0.5, -0.5, 0.5, -0.5]} for c in cams}
    if data.draw(st.booleans(), label="random text"):
        text = data.draw(st.text(max_size=200), label="text")
    else:
        tree, _ = data.draw(mutated_json(good), label="mutated")
        text = json.dumps(tree, allow_nan=True)  # JSON is YAML (NaN/Infinity become strings)
    path = tmp_path_factory.mktemp("calib") / "rig.yaml"
    path.write_text(text)
    out, err = call_expecting_clear_error(lambda: P.load_calibration_file(str(path), cams))
    if err is None:
        for c in cams:
            if out[c].K is not None:
                assert np.isfinite(out[c].K).all()
            if out[c].T_ego_cam is not None:
                assert np.isfinite(out[c].T_ego_cam).all()


# ====================================================================================== config YAML

TINY_CONFIG = REPO / "training" / "configs" / "synthetic" / "synthetic_tiny.yaml"


@fuzz_settings()
@given(data=st.data())
@example(data=None)
def test_fuzz_config_yaml(tmp_path_factory, data):
    from vfdepth_core.config import load_config

    d = tmp_path_factory.mktemp("cfg")
    text = TINY_CONFIG.read_text()
    if data is None:  # a huge integer (YAML ints are unbounded)
        text = text.replace("batch_size: 1", "batch_size: " + "9" * 400)
    else:
        kind = data.draw(st.sampled_from(["mutated", "truncated", "random", "bytes"]), label="kind")
        if kind == "mutated":
            tree, _ = data.draw(mutated_json(yaml.safe_load(text)), label="tree")
            text = yaml.safe_dump(tree) if data.draw(st.booleans()) else json.dumps(tree, allow_nan=True)
        elif kind == "truncated":
            text = text[: data.draw(st.integers(0, len(text)), label="cut")]
        elif kind == "random":
            text = data.draw(st.text(alphabet=st.characters(codec="utf-8"), max_size=300), label="text")
        else:
            raw, _ = data.draw(corrupted_bytes(text.encode()), label="bytes")
            (d / "c.yaml").write_bytes(raw)
            text = None
    path = d / "c.yaml"
    if text is not None:
        path.write_text(text)
    cfg, err = call_expecting_clear_error(lambda: load_config(path))
    if err is None:
        assert cfg.training.height % 32 == 0


@fuzz_settings()
@given(ov=st.lists(st.one_of(
    st.text(max_size=30),
    st.builds(lambda s, k, v: f"{s}.{k}={v}", st.sampled_from(["model", "training", "data", "loss", "eval", "x", ""]),
              st.sampled_from(["voxel_size", "height", "batch_size", "cameras", "learning_rate", "amp", "neighbors",
                               "frame_ids", "max_steps", "nope"]),
              st.one_of(st.text(max_size=12), st.sampled_from(["[1,2", "{a: 1}", "1e999", "-inf", "nan", "None",
                                                                 "[[0, 9]]", "99999999999999999999999", "!!python/object:os.system ''"])))),
    max_size=3))
def test_fuzz_config_overrides(ov):
    from vfdepth_core.config import load_config, with_overrides

    cfg, err = call_expecting_clear_error(lambda: load_config(TINY_CONFIG, ov))
    if err is None:
        call_expecting_clear_error(lambda: with_overrides(cfg, ov))


# ====================================================================================== DGP (DDAD)

def _ddad_scene_dir(sample: Path) -> Path:
    """The sample's one scene folder, as ddad.json names it (other folders, e.g. a cache, are not scenes)."""
    meta = json.loads((sample / "ddad.json").read_text())
    files = {f for split in meta["scene_splits"].values() for f in split["filenames"]}
    assert len(files) == 1, f"expected one scene in {sample / 'ddad.json'}, got {sorted(files)}"
    return (sample / files.pop()).parent


def _ddad_copy(sample: Path, dst: Path) -> dict:
    """A writable DDAD copy: JSON files copied, image/LIDAR folders linked. Returns the JSON trees."""
    scene_dir = _ddad_scene_dir(sample)
    out = dst / scene_dir.name
    (out / "calibration").mkdir(parents=True)
    for sub in ("rgb", "point_cloud"):
        (out / sub).symlink_to(scene_dir / sub)
    trees = {"ddad.json": json.loads((sample / "ddad.json").read_text())}
    for f in scene_dir.glob("scene_*.json"):
        trees[f"{scene_dir.name}/{f.name}"] = json.loads(f.read_text())
    for f in (scene_dir / "calibration").glob("*.json"):
        trees[f"{scene_dir.name}/calibration/{f.name}"] = json.loads(f.read_text())
    for rel, tree in trees.items():
        write_json(dst / rel, tree)
    return trees


@pytest.fixture(scope="module")
def ddad_trees(ddad_sample, tmp_path_factory):
    d = tmp_path_factory.mktemp("ddad_ref")
    return ddad_sample, _ddad_copy(ddad_sample, d)


@fuzz_settings(40, shrink=False)
@given(data=st.data())
def test_fuzz_ddad_json(ddad_trees, tmp_path_factory, data):
    """Mutated copies of the real sample's ddad.json / scene JSON / calibration JSON: the loader either
    loads (and builds a sample) or raises DatasetError naming the file."""
    from vfdepth_core.datasets.ddad import DDADDataset

    sample, trees = ddad_trees
    d = tmp_path_factory.mktemp("ddad")
    _ddad_copy(sample, d)
    which = data.draw(st.sampled_from(sorted(trees)), label="file")
    if data.draw(st.integers(0, 9), label="raw?") == 0:
        raw, _ = data.draw(corrupted_bytes(json.dumps(trees[which]).encode()), label="bytes")
        (d / which).write_bytes(raw)
    else:
        tree, log = data.draw(mutated_json(trees[which]), label="mutation")
        write_json(d / which, tree)
    split = data.draw(st.sampled_from(["train", "val"]), label="split")
    # Decoding the real 1936x1216 images costs ~1 s per sample: build one in a fifth of the examples.
    build = data.draw(st.integers(0, 4), label="build a sample?") == 0

    def load():
        ds = DDADDataset(d / "ddad.json", split, ["camera_01", "camera_05"], 64, 96, frame_ids=(0, -1, 1),
                         with_depth=True, gt_cache=str(d / "cache"))
        if build and len(ds):
            s = ds[0]
            assert s["image"].shape == (3, 2, 3, 64, 96) and s["depth_gt"].shape == (2, 1, 64, 96)
        return ds

    _, err = call_expecting_clear_error(load)
    event(f"DDAD: {'DatasetError' if err else 'loaded'}")


def test_ddad_fuzz_anchor(ddad_trees, tmp_path):
    from vfdepth_core.datasets.ddad import DDADDataset

    _ddad_copy(ddad_trees[0], tmp_path)
    ds = DDADDataset(tmp_path / "ddad.json", "train", ["camera_01", "camera_05"], 64, 96, frame_ids=(0, -1, 1))
    assert len(ds) == 1 and ds[0]["image"].shape == (3, 2, 3, 64, 96)


# ====================================================================================== nuScenes tables

@pytest.fixture(scope="module")
def nusc_root(tmp_path_factory):
    pytest.importorskip("nuscenes", reason="nuscenes-devkit is not installed")
    from vfdepth_core.datasets.synthetic import make_drive, write_nuscenes

    root = tmp_path_factory.mktemp("nusc_ref")
    drive = make_drive("nuscenes", frames=4, height=32, width=48, seed=3, with_lidar=True)
    write_nuscenes([drive], root, version="v1.0-mini", splits=["train"], keyframe_every=2, write_depth=False)
    return root


def _nusc_copy(src: Path, dst: Path) -> None:
    for item in src.iterdir():
        if item.name == "v1.0-mini":
            shutil.copytree(item, dst / item.name)
        else:
            (dst / item.name).symlink_to(item)


@fuzz_settings(20, shrink=False)
@given(data=st.data())
def test_fuzz_nuscenes_tables(nusc_root, tmp_path_factory, data):
    """Mutated nuScenes tables (JSON) of a synthetic nuScenes-layout dataroot written by the data writer."""
    from vfdepth_core.datasets.nuscenes import NuScenesDataset

    d = tmp_path_factory.mktemp("nusc")
    _nusc_copy(nusc_root, d)
    tables = sorted(p.name for p in (nusc_root / "v1.0-mini").glob("*.json"))
    which = data.draw(st.sampled_from(tables), label="table")
    ref = json.loads((nusc_root / "v1.0-mini" / which).read_text())
    if data.draw(st.integers(0, 9), label="raw?") == 0:
        raw, _ = data.draw(corrupted_bytes(json.dumps(ref).encode()), label="bytes")
        (d / "v1.0-mini" / which).write_bytes(raw)
    else:
        tree, _ = data.draw(mutated_json(ref), label="mutation")
        write_json(d / "v1.0-mini" / which, tree)

    def load():
        ds = NuScenesDataset(d, "v1.0-mini", "train", ["cam_front", "cam_front_left", "cam_front_right",
                                                       "cam_back_left", "cam_back_right", "cam_back"],
                             32, 64, frame_ids=(0, -1, 1), with_depth=True, gt_cache=str(d / "cache"))
        if len(ds):
            s = ds[0]
            assert s["image"].shape == (3, 6, 3, 32, 64)
        return ds

    _, err = call_expecting_clear_error(load)
    event(f"nuScenes: {'DatasetError' if err else 'loaded'}")


def test_nuscenes_fuzz_anchor(nusc_root, tmp_path):
    """The unmutated copy loads (so the fuzz target starts from a valid dataroot)."""
    from vfdepth_core.datasets.nuscenes import NuScenesDataset

    _nusc_copy(nusc_root, tmp_path)
    ds = NuScenesDataset(tmp_path, "v1.0-mini", "train", ["cam_front", "cam_front_left", "cam_front_right",
                                                           "cam_back_left", "cam_back_right", "cam_back"], 32, 64)
    assert len(ds) >= 1 and ds[0]["image"].shape == (3, 6, 3, 32, 64)


# ====================================================================================== bags

@pytest.fixture(scope="module")
def bag_files(tmp_path_factory):
    ros("rosbags", reason="rosbags is not installed")
    from bag_helpers import tiny_recording

    from vfdepth_ros.bag.convert import write_recording

    d = tmp_path_factory.mktemp("bags")
    out = {"mcap": d / "tiny.mcap", "mcap_jpeg": d / "tiny_jpeg.mcap", "sqlite3": d / "tiny_db"}
    write_recording(tiny_recording(frames=3, cams=2), out["mcap"], storage="mcap", progress=False)
    write_recording(tiny_recording(frames=2, cams=2), out["mcap_jpeg"], storage="mcap", compressed=True, progress=False)
    write_recording(tiny_recording(frames=3, cams=2), out["sqlite3"], storage="sqlite3", progress=False)
    return out


def _storage_file(bag: Path) -> Path:
    if bag.is_file():
        return bag
    return next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))


def _read_whole_bag(path: Path) -> int:
    """What the bag tools do with a bag: info, every message read and CDR-decoded. Returns the count."""
    from vfdepth_ros.bag import common as C
    from vfdepth_ros.bag.info import summarize

    summarize(path)
    reader = C.open_reader(path)
    n = 0
    try:
        for conn, _, raw in C.iter_messages(reader):
            C.deserialize(raw, conn.msgtype)  # as evaluate-bag does (raw may be any type)
            n += 1
    finally:
        reader.close()
    return n


@fuzz_settings(50)
@given(kind=st.sampled_from(["mcap", "mcap_jpeg", "sqlite3", "metadata"]), data=st.data())
def test_fuzz_bag_files(bag_files, tmp_path_factory, kind, data):
    d = tmp_path_factory.mktemp("badbag")
    src = bag_files["sqlite3" if kind == "metadata" else kind]
    if src.is_dir():
        dst = d / src.name
        shutil.copytree(src, dst)
    else:
        dst = d / src.name
        shutil.copy(src, dst)
    target = dst / "metadata.yaml" if kind == "metadata" else _storage_file(dst)
    raw, _ = data.draw(corrupted_bytes(target.read_bytes()), label="corruption")
    target.write_bytes(raw)
    call_expecting_clear_error(lambda: _read_whole_bag(dst))


def test_bag_fuzz_anchor(bag_files):
    """The undamaged bags read completely (so the fuzz targets above start from valid files)."""
    assert _read_whole_bag(bag_files["mcap"]) > 0
    assert _read_whole_bag(bag_files["sqlite3"]) > 0


@fuzz_settings(30)
@given(table=st.sampled_from(["messages", "topics"]), col=st.integers(0, 4), value=st.one_of(
    st.none(), st.integers(-(2**63), 2**63 - 1), st.binary(max_size=16), st.text(max_size=8)))
def test_fuzz_sqlite3_rows(bag_files, tmp_path_factory, table, col, value):
    """A well-formed sqlite3 file whose rows are wrong (bad types, dangling topic ids, NULLs)."""
    d = tmp_path_factory.mktemp("badrows")
    dst = d / "bag"
    shutil.copytree(bag_files["sqlite3"], dst)
    db = _storage_file(dst)
    con = sqlite3.connect(db)
    try:
        cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
        name = cols[col % len(cols)]
        con.execute(f"UPDATE {table} SET {name} = ? WHERE rowid = (SELECT MIN(rowid) FROM {table})", (value,))
        con.commit()
    except sqlite3.IntegrityError:
        assume(False)
    finally:
        con.close()
    call_expecting_clear_error(lambda: _read_whole_bag(dst))


def test_bag_error_on_broken_metadata_is_one_line(bag_files, tmp_path):
    from vfdepth_ros.bag import common as C

    dst = tmp_path / "bag"
    shutil.copytree(bag_files["sqlite3"], dst)
    meta = dst / "metadata.yaml"
    meta.write_text(meta.read_text().replace("compression_mode: ''", "compression_mode: '"))
    with pytest.raises(C.BagError) as info:
        _read_whole_bag(dst)
    assert "\n" not in str(info.value)


def test_regressions_found_by_fuzzing(tmp_path):
    """Fixed: a YAML integer too large for a float (OverflowError), 'cameras:' left empty (TypeError),
    a PointCloud2 field outside point_step (numpy ValueError)."""
    from vfdepth_core.config import ConfigError, load_config

    p = tmp_path / "c.yaml"
    p.write_text(TINY_CONFIG.read_text().replace("batch_size: 1", "batch_size: " + "9" * 400))
    cfg = load_config(p)  # a valid (absurd) integer is accepted as the integer it is
    assert cfg.training.batch_size == int("9" * 400)
    p.write_text(TINY_CONFIG.read_text().replace("height: 64", "height: " + "9" * 400 + ".5"))
    with pytest.raises(ConfigError, match="training.height"):
        load_config(p)
    cv = _cv()
    from sensor_msgs.msg import PointCloud2, PointField

    from vfdepth_ros import params as P

    with pytest.raises(P.ParamError, match="cameras"):
        P.node_params_from_values({"cameras": None})
    msg = PointCloud2(height=1, width=2, point_step=8, data=bytes(16),
                      fields=[PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                              for i, n in enumerate("xyz")])
    with pytest.raises(cv.ConversionError, match="point_step"):
        cv.pointcloud2_to_array(msg)
