"""Test-only helpers for the reliability tests (fuzzing, fault injection, soak).

* hypothesis settings profiles (``FUZZ``): bounded, no deadline, derandomized by default so CI runs the
  same examples every time; ``VFDEPTH_FUZZ_PROFILE=deep`` runs many more random examples locally.
* the project's own error types that count as a clear, handled failure of a parser (``clear_errors``);
* JSON-tree mutation and byte corruption strategies for file fuzzing;
* process memory (RSS from /proc) and /diagnostics helpers shared with benchmarks/soak.py and
  tools/fault_injection.py.
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

# ------------------------------------------------------------------------------ hypothesis profiles
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                     HealthCheck.data_too_large, HealthCheck.filter_too_much],
               print_blob=True)
settings.register_profile("vfdepth-reliability", max_examples=60, derandomize=True, database=None, **_COMMON)
settings.register_profile("vfdepth-reliability-deep", max_examples=1000, derandomize=False, **_COMMON)
_PROFILE = "vfdepth-reliability-deep" if os.environ.get("VFDEPTH_FUZZ_PROFILE") == "deep" else "vfdepth-reliability"


def fuzz_settings(max_examples: Optional[int] = None, shrink: bool = True) -> settings:
    """The reliability profile, optionally with fewer examples for slow targets (deep profile: x10).
    shrink=False for targets whose examples cost seconds: a failure is reported as found, unshrunk."""
    base = settings.get_profile(_PROFILE)
    kw: dict = {}
    if max_examples is not None:
        kw["max_examples"] = max_examples * (10 if _PROFILE.endswith("deep") else 1)
    if not shrink:
        kw["phases"] = [Phase.explicit, Phase.reuse, Phase.generate]
    return settings(base, **kw)


# ------------------------------------------------------------------------------ error types
def clear_errors(*extra: type) -> Tuple[type, ...]:
    """The project's own error types: a parser fed garbage may raise these (one-line, named), nothing else.

    ConfigError (config), ShapeError (geometry), DatasetError (datasets), CheckpointError (checkpoints),
    ConversionError (ROS messages), ParamError (node parameters), GraphError (launch arguments),
    UserError and its subclass BagError (CLI / bag tools)."""
    from vfdepth_core.checkpoint import CheckpointError
    from vfdepth_core.config import ConfigError
    from vfdepth_core.datasets.common import DatasetError
    from vfdepth_core.geometry import ShapeError

    types: List[type] = [ConfigError, ShapeError, DatasetError, CheckpointError]
    try:
        from vfdepth_ros.errors import ConversionError, UserError
        from vfdepth_ros.graph import GraphError
        from vfdepth_ros.params import ParamError

        types += [ConversionError, ParamError, GraphError, UserError]
    except ImportError:  # no rclpy here: the ROS types cannot occur either
        pass
    return tuple(types) + tuple(extra)


def assert_one_line(exc: BaseException) -> None:
    """A clear error: non-empty, one line."""
    text = str(exc)
    assert text.strip(), f"{type(exc).__name__} with an empty message"
    assert "\n" not in text.strip(), f"{type(exc).__name__} message is not one line: {text!r}"


def call_expecting_clear_error(fn: Callable[[], Any], *extra: type,
                               one_line: bool = True) -> Tuple[Any, Optional[BaseException]]:
    """Run fn(); return (result, None), or (None, exc) when it raised one of the clear error types (checked to
    be one line unless one_line=False). Any other exception propagates, failing the test with its traceback."""
    try:
        return fn(), None
    except clear_errors(*extra) as exc:
        if one_line:
            assert_one_line(exc)
        return None, exc


# ------------------------------------------------------------------------------ JSON mutation
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["", "0", "-1", "nan", "CAMERA_01", "LIDAR", "2019-06-27T14:04:10.027900Z", "../../etc",
                     "not-a-date", "9999-99-99T99:99:99Z"]),
)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda kids: st.one_of(st.lists(kids, max_size=3),
                                                               st.dictionaries(st.text(max_size=6), kids, max_size=3)),
                           max_leaves=6)


def json_paths(tree: Any, prefix: Tuple = ()) -> List[Tuple]:
    """Every path (tuple of keys/indices) to a node of a JSON tree, the root included."""
    out = [prefix]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += json_paths(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += json_paths(v, prefix + (i,))
    return out


MUTATIONS = ("replace", "delete", "empty", "wrap_list", "type_swap", "duplicate", "nan")


@st.composite
def mutated_json(draw, tree: Any, max_mutations: int = 3) -> Tuple[Any, List[str]]:
    """A deep copy of `tree` with 1..max_mutations random structural/value mutations; returns (tree, log)."""
    tree = copy.deepcopy(tree)
    log: List[str] = []
    for _ in range(draw(st.integers(1, max_mutations))):
        paths = json_paths(tree)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(MUTATIONS))
        parent = tree
        for k in path[:-1]:
            parent = parent[k]
        node = parent[path[-1]] if path else tree
        if op == "replace":
            new = draw(JSON_VALUES)
        elif op == "delete" and path:
            del parent[path[-1]]
            log.append(f"delete {list(path)}")
            continue
        elif op == "empty":
            new = type(node)() if isinstance(node, (dict, list, str)) else None
        elif op == "wrap_list":
            new = [node]
        elif op == "type_swap":
            new = (str(node) if not isinstance(node, str) else
                   (float(node) if _is_float(node) else {"value": node}))
        elif op == "duplicate" and isinstance(node, list) and node:
            new = node + [copy.deepcopy(node[-1])]
        elif op == "nan":
            new = float("nan") if not isinstance(node, (dict, list)) else node
        else:
            new = None
        log.append(f"{op} {list(path)} -> {_short(new)}")
        if path:
            parent[path[-1]] = new
        else:
            tree = new
    return tree, log


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _short(v: Any) -> str:
    s = json.dumps(v, default=str) if not (isinstance(v, float) and not math.isfinite(v)) else str(v)
    return s if len(s) < 60 else s[:57] + "..."


def write_json(path: Path, tree: Any, mode: str = "json") -> None:
    """Write a mutated tree (NaN/inf as JSON allows in Python's writer)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tree, allow_nan=True))


# ------------------------------------------------------------------------------ byte corruption
class Corrupted(bytes):
    """Corrupted file contents whose repr (what hypothesis prints for a failing example) stays short."""

    what: str = ""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes: {self.what}>"


@st.composite
def corrupted_bytes(draw, data: bytes) -> Tuple[bytes, str]:
    """`data` truncated, with flipped/zeroed/random ranges or with garbage appended; returns (bytes, what)."""
    n = len(data)
    op = draw(st.sampled_from(("truncate", "flip", "zero", "random_range", "append", "truncate+flip")))
    buf = bytearray(data)
    if op in ("truncate", "truncate+flip"):
        cut = draw(st.integers(0, max(0, n - 1)))
        buf = buf[:cut]
    if op in ("flip", "truncate+flip") and buf:
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(buf) - 1))
            buf[i] ^= draw(st.integers(1, 255))
    if op in ("zero", "random_range") and buf:
        a = draw(st.integers(0, len(buf) - 1))
        ln = draw(st.integers(1, min(4096, len(buf) - a)))
        fill = bytes(ln) if op == "zero" else draw(st.binary(min_size=ln, max_size=ln))
        buf[a:a + ln] = fill
    if op == "append":
        buf += draw(st.binary(min_size=1, max_size=64))
    out = Corrupted(bytes(buf))
    out.what = op
    return out, op


# ------------------------------------------------------------------------------ processes, diagnostics
def diag_values(diag: Dict[str, Dict[str, Any]], name: str) -> Dict[str, str]:
    """The values of one status of a diagnostics_to_dict() result ({} when absent)."""
    return diag.get(name, {}).get("values", {})


def as_int(v: Any, default: int = 0) -> int:
    try:
        return int(float(v))
    except (TypeError, ValueError):
        return default


def tree_get(tree: Any, path: Sequence) -> Any:
    for k in path:
        tree = tree[k]
    return tree
