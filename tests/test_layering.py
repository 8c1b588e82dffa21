"""Layering, one direction only: vfdepth_core never imports ROS (rclpy, message packages, ROS-only
helpers) or vfdepth_ros. Checked on the source (AST), so lazy imports inside functions count too."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "vfdepth_core"

FORBIDDEN_EXACT = {"rclpy", "rosidl_runtime_py", "builtin_interfaces", "message_filters", "cv_bridge", "vfdepth_ros",
                   "launch", "launch_ros", "tf2_ros", "rosbag2_py", "ament_index_python", "sensor_msgs_py",
                   "rclpy_message_converter"}
FORBIDDEN_PATTERN = re.compile(r".*_msgs$")  # sensor_msgs, nav_msgs, tf2_msgs, geometry_msgs, ...


def imported_top_levels(source: str, filename: str) -> list:
    """(top-level module, line) for every import statement, including dynamic importlib/__import__ of literals."""
    tree = ast.parse(source, filename=filename)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name.split(".")[0], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                out.append((node.module.split(".")[0], node.lineno))
        elif isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", None)
            if name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                out.append((node.args[0].value.split(".")[0], node.lineno))
    return out


def forbidden(module: str) -> bool:
    return module in FORBIDDEN_EXACT or bool(FORBIDDEN_PATTERN.match(module))


def core_files() -> list:
    return sorted(p for p in CORE.rglob("*.py") if "__pycache__" not in p.parts)


def test_core_has_source_files():
    files = core_files()
    assert CORE / "geometry.py" in files and CORE / "config.py" in files


@pytest.mark.parametrize("path", core_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_module_does_not_import_ros(path: Path):
    bad = [f"{path.relative_to(ROOT)}:{line} imports {mod}"
           for mod, line in imported_top_levels(path.read_text(), str(path)) if forbidden(mod)]
    assert not bad, "vfdepth_core must not depend on ROS or vfdepth_ros: " + "; ".join(bad)


def test_scanner_catches_every_import_form():
    src = (
        "import rclpy\n"
        "from sensor_msgs.msg import Image\n"
        "import numpy as np\n"
        "def f():\n"
        "    from vfdepth_ros import dds\n"
        "    import importlib; importlib.import_module('nav_msgs.msg')\n"
        "    __import__('message_filters')\n"
        "from . import geometry\n"
        "import builtin_interfaces.msg, cv_bridge\n"
    )
    found = sorted(m for m, _ in imported_top_levels(src, "<test>") if forbidden(m))
    assert found == ["builtin_interfaces", "cv_bridge", "message_filters", "nav_msgs", "rclpy", "sensor_msgs",
                     "vfdepth_ros"]
    assert not forbidden("numpy") and not forbidden("torch") and not forbidden("yaml")


# ------------------------------------------------------------------------------ no import cycles in vfdepth_ros

def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, filename: str, package: str, known: set) -> set:
    """The modules of `known` that a source imports (any form, lazy ones too): `from a.b import c`
    counts a.b.c when that is a module, else a.b; relative imports resolve against `package`."""
    out = set()
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            out |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names}
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            out.add(str(node.args[0].value))
    return {m for m in out if m in known}


def import_cycle(graph: dict) -> list:
    """One import cycle [a, b, ..., a] of a {module: imported modules} graph, or []."""
    state: dict = {}

    def visit(m: str, stack: list) -> list:
        state[m] = "open"
        for n in sorted(graph.get(m, ())):
            if state.get(n) == "open":
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n, stack + [n])
                if found:
                    return found
        state[m] = "done"
        return []

    for m in sorted(graph):
        if m not in state:
            found = visit(m, [m])
            if found:
                return found
    return []


def test_ros_package_has_no_import_cycles():
    files = sorted(p for p in (ROOT / "vfdepth_ros").rglob("*.py") if "__pycache__" not in p.parts)
    known = {_module_name(p) for p in files}
    graph = {}
    for p in files:
        name = _module_name(p)
        package = name if p.name == "__init__.py" else name.rsplit(".", 1)[0]
        graph[name] = imported_modules(p.read_text(), str(p), package, known) - {name}
    assert graph["vfdepth_ros.bag.common"] >= {"vfdepth_ros.errors"}  # the scanner sees the package's imports
    cycle = import_cycle(graph)
    assert not cycle, "import cycle in vfdepth_ros: " + " -> ".join(cycle)


def test_cycle_finder():
    known = {"p.a", "p.b", "p.c"}
    src = "def f():\n    from p import b\nimport importlib\nimportlib.import_module('p.c')\nfrom .c import x\n"
    assert imported_modules(src, "<test>", "p", known) == {"p.b", "p.c"}
    assert import_cycle({"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}}) == ["p.a", "p.b", "p.c", "p.a"]
    assert import_cycle({"p.a": {"p.b", "p.c"}, "p.b": {"p.c"}, "p.c": set()}) == []
