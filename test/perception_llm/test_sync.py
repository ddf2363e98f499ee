"""Approximate-time sync: right pairs under jitter and reordering, masked sensors on timeout, counted drops."""

import random
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from perception_llm.sync import ApproximateTimeSync

from support import examples

MS = 1_000_000
PERIOD = 100 * MS
CAMERA, LIDAR, REAR = 'camera/front', 'lidar/top', 'camera/rear'


def make_sync(sensors=(CAMERA, LIDAR), slop_ms=50, max_wait_ms=150, queue_size=5) -> ApproximateTimeSync:
    return ApproximateTimeSync(list(sensors), slop_ns=slop_ms * MS, max_wait_ns=max_wait_ms * MS, queue_size=queue_size)


def stream(frames: int, sensors, rng: random.Random, jitter_ms: float, latency_ms: tuple[float, float]):
    """Messages (arrival_ns, sensor, stamp_ns, frame) in arrival order; the reference sensor has no jitter."""
    messages = []
    for frame in range(frames):
        t = (frame + 10) * PERIOD
        for i, sensor in enumerate(sensors):
            stamp = t + (round(rng.uniform(-jitter_ms, jitter_ms) * MS) if i else 0)
            messages.append((stamp + round(rng.uniform(*latency_ms) * MS), sensor, stamp, frame))
    return sorted(messages)


def replay(sync: ApproximateTimeSync, messages, poll_every_ms: int = 20) -> list:
    """Feed messages at their arrival times, polling in between like the node's timer; all sets emitted."""
    emitted, now = [], messages[0][0]
    for arrival, sensor, stamp, frame in messages:
        while now + poll_every_ms * MS < arrival:
            now += poll_every_ms * MS
            emitted += [(now, s) for s in sync.poll(now)]
        now = arrival
        emitted += [(now, s) for s in sync.add(sensor, stamp, frame, now)]
    for _ in range(50):
        now += poll_every_ms * MS
        emitted += [(now, s) for s in sync.poll(now)]
    return emitted


def frames_of(synced) -> set:
    return {payload for _, payload in synced.members.values()}


def test_pairs_the_right_messages_under_30ms_jitter_and_reordered_arrival():
    rng = random.Random(3)
    # lidar stamps +-30 ms around the camera's; arrival latency 0..90 ms reorders the sensors freely
    messages = stream(300, (CAMERA, LIDAR), rng, jitter_ms=30, latency_ms=(0, 90))
    assert any(a[1] == LIDAR and b[1] == CAMERA and a[3] == b[3] for a, b in pairwise(messages))
    sync = make_sync()
    sets = [s for _, s in replay(sync, messages)]
    complete = [s for s in sets if not s.missing]
    assert all(len(frames_of(s)) == 1 for s in sets), 'a set mixed messages of different frames'
    assert len(complete) == 300 and sync.synced == 300 and not sync.dropped
    assert [s.stamp_ns for s in complete] == [(f + 10) * PERIOD for f in range(300)], 'stamp = camera stamp'


def test_three_sensors_with_jitter_and_messages_overtaking_within_one_sensor():
    rng = random.Random(7)
    # latency up to 160 ms: a sensor's frame k+1 sometimes arrives before its frame k
    messages = stream(200, (CAMERA, REAR, LIDAR), rng, jitter_ms=30, latency_ms=(0, 160))
    overtaken = sum(1 for i, a in enumerate(messages) for b in messages[i + 1:i + 8]
                    if a[1] == b[1] and b[2] < a[2])
    assert overtaken > 5
    sync = make_sync((CAMERA, REAR, LIDAR), max_wait_ms=200)
    sets = [s for _, s in replay(sync, messages)]
    assert all(len(frames_of(s)) == 1 for s in sets), 'a set mixed messages of different frames'
    assert len([s for s in sets if not s.missing]) >= 190
    stamps = [s.stamp_ns for s in sets]
    assert stamps == sorted(set(stamps)), 'published stamps must strictly increase'


def test_frame_k_plus_1_arriving_first_still_pairs_both_frames():
    sync = make_sync()
    assert sync.add(CAMERA, 2 * PERIOD, 'c2', 0) == []
    assert sync.add(LIDAR, PERIOD + 10 * MS, 'l1', 1) == []           # nearest camera is 90 ms away
    first = sync.add(CAMERA, PERIOD, 'c1', 2 * MS)
    second = sync.add(LIDAR, 2 * PERIOD - 20 * MS, 'l2', 3 * MS)
    assert [frames_of(s) for s in first + second] == [{'c1', 'l1'}, {'c2', 'l2'}]
    assert not sync.dropped


def test_a_silent_sensor_times_out_to_a_set_with_it_masked_and_reported():
    sync = make_sync(max_wait_ms=150)
    messages = stream(40, (CAMERA, LIDAR), random.Random(1), jitter_ms=10, latency_ms=(5, 20))
    lidar_stops_at = 20
    messages = [m for m in messages if not (m[1] == LIDAR and m[3] >= lidar_stops_at)]
    emitted = replay(sync, messages, poll_every_ms=10)
    sets = [s for _, s in emitted]
    assert all(not s.missing for s in sets[:lidar_stops_at])
    partial = sets[lidar_stops_at:]
    assert len(partial) == 40 - lidar_stops_at, 'every camera frame after the loss is still published'
    assert all(s.missing == [LIDAR] and set(s.members) == {CAMERA} for s in partial)
    arrivals = {(m[1], m[2]): m[0] for m in messages}
    waits_ms = [(at - arrivals[(CAMERA, s.stamp_ns)]) / MS for at, s in emitted[lidar_stops_at:]]
    assert min(waits_ms) >= 150 and max(waits_ms) <= 150 + 10, 'published once max_wait has passed, not before'
    assert sync.partial == 40 - lidar_stops_at


def test_the_reference_missing_gives_the_next_sensor_stamp():
    sync = make_sync(max_wait_ms=100)
    sync.add(LIDAR, PERIOD + 7 * MS, 'l1', 0)
    assert sync.poll(99 * MS) == []
    [synced] = sync.poll(100 * MS)
    assert synced.stamp_ns == PERIOD + 7 * MS and synced.missing == [CAMERA]


def test_a_late_partner_after_its_set_was_published_is_dropped_as_late():
    sync = make_sync(max_wait_ms=100)
    sync.add(CAMERA, PERIOD, 'c1', 0)
    [partial] = sync.poll(100 * MS)
    assert partial.missing == [LIDAR]
    assert sync.add(LIDAR, PERIOD - 40 * MS, 'l1', 110 * MS) == []
    assert sync.dropped == {f'{LIDAR}/late': 1}
    [complete] = sync.add(CAMERA, 2 * PERIOD, 'c2', 120 * MS) + sync.add(LIDAR, 2 * PERIOD, 'l2', 125 * MS)
    assert frames_of(complete) == {'c2', 'l2'}


def test_frames_bunched_closer_than_slop_after_a_hiccup_are_all_published():
    sync = make_sync()
    first = sync.add(CAMERA, PERIOD, 'c1', 0) + sync.add(LIDAR, PERIOD, 'l1', 1)
    # the driver caught up after a slow frame: the next one is stamped 43 ms later
    second = sync.add(CAMERA, PERIOD + 43 * MS, 'c2', 2) + sync.add(LIDAR, PERIOD + 43 * MS, 'l2', 3)
    assert [frames_of(s) for s in first + second] == [{'c1', 'l1'}, {'c2', 'l2'}] and not sync.dropped


def test_duplicates_out_of_order_and_overflow_are_counted_not_raised():
    sync = make_sync(queue_size=3)
    sync.add(CAMERA, PERIOD, 'c1', 0)
    sync.add(LIDAR, PERIOD, 'l1', 0)                        # completes frame 1
    assert sync.add(CAMERA, PERIOD, 'again', 1) == []         # same stamp as a published one
    assert sync.add(CAMERA, PERIOD - 5 * MS, 'older', 2) == []
    for k in range(2, 7):                                     # camera only: the queue keeps 3
        sync.add(CAMERA, k * PERIOD, f'c{k}', 3)
    assert sync.pending()[CAMERA] == 3
    assert sync.dropped == {f'{CAMERA}/duplicate_stamp': 1, f'{CAMERA}/out_of_order': 1,
                            f'{CAMERA}/queue_overflow': 2}
    # frame 5 is complete, but c4 may still find its lidar: sets go out in stamp order
    assert sync.add(LIDAR, 5 * PERIOD + 20 * MS, 'l5', 4) == []
    four, five, six = sync.poll(3 + 150 * MS)                 # c4 and c6 waited max_wait: no lidar
    assert frames_of(four) == {'c4'} and four.missing == [LIDAR]
    assert frames_of(five) == {'c5', 'l5'} and not five.missing
    assert frames_of(six) == {'c6'} and six.missing == [LIDAR]


def test_time_jumping_back_clears_the_queues_and_pairs_again():
    sync = make_sync()
    for k in range(1, 30):
        sync.add(CAMERA, 100 * PERIOD + k * PERIOD, k, k * PERIOD)
        sync.add(LIDAR, 100 * PERIOD + k * PERIOD, k, k * PERIOD)
    sync.add(CAMERA, 130 * PERIOD, 'queued before the jump', 30 * PERIOD)
    # a bag loop: stamps start again from the beginning
    after = sync.add(CAMERA, 101 * PERIOD, 'a', 31 * PERIOD) + sync.add(LIDAR, 101 * PERIOD + 5 * MS, 'b', 31 * PERIOD)
    assert sync.resets == 1 and [frames_of(s) for s in after] == [{'a', 'b'}]


def test_receive_clock_jumping_back_resets_instead_of_waiting_forever():
    sync = make_sync(max_wait_ms=100)
    sync.add(CAMERA, 50 * PERIOD, 'c', 50 * PERIOD)
    sync.poll(50 * PERIOD + 10 * MS)
    sync.add(CAMERA, 3 * PERIOD, 'after reset', 3 * PERIOD)   # simulator restarted: clock and stamps back
    assert sync.resets == 1
    [synced] = sync.poll(3 * PERIOD + 100 * MS)
    assert frames_of(synced) == {'after reset'}


events = st.lists(st.tuples(st.sampled_from([CAMERA, LIDAR, REAR]), st.integers(0, 60), st.integers(-40, 40),
                            st.integers(0, 400)), max_size=120)


@examples(200)
@given(events)
def test_any_stream_gives_increasing_stamps_each_message_once_within_slop(messages):
    sync = make_sync((CAMERA, REAR, LIDAR), queue_size=4)
    seen, stamps, now = set(), [], 0
    for sensor, frame, offset_ms, delay_ms in messages:
        now += delay_ms * MS // 4
        stamp = frame * PERIOD + offset_ms * MS
        resets = sync.resets
        ready = sync.add(sensor, stamp, (sensor, stamp), now)
        if sync.resets > resets:   # time went back: a new epoch of stamps
            seen, stamps = set(), []
        for synced in ready + sync.poll(now + 7 * MS):
            members = [t for t, _ in synced.members.values()]
            assert max(members) - min(members) <= sync.slop_ns
            assert synced.missing == [s for s in sync.sensors if s not in synced.members]
            for _, payload in synced.members.values():
                assert payload not in seen
                seen.add(payload)
            stamps.append(synced.stamp_ns)
    assert stamps == sorted(set(stamps))
