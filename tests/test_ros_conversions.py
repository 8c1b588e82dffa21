"""Round trips and failure modes of vfdepth_ros.conversions (message types only, no DDS)."""

import sys

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg", reason="ROS 2 message packages (ros-sensor-msgs) are not installed")

from builtin_interfaces.msg import Time  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField  # noqa: E402

from vfdepth_ros import conversions as cv  # noqa: E402

RNG = np.random.default_rng(0)


def _img(shape, dtype=np.uint8):
    if dtype == np.float32:
        return RNG.normal(size=shape).astype(np.float32)
    return RNG.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype)


@pytest.mark.parametrize("encoding,shape,dtype", [
    ("rgb8", (5, 7, 3), np.uint8), ("bgr8", (5, 7, 3), np.uint8), ("rgba8", (4, 6, 4), np.uint8),
    ("bgra8", (4, 6, 4), np.uint8), ("mono8", (5, 7), np.uint8), ("mono16", (3, 9), np.uint16),
    ("16UC1", (3, 9), np.uint16), ("32FC1", (6, 5), np.float32),
])
def test_image_round_trip(encoding, shape, dtype):
    arr = _img(shape, dtype)
    msg = cv.numpy_to_image(arr, encoding, cv.make_header(123, "cam"))
    assert msg.encoding == encoding and msg.height == shape[0] and msg.width == shape[1]
    assert msg.header.frame_id == "cam" and cv.stamp_to_ns(msg.header.stamp) == 123
    back = cv.image_to_numpy(msg)
    assert back.dtype == dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


def test_colour_encodings_to_rgb():
    rgb = _img((4, 5, 3))
    np.testing.assert_array_equal(cv.image_to_rgb(cv.numpy_to_image(rgb, "rgb8")), rgb)
    np.testing.assert_array_equal(cv.image_to_rgb(cv.numpy_to_image(rgb[:, :, ::-1], "bgr8")), rgb)
    bgra = np.concatenate([rgb[:, :, ::-1], np.full((4, 5, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(cv.image_to_rgb(cv.numpy_to_image(bgra, "bgra8")), rgb)
    mono = _img((4, 5))
    out = cv.image_to_rgb(cv.numpy_to_image(mono, "mono8"))
    assert out.shape == (4, 5, 3) and (out == mono[:, :, None]).all()


def test_image_with_row_padding():
    rgb = _img((3, 4, 3))
    msg = Image(height=3, width=4, encoding="rgb8", step=4 * 3 + 5)
    padded = np.zeros((3, 17), np.uint8)
    padded[:, :12] = rgb.reshape(3, 12)
    padded[:, 12:] = 99  # garbage in the padding must be ignored
    msg.data = padded.tobytes()
    np.testing.assert_array_equal(cv.image_to_rgb(msg), rgb)


def test_big_endian_image():
    depth = RNG.uniform(1, 80, size=(3, 4)).astype(np.float32)
    msg = Image(height=3, width=4, encoding="32FC1", step=16, is_bigendian=1)
    msg.data = depth.astype(">f4").tobytes()
    np.testing.assert_array_equal(cv.image_to_numpy(msg), depth)
    u16 = RNG.integers(0, 65535, size=(2, 3), dtype=np.uint16)
    msg = Image(height=2, width=3, encoding="16UC1", step=6, is_bigendian=1)
    msg.data = u16.astype(">u2").tobytes()
    np.testing.assert_array_equal(cv.image_to_numpy(msg), u16)


@pytest.mark.parametrize("kwargs,match", [
    (dict(height=4, width=4, encoding="yuv422", step=8), "encoding 'yuv422'"),
    (dict(height=4, width=4, encoding="rgb8", step=12, data=b"\x00" * 10), "Image.data has 10 bytes"),
    (dict(height=4, width=4, encoding="rgb8", step=6, data=b"\x00" * 48), "Image.step 6"),
    (dict(height=0, width=4, encoding="rgb8", step=12), "empty size"),
])
def test_image_errors(kwargs, match):
    data = kwargs.pop("data", b"")
    msg = Image(**kwargs)
    msg.data = data
    with pytest.raises(cv.ConversionError, match=match):
        cv.image_to_rgb(msg)


def test_non_colour_encoding_is_not_a_camera_image():
    with pytest.raises(cv.ConversionError, match="32FC1"):
        cv.image_to_rgb(cv.numpy_to_image(np.zeros((2, 2), np.float32), "32FC1"))


def test_numpy_to_image_shape_mismatch():
    with pytest.raises(cv.ConversionError, match="does not fit encoding rgb8"):
        cv.numpy_to_image(np.zeros((2, 2), np.uint8), "rgb8")


def test_png_round_trip_is_exact_and_jpeg_is_close():
    rgb = _img((16, 24, 3))
    png = cv.rgb_to_compressed(rgb, "png", cv.make_header(5, "c"))
    assert "png" in png.format and png.header.frame_id == "c"
    np.testing.assert_array_equal(cv.compressed_to_rgb(png), rgb)
    smooth = np.zeros((32, 48, 3), np.uint8)
    smooth[..., 0] = np.linspace(0, 255, 48)[None, :]
    smooth[..., 1] = np.linspace(0, 255, 32)[:, None]
    smooth[..., 2] = 128
    jpg = cv.rgb_to_compressed(smooth, "jpeg", jpeg_quality=95)
    assert "jpeg" in jpg.format
    back = cv.compressed_to_rgb(jpg)
    assert back.shape == smooth.shape
    assert np.abs(back.astype(int) - smooth.astype(int)).mean() < 3.0  # colour order preserved


def test_compressed_errors():
    with pytest.raises(cv.ConversionError, match="not a decodable"):
        cv.compressed_to_rgb(CompressedImage(format="jpeg", data=b"definitely not a jpeg"))
    with pytest.raises(cv.ConversionError, match="empty"):
        cv.compressed_to_rgb(CompressedImage(format="png", data=b""))
    with pytest.raises(cv.ConversionError, match="format 'tiff'"):
        cv.compressed_to_rgb(CompressedImage(format="tiff", data=b"\x00"))


def test_camera_info_round_trip_and_scaling():
    K = np.array([[400.0, 0, 319.5], [0, 410.0, 191.5], [0, 0, 1]])
    info = cv.K_to_camera_info(K, (384, 640), cv.make_header(1, "cam"))
    K2, hw = cv.camera_info_to_K(info)
    np.testing.assert_allclose(K2, K)
    assert hw == (384, 640)
    assert list(info.p[:3]) == [400.0, 0.0, 319.5] and info.p[3] == 0.0
    half = cv.scaled_camera_info(info, (192, 320))
    Kh, hwh = cv.camera_info_to_K(half)
    assert hwh == (192, 320) and half.header.frame_id == "cam"
    # half-pixel-correct: the image centre stays the image centre
    np.testing.assert_allclose(Kh, [[200.0, 0, 159.5], [0, 205.0, 95.5], [0, 0, 1]])


@pytest.mark.parametrize("k,hw,match", [
    ([float("nan")] + [0.0] * 8, (10, 10), "NaN"),
    ([0.0, 0, 5, 0, 100, 5, 0, 0, 1], (10, 10), "non-positive"),
    ([100.0, 0, 5, 0, 100, 5, 0, 0, 1], (0, 10), "empty size"),
])
def test_camera_info_errors(k, hw, match):
    info = CameraInfo(height=hw[0], width=hw[1], k=k)
    with pytest.raises(cv.ConversionError, match=match):
        cv.camera_info_to_K(info)


def test_pointcloud_round_trip_and_layout():
    xyz = RNG.normal(size=(50, 3)).astype(np.float32)
    rgb = _img((50, 3))
    msg = cv.xyzrgb_to_pointcloud2(xyz, rgb, cv.make_header(9, "base_link"))
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb"]
    assert [f.offset for f in msg.fields] == [0, 4, 8, 12]
    assert all(f.datatype == PointField.FLOAT32 and f.count == 1 for f in msg.fields)
    assert msg.point_step == 16 and msg.row_step == 16 * 50 and msg.height == 1 and msg.width == 50
    assert msg.header.frame_id == "base_link" and not msg.is_bigendian
    xyz2, rgb2 = cv.pointcloud2_to_xyzrgb(msg)
    np.testing.assert_array_equal(xyz2, xyz)
    np.testing.assert_array_equal(rgb2, rgb)
    # rviz's packing: the float's bits are 0x00RRGGBB
    raw = np.frombuffer(bytes(msg.data), dtype="<u4").reshape(50, 4)[:, 3]
    assert raw[0] == (int(rgb[0, 0]) << 16) | (int(rgb[0, 1]) << 8) | int(rgb[0, 2])


def test_pointcloud_unpack_foreign_layout():
    # x, y, z float32 with padding, rgb as UINT32 at offset 16, big-endian, point_step 20
    n = 4
    dt = np.dtype({"names": ["x", "y", "z", "rgb"], "formats": [">f4", ">f4", ">f4", ">u4"],
                   "offsets": [0, 4, 8, 16], "itemsize": 20})
    arr = np.zeros(n, dt)
    arr["x"], arr["y"], arr["z"] = np.arange(n), -np.arange(n), 2.5
    arr["rgb"] = 0x102030
    msg = PointCloud2(height=1, width=n, is_bigendian=True, point_step=20, row_step=20 * n)
    msg.fields = [PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
                  PointField(name="y", offset=4, datatype=PointField.FLOAT32, count=1),
                  PointField(name="z", offset=8, datatype=PointField.FLOAT32, count=1),
                  PointField(name="rgb", offset=16, datatype=PointField.UINT32, count=1)]
    msg.data = arr.tobytes()
    xyz, rgb = cv.pointcloud2_to_xyzrgb(msg)
    np.testing.assert_array_equal(xyz[:, 0], np.arange(n))
    np.testing.assert_array_equal(xyz[:, 2], 2.5)
    assert (rgb == [0x10, 0x20, 0x30]).all()
    with pytest.raises(cv.ConversionError, match="no field 'intensity'"):
        cv.pointcloud2_to_array(msg, ("intensity",))



def _T(rx, ry, rz, t):
    import torch

    from vfdepth_core import geometry
    T = np.eye(4)
    T[:3, :3] = geometry.euler_to_rotmat(rx, ry, rz).numpy()
    T[:3, 3] = t
    return T


def test_transform_and_odometry_round_trip():
    T = _T(10.0, -20.0, 170.0, [1.0, -2.0, 0.5])
    msg = cv.matrix_to_transform(T, "base_link", "camera_01", 1_500_000_001)
    assert msg.header.frame_id == "base_link" and msg.child_frame_id == "camera_01"
    assert msg.header.stamp.sec == 1 and msg.header.stamp.nanosec == 500_000_001
    q = msg.transform.rotation
    assert abs(q.x ** 2 + q.y ** 2 + q.z ** 2 + q.w ** 2 - 1) < 1e-9
    np.testing.assert_allclose(cv.transform_to_matrix(msg), T, atol=1e-9)
    odom = cv.matrix_to_odometry(T, 7, "odom", "base_link")
    assert odom.header.frame_id == "odom" and odom.child_frame_id == "base_link"
    np.testing.assert_allclose(cv.odometry_to_matrix(odom), T, atol=1e-9)
    with pytest.raises(cv.ConversionError, match="NaN"):
        cv.matrix_to_transform(np.full((4, 4), np.nan), "a", "b", 0)


def test_transform_errors():
    msg = cv.matrix_to_transform(np.eye(4), "a", "b", 0)
    msg.transform.rotation.w = 0.0
    with pytest.raises(cv.ConversionError, match="zero quaternion"):
        cv.transform_to_matrix(msg)
    msg.transform.translation.x = float("nan")
    with pytest.raises(cv.ConversionError, match="NaN"):
        cv.transform_to_matrix(msg)


def test_tf_message():
    pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs is not built into this environment")
    msg = cv.tf_message([cv.matrix_to_transform(np.eye(4), "odom", "base_link", 3)])
    assert len(msg.transforms) == 1 and msg.transforms[0].child_frame_id == "base_link"


def test_stamps_and_headers():
    for ns in (0, 1, 999_999_999, 1_000_000_000, 1_700_000_000_123_456_789):
        assert cv.stamp_to_ns(cv.ns_to_stamp(ns)) == ns
    assert cv.stamp_to_ns(Time(sec=2, nanosec=5)) == 2_000_000_005
    with pytest.raises(cv.ConversionError):
        cv.ns_to_stamp(-1)
    h = cv.make_header(42, "f")
    h2 = cv.copy_header(h, "g")
    assert cv.stamp_to_ns(h2.stamp) == 42 and h2.frame_id == "g" and h.frame_id == "f"


def test_diagnostics():
    st = [cv.diagnostic_status("vfdepth: camera_01", "WARN", "slow", {"rate_hz": 3.14159, "drops": 2}),
          cv.diagnostic_status("vfdepth: inference", "OK", "", {"device": "cpu"})]
    d = cv.diagnostics_to_dict(cv.diagnostic_array(st, 10))
    assert d["vfdepth: camera_01"] == {"level": "WARN", "message": "slow", "values": {"rate_hz": "3.142", "drops": "2"}}
    assert d["vfdepth: inference"]["level"] == "OK"
    with pytest.raises(cv.ConversionError):
        cv.diagnostic_status("x", "FATAL", "", {})
