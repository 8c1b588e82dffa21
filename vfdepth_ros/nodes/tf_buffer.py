"""A tiny transform buffer for (mostly static) rig transforms, as pure logic.

tf2_ros is not installable on pip-only machines; the surround_depth node only needs the rig's
extrinsics (``base_link`` -> camera frames), which are static. The buffer keeps the latest transform
per child frame (no time interpolation) and chains them through the tree.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

_MAX_DEPTH = 64


class TfBuffer:
    """child frame -> (parent frame, T_parent_child 4x4, static?)."""

    def __init__(self) -> None:
        self._edges: Dict[str, Tuple[str, np.ndarray, bool]] = {}

    def set(self, parent: str, child: str, T_parent_child: np.ndarray, static: bool = True) -> None:
        """Store a transform (replacing the child's previous one). A dynamic transform never replaces a
        static one of the same child (tf2's rule of thumb: one authority per frame)."""
        parent, child = parent.lstrip("/"), child.lstrip("/")
        if not parent or not child or parent == child:
            raise ValueError(f"invalid transform {parent!r} -> {child!r}")
        old = self._edges.get(child)
        if old is not None and old[2] and not static:
            return
        self._edges[child] = (parent, np.asarray(T_parent_child, dtype=np.float64).copy(), static)

    def frames(self) -> List[str]:
        return sorted(set(self._edges) | {p for p, _, _ in self._edges.values()})

    def _chain(self, frame: str) -> Dict[str, np.ndarray]:
        """Ancestors of `frame` (itself included) -> T_ancestor_frame."""
        out = {frame: np.eye(4)}
        T = np.eye(4)
        for _ in range(_MAX_DEPTH):
            edge = self._edges.get(frame)
            if edge is None:
                break
            parent, T_parent_frame, _ = edge
            T = T_parent_frame @ T
            frame = parent
            if frame in out:  # a cycle: stop
                break
            out[frame] = T
        return out

    def lookup(self, target: str, source: str) -> Optional[np.ndarray]:
        """T_target_source (maps points of `source` into `target`), or None when not connected."""
        target, source = target.lstrip("/"), source.lstrip("/")
        src = self._chain(source)
        tgt = self._chain(target)
        for frame, T_anc_target in tgt.items():  # nearest common ancestor, walking up from target
            if frame in src:
                return np.linalg.inv(T_anc_target) @ src[frame]
        return None
