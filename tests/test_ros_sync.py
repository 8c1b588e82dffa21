"""vfdepth_ros.sync with fake stamps: approximate-time policy and the newest-set latch."""

import random
import threading

import pytest

from vfdepth_ros.sync import ApproximateTimeSync, LatestSetLatch

MS = 1_000_000


def feed(sync, events):
    """events: (topic, stamp_ns) in arrival order -> list of emitted stamp tuples."""
    out = []
    for topic, stamp in events:
        out += [s.stamps_ns for s in sync.add(topic, stamp, (topic, stamp))]
    return out


def frames(n_topics, n_frames, period_ms=100, offsets_ms=None):
    offsets_ms = offsets_ms or [0] * n_topics
    return [[(i, (f * period_ms + offsets_ms[i]) * MS) for i in range(n_topics)] for f in range(n_frames)]


def test_exact_stamps_emit_every_set_at_once():
    sync = ApproximateTimeSync(6, queue_size=5, slop_s=0.05)
    for f, frame in enumerate(frames(6, 4)):
        out = feed(sync, frame)
        assert out == [tuple([f * 100 * MS] * 6)]  # emitted as the last camera of the frame arrives
    assert sync.stats.emitted == 4 and sync.stats.total_dropped == 0


def test_messages_carry_through():
    sync = ApproximateTimeSync(2, slop_s=0.01)
    sync.add(0, 5, "a")
    (s,) = sync.add(1, 5, "b")
    assert s.msgs == ("a", "b") and s.spread_ns == 0 and s.last_stamp_ns == 5


def test_spread_sets_are_emitted_with_the_next_frame_without_bounds():
    offs = [0, 10, 20, 30, 40, 50]
    sync = ApproximateTimeSync(6, queue_size=5, slop_s=0.06)
    fr = frames(6, 3, offsets_ms=offs)
    assert feed(sync, fr[0]) == []  # cannot prove optimality before more messages arrive
    out = feed(sync, fr[1])
    assert out[0] == tuple(o * MS for o in offs)


def test_inter_message_bound_emits_without_waiting():
    offs = [0, 10, 20, 30, 40, 50]
    sync = ApproximateTimeSync(6, queue_size=5, slop_s=0.06, inter_message_lower_bound_s=0.09)
    for f, frame in enumerate(frames(6, 3, offsets_ms=offs)):
        assert feed(sync, frame) == [tuple((f * 100 + o) * MS for o in offs)]


def test_slop_edges():
    # spread exactly at the slop matches, one nanosecond more does not
    sync = ApproximateTimeSync(2, slop_s=0.05)
    assert feed(sync, [(0, 0), (1, 50 * MS)]) == []  # optimality is proven by the next message
    assert feed(sync, [(0, 100 * MS)]) == [(0, 50 * MS)]
    sync = ApproximateTimeSync(2, slop_s=0.05)
    assert feed(sync, [(0, 0), (1, 50 * MS + 1)]) == []
    assert sync.stats.dropped[0] == 1  # the earliest message can never match: dropped
    assert feed(sync, [(0, 100 * MS)]) == []
    assert feed(sync, [(1, 150 * MS)]) == [(100 * MS, 50 * MS + 1)]


def test_best_set_is_chosen():
    # topic 1 has messages at 0, 40, 48 ms; topic 0 at 50 ms: the set uses 48 and drops 0, 40
    sync = ApproximateTimeSync(2, queue_size=10, slop_s=0.1)
    out = feed(sync, [(1, 0), (1, 40 * MS), (1, 48 * MS), (0, 50 * MS), (1, 60 * MS)])
    assert out == [(50 * MS, 48 * MS)]
    assert sync.stats.dropped[1] == 2


def test_scrambled_arrival_order_gives_the_same_sets():
    # Cameras 0..5 fire 0..50 ms after each 100 ms tick; arrival order within and across topics is
    # scrambled (per-topic order kept, as a transport keeps it) with a fixed seed.
    offs = [0, 12, 25, 31, 44, 50]
    events = [e for fr in frames(6, 30, offsets_ms=offs) for e in fr]
    expected = [tuple((f * 100 + o) * MS for o in offs) for f in range(29)]
    rng = random.Random(1234)
    for _ in range(5):
        per_topic = {i: [e for e in events if e[0] == i] for i in range(6)}
        arrival = []
        while any(per_topic.values()):
            i = rng.choice([k for k, v in per_topic.items() if v])
            arrival.append(per_topic[i].pop(0))
        sync = ApproximateTimeSync(6, queue_size=40, slop_s=0.06)
        out = feed(sync, arrival)
        assert out[:29] == expected
        assert all(max(s) - min(s) <= 60 * MS for s in out)


def test_late_camera_is_still_matched():
    # camera 5 delivers its frame 2 only after everyone's frame 4 (large transport delay)
    sync = ApproximateTimeSync(3, queue_size=10, slop_s=0.02)
    ev = []
    for f in range(6):
        ev += [(0, f * 100 * MS), (1, (f * 100 + 5) * MS)]
        ev += [(2, (g * 100 + 10) * MS) for g in range(f - 3, f - 2) if g >= 0]
    ev += [(2, (g * 100 + 10) * MS) for g in range(3, 6)]
    out = feed(sync, ev)
    assert out[:5] == [(f * 100 * MS, (f * 100 + 5) * MS, (f * 100 + 10) * MS) for f in range(5)]


def test_dropped_camera_blocks_and_memory_stays_bounded():
    sync = ApproximateTimeSync(3, queue_size=4, slop_s=0.02)
    out = feed(sync, [(i, f * 100 * MS) for f in range(50) for i in (0, 1)])  # topic 2 never publishes
    assert out == []
    assert sync.queued()[:2] == [4, 4] and sync.queued()[2] == 0
    assert sync.stats.dropped[0] == 46
    # topic 2 comes back: the newest matching set is produced
    assert feed(sync, [(2, 4900 * MS)]) == [(4900 * MS, 4900 * MS, 4900 * MS)]


def test_camera_dropping_single_frames():
    # topic 1 loses frame 3: that set is skipped, the others come through
    sync = ApproximateTimeSync(2, queue_size=5, slop_s=0.02)
    ev = [(i, f * 100 * MS) for f in range(8) for i in (0, 1) if not (i == 1 and f == 3)]
    out = feed(sync, ev)
    assert [s[0] // (100 * MS) for s in out] == [0, 1, 2, 4, 5, 6, 7]
    assert sync.stats.dropped[0] == 1


def test_duplicates_and_out_of_order_are_rejected():
    sync = ApproximateTimeSync(2, slop_s=0.01)
    feed(sync, [(0, 100 * MS), (0, 100 * MS), (0, 50 * MS)])
    assert sync.stats.rejected == [2, 0] and sync.stats.received == [3, 0]
    assert feed(sync, [(1, 100 * MS)]) == [(100 * MS, 100 * MS)]


def test_emitted_sets_never_reuse_or_go_back():
    rng = random.Random(7)
    sync = ApproximateTimeSync(4, queue_size=6, slop_s=0.03)
    stamps = [0] * 4
    out = []
    for _ in range(2000):
        i = rng.randrange(4)
        stamps[i] += rng.randint(1, 60) * MS
        out += [s.stamps_ns for s in sync.add(i, stamps[i])]
    assert len(out) > 5
    for a, b in zip(out, out[1:]):
        assert all(x < y for x, y in zip(a, b))
    assert all(max(s) - min(s) <= 30 * MS for s in out)
    assert all(q <= 6 for q in sync.queued())


def test_bad_arguments():
    with pytest.raises(ValueError):
        ApproximateTimeSync(0)
    with pytest.raises(ValueError):
        ApproximateTimeSync(2, queue_size=0)
    with pytest.raises(ValueError):
        ApproximateTimeSync(2, slop_s=-1)
    with pytest.raises(ValueError):
        ApproximateTimeSync(2, inter_message_lower_bound_s=[0.1])


def test_callback_and_reset():
    got = []
    sync = ApproximateTimeSync(2, slop_s=0.01, callback=got.append)
    feed(sync, [(0, 10), (1, 10), (0, 20)])
    assert len(got) == 1
    sync.reset()
    assert sync.queued() == [0, 0]
    feed(sync, [(0, 5), (1, 5)])  # older stamps are accepted again after a reset (bag loop)
    assert len(got) == 2


def test_latch_newest_wins_and_counts_stale():
    latch = LatestSetLatch()
    assert latch.take(timeout=0.0) is None
    assert latch.put(1) is False
    assert latch.put(2) is True and latch.put(3) is True
    assert latch.take(timeout=0.0) == 3
    assert latch.stale_dropped == 2 and latch.taken == 1 and latch.put_count == 3
    assert latch.take(timeout=0.0) is None


def test_latch_with_slow_consumer_thread():
    latch = LatestSetLatch()
    seen = []
    release = threading.Event()

    def consumer():
        while True:
            item = latch.take()
            if item is None:
                return
            seen.append(item)
            release.wait()

    th = threading.Thread(target=consumer)
    th.start()
    latch.put(0)
    while not seen:
        threading.Event().wait(0.001)
    for i in range(1, 1000):  # producer far faster than the consumer
        latch.put(i)
    release.set()
    while latch.pending():
        threading.Event().wait(0.001)
    latch.close()
    th.join(timeout=5)
    assert not th.is_alive()
    assert seen[0] == 0 and seen[-1] == 999 and len(seen) == 2
    assert latch.stale_dropped == 998
    assert latch.take() is None  # closed
