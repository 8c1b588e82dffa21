"""A clean stop however it is asked for: SIGINT once or twice to the launcher alone, SIGINT to its whole
process group (a terminal's Ctrl-C) or SIGTERM, under the real `ros2 launch` and under the project's
launcher (`vfdepth launch`), while a bag plays and the node is busy with sets: every node ends with
exit 0, nothing prints a traceback, nothing is left running. The measured stop times are printed
(the issue's aim: within 3 s). SIGTERM to `ros2 launch` ends launch at once (upstream behaviour, its
exit code is its own); the node and the player end with it (PR_SET_PDEATHSIG)."""

from __future__ import annotations

import signal
import time

import pytest

from bag_helpers import tiny_recording, vfdepth_cmd
from ros2_cli_helpers import BIN, CAMS, TINY, Proc, colcon_env, ros2_tools_env
from vfdepth_ros.dds import loopback_env

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


def _stop_and_check(proc: Proc, way: str, ready: str) -> int:
    """Ask for a stop `way`; every process of the graph is gone soon after, nothing printed a
    traceback or a deprecation warning. Returns the launcher's exit code."""
    proc.wait_for(ready, 240)
    time.sleep(2.0)  # the looping bag keeps the worker busy with sets
    children = psutil.Process(proc.proc.pid).children(recursive=True)
    assert children, proc.text()[-3000:]
    sigs, group = WAYS[way]
    t0 = time.monotonic()
    for k, sig in enumerate(sigs):
        if k:
            time.sleep(0.3)
        proc.signal(sig, group=group)
    try:
        proc.proc.wait(timeout=15)
        _, left = psutil.wait_procs(children, timeout=15)  # processes left by a launcher that was killed
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
    return code


@pytest.mark.parametrize("way", list(WAYS))
def test_project_launcher_stops_cleanly(way, bag, tmp_path, ros_domain_id, repo_root):
    env = dict(loopback_env(domain_id=ros_domain_id), PYTHONUNBUFFERED="1")
    proc = Proc(vfdepth_cmd("launch", "--bag", str(bag), "--loop", "--camera-set", "synthetic", "--model-config", TINY,
                            "--no-respawn"), env, tmp_path / "launch.log").start()
    assert _stop_and_check(proc, way, "model ready") == 0
    text = proc.text()
    assert "[surround_depth] exited with code 0" in text, text[-3000:]


@pytest.mark.parametrize("way", list(WAYS))
def test_ros2_launch_stops_cleanly(way, bag, ros2_env, tmp_path, ros_domain_id):
    env = dict(ros2_env, ROS_DOMAIN_ID=str(ros_domain_id))
    proc = Proc([str(BIN / "ros2"), "launch", "vfdepth", "replay.launch.py", f"bag:={bag}", "loop:=true",
                 "camera_set:=synthetic", f"model_config:={TINY}"], env, tmp_path / "launch.log").start()
    code = _stop_and_check(proc, way, "model ready")
    text = proc.text()
    if way == "sigterm":  # launch itself ends at once (its own choice); its processes end with it
        return
    # A second SIGINT that reaches `ros2 launch` after its processes have ended interrupts launch's own
    # teardown (upstream behaviour: exit -2, no traceback); the nodes' clean exit is what is ours.
    assert code == 0 or (way == "sigint_twice" and code == -signal.SIGINT), text[-3000:]
    assert "[surround_depth-1]: process has finished cleanly" in text, text[-3000:]
    # (the project's player, the other process, may need longer than sigterm_timeout to close under load
    # and is then ended by launch's SIGTERM; it is gone either way, checked above)
