"""The entity layout of a viewer recording and the types the logger and the bag reader share.

The fixed frame (``odom`` by default) is the entity ``world``; each TF frame is an entity below its TF
parent, e.g. ``world/base_link/camera_01_optical_frame``. Time is the timeline ``stamp``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

FIXED_FRAME = "odom"
WORLD = "world"
TIMELINE = "stamp"


def sanitize(name: str) -> str:
    """A frame or topic name as one entity path component (``/`` and odd characters -> ``_``)."""
    s = re.sub(r"[^A-Za-z0-9_\-]", "_", name.strip("/"))
    return s or "_"


@dataclass
class ViewSummary:
    """What a recording holds: messages logged per topic and the entity paths written."""

    messages: Dict[str, int] = field(default_factory=dict)
    entities: List[str] = field(default_factory=list)
    skipped_topics: List[str] = field(default_factory=list)


class FrameTree:
    """TF parent of each frame, and the entity path of each frame (fixed frame = ``world``)."""

    def __init__(self, fixed_frame: str = FIXED_FRAME) -> None:
        self.fixed = fixed_frame
        self.parent: Dict[str, str] = {}
        self.owner: Dict[Tuple[str, str], int] = {}  # dynamic edge -> bag index that drives it

    def add(self, parent: str, child: str) -> None:
        parent, child = parent.strip("/"), child.strip("/")
        if child == self.fixed or child == parent:
            return
        # Refuse cycles (first edge wins).
        p = parent
        seen = set()
        while p in self.parent and p not in seen:
            seen.add(p)
            p = self.parent[p]
            if p == child:
                return
        self.parent.setdefault(child, parent)

    def entity(self, frame: str) -> str:
        frame = (frame or "").strip("/")
        if not frame or frame == self.fixed:
            return WORLD
        chain = [frame]
        seen = {frame}
        while chain[-1] in self.parent:
            nxt = self.parent[chain[-1]]
            if nxt == self.fixed or nxt in seen:
                break
            chain.append(nxt)
            seen.add(nxt)
        return "/".join([WORLD] + [sanitize(f) for f in reversed(chain)])
