"""The real ROS 2 tools in the loop: `ros2 launch vfdepth replay.launch.py` from a colcon install plays
a bag into the node (the project's player where rosbag2 is absent); `ros2 node list`, `ros2 topic
list -t`, `ros2 topic hz`, `ros2 topic echo --once` and `ros2 param set` work on it as the README says.
One launched graph (module scope) serves every test here; loopback DDS, a domain of the module's own.

The wheels of those tools come from ``<repo>/../shared/ros2-wheels`` (installed into the venv when
needed); without them this module skips, and tests/test_ros_shutdown.py keeps the project's launcher
covered."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from bag_helpers import tiny_recording
from ros2_cli_helpers import CAMS, REPO, TINY, Proc, colcon_env, ros2, ros2_daemon, ros2_tools_env, ros2_until

pytest.importorskip("rclpy")
pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _module_domain() -> int:
    import conftest

    return conftest._DOMAIN_BASE + next(conftest._domain_counter) % 100


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    ros2_tools_env()
    env = colcon_env(tmp_path_factory.mktemp("colcon"), _module_domain())
    with ros2_daemon(env):
        yield env


@pytest.fixture(scope="module")
def replay(cli_env, tmp_path_factory):
    """`ros2 launch vfdepth replay.launch.py` of a 1.4 s, 6-camera bag in a loop (longer than the node's
    1 s jump-back that marks a loop), random tiny model."""
    from vfdepth_ros.bag.convert import write_recording

    tmp = tmp_path_factory.mktemp("replay")
    bag = tmp / "drive.mcap"
    write_recording(tiny_recording(frames=15, cams=6, hw=(48, 80), names=CAMS), bag, progress=False)
    proc = Proc([str(Path(cli_env["PATH"].split(":")[0]) / "ros2"), "launch", "vfdepth", "replay.launch.py",
                 f"bag:={bag}", "camera_set:=synthetic", f"model_config:={TINY}", "loop:=true"],
                cli_env, tmp / "launch.log").start()
    try:
        proc.wait_for("model ready", 180)
        yield proc
    finally:
        code = proc.stop()
        text = proc.text()
        assert "Traceback" not in text, text[-4000:]
        assert "deprecated" not in text.lower(), text[-4000:]
        assert code == 0, text[-4000:]


def documented_interface(readme: str, cams) -> dict:
    """topic -> type (ros2 spelling) from the README's topic table (raw images, TF extrinsics)."""
    short = {"Image": "sensor_msgs/msg/Image", "CameraInfo": "sensor_msgs/msg/CameraInfo"}
    table = readme.split("**Topics**")[1].split("\n\n")[1]
    out = {}
    for row in table.splitlines():
        cols = [c.strip() for c in row.strip("|").split("|")]
        if cols[0] not in ("in", "out"):
            continue
        topics = re.findall(r"`([^`]+)`", cols[1].split(" or ")[0].split(" + ")[0])
        types = [t if "/" not in t else t.replace("/", "/msg/", 1) for t in re.findall(r"`([^`]+)`", cols[2])]
        types = [short.get(t, t) for t in types if "/msg/" in t or t in short]
        if " + `/tf`" in cols[1]:
            out["/tf"] = "tf2_msgs/msg/TFMessage"
        for k, topic in enumerate(topics):
            for name in ([topic.replace("<cam>", c) for c in cams] if "<cam>" in topic else [topic]):
                out["/" + name.lstrip("/")] = types[min(k, len(types) - 1)]
    return out


def test_node_and_topic_lists_match_the_readme(replay, cli_env):
    nodes = ros2_until(cli_env, lambda r: "/surround_depth" in r.stdout.split(), "node", "list")
    assert "/surround_depth" in nodes.stdout.split(), nodes.stdout + nodes.stderr
    documented = documented_interface((REPO / "README.md").read_text(), CAMS)
    assert len(documented) == 6 * 4 + 2 + 1 + 1 + 2 + 1  # per camera 4, tf x2, odom, points, virtual x2, diag
    def topics(res):
        return dict(re.match(r"(\S+) \[(\S+)\]", ln).groups() for ln in res.stdout.splitlines() if ln.strip())

    listed = ros2_until(cli_env, lambda r: set(documented) <= set(topics(r)), "topic", "list", "-t")
    assert listed.returncode == 0, listed.stderr
    seen = topics(listed)
    wrong = {t: (ty, seen.get(t)) for t, ty in documented.items() if seen.get(t) != ty}
    assert not wrong, f"README vs ros2 topic list -t (topic: documented, listed): {wrong}"


def test_topic_hz_and_echo_while_the_bag_plays(replay, cli_env):
    import subprocess
    import signal

    hz = subprocess.Popen([str(Path(cli_env["PATH"].split(":")[0]) / "ros2"), "topic", "hz", "/camera_01/depth",
                           "--window", "5"], env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          stdin=subprocess.DEVNULL, start_new_session=True)
    rates = []
    deadline = time.monotonic() + 90
    try:
        for line in hz.stdout:
            m = re.search(r"average rate: ([0-9.]+)", line)
            if m:
                rates.append(float(m.group(1)))
                break
            if time.monotonic() > deadline:
                break
    finally:
        hz.send_signal(signal.SIGINT)
        hz.wait(timeout=10)
    assert rates and rates[0] > 0, "ros2 topic hz saw no /camera_01/depth"
    echo = ros2(cli_env, "topic", "echo", "--once", "/camera_01/depth/camera_info", "--field", "header.frame_id",
                timeout_s=90)
    assert echo.returncode == 0, echo.stderr
    # the source image's header, as documented (the bag's camera_01 images are in camera_01_optical_frame)
    assert echo.stdout.split()[0].strip("'\"") == "camera_01_optical_frame"
    echo = ros2(cli_env, "topic", "echo", "--once", "/camera_01/depth", "--field", "encoding", timeout_s=90)
    assert echo.returncode == 0 and echo.stdout.split()[0].strip("'\"") == "32FC1", echo.stdout + echo.stderr


def test_param_set_moves_the_published_virtual_view(replay, cli_env):
    res = ros2_until(cli_env, lambda r: r.returncode == 0, "param", "set", "/surround_depth", "virtual.z", "7.25")
    assert res.returncode == 0 and "successful" in res.stdout, res.stdout + res.stderr
    got = ros2_until(cli_env, lambda r: r.returncode == 0, "param", "get", "/surround_depth", "virtual.z")
    assert "7.25" in got.stdout, got.stdout + got.stderr
    # the virtual camera's transform on /tf now sits 7.25 m above base_link
    flt = ("any(t.child_frame_id == 'base_link_vfdepth_virtual' and abs(t.transform.translation.z - 7.25) < 1e-9 "
           "for t in m.transforms)")
    echo = ros2(cli_env, "topic", "echo", "/tf", "--once", "--filter", flt, timeout_s=90)
    assert echo.returncode == 0 and "base_link_vfdepth_virtual" in echo.stdout, echo.stdout[-2000:] + echo.stderr
    assert "z: 7.25" in echo.stdout, echo.stdout[-2000:]


def test_ros2_lifecycle_deactivates_and_activates_the_launched_node(replay, cli_env):
    def state():
        res = ros2_until(cli_env, lambda r: r.returncode == 0, "lifecycle", "get", "/surround_depth")
        assert res.returncode == 0, res.stdout + res.stderr
        return res.stdout.split()[0]

    assert state() == "active"  # autostart, the default: plain `ros2 launch` behaves as a plain node
    for transition, after in (("deactivate", "inactive"), ("activate", "active")):
        res = ros2_until(cli_env, lambda r: r.returncode == 0, "lifecycle", "set", "/surround_depth", transition)
        assert res.returncode == 0 and "successful" in res.stdout.lower(), res.stdout + res.stderr
        assert state() == after
