"""Session-wide test set-up shared by every test file.

* DDS stays on this machine: the loopback-only Fast DDS profile is put into ``os.environ`` here, at
  import time, before any test module can import rclpy (conftest.py is imported first).
* ``ros_domain_id``: a distinct ROS_DOMAIN_ID per test (also in ``os.environ`` for subprocesses).
* ``ddad_sample``: the real one-scene DDAD sample in ``<repo>/../shared/data/ddad_sample``
  (skips when absent).
* ``device``: parametrizes a test over cpu and cuda (cuda skipped without a GPU).
* ``torch.manual_seed`` before every test.
"""

from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path

import pytest

from vfdepth_ros.dds import apply_loopback_profile  # (no rclpy import in there)

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = REPO_ROOT.parent / "shared"

apply_loopback_profile()

# Domain ids 100..199, one per test, in order. Other processes on the machine (a second checkout's
# test run, the demo) are told apart by the pytest process id mixed into the start.
_DOMAIN_BASE = 100
_domain_counter = itertools.count((os.getpid() * 7) % 100)


@pytest.fixture
def ros_domain_id(monkeypatch: pytest.MonkeyPatch) -> int:
    """A ROS_DOMAIN_ID of this test's own (100..199), exported to os.environ for subprocesses."""
    domain_id = _DOMAIN_BASE + next(_domain_counter) % 100
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain_id))
    return domain_id


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The root of this checkout."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``<repo>/../shared`` (DESIGN, STYLE, data); skips when this checkout has none beside it."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"no shared/ directory beside the checkout ({SHARED_DIR})")
    return SHARED_DIR


@pytest.fixture(scope="session")
def ddad_sample() -> Path:
    """The real one-scene DDAD sample (ddad.json + scene folder) beside the checkout."""
    path = SHARED_DIR / "data" / "ddad_sample"
    if not (path / "ddad.json").is_file():
        pytest.skip(f"DDAD sample not found at {path} (expected <repo>/../shared/data/ddad_sample)")
    return path


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request: pytest.FixtureRequest):
    """torch.device over cpu and cuda; the cuda case skips on machines without a GPU."""
    import torch

    if request.param == "cuda" and not _cuda_available():
        pytest.skip("CUDA not available")
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _drop_stream_handlers_added_by_the_test():
    """A CLI main() called in-process (logging.basicConfig) leaves a root handler bound to that test's captured
    stderr, which pytest closes afterwards: later tests' log records then print 'Logging error' tracebacks
    into their own stderr. Remove such handlers when the test ends."""
    root = logging.getLogger()
    before = set(root.handlers)
    level = root.level
    yield
    for h in list(root.handlers):
        if h not in before and type(h) is logging.StreamHandler:
            root.removeHandler(h)
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _seed_torch() -> None:
    """Every test starts from the same random state."""
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(0)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cuda: needs a CUDA device (skipped without one)")
