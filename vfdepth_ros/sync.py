"""Time synchronization of N camera streams, as pure logic (no ROS import; stamps are integer ns).

:class:`ApproximateTimeSync` follows the approximate-time policy of ROS ``message_filters`` (the
algorithm described on the ROS wiki page "message_filters/ApproximateTime"), written from that
description:

* each topic keeps a queue of at most ``queue_size`` messages (older ones are dropped first);
* a set takes exactly one message per topic, every message is used at most once, and successive sets
  move forward in time on every topic;
* among the sets the queues allow, the one with the smallest spread of stamps is emitted (with the
  policy's age penalty favouring newer sets), as soon as the algorithm can prove that no later message
  can give a better one; messages older than an emitted set are dropped;
* ``slop_s`` is the largest allowed spread of a set (message_filters' *max interval duration*; the
  Python synchronizer's *slop*): candidate sets wider than it are never formed;
* ``inter_message_lower_bound_s`` (optional, per topic): the smallest gap between two messages of that
  topic. Knowing it, the policy can prove a set optimal before the next message of a late topic
  arrives, which cuts a whole frame of latency at the end of each set.

Stamps must increase per topic: a stamp that is not newer than the topic's previous one is rejected
and counted (duplicates and out-of-order messages never enter the queues).

:class:`LatestSetLatch` is the hand-off from the synchronizer to a slow worker: one slot, the newest
complete set wins, a set that is replaced before the worker takes it is counted as stale. Memory stays
bounded under any input rate.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Generic, List, Optional, Sequence, Tuple, TypeVar, Union

NS = 1_000_000_000


@dataclass(frozen=True)
class SyncSet:
    """One synchronized set: per topic, its message and stamp."""

    stamps_ns: Tuple[int, ...]
    msgs: Tuple[Any, ...]

    @property
    def spread_ns(self) -> int:
        return max(self.stamps_ns) - min(self.stamps_ns)

    @property
    def last_stamp_ns(self) -> int:
        return max(self.stamps_ns)


@dataclass
class SyncStats:
    """Counters per topic (lists indexed by topic) and in total."""

    received: List[int]
    rejected: List[int]  # not newer than the previous stamp of the same topic
    dropped: List[int]  # left the queues without being part of an emitted set
    emitted: int = 0

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped)

    @property
    def total_rejected(self) -> int:
        return sum(self.rejected)


class ApproximateTimeSync:
    """Approximate-time synchronizer for `num_topics` streams (see the module docstring).

    ``add(topic, stamp_ns, msg)`` returns the list of sets (:class:`SyncSet`) that this message
    completed (usually zero or one) and also passes each to ``callback`` when one is given.
    """

    def __init__(self, num_topics: int, queue_size: int = 10, slop_s: Optional[float] = 0.1,
                 age_penalty: float = 0.1,
                 inter_message_lower_bound_s: Union[None, float, Sequence[float]] = None,
                 callback: Optional[Callable[[SyncSet], None]] = None) -> None:
        if num_topics < 1:
            raise ValueError(f"num_topics must be >= 1, got {num_topics}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if slop_s is not None and slop_s < 0:
            raise ValueError(f"slop_s must be >= 0 (seconds), got {slop_s}")
        if age_penalty < 0:
            raise ValueError(f"age_penalty must be >= 0, got {age_penalty}")
        self.n = int(num_topics)
        self.queue_size = int(queue_size)
        self.max_interval_ns = None if slop_s is None else int(round(slop_s * NS))
        self.age_penalty = float(age_penalty)
        if inter_message_lower_bound_s is None:
            bounds = [0.0] * self.n
        elif isinstance(inter_message_lower_bound_s, (int, float)):
            bounds = [float(inter_message_lower_bound_s)] * self.n
        else:
            bounds = [float(b) for b in inter_message_lower_bound_s]
            if len(bounds) != self.n:
                raise ValueError(f"inter_message_lower_bound_s needs {self.n} values, got {len(bounds)}")
        if any(b < 0 for b in bounds):
            raise ValueError("inter_message_lower_bound_s must be >= 0")
        self.lower_bound_ns = [int(round(b * NS)) for b in bounds]
        self.callback = callback
        self.stats = SyncStats([0] * self.n, [0] * self.n, [0] * self.n)
        self._deques: List[Deque[Tuple[int, Any]]] = [deque() for _ in range(self.n)]
        self._past: List[List[Tuple[int, Any]]] = [[] for _ in range(self.n)]
        self._last_stamp: List[Optional[int]] = [None] * self.n
        self._has_dropped = [False] * self.n
        self._num_non_empty = 0
        self._candidate: Optional[List[Tuple[int, Any]]] = None
        self._cand_start = 0
        self._cand_end = 0
        self._pivot: Optional[int] = None
        self._pivot_time = 0

    # ---------------------------------------------------------------------------------------- API
    def add(self, topic: int, stamp_ns: int, msg: Any = None) -> List[SyncSet]:
        """Offer one message of `topic`; returns the sets it completed."""
        if not 0 <= topic < self.n:
            raise IndexError(f"topic {topic} out of range 0..{self.n - 1}")
        stamp_ns = int(stamp_ns)
        self.stats.received[topic] += 1
        last = self._last_stamp[topic]
        if last is not None and stamp_ns <= last:
            self.stats.rejected[topic] += 1
            return []
        self._last_stamp[topic] = stamp_ns
        out: List[SyncSet] = []
        dq = self._deques[topic]
        dq.append((stamp_ns, msg))
        if len(dq) == 1:
            self._num_non_empty += 1
            if self._num_non_empty == self.n:
                self._process(out)
        if len(dq) + len(self._past[topic]) > self.queue_size:
            # Too many messages on this topic: cancel any candidate search and drop its oldest.
            self._recover_all()
            dq.popleft()
            self.stats.dropped[topic] += 1
            self._has_dropped[topic] = True
            self._num_non_empty = sum(1 for d in self._deques if d)
            if self._pivot is not None:
                self._candidate, self._pivot = None, None
                self._process(out)
        for s in out:
            if self.callback is not None:
                self.callback(s)
        return out

    def reset(self) -> None:
        """Forget every queued message and the per-topic stamp history (e.g. after a bag loop)."""
        for i in range(self.n):
            self.stats.dropped[i] += len(self._deques[i]) + len(self._past[i])
            self._deques[i].clear()
            self._past[i].clear()
        self._last_stamp = [None] * self.n
        self._has_dropped = [False] * self.n
        self._num_non_empty = 0
        self._candidate, self._pivot = None, None

    def queued(self) -> List[int]:
        """Messages held per topic (bounded by queue_size)."""
        return [len(d) + len(p) for d, p in zip(self._deques, self._past)]

    # ------------------------------------------------------------------------------ the algorithm
    def _boundary(self, end: bool, virtual: bool = False) -> Tuple[int, int]:
        """Topic and stamp of the earliest (end=False) / latest (end=True) queue front.
        Ties: the first topic for the start, the last topic for the end."""
        best_i, best_t = 0, self._time(0, virtual)
        for i in range(1, self.n):
            t = self._time(i, virtual)
            if (t >= best_t) if end else (t < best_t):
                best_i, best_t = i, t
        return best_i, best_t

    def _time(self, i: int, virtual: bool) -> int:
        dq = self._deques[i]
        if dq:
            return dq[0][0]
        if not virtual:  # pragma: no cover - only called with all queues non-empty
            raise RuntimeError("empty queue in a non-virtual boundary")
        # No message yet: the earliest stamp the next one can have.
        bound = self._past[i][-1][0] + self.lower_bound_ns[i]
        return max(bound, self._pivot_time)

    def _better_or_equal(self, end_t: int, start_t: int) -> bool:
        return (end_t - self._cand_end) * (1.0 + self.age_penalty) >= (start_t - self._cand_start)

    def _process(self, out: List[SyncSet]) -> None:
        while self._num_non_empty == self.n:
            end_i, end_t = self._boundary(end=True)
            start_i, start_t = self._boundary(end=False)
            for i in range(self.n):
                if i != end_i:
                    self._has_dropped[i] = False
            if self._pivot is None:
                if self.max_interval_ns is not None and end_t - start_t > self.max_interval_ns:
                    self._delete_front(start_i)  # too wide: the earliest message can never match
                    continue
                if self._has_dropped[end_i]:
                    self._delete_front(start_i)  # the end topic lost messages: a better set may be gone
                    continue
                self._make_candidate(start_t, end_t)
                self._pivot, self._pivot_time = end_i, end_t
                self._move_to_past(start_i)
            else:
                if not self._better_or_equal(end_t, start_t):
                    self._make_candidate(start_t, end_t)
                self._move_to_past(start_i)
            if start_i == self._pivot:
                self._publish(out)  # every set that contains the pivot has been tried
            elif self._better_or_equal(end_t, self._pivot_time):
                self._publish(out)  # no later set can be narrower
            elif self._num_non_empty < self.n:
                self._virtual_search(out)

    def _virtual_search(self, out: List[SyncSet]) -> None:
        """Use the inter-message lower bounds to prove the candidate optimal without waiting."""
        moves = [0] * self.n
        while True:
            _, end_t = self._boundary(end=True, virtual=True)
            start_i, start_t = self._boundary(end=False, virtual=True)
            if self._better_or_equal(end_t, self._pivot_time):
                self._publish(out)
                return
            if not self._better_or_equal(end_t, start_t) or start_i == self._pivot or not self._deques[start_i]:
                break  # cannot prove optimality yet: wait for more messages
            self._move_to_past(start_i)
            moves[start_i] += 1
        for i in range(self.n):  # undo the virtual moves
            for _ in range(moves[i]):
                self._deques[i].appendleft(self._past[i].pop())
        self._num_non_empty = sum(1 for d in self._deques if d)

    def _make_candidate(self, start_t: int, end_t: int) -> None:
        self._candidate = [dq[0] for dq in self._deques]
        self._cand_start, self._cand_end = start_t, end_t
        for i, past in enumerate(self._past):  # older than the new candidate: never usable again
            self.stats.dropped[i] += len(past)
            past.clear()

    def _move_to_past(self, i: int) -> None:
        self._past[i].append(self._deques[i].popleft())
        if not self._deques[i]:
            self._num_non_empty -= 1

    def _delete_front(self, i: int) -> None:
        self._deques[i].popleft()
        self.stats.dropped[i] += 1
        if not self._deques[i]:
            self._num_non_empty -= 1

    def _recover_all(self) -> None:
        for i in range(self.n):
            while self._past[i]:
                self._deques[i].appendleft(self._past[i].pop())

    def _publish(self, out: List[SyncSet]) -> None:
        cand = self._candidate
        assert cand is not None
        self._recover_all()
        for i in range(self.n):
            front = self._deques[i].popleft()
            assert front is cand[i], "synchronizer invariant: the candidate is at the queue front"
        self._num_non_empty = sum(1 for d in self._deques if d)
        self._candidate, self._pivot = None, None
        self.stats.emitted += 1
        out.append(SyncSet(tuple(s for s, _ in cand), tuple(m for _, m in cand)))


T = TypeVar("T")


class LatestSetLatch(Generic[T]):
    """A one-slot, thread-safe hand-off: ``put`` replaces any set the consumer has not taken yet
    (counted in ``stale_dropped``), ``take`` blocks until a set is there or the latch is closed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Optional[T] = None
        self._has_item = False
        self._closed = False
        self.put_count = 0
        self.taken = 0
        self.stale_dropped = 0

    def put(self, item: T) -> bool:
        """Offer the newest set; returns True when it replaced a set that was never taken."""
        with self._cond:
            replaced = self._has_item
            if replaced:
                self.stale_dropped += 1
            self._item, self._has_item = item, True
            self.put_count += 1
            self._cond.notify()
            return replaced

    def take(self, timeout: Optional[float] = None) -> Optional[T]:
        """The newest set (removing it), or None after `timeout` seconds or when closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._has_item or self._closed, timeout=timeout):
                return None
            if not self._has_item:
                return None
            item, self._item, self._has_item = self._item, None, False
            self.taken += 1
            return item

    def pending(self) -> bool:
        with self._cond:
            return self._has_item

    def close(self) -> None:
        """Wake any waiting consumer; later ``take`` calls return None at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
