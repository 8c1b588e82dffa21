"""`vfdepth bag repair`: a recorder killed hard leaves an unfinished MCAP; the flushed part comes back."""

from __future__ import annotations

import shutil

import pytest

from bag_helpers import read_all
from vfdepth_ros import conversions as cv
from vfdepth_ros.bag import common as C
from vfdepth_ros.bag.common import BagError, repair
from vfdepth_ros.bag.mcap_salvage import salvage
from vfdepth_ros.cli import main


def _killed_recording(tmp_path, n_flushed=5, n_unflushed=3):
    """What a SIGKILLed recorder leaves: the .partial folder with messages up to the last flush on disk
    and a few more in memory (lost). Returns (name the recorder wrote to, flushed payloads per topic)."""
    out = tmp_path / "rec.mcap"
    w = C.BagWriter(out).open()
    w.add_topic("/tf_static", "tf2_msgs/msg/TFMessage", latched=True)
    w.add_topic("camera_01/image_raw", "sensor_msgs/msg/Image")
    from rosbags.typesys.stores.ros2_kilted import sensor_msgs__msg__Image as Image  # noqa: N813
    from rosbags.typesys.stores.ros2_kilted import builtin_interfaces__msg__Time as Time
    from rosbags.typesys.stores.ros2_kilted import std_msgs__msg__Header as Header
    import numpy as np

    ts = cv.typestore()
    payloads = []
    for i in range(n_flushed + n_unflushed):
        msg = Image(Header(Time(sec=i, nanosec=0), "camera_01"), 2, 3, "rgb8", 0, 9,
                    np.full(18, i, dtype=np.uint8))
        raw = bytes(ts.serialize_cdr(msg, "sensor_msgs/msg/Image"))
        w.write("camera_01/image_raw", 1_000 + i, raw)
        payloads.append(raw)
        if i == n_flushed - 1:
            w.flush()
    # SIGKILL now: the in-memory chunk never reaches the disk; simulate by copying the file as it is
    killed = tmp_path / "killed"
    shutil.copytree(w.dir, killed / f".{out.name}.partial")
    w.abort()
    return killed / out.name, payloads[:n_flushed]


def test_repair_recovers_every_flushed_message(tmp_path):
    name, flushed = _killed_recording(tmp_path)
    with pytest.raises(Exception):
        C.open_reader(next(name.parent.glob(".*partial/*.mcap")))  # readers refuse the unfinished file
    counts = repair(name, tmp_path / "fixed.mcap")
    assert counts == {"camera_01/image_raw": 5, "/tf_static": 0}
    got = read_all(tmp_path / "fixed.mcap")
    assert [raw for _, raw in got["camera_01/image_raw"]] == flushed
    assert [t for t, _ in got["camera_01/image_raw"]] == [1_000 + i for i in range(5)]


def test_repair_cli_and_bad_input(tmp_path, capsys):
    name, _ = _killed_recording(tmp_path)
    assert main(["bag", "repair", str(name), "-o", str(tmp_path / "a.mcap")]) == 0
    assert "5 messages" in capsys.readouterr().out
    part = next(name.parent.glob(".*partial/*.mcap"))
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(part.read_bytes()[:-7])  # a torn tail is dropped, not an error
    s = salvage(cut)
    assert 0 < len(s.messages) <= 5 and s.lost_bytes > 0 and not s.complete
    (tmp_path / "junk.mcap").write_bytes(b"not an mcap at all")
    assert main(["bag", "repair", str(tmp_path / "junk.mcap"), "-o", str(tmp_path / "b.mcap")]) == 2
    assert "not an MCAP file" in capsys.readouterr().err
    assert main(["bag", "repair", str(tmp_path / "nothing.mcap"), "-o", str(tmp_path / "c.mcap")]) == 2
    with pytest.raises(BagError, match="exists"):
        repair(name, tmp_path / "a.mcap")
