"""`vfdepth launch`: run the node graph of :mod:`vfdepth_ros.graph` as processes, without ROS 2 launch.

The same graph data that ``launch/surround.launch.py`` turns into ``launch_ros`` actions becomes
subprocesses here: ``python -m <module> --ros-args -r __node:=<name> [-r __ns:=/ns] --params-file F
-p key:=value -r from:=to``. The loopback-only DDS profile and the ROS_DOMAIN_ID are put into every
child's environment; output lines are prefixed with the process name; a node that crashes is started
again after a growing delay (not after exit code 2, a configuration error it would only repeat);
SIGINT/SIGTERM stop everything cleanly (SIGINT to the children, then SIGTERM, then SIGKILL).

    vfdepth launch --camera-set ddad --checkpoint results/run/weights/last.pt
    vfdepth launch --camera-set synthetic --model-config training/configs/synthetic/synthetic_tiny.yaml
    vfdepth launch --bag results/demo/drive.mcap --loop --camera-set synthetic --checkpoint ...
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, TextIO

from vfdepth_ros import graph as G
from vfdepth_ros.dds import loopback_env

logger = logging.getLogger(__name__)

CONFIG_ERROR_EXIT = 2  # a node exiting with this code has bad parameters: not respawned
MAX_BACKOFF_S = 30.0
HEALTHY_AFTER_S = 30.0  # a process that ran this long before crashing starts again from the first delay


@dataclass
class Child:
    name: str
    cmd: List[str]
    respawn: bool
    respawn_delay_s: float
    proc: Optional[subprocess.Popen] = None
    started_at: float = 0.0
    restarts: int = 0
    next_start: Optional[float] = None  # monotonic time of a pending respawn
    backoff_s: float = 0.0
    exit_codes: List[int] = field(default_factory=list)
    done: bool = False


class Launcher:
    """Starts, watches, respawns and stops the processes of a graph.

    ``output``: where prefixed child output goes (default sys.stdout); ``on_line(name, line)`` sees
    every line too (tests)."""

    def __init__(self, graph: G.Graph, domain_id: Optional[int] = None, env: Optional[Mapping[str, str]] = None,
                 python: str = sys.executable, respawn: bool = True, output: Optional[TextIO] = None,
                 on_line: Optional[Callable[[str, str], None]] = None) -> None:
        self.graph = graph
        self.env = loopback_env(env, domain_id=domain_id)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.env.setdefault("RCUTILS_COLORIZED_OUTPUT", "0")
        self.output = output or sys.stdout
        self.on_line = on_line
        self._out_lock = threading.Lock()
        self._stopping = threading.Event()
        self.children: List[Child] = []
        for spec in graph.nodes:
            if spec.module is None and shutil.which(spec.executable) is None:
                logger.warning("%s: executable '%s' is not installed here; skipped", spec.name, spec.executable)
                continue
            self.children.append(Child(spec.name, G.node_command(spec, python), respawn and spec.respawn,
                                       spec.respawn_delay_s))
        for ps in graph.processes:
            self.children.append(Child(ps.name, [python, "-m", *ps.module_cmd], False, 0.0))

    # ----------------------------------------------------------------------------------- processes
    def _spawn(self, child: Child) -> None:
        self._emit(child.name, f"starting: {' '.join(child.cmd)}")
        child.proc = subprocess.Popen(child.cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, text=True, bufsize=1, start_new_session=True)
        child.started_at = time.monotonic()
        child.next_start = None
        threading.Thread(target=self._pump, args=(child.name, child.proc), daemon=True).start()

    def _pump(self, name: str, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._emit(name, line.rstrip("\n"))

    def _emit(self, name: str, line: str) -> None:
        with self._out_lock:
            try:
                self.output.write(f"[{name}] {line}\n")
                self.output.flush()
            except ValueError:  # output closed at shutdown
                pass
        if self.on_line is not None:
            self.on_line(name, line)

    def start(self) -> "Launcher":
        for child in self.children:
            self._spawn(child)
        return self

    def poll(self) -> bool:
        """Reap exits and respawn when due; True while anything is running or pending."""
        now = time.monotonic()
        alive = False
        for child in self.children:
            if child.done:
                continue
            if child.proc is not None and child.proc.poll() is None:
                alive = True
                continue
            if child.proc is not None:  # just exited
                code = child.proc.returncode
                child.exit_codes.append(code)
                child.proc = None
                ran = now - child.started_at
                if self._stopping.is_set() or not child.respawn or code == 0:
                    self._emit(child.name, f"exited with code {code}")
                    child.done = True
                    continue
                if code == CONFIG_ERROR_EXIT:
                    self._emit(child.name, f"exited with code {code} (parameter error: fix it, not respawning)")
                    child.done = True
                    continue
                child.backoff_s = child.respawn_delay_s if ran >= HEALTHY_AFTER_S or child.backoff_s == 0 \
                    else min(child.backoff_s * 2, MAX_BACKOFF_S)
                child.next_start = now + child.backoff_s
                self._emit(child.name, f"crashed with code {code} after {ran:.1f} s; respawning in {child.backoff_s:.1f} s")
            if child.next_start is not None:
                alive = True
                if now >= child.next_start and not self._stopping.is_set():
                    child.restarts += 1
                    self._spawn(child)
        return alive

    def stop(self, timeout_s: float = 10.0) -> Dict[str, Optional[int]]:
        """Stop every child: SIGINT, then SIGTERM, then SIGKILL. Returns name -> exit code."""
        self._stopping.set()
        running = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            for c in running:
                if c.proc.poll() is None:
                    try:
                        os.killpg(c.proc.pid, sig)  # the child's own session (start_new_session)
                    except ProcessLookupError:
                        pass
            deadline = time.monotonic() + wait_s
            for c in running:
                try:
                    c.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
            running = [c for c in running if c.proc.poll() is None]
            if not running:
                break
        codes: Dict[str, Optional[int]] = {}
        for c in self.children:
            if c.proc is not None:
                c.exit_codes.append(c.proc.returncode)
                self._emit(c.name, f"exited with code {c.proc.returncode}")
                c.proc = None
            codes[c.name] = c.exit_codes[-1] if c.exit_codes else None
            c.done = True
        return codes

    def run(self, poll_s: float = 0.2, restore_signals: bool = True) -> int:
        """Start, supervise until SIGINT/SIGTERM or until every process has ended, stop. Exit code:
        0, or the first nonzero exit code of a process that ended on its own.

        ``restore_signals=False`` (the CLI, which exits next) ignores SIGINT/SIGTERM once the graph is down,
        so a second one on the way out neither raises KeyboardInterrupt nor kills the process (Python's
        finalization puts SIG_DFL back in place of handlers written in Python: exit -2)."""
        stop = threading.Event()

        def handler(signum, frame):  # noqa: ARG001
            stop.set()

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            while not stop.is_set() and self.poll():
                stop.wait(poll_s)
        finally:
            self.stop()
            for s, h in old.items():
                signal.signal(s, h if restore_signals else signal.SIG_IGN)
        if stop.is_set():
            return 0
        bad = [c.exit_codes[-1] for c in self.children if c.exit_codes and c.exit_codes[-1] not in (0, None)]
        return bad[0] if bad else 0

    def __enter__(self) -> "Launcher":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ------------------------------------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--camera-set", default="ddad", choices=G.CAMERA_SETS,
                        help="picks config/<set>.yaml when --params-file is not given (default ddad)")
    parser.add_argument("--params-file", default="", help="node parameters YAML")
    parser.add_argument("--checkpoint", default="", help="trained model (.pt)")
    parser.add_argument("--model-config", default="",
                        help="training YAML for RANDOM weights when there is no checkpoint (tests, smoke runs)")
    parser.add_argument("--namespace", default="", help="namespace for every node")
    parser.add_argument("--use-sim-time", action="store_true", help="nodes follow /clock")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="override a node parameter (YAML value), repeatable: --set device=cpu")
    parser.add_argument("--remap", action="append", default=[], metavar="FROM:=TO", help="topic remapping, repeatable")
    parser.add_argument("--bag", default="", help="replay this bag into the graph (vfdepth bag play, with /clock)")
    parser.add_argument("--rate", type=float, default=1.0, help="bag playback speed (with --bag)")
    parser.add_argument("--loop", action="store_true", help="loop the bag (with --bag)")
    parser.add_argument("--rviz", action="store_true", help="also start rviz2 when it is installed")
    parser.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: the environment's)")
    parser.add_argument("--no-respawn", action="store_true", help="do not restart crashed nodes")
    parser.add_argument("--no-autostart", action="store_true",
                        help="managed node: wait in 'unconfigured' for `ros2 lifecycle set` (configure, activate)")
    parser.add_argument("--print", dest="print_only", action="store_true", help="print the commands and exit")


def graph_from_args(args: argparse.Namespace) -> G.Graph:
    import yaml

    from vfdepth_ros.errors import UserError

    overrides = {}
    for item in args.overrides:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected NAME=VALUE, e.g. --set device=cpu")
        k, v = item.split("=", 1)
        overrides[k.strip()] = yaml.safe_load(v)
    remaps = []
    for item in args.remap:
        if ":=" not in item:
            raise UserError(f"--remap {item!r}: expected FROM:=TO")
        remaps.append(tuple(item.split(":=", 1)))
    kw = dict(params_file=args.params_file, checkpoint=args.checkpoint, namespace=args.namespace,
              camera_set=args.camera_set, rviz=args.rviz, model_config=args.model_config, remappings=remaps,
              overrides=overrides, respawn=not args.no_respawn, autostart=not args.no_autostart)
    try:
        if args.bag:
            return G.replay_graph(args.bag, rate=args.rate, loop=args.loop, **kw)
        return G.surround_graph(use_sim_time=args.use_sim_time, **kw)
    except G.GraphError as exc:
        raise UserError(str(exc)) from exc


def end_with_parent(sig: int = signal.SIGTERM) -> None:
    """Linux: have the kernel send `sig` to this process when its parent ends (``ros2 launch`` killed
    by SIGTERM leaves its processes behind otherwise). A no-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(sig))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - no prctl in this libc
        return
    if os.getppid() == 1:  # the parent was gone already
        os.kill(os.getpid(), sig)


def run_child(argv: Sequence[str]) -> int:
    """``python -m vfdepth_ros.launcher MODULE ARGS...``: run MODULE as a process of the graph under
    ``ros2 launch``: it ends with its parent, and a stop asked for by SIGINT or SIGTERM is exit 0."""
    import runpy

    end_with_parent()
    stopped = []

    def stop(signum, frame):  # noqa: ARG001
        stopped.append(signum)
        raise KeyboardInterrupt

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, stop)
    sys.argv = [argv[0], *argv[1:]]
    try:
        runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        # 130: the vfdepth CLI's "interrupted" (its own or rclpy's SIGINT handling may run instead of ours)
        return 0 if stopped or code == 130 else code
    except KeyboardInterrupt:
        return 0
    return 0


def main(args: argparse.Namespace) -> int:
    graph = graph_from_args(args)
    launcher = Launcher(graph, domain_id=args.domain_id, respawn=not args.no_respawn)
    if args.print_only:
        for c in launcher.children:
            print(f"{c.name}: {' '.join(c.cmd)}")
        return 0
    return launcher.run(restore_signals=False)


if __name__ == "__main__":
    sys.exit(run_child(sys.argv[1:]))
