"""The repository root is the ament_python package ``vfdepth``: colcon builds it from ros2_ws, and its
launch files, parameters and executables land where ROS 2 tools look for them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WS_SRC = ROOT / "ros2_ws" / "src"


def _colcon() -> str:
    exe = Path(sys.executable).parent / "colcon"
    if exe.exists():
        return str(exe)
    found = shutil.which("colcon")
    if not found:
        pytest.skip("colcon is not installed (make install installs colcon-common-extensions)")
    return found


# --------------------------------------------------------------------------------------------------
# Static layout


def test_workspace_links_the_root_package():
    link = WS_SRC / "vfdepth"
    assert link.is_symlink(), "ros2_ws/src/vfdepth must be a link to the root package, not a copy"
    assert os.readlink(link) == "../.."
    assert link.resolve() == ROOT


def test_root_is_not_a_colcon_workspace():
    # colcon stops at the first package.xml; a src/ at the root would make the root a workspace.
    assert (ROOT / "package.xml").is_file()
    assert not (ROOT / "src").exists()
    for out in ("build", "install", "log"):
        tracked = subprocess.run(["git", "ls-files", out, f"ros2_ws/{out}"], cwd=ROOT, capture_output=True,
                                 text=True)
        assert tracked.stdout.strip() == "", f"{out}/ is a build output and must not be committed"


def test_package_xml_format3_with_runtime_dependencies():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "vfdepth"
    assert root.findtext("export/build_type") == "ament_python"
    exec_deps = {e.text for e in root.findall("exec_depend")} | {e.text for e in root.findall("depend")}
    for dep in ("rclpy", "sensor_msgs", "nav_msgs", "geometry_msgs", "std_msgs", "visualization_msgs",
                "diagnostic_msgs", "tf2_msgs", "launch", "launch_ros", "ament_index_python", "python3-numpy",
                "python3-yaml"):
        assert dep in exec_deps, dep
    assert "python3-pytest" in {e.text for e in root.findall("test_depend")}
    assert (ROOT / "resource" / "vfdepth").is_file()


def test_every_python_package_dir_has_an_init():
    """find_packages only installs folders with __init__.py: a module in any other folder would be
    missing from colcon/pip installs."""
    missing = []
    for top in ("vfdepth_core", "vfdepth_ros"):
        for d in (ROOT / top).rglob("*"):
            if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py")) and not (d / "__init__.py").exists():
                missing.append(str(d.relative_to(ROOT)))
    assert not missing, f"add __init__.py to: {missing}"


def test_tf2_msgs_interface_source_is_colcon_ignored():
    pkg = WS_SRC / "tf2_msgs"
    assert (pkg / "msg" / "TFMessage.msg").read_text().split() == ["geometry_msgs/TransformStamped[]", "transforms"]
    assert (pkg / "COLCON_IGNORE").exists(), "a workspace build must never shadow a system tf2_msgs"


# --------------------------------------------------------------------------------------------------
# colcon build (into a temporary place: the tree stays clean)


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory) -> Path:
    colcon = _colcon()
    tmp = tmp_path_factory.mktemp("colcon")
    env = dict(os.environ, COLCON_HOME=str(tmp / "colcon_home"), PYTHONDONTWRITEBYTECODE="1")
    cmd = [colcon, "--log-base", str(tmp / "log"), "build", "--base-paths", str(WS_SRC),
           "--build-base", str(tmp / "build"), "--install-base", str(tmp / "install"),
           "--event-handlers", "console_direct-", "console_cohesion+"]
    res = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                         timeout=240)
    assert res.returncode == 0, f"colcon build failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    assert "1 package finished" in res.stdout + res.stderr, res.stdout[-2000:]
    return tmp / "install"


def test_colcon_builds_only_the_vfdepth_package(colcon_install):
    assert (colcon_install / "vfdepth").is_dir()
    assert not (colcon_install / "tf2_msgs").exists()


def test_colcon_install_has_share_files(colcon_install):
    share = colcon_install / "vfdepth" / "share" / "vfdepth"
    assert (share / "package.xml").read_bytes() == (ROOT / "package.xml").read_bytes()
    assert (colcon_install / "vfdepth" / "share" / "ament_index" / "resource_index" / "packages" / "vfdepth").is_file()
    expected = []
    for sub, pattern in (("launch", "*.py"), ("config", "*.yaml"), ("rviz", "*.rviz")):
        for src in sorted((ROOT / sub).glob(pattern)):
            expected.append(src)
            dst = share / sub / src.name
            assert dst.is_file(), f"{src.relative_to(ROOT)} was not installed to share/vfdepth/{sub}/"
            assert dst.read_bytes() == src.read_bytes()
    if not (ROOT / "launch" / "surround.launch.py").exists():
        pytest.skip("launch/surround.launch.py does not exist yet; checked the share files that exist: "
                    f"{[str(p.relative_to(ROOT)) for p in expected]}")


def test_colcon_install_has_executables_and_modules(colcon_install):
    pkg = colcon_install / "vfdepth"
    for exe in ("vfdepth", "surround_depth"):
        assert os.access(pkg / "lib" / "vfdepth" / exe, os.X_OK), f"lib/vfdepth/{exe} (where ros2 run looks)"
    site = next((pkg / "lib").glob("python3*/site-packages"))
    assert (site / "vfdepth_core" / "geometry.py").is_file()
    assert (site / "vfdepth_ros" / "dds.py").is_file()
    assert (site / "vfdepth_ros" / "resources" / "fastdds_loopback.xml").is_file()


def test_ament_index_resolves_the_share_directory(colcon_install):
    code = ("from ament_index_python.packages import get_package_share_directory as g; "
            "print(g('vfdepth'))")
    env = dict(os.environ, AMENT_PREFIX_PATH=str(colcon_install / "vfdepth"))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         stdin=subprocess.DEVNULL)
    if res.returncode != 0 and "No module named 'ament_index_python'" in res.stderr:
        pytest.skip("ament_index_python is not installed")
    assert res.returncode == 0, res.stderr
    assert Path(res.stdout.strip()) == colcon_install / "vfdepth" / "share" / "vfdepth"


def test_installed_vfdepth_command_runs(colcon_install):
    """The colcon-installed console script imports the installed modules and runs."""
    pkg = colcon_install / "vfdepth"
    site = next((pkg / "lib").glob("python3*/site-packages"))
    env = dict(os.environ, PYTHONPATH=str(site))
    res = subprocess.run([sys.executable, str(pkg / "lib" / "vfdepth" / "vfdepth"), "--help"], env=env,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=colcon_install)
    assert res.returncode == 0, res.stderr
    assert "usage: vfdepth" in res.stdout


def test_make_install_is_a_noop_when_nothing_changed():
    """The stamp logic: tools/install.sh returns at once when the venv matches the inputs' hash."""
    venv = Path(sys.prefix)
    stamp = venv / ".vfdepth-install.sha256"
    if not stamp.is_file():
        pytest.skip(f"{venv} was not built by make install (no stamp file)")
    env = dict(os.environ, PYTHON=sys.executable)
    script = str(ROOT / "tools" / "install.sh")
    check = subprocess.run(["bash", script, "--check", str(venv)], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=60, env=env)
    if check.returncode != 0:
        pytest.skip("requirements/setup files changed since the last make install (make test runs it first)")
    res = subprocess.run(["bash", script, str(venv)], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                         timeout=60, env=env)
    assert res.returncode == 0, res.stderr
    assert "up to date" in res.stdout and "pip install" not in res.stdout
