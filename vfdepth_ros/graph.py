"""The node graph, described once as data.

Two runners read it: ``launch/surround.launch.py`` (and ``replay.launch.py``) turn it into
``launch_ros`` actions for apt-installed ROS 2, and :mod:`vfdepth_ros.launcher` (``vfdepth launch``)
turns it into processes on machines without ``launch``. Nothing else decides which executables run
with which parameters, remappings and namespaces.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

PACKAGE = "vfdepth"
CAMERA_SETS = ("ddad", "nuscenes", "synthetic")


class GraphError(ValueError):
    """A launch argument cannot be turned into a graph; the message names the argument."""


@dataclass(frozen=True)
class NodeSpec:
    """One ROS node of the graph.

    ``executable`` is the console script of ``package`` (what ``launch_ros`` runs); ``module`` is the
    Python module whose ``main()`` is the same program (what the pip-only launcher runs with
    ``python -m``). ``parameters`` lists params files first and then one dict of overrides, in the
    order ``launch_ros`` applies them."""

    name: str
    package: str
    executable: str
    module: Optional[str]
    param_files: Tuple[str, ...] = ()
    param_overrides: Tuple[Tuple[str, Any], ...] = ()
    remappings: Tuple[Tuple[str, str], ...] = ()
    namespace: str = ""
    arguments: Tuple[str, ...] = ()
    respawn: bool = False
    respawn_delay_s: float = 2.0
    optional: bool = False  # skipped by the pip-only launcher when its executable is missing (rviz2)


@dataclass(frozen=True)
class ProcessSpec:
    """A plain process of the graph (the bag player): the command under apt-installed ROS 2 and the
    pip-only equivalent (arguments for ``python -m``)."""

    name: str
    ros2_cmd: Tuple[str, ...]
    module_cmd: Tuple[str, ...]


def rosbag2_cli_available() -> bool:
    """True where `ros2 bag` exists (an apt-installed ROS 2 with rosbag2; the pip-only venv has none)."""
    import importlib.util

    return importlib.util.find_spec("ros2bag") is not None


def process_command(spec: ProcessSpec, python: str = sys.executable, ros2: Optional[bool] = None) -> List[str]:
    """The command that runs `spec` under ``ros2 launch``: the ROS 2 tool where its CLI is installed
    (`ros2`: None = look), else the project's equivalent with the same arguments."""
    if ros2 is None:
        ros2 = rosbag2_cli_available()
    # the project's program through vfdepth_ros.launcher: it ends with `ros2 launch`, and a stop is exit 0
    return list(spec.ros2_cmd) if ros2 else [python, "-m", "vfdepth_ros.launcher", *spec.module_cmd]


@dataclass(frozen=True)
class Graph:
    nodes: Tuple[NodeSpec, ...]
    processes: Tuple[ProcessSpec, ...] = ()
    use_sim_time: bool = False

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


def share_dir() -> Path:
    """The package's share directory: ``share/vfdepth`` of an installed package (ament index), else
    this source checkout (whose root holds config/, launch/, rviz/ as the share directory does)."""
    root = Path(__file__).resolve().parent.parent
    if (root / "config").is_dir() and (root / "package.xml").is_file():
        return root
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except Exception:  # pragma: no cover - neither a checkout nor installed
        return root


def default_params_file(camera_set: str) -> Path:
    if camera_set not in CAMERA_SETS:
        raise GraphError(f"camera_set must be one of {'|'.join(CAMERA_SETS)}, got {camera_set!r}")
    return share_dir() / "config" / f"{camera_set}.yaml"


def _namespace(ns: str) -> str:
    ns = (ns or "").strip().strip("/")
    return f"/{ns}" if ns else ""


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in ("true", "1", "yes", "on"):
        return True
    if s in ("false", "0", "no", "off", ""):
        return False
    raise GraphError(f"launch argument '{name}' must be true or false, got {value!r}")


def surround_graph(params_file: str = "", checkpoint: str = "", namespace: str = "", use_sim_time: Any = False,
                   camera_set: str = "ddad", rviz: Any = False, model_config: str = "",
                   remappings: Sequence[Tuple[str, str]] = (), overrides: Optional[Mapping[str, Any]] = None,
                   respawn: bool = True, autostart: Any = True) -> Graph:
    """The live graph: ``surround_depth`` (+ rviz2 when `rviz`).

    params_file: node parameters YAML ('' = config/<camera_set>.yaml of the package);
    checkpoint / model_config: override those parameters when non-empty; namespace: for every node;
    autostart false: the node is a managed one waiting in 'unconfigured' for `ros2 lifecycle set`."""
    pfile = Path(params_file).expanduser() if params_file else default_params_file(camera_set)
    if camera_set not in CAMERA_SETS:
        raise GraphError(f"launch argument 'camera_set' must be one of {'|'.join(CAMERA_SETS)}, got {camera_set!r}")
    if not pfile.is_file():
        raise GraphError(f"launch argument 'params_file': {pfile} not found")
    sim = _bool(use_sim_time, "use_sim_time")
    ov: Dict[str, Any] = {"use_sim_time": sim, "autostart": _bool(autostart, "autostart")}
    if checkpoint:
        ov["checkpoint"] = str(Path(checkpoint).expanduser())
    if model_config:
        ov["model_config"] = str(Path(model_config).expanduser())
    ov.update(dict(overrides or {}))
    ns = _namespace(namespace)
    nodes = [NodeSpec(name="surround_depth", package=PACKAGE, executable="surround_depth",
                      module="vfdepth_ros.nodes.surround_depth", param_files=(str(pfile),),
                      param_overrides=tuple(ov.items()), remappings=tuple((str(a), str(b)) for a, b in remappings),
                      namespace=ns, respawn=respawn, respawn_delay_s=2.0)]
    if _bool(rviz, "rviz"):
        nodes.append(NodeSpec(name="rviz2", package="rviz2", executable="rviz2", module=None,
                              param_overrides=(("use_sim_time", sim),), namespace=ns,
                              arguments=("-d", str(share_dir() / "rviz" / "vfdepth.rviz")), optional=True))
    return Graph(nodes=tuple(nodes), use_sim_time=sim)


def replay_graph(bag: str, rate: float = 1.0, loop: Any = False, **kwargs: Any) -> Graph:
    """The live graph fed by a bag player (``ros2 bag play`` under ROS 2, ``vfdepth bag play`` without).
    The player publishes /clock and the nodes use it."""
    if not bag:
        raise GraphError("launch argument 'bag' is empty: give a .mcap file or rosbag2 directory")
    kwargs.setdefault("use_sim_time", True)
    g = surround_graph(**kwargs)
    flags: List[str] = ["--rate", f"{float(rate):g}", "--clock"]
    if _bool(loop, "loop"):
        flags.append("--loop")
    player = ProcessSpec(name="bag_player", ros2_cmd=("ros2", "bag", "play", str(bag), *flags),
                         module_cmd=("vfdepth_ros.cli", "bag", "play", str(bag), *flags, "--no-progress"))
    return Graph(nodes=g.nodes, processes=(player,), use_sim_time=g.use_sim_time)


def ros_arguments(spec: NodeSpec) -> List[str]:
    """The ``--ros-args`` part of a node's command line (what launch_ros passes for the same spec)."""
    import yaml

    args = ["--ros-args", "-r", f"__node:={spec.name}"]
    if spec.namespace:
        args += ["-r", f"__ns:={spec.namespace}"]
    for f in spec.param_files:
        args += ["--params-file", f]
    for k, v in spec.param_overrides:
        args += ["-p", f"{k}:={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"]
    for a, b in spec.remappings:
        args += ["-r", f"{a}:={b}"]
    return args


def node_command(spec: NodeSpec, python: str = sys.executable) -> List[str]:
    """The command the pip-only launcher runs for a node."""
    if spec.module is None:
        return [spec.executable, *spec.arguments, *ros_arguments(spec)]
    return [python, "-m", spec.module, *spec.arguments, *ros_arguments(spec)]


__all__ = ["Graph", "GraphError", "NodeSpec", "ProcessSpec", "surround_graph", "replay_graph", "ros_arguments",
           "node_command", "process_command", "rosbag2_cli_available", "share_dir", "default_params_file", "CAMERA_SETS", "PACKAGE"]
