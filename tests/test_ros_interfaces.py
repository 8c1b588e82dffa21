"""The interface packages built into pip-only venvs (tools/build_tf2_msgs.py): tf2_msgs and
composition_interfaces (launch_ros imports the latter at start-up)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WS_SRC = ROOT / "ros2_ws" / "src"
INTERFACE_PACKAGES = sorted(d.name for d in WS_SRC.iterdir() if d.is_dir() and d.name != "vfdepth")


def _builder():
    spec = importlib.util.spec_from_file_location("build_tf2_msgs", ROOT / "tools" / "build_tf2_msgs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_interface_package_is_built_ignored_by_colcon_and_hashed_by_install():
    assert INTERFACE_PACKAGES == ["composition_interfaces", "tf2_msgs"]
    builder = _builder()
    assert sorted(builder.PACKAGES) == INTERFACE_PACKAGES
    install_sh = (ROOT / "tools" / "install.sh").read_text()
    hashed = install_sh.split("inputs_hash()")[1].split("\n}")[0]
    for name in INTERFACE_PACKAGES:
        assert (WS_SRC / name / "COLCON_IGNORE").exists(), f"{name}: a workspace build must not shadow the system's"
        assert f"ros2_ws/src/{name}" in hashed, f"tools/install.sh's input hash misses ros2_ws/src/{name}"


def _fields(srv_text: str):
    """[(type, name)] of each half of a .srv file."""
    halves = []
    for half in srv_text.split("---"):
        rows = [ln.split("#")[0].split() for ln in half.splitlines()]
        halves.append([tuple(r) for r in rows if r])
    return halves


def test_composition_interfaces_definitions():
    srv = WS_SRC / "composition_interfaces" / "srv"
    assert sorted(p.name for p in srv.iterdir()) == ["ListNodes.srv", "LoadNode.srv", "UnloadNode.srv"]
    req, res = _fields((srv / "LoadNode.srv").read_text())
    assert req == [("string", "package_name"), ("string", "plugin_name"), ("string", "node_name"),
                   ("string", "node_namespace"), ("uint8", "log_level"), ("string[]", "remap_rules"),
                   ("rcl_interfaces/Parameter[]", "parameters"), ("rcl_interfaces/Parameter[]", "extra_arguments")]
    assert res == [("bool", "success"), ("string", "error_message"), ("string", "full_node_name"),
                   ("uint64", "unique_id")]
    assert _fields((srv / "UnloadNode.srv").read_text()) == [[("uint64", "unique_id")],
                                                              [("bool", "success"), ("string", "error_message")]]
    assert _fields((srv / "ListNodes.srv").read_text()) == [[], [("string[]", "full_node_names"),
                                                                 ("uint64[]", "unique_ids")]]


def test_built_composition_interfaces_match_the_definitions():
    res = subprocess.run([sys.executable, "-c", "import composition_interfaces.srv"], capture_output=True,
                         stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        pytest.skip("composition_interfaces is not built into this venv (tools/build_tf2_msgs.py builds it)")
    from composition_interfaces.srv import ListNodes, LoadNode, UnloadNode

    assert LoadNode.Request.get_fields_and_field_types() == {
        "package_name": "string", "plugin_name": "string", "node_name": "string", "node_namespace": "string",
        "log_level": "uint8", "remap_rules": "sequence<string>",
        "parameters": "sequence<rcl_interfaces/Parameter>", "extra_arguments": "sequence<rcl_interfaces/Parameter>"}
    assert LoadNode.Response.get_fields_and_field_types() == {
        "success": "boolean", "error_message": "string", "full_node_name": "string", "unique_id": "uint64"}
    assert list(UnloadNode.Request.get_fields_and_field_types()) == ["unique_id"]
    assert ListNodes.Response(full_node_names=["/a"], unique_ids=[7]).unique_ids.tolist() == [7]


def test_builder_reports_nothing_to_do_when_everything_imports():
    builder = _builder()
    if not all(builder.importable(p, sys.executable) for p in builder.PACKAGES):
        pytest.skip("not every interface package is built into this venv")
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "build_tf2_msgs.py")], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("nothing to do") == len(builder.PACKAGES), res.stdout
