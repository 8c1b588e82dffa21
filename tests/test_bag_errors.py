"""Bad input to the bag tools: one-line errors (exit 2), no tracebacks."""

from __future__ import annotations

import numpy as np
import pytest

from bag_helpers import one_line_error, tiny_nuscenes, tiny_recording, write_outputs_bag
from vfdepth_ros.bag.convert import write_recording
from vfdepth_ros.cli import main


@pytest.fixture(scope="module")
def good_bag(tmp_path_factory):
    out = tmp_path_factory.mktemp("good") / "in.mcap"
    write_recording(tiny_recording(frames=3), out, progress=False)
    return out


_run = one_line_error


def test_truncated_and_corrupt_bags(good_bag, tmp_path, capsys):
    data = good_bag.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt" in _run(capsys, "bag", "info", str(cut))
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    assert "junk.mcap" in _run(capsys, "bag", "info", str(junk))
    assert "no such bag" in _run(capsys, "bag", "info", str(tmp_path / "missing.mcap"))
    assert "truncated or corrupt" in _run(capsys, "evaluate-bag", str(cut), str(good_bag))


def test_missing_topics(good_bag, tmp_path, capsys):
    # outputs without depth or odom
    msg = _run(capsys, "evaluate-bag", str(good_bag), str(good_bag))
    assert "no <cam>/depth and no odom" in msg
    # input without LIDAR
    no_lidar = tmp_path / "nolidar.mcap"
    rec = tiny_recording(frames=2)
    rec.events = [e for e in rec.events if e.kind != "lidar"]
    write_recording(rec, no_lidar, progress=False)
    out = write_outputs_bag(tmp_path / "out.mcap", {"camera_00": [(1_700_000_000_000_000_000, np.ones((4, 4), np.float32),
                                                                   np.eye(3), "camera_00_optical_frame")]})
    assert "no lidar/points topic" in _run(capsys, "evaluate-bag", str(no_lidar), str(out))
    # play a topic the bag does not have
    assert "no topic /nope" in _run(capsys, "bag", "play", str(good_bag), "--topics", "nope")


def test_unknown_message_type(tmp_path, capsys):
    assert "unknown message type" in _run(capsys, "bag", "record", "-o", str(tmp_path / "r.mcap"),
                                          "chatter:foo_msgs/msg/Bar")
    # a bag holding a type this tool does not know: info lists it, evaluation says what is wrong
    from vfdepth_ros.bag.common import BagWriter

    odd = tmp_path / "odd.mcap"
    with BagWriter(odd) as bw:
        bw.add_topic("odom", "foo_msgs/msg/Bar", msgdef="int32 x", rihs01="RIHS01_" + "0" * 64)
        bw.write("odom", 1, b"\x00\x01\x00\x00\x01\x00\x00\x00")
    assert main(["bag", "info", str(odd)]) == 0
    assert "foo_msgs/msg/Bar" in capsys.readouterr().out
    assert "unknown message type 'foo_msgs/msg/Bar'" in _run(capsys, "evaluate-bag", str(odd), str(odd))


def test_bad_dataroots(tmp_path, capsys):
    (tmp_path / "nusc" / "v1.0-trainval").mkdir(parents=True)
    msg = _run(capsys, "bag", "from-nuscenes", str(tmp_path / "nusc"), "--version", "v1.0-mini", "--out",
               str(tmp_path / "n.mcap"))
    assert "no version 'v1.0-mini'" in msg and "v1.0-trainval" in msg
    assert "no such nuScenes dataroot" in _run(capsys, "bag", "from-nuscenes", str(tmp_path / "none"), "--out",
                                               str(tmp_path / "n.mcap"))
    assert "no such DDAD dataset file" in _run(capsys, "bag", "from-ddad", str(tmp_path / "ddad.json"), "--out",
                                               str(tmp_path / "d.mcap"))
    assert not (tmp_path / "n.mcap").exists() and not (tmp_path / "d.mcap").exists()


def test_existing_output_and_bad_scene(ddad_sample, tmp_path, capsys):
    out = tmp_path / "x.mcap"
    out.write_bytes(b"")
    assert "exists already" in _run(capsys, "bag", "from-ddad", str(ddad_sample / "ddad.json"), "--out", str(out))
    assert "--scene 7" in _run(capsys, "bag", "from-ddad", str(ddad_sample / "ddad.json"), "--scene", "7", "--out",
                               str(tmp_path / "y.mcap"))


def test_missing_nuscenes_scene(tmp_path, capsys):
    tiny_nuscenes(tmp_path / "nusc")
    msg = _run(capsys, "bag", "from-nuscenes", str(tmp_path / "nusc"), "--scene", "scene-9999", "--out",
               str(tmp_path / "n.mcap"))
    assert "scene 'scene-9999' not in" in msg and "scene-0000" in msg
