"""Damaged bags: every reader checks what it read against the bag's own index (message counts per
topic) and stops with one line naming the bag and how much was readable; `bag repair` and
`--allow-damaged` recover what can be read."""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest

from bag_helpers import mcap_records, one_line_error, tiny_recording, write_outputs_bag
from vfdepth_ros.bag import common as C
from vfdepth_ros.bag.convert import write_recording
from vfdepth_ros.bag.info import summarize
from vfdepth_ros.bag.common import repair
from vfdepth_ros.cli import main

pytest.importorskip("rosbags")

@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """85 messages in 5 MCAP chunks (240x320 images fill rosbags' 1 MB chunks)."""
    out = tmp_path_factory.mktemp("good") / "good.mcap"
    write_recording(tiny_recording(frames=12, hw=(240, 320)), out, progress=False)
    return out


def _damaged(good: Path, tmp: Path, kind: str) -> Path:
    data = bytearray(good.read_bytes())
    chunks, msgs, data_end = mcap_records(bytes(data))
    assert len(chunks) >= 3
    lidar = [r for r in msgs if r[2] == "lidar/points"]
    q, m, _ = lidar[len(lidar) // 2]  # a LIDAR message in the middle (evaluate-bag reads LIDAR)
    if kind == "garbage":  # a message record overwritten inside a chunk (its length becomes absurd)
        data[q:q + 9 + m] = b"\xab" * (9 + m)
    elif kind == "opcode":  # one flipped byte: the record's opcode (readers skip unknown records)
        data[q] ^= 0x5A
    elif kind == "truncated":
        data = data[: chunks[-2][0] + chunks[-2][1] // 2]
    elif kind == "no_summary":  # cut after the data section: no summary, no footer
        data = data[: data_end + 9 + struct.unpack_from("<Q", data, data_end + 1)[0]]
    out = tmp / f"{kind}.mcap"
    out.write_bytes(bytes(data))
    return out


def _count(path: Path) -> int:
    reader = C.open_reader(path)
    try:
        return sum(1 for _ in C.iter_messages(reader))
    finally:
        reader.close()


@pytest.mark.parametrize("kind", ["garbage", "opcode"])
def test_damaged_chunk_is_an_error_naming_bag_and_readable_count(good, tmp_path, capsys, kind):
    bad = _damaged(good, tmp_path, kind)
    total = _count(good)
    assert total == 85
    msg = one_line_error(capsys, "bag", "info", str(bad))
    assert str(bad) in msg and f"of the {total} messages its index lists" in msg and "bag repair" in msg
    readable = int(msg.split(" read ")[1].split(" of ")[0])
    assert 0 < readable < total
    # --no-verify lists the index only; --allow-damaged shows what is readable
    assert main(["bag", "info", str(bad), "--no-verify"]) == 0
    assert main(["bag", "info", str(bad), "--allow-damaged"]) == 0
    assert f"DAMAGED: {readable} of {total} messages readable" in capsys.readouterr().out
    # repair keeps every whole record (those after the damage in the chunk are lost) and the result is clean
    fixed = tmp_path / "fixed.mcap"
    counts = repair(bad, fixed)
    assert readable <= sum(counts.values()) < total
    assert _count(fixed) == sum(counts.values())
    if kind == "opcode":  # only the one record is lost
        assert sum(counts.values()) == total - 1


@pytest.mark.parametrize("kind", ["truncated", "no_summary"])
def test_truncated_or_summaryless_bag_points_to_repair(good, tmp_path, capsys, kind):
    bad = _damaged(good, tmp_path, kind)
    msg = one_line_error(capsys, "bag", "info", str(bad))
    assert str(bad) in msg and "truncated or corrupt" in msg and "bag repair" in msg and "--allow-damaged" in msg
    counts = repair(bad, tmp_path / "fixed.mcap")
    n = sum(counts.values())
    assert (n == 85) if kind == "no_summary" else (0 < n < 85)
    reader = C.open_reader(bad, allow_damaged=True)  # salvaged copy
    try:
        assert sum(1 for _ in C.iter_messages(reader, allow_damaged=True)) == n
    finally:
        reader.close()


def test_evaluate_bag_refuses_a_damaged_input(good, tmp_path, capsys):
    from vfdepth_ros.bag.evaluate import read_ground_truth

    bad = _damaged(good, tmp_path, "opcode")
    outputs = write_outputs_bag(tmp_path / "out.mcap", {"camera_00": [
        (1_700_000_000_000_000_000, np.ones((4, 4), np.float32), np.eye(3), "camera_00_optical_frame")]})
    msg = one_line_error(capsys, "evaluate-bag", str(bad), str(outputs))
    assert str(bad) in msg and "messages its index lists" in msg
    gt = read_ground_truth(bad, allow_damaged=True)
    gt_good = read_ground_truth(good)
    assert len(gt.lidar_points) == len(gt_good.lidar_points) - 1  # the damaged record was a LIDAR message


def test_sqlite3_bag_missing_rows_is_an_error(tmp_path, capsys):
    bag = tmp_path / "db"
    write_recording(tiny_recording(frames=3), bag, storage="sqlite3", progress=False)
    db = next(bag.glob("*.db3"))
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM messages WHERE id IN (SELECT id FROM messages ORDER BY id DESC LIMIT 4)")
    msg = one_line_error(capsys, "bag", "info", str(bag))
    assert str(bag) in msg and "read 18 of the 22 messages" in msg and "camera_01/image_raw 2/3" in msg


def test_viewer_refuses_a_damaged_bag(good, tmp_path):
    pytest.importorskip("rerun", reason="rerun-sdk is needed for the viewer")
    from vfdepth_ros.viewer.record import record_bags

    bad = _damaged(good, tmp_path, "opcode")
    with pytest.raises(C.BagError, match="messages its index lists"):
        record_bags([bad], tmp_path / "v.rrd")
    summary = record_bags([bad], tmp_path / "v2.rrd", allow_damaged=True)
    assert sum(summary.messages.values()) > 0


def test_ranged_reads_and_clean_bags_pass(good):
    """A clean bag reads whole without complaint; a time range is not held to the whole-bag counts."""
    s = summarize(good, verify=True)
    assert all(t.readable == t.count for t in s.topics)
    reader = C.open_reader(good)
    try:
        mid = (reader.start_time + reader.end_time) // 2
        assert 0 < sum(1 for _ in C.iter_messages(reader, start=mid)) < 85
    finally:
        reader.close()
