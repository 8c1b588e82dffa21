"""One graph description, two runners: the ROS 2 launch files and the pip-only launcher agree, and the
launcher supervises processes (respawn with backoff, no respawn on parameter errors, clean stop)."""

from __future__ import annotations

import importlib.util
import io
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest
import yaml

from vfdepth_ros import graph as G
from vfdepth_ros.launcher import Launcher

REPO = Path(__file__).resolve().parent.parent


class _Action:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context[self.name]


def _shim(monkeypatch):
    """Minimal stand-ins for launch / launch_ros that record what the launch file builds."""
    launch = types.ModuleType("launch")
    launch.LaunchDescription = _Action
    actions = types.ModuleType("launch.actions")
    for n in ("DeclareLaunchArgument", "OpaqueFunction", "ExecuteProcess"):
        setattr(actions, n, type(n, (_Action,), {}))
    subs = types.ModuleType("launch.substitutions")
    subs.LaunchConfiguration = _LaunchConfiguration
    launch.actions, launch.substitutions = actions, subs
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")
    ros_actions.Node = type("Node", (_Action,), {})
    launch_ros.actions = ros_actions
    for name, mod in (("launch", launch), ("launch.actions", actions), ("launch.substitutions", subs),
                      ("launch_ros", launch_ros), ("launch_ros.actions", ros_actions)):
        monkeypatch.setitem(sys.modules, name, mod)


def _load_launch(monkeypatch, name):
    _shim(monkeypatch)
    spec = importlib.util.spec_from_file_location(f"test_{name}", REPO / "launch" / name)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run_launch(mod, **given):
    ld = mod.generate_launch_description()
    entities = ld.args[0]
    declared = {a.args[0] if a.args else a.kwargs["name"]: a.kwargs["default_value"]
                for a in entities if type(a).__name__ == "DeclareLaunchArgument"}
    unknown = set(given) - set(declared)
    assert not unknown, f"launch file does not declare {unknown}"
    context = {**declared, **given}
    (opaque,) = [a for a in entities if type(a).__name__ == "OpaqueFunction"]
    return declared, opaque.kwargs["function"](context)


def _parse_ros_args(cmd):
    """--ros-args part of a launcher command -> (name, namespace, files, overrides, remaps)."""
    args = cmd[cmd.index("--ros-args") + 1:]
    name = ns = None
    files, overrides, remaps = [], {}, []
    it = iter(args)
    for a in it:
        if a == "--params-file":
            files.append(next(it))
        elif a == "-p":
            k, v = next(it).split(":=", 1)
            overrides[k] = yaml.safe_load(v)
        elif a == "-r":
            k, v = next(it).split(":=", 1)
            if k == "__node":
                name = v
            elif k == "__ns":
                ns = v
            else:
                remaps.append((k, v))
        else:
            raise AssertionError(f"unexpected ROS argument {a}")
    return name, ns, files, overrides, remaps


def _console_scripts():
    text = (REPO / "setup.py").read_text()
    return dict(line.strip().strip('",').split(" = ") for line in text.splitlines() if " = vfdepth_ros." in line)


@pytest.mark.parametrize("given", [
    {},
    {"camera_set": "nuscenes", "namespace": "car1", "checkpoint": "/tmp/model.pt", "use_sim_time": "true"},
    {"camera_set": "synthetic", "model_config": "training/configs/synthetic/synthetic_tiny.yaml", "rviz": "true"},
])
def test_launch_file_and_launcher_agree(monkeypatch, given):
    mod = _load_launch(monkeypatch, "surround.launch.py")
    declared, actions = _run_launch(mod, **given)
    assert set(declared) == {"params_file", "checkpoint", "model_config", "namespace", "use_sim_time",
                             "camera_set", "rviz", "autostart", "sigterm_timeout"}
    assert declared["sigterm_timeout"] == "1.5"  # SIGINT to `ros2 launch` alone reaches the nodes as SIGTERM
    graph = G.surround_graph(**{k: v for k, v in {**declared, **given}.items() if k != "sigterm_timeout"})
    nodes = [a for a in actions if type(a).__name__ == "Node"]
    assert [n.kwargs["name"] for n in nodes] == [s.name for s in graph.nodes]
    launcher = Launcher(graph, domain_id=7)
    scripts = _console_scripts()
    for node, spec in zip(nodes, graph.nodes):
        kw = node.kwargs
        assert kw["package"] == spec.package and kw["executable"] == spec.executable
        files, overrides = kw["parameters"][:-1], kw["parameters"][-1]
        if spec.module is None:  # rviz2: not runnable here, skipped by the launcher
            assert kw["arguments"][0] == "-d" and kw["arguments"][1].endswith("rviz/vfdepth.rviz")
            continue
        assert scripts[spec.executable] == f"{spec.module}:main"  # console script = the module the launcher runs
        (child,) = [c for c in launcher.children if c.name == spec.name]
        assert child.cmd[1:3] == ["-m", spec.module]
        name, ns, l_files, l_over, l_remaps = _parse_ros_args(child.cmd)
        assert name == kw["name"]
        assert (ns or None) == kw["namespace"]
        assert l_files == files and all(Path(f).is_file() for f in files)
        assert l_over == overrides
        assert l_remaps == [tuple(r) for r in kw["remappings"]]
        assert kw["respawn"] == spec.respawn and child.respawn == spec.respawn
    if given.get("namespace"):
        assert nodes[0].kwargs["namespace"] == "/car1"
    if given.get("checkpoint"):
        assert nodes[0].kwargs["parameters"][-1]["checkpoint"] == "/tmp/model.pt"
    camera_set = given.get("camera_set", "ddad")
    assert nodes[0].kwargs["parameters"][0].endswith(f"config/{camera_set}.yaml")
    assert nodes[0].kwargs["parameters"][-1]["use_sim_time"] is (given.get("use_sim_time") == "true")


@pytest.mark.parametrize("rosbag2", [True, False])
def test_replay_launch_and_launcher_agree(monkeypatch, tmp_path, rosbag2):
    """`ros2 bag play` where rosbag2 is installed, the project's player with the same flags elsewhere."""
    monkeypatch.setattr(G, "rosbag2_cli_available", lambda: rosbag2)
    mod = _load_launch(monkeypatch, "replay.launch.py")
    declared, actions = _run_launch(mod, bag="/data/drive.mcap", rate="0.5", loop="true", camera_set="synthetic")
    (proc,) = [a for a in actions if type(a).__name__ == "ExecuteProcess"]
    flags = ["/data/drive.mcap", "--rate", "0.5", "--clock", "--loop"]
    if rosbag2:
        assert proc.kwargs["cmd"] == ["ros2", "bag", "play", *flags]
    else:
        assert proc.kwargs["cmd"] == [sys.executable, "-m", "vfdepth_ros.launcher", "vfdepth_ros.cli", "bag", "play",
                                      *flags, "--no-progress"]
    (node,) = [a for a in actions if type(a).__name__ == "Node"]
    assert node.kwargs["parameters"][-1]["use_sim_time"] is True
    graph = G.replay_graph("/data/drive.mcap", rate=0.5, loop=True, camera_set="synthetic")
    launcher = Launcher(graph)
    (player,) = [c for c in launcher.children if c.name == "bag_player"]
    # the same flags, given to `vfdepth bag play` (python -m vfdepth_ros.cli bag play ...)
    assert player.cmd[1:] == ["-m", "vfdepth_ros.cli", "bag", "play", "/data/drive.mcap", "--rate", "0.5",
                              "--clock", "--loop", "--no-progress"]


def test_graph_errors_name_the_argument(tmp_path):
    with pytest.raises(G.GraphError, match="camera_set"):
        G.surround_graph(camera_set="kitti")
    with pytest.raises(G.GraphError, match="params_file"):
        G.surround_graph(params_file=str(tmp_path / "missing.yaml"))
    with pytest.raises(G.GraphError, match="use_sim_time"):
        G.surround_graph(use_sim_time="maybe")
    with pytest.raises(G.GraphError, match="bag"):
        G.replay_graph("")


def test_shipped_params_files_are_valid():
    from vfdepth_ros.params import node_params_from_values

    for camera_set in G.CAMERA_SETS:
        data = yaml.safe_load(G.default_params_file(camera_set).read_text())["/**"]["ros__parameters"]
        flat = {}
        for k, v in data.items():
            if isinstance(v, dict):
                flat.update({f"{k}.{kk}": vv for kk, vv in v.items()})
            else:
                flat[k] = v
        p = node_params_from_values(flat)
        assert len(p.cameras) == 6


def test_launcher_cli_print(capsys, tmp_path):
    from vfdepth_ros.cli import main

    code = main(["launch", "--camera-set", "synthetic", "--set", "device=cpu", "--remap", "points:=cloud",
                 "--namespace", "ns1", "--print"])
    out = capsys.readouterr().out
    assert code == 0
    assert "-m vfdepth_ros.nodes.surround_depth --ros-args -r __node:=surround_depth -r __ns:=/ns1" in out
    assert "-p device:=cpu" in out and "-r points:=cloud" in out
    assert main(["launch", "--camera-set", "synthetic", "--set", "nonsense", "--print"]) == 2


def _dummy_graph(tmp_path, body, respawn=True, delay=0.1):
    pkg = tmp_path / "dummy_node.py"
    pkg.write_text(textwrap.dedent(body))
    spec = G.NodeSpec(name="dummy", package="x", executable="dummy", module="dummy_node", respawn=respawn,
                      respawn_delay_s=delay)
    return G.Graph(nodes=(spec,))


def _launcher(tmp_path, graph):
    import os
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    return Launcher(graph, env=env, output=io.StringIO())


def _poll_until(launcher, pred, timeout=30):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, launcher.output.getvalue()
        launcher.poll()
        time.sleep(0.05)


def test_launcher_respawns_crashes_with_backoff(tmp_path):
    launcher = _launcher(tmp_path, _dummy_graph(tmp_path, "import sys; print('up', flush=True); sys.exit(3)"))
    launcher.start()
    child = launcher.children[0]
    _poll_until(launcher, lambda: child.restarts >= 3)
    launcher.stop()
    assert child.exit_codes[:3] == [3, 3, 3]
    assert child.backoff_s >= 0.4  # 0.1, 0.2, 0.4, ...
    out = launcher.output.getvalue()
    assert "[dummy] up" in out and "respawning in" in out


def test_launcher_does_not_respawn_parameter_errors(tmp_path):
    launcher = _launcher(tmp_path, _dummy_graph(tmp_path, "import sys; sys.exit(2)"))
    launcher.start()
    _poll_until(launcher, lambda: launcher.children[0].done)
    assert launcher.children[0].restarts == 0 and "not respawning" in launcher.output.getvalue()
    assert not launcher.poll()


def test_launcher_stops_children_with_sigint(tmp_path):
    body = """
    import signal, sys, time
    def bye(*a):
        print('clean shutdown', flush=True)
        sys.exit(0)
    signal.signal(signal.SIGINT, bye)
    print('ready', flush=True)
    while True:
        time.sleep(0.05)
    """
    launcher = _launcher(tmp_path, _dummy_graph(tmp_path, body))
    launcher.start()
    _poll_until(launcher, lambda: "[dummy] ready" in launcher.output.getvalue())
    codes = launcher.stop()
    assert codes == {"dummy": 0}
    assert "clean shutdown" in launcher.output.getvalue()
    assert launcher.children[0].restarts == 0
