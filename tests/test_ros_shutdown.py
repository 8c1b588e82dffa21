"""A clean stop however it is asked for: SIGINT once or twice to the launcher alone, SIGINT to its whole
process group (a terminal's Ctrl-C) or SIGTERM, under the real `ros2 launch` and under the project's
launcher (`vfdepth launch`), while a bag plays and the node is busy with sets: every node ends with
exit 0, nothing prints a traceback, nothing is left running. The measured stop times are printed
(the issue's aim: within 3 s). SIGTERM to `ros2 launch` ends launch at once (upstream behaviour, its
exit code is its own); the node and the player end with it (PR_SET_PDEATHSIG), and their exit codes
are read by making the test process the subreaper that adopts them. The player alone: a stop signal,
a later second one, or a launcher's escalation to SIGTERM ends it with exit 0."""

from __future__ import annotations

import ctypes
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Dict, Optional, Tuple

import pytest

from bag_helpers import tiny_recording, vfdepth_cmd
from ros2_cli_helpers import BIN, CAMS, TINY, Proc, colcon_env, ros2_tools_env
from vfdepth_ros.dds import loopback_env
from vfdepth_ros.graph import rosbag2_cli_available

pytest.importorskip("rclpy")
pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs not built (run tools/build_tf2_msgs.py)")
psutil = pytest.importorskip("psutil")
pytestmark = [pytest.mark.ros, pytest.mark.slow]

WAYS = {  # name -> (signals in order, to the whole group?)
    "sigint": ((signal.SIGINT,), False),
    "sigint_twice": ((signal.SIGINT, signal.SIGINT), False),
    "terminal_ctrl_c": ((signal.SIGINT,), True),
    "sigterm": ((signal.SIGTERM,), False),
}


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    from vfdepth_ros.bag.convert import write_recording

    path = tmp_path_factory.mktemp("shutdown") / "drive.mcap"
    write_recording(tiny_recording(frames=15, cams=6, hw=(48, 80), names=CAMS), path, progress=False)
    return path


@pytest.fixture(scope="module")
def ros2_env(tmp_path_factory):
    ros2_tools_env()
    return colcon_env(tmp_path_factory.mktemp("colcon"), 0)  # the domain is set per test


PR_SET_CHILD_SUBREAPER = 36


@contextmanager
def adopting_orphans():
    """This process adopts its orphaned descendants (Linux), so that it can read the exit code of a
    process whose launcher was killed before reaping it."""
    if not sys.platform.startswith("linux"):
        pytest.skip("exit codes of orphaned processes need Linux's PR_SET_CHILD_SUBREAPER")
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    if prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip(f"prctl(PR_SET_CHILD_SUBREAPER) failed: errno {ctypes.get_errno()}")
    try:
        yield
    finally:
        prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def _role(cmdline) -> str:
    text = " ".join(cmdline)
    return "surround_depth" if "surround_depth" in text else "bag_player" if " play " in f"{text} " else text[:60]


def _stop_and_check(proc: Proc, way: str, ready: str) -> Tuple[int, Dict[str, Optional[int]]]:
    """Ask for a stop `way`; every process of the graph is gone soon after, nothing printed a
    traceback or a deprecation warning. Returns the launcher's exit code and role -> exit code of
    the graph's processes that this (subreaper) process reaped (None: the launcher reaped it)."""
    proc.wait_for(ready, 240)
    time.sleep(2.0)  # the looping bag keeps the worker busy with sets
    children = psutil.Process(proc.proc.pid).children(recursive=True)
    assert children, proc.text()[-3000:]
    roles = {c.pid: _role(c.cmdline()) for c in children}
    sigs, group = WAYS[way]
    t0 = time.monotonic()
    for k, sig in enumerate(sigs):
        if k:
            time.sleep(0.3)
        proc.signal(sig, group=group)
    try:
        proc.proc.wait(timeout=15)
        # processes left by a launcher that ended first are ours now: wait_procs reaps them (returncode)
        gone, left = psutil.wait_procs(children, timeout=15)
    finally:
        took = time.monotonic() - t0
        code = proc.stop()
    for c in left:
        c.kill()
    text = proc.text()
    print(f"{way}: launcher (exit {code}) and every process of the graph ended {took:.2f} s after the first signal")
    assert not left, f"still running: {[c.cmdline()[:3] for c in left]}"
    assert "Traceback" not in text, text[-4000:]
    assert "deprecated" not in text.lower(), text[-4000:]
    return code, {roles[c.pid]: c.returncode for c in gone}


@pytest.mark.parametrize("way", list(WAYS))
def test_project_launcher_stops_cleanly(way, bag, tmp_path, ros_domain_id, repo_root):
    env = dict(loopback_env(domain_id=ros_domain_id), PYTHONUNBUFFERED="1")
    proc = Proc(vfdepth_cmd("launch", "--bag", str(bag), "--loop", "--camera-set", "synthetic", "--model-config", TINY,
                            "--no-respawn"), env, tmp_path / "launch.log").start()
    code, _ = _stop_and_check(proc, way, "model ready")
    assert code == 0
    text = proc.text()
    assert "[surround_depth] exited with code 0" in text, text[-3000:]
    assert "[bag_player] exited with code 0" in text, text[-3000:]


@pytest.mark.parametrize("way", list(WAYS))
def test_ros2_launch_stops_cleanly(way, bag, ros2_env, tmp_path, ros_domain_id):
    env = dict(ros2_env, ROS_DOMAIN_ID=str(ros_domain_id))
    proc = Proc([str(BIN / "ros2"), "launch", "vfdepth", "replay.launch.py", f"bag:={bag}", "loop:=true",
                 "camera_set:=synthetic", f"model_config:={TINY}"], env, tmp_path / "launch.log").start()
    with adopting_orphans():
        code, reaped = _stop_and_check(proc, way, "model ready")
    text = proc.text()
    if way == "sigterm":  # launch itself ends at once (its own choice); its processes end with it, adopted by us
        roles = ["surround_depth"] + ([] if rosbag2_cli_available() else ["bag_player"])  # the project's player
        for role in roles:  # exit 0 seen by us, or by launch when it reaped the process itself
            clean = re.search(rf"\[{role}-\d+\]: process has finished cleanly", text)
            assert reaped.get(role) == 0 or (reaped.get(role) is None and clean), f"{role}: {reaped}\n{text[-3000:]}"
        return
    # A second SIGINT that reaches `ros2 launch` after its processes have ended interrupts launch's own
    # teardown (upstream behaviour: exit -2, no traceback); the nodes' clean exit is what is ours.
    assert code == 0 or (way == "sigint_twice" and code == -signal.SIGINT), text[-3000:]
    assert "[surround_depth-1]: process has finished cleanly" in text, text[-3000:]
    # the project's player (no rosbag2 CLI here) too, also when launch's SIGTERM (sigterm_timeout)
    # reached it during its clean-up
    if not rosbag2_cli_available():
        assert re.search(r"\[bag_player-\d+\]: process has finished cleanly", text), text[-3000:]


PLAYER_WAYS = {  # name -> (signal, seconds later) in order
    "sigint": ((signal.SIGINT, 0.0),),
    "sigterm": ((signal.SIGTERM, 0.0),),
    "sigint_then_sigterm": ((signal.SIGINT, 0.0), (signal.SIGTERM, 1.5)),  # a launcher's escalation
}


@pytest.mark.parametrize("way", list(PLAYER_WAYS))
def test_player_stops_with_exit_0(way, bag, tmp_path, ros_domain_id):
    """`vfdepth bag play` as `vfdepth launch` runs it: a stop signal, or SIGTERM after SIGINT ends it
    with exit 0 (not the CLI's 130), without a traceback."""
    env = dict(loopback_env(domain_id=ros_domain_id), PYTHONUNBUFFERED="1")
    proc = Proc(vfdepth_cmd("bag", "play", str(bag), "--loop", "--clock", "--match-timeout", "1", "--no-progress"),
                env, tmp_path / "play.log").start()
    try:
        proc.wait_for("playing anyway", 240)  # no subscriber: the play loop has started
        time.sleep(0.5)
        for sig, after_s in PLAYER_WAYS[way]:
            time.sleep(after_s)
            proc.signal(sig)
        code = proc.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        proc.stop()
    text = proc.text()
    assert code == 0, text[-3000:]
    assert "Traceback" not in text and "interrupted" not in text, text[-3000:]


def test_player_repeated_stop_signal_leaves_now_instead_of_raising(monkeypatch):
    """The player's handlers: the first signal asks for a stop; a repeat later than the repeat window
    (a second Ctrl-C, a launcher's SIGTERM) leaves at once (exit 0) instead of raising KeyboardInterrupt;
    a repeat within the window (one Ctrl-C delivered twice) changes nothing."""
    from vfdepth_ros.bag import player, rosnode

    left = []
    monkeypatch.setattr(player, "_leave_now", lambda signum, frame: left.append(signum))
    monkeypatch.setattr(rosnode, "_REPEAT_S", 0.2)
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        stop = rosnode.StopFlag()
        player.install_stop(stop)
        signal.raise_signal(signal.SIGINT)
        assert stop.is_set() and stop.signal == signal.SIGINT and left == []
        signal.raise_signal(signal.SIGINT)  # within the window: the same request
        assert left == []
        time.sleep(0.3)
        signal.raise_signal(signal.SIGTERM)
        assert left == [signal.SIGTERM]
    finally:
        for s, h in old.items():
            signal.signal(s, h)
