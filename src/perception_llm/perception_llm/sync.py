"""Approximate-time synchronisation of any number of sensor streams.

Semantics after ``message_filters.ApproximateTimeSynchronizer``: one bounded
queue per sensor, and a set holds one message per sensor with stamps within
``slop`` of each other. Messages are matched by stamp, not by arrival, so
jitter and reordering between sensors (and within one sensor, as long as the
late message's set has not been published) do not pair the wrong frames.

Two differences from message_filters, both for a vehicle:

- Latency: a complete set is published as soon as it exists (and no older
  message still waits for its partners), instead of waiting for a message
  that might match better. This picks the right partner when ``slop`` is
  below half the period of the fastest sensor (the usual 10-20 Hz camera +
  lidar rig with a 50 ms slop).
- Sensor loss: when a queued message has waited ``max_wait`` without its set
  completing, the set is published with the sensors that did arrive and the
  others listed in ``missing``, so downstream sees sensor loss instead of
  silence.

Published sets have strictly increasing stamps; a message that can only
belong to a published set (older than what its sensor already published,
or within the slop of a set published without that sensor) is dropped and
counted (``late``, ``out_of_order``, ``duplicate_stamp``, ``unmatched``,
``queue_overflow``, keyed ``<sensor>/<reason>``). Stamps are integer
nanoseconds, ``now_ns`` is the receive clock (the node's clock, sim time included). Stamps or clock going
back by more than ``time_jump_ns`` (a bag loop, a simulator reset) clear all
state. Nothing here raises on bad timing.
"""

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SyncedSet:
    stamp_ns: int                        # stamp of the reference sensor (the first present one in sensor order)
    members: dict[str, tuple[int, Any]]  # sensor -> (stamp_ns, payload)
    missing: list[str] = field(default_factory=list)


@dataclass(order=True)
class _Queued:
    stamp_ns: int
    arrival_ns: int = field(compare=False)
    payload: Any = field(compare=False, repr=False)


class ApproximateTimeSync:
    def __init__(self, sensors: list[str], slop_ns: int, max_wait_ns: int, queue_size: int = 5,
                 time_jump_ns: int = 1_000_000_000):
        if not sensors:
            raise ValueError('at least one sensor is needed')
        if len(set(sensors)) != len(sensors):
            raise ValueError(f'sensor names must be unique: {sensors}')
        if queue_size < 1:
            raise ValueError(f'queue_size must be at least 1, got {queue_size}')
        self.sensors = list(sensors)
        self.slop_ns, self.max_wait_ns, self.queue_size = int(slop_ns), int(max_wait_ns), int(queue_size)
        self.time_jump_ns = int(time_jump_ns)
        self.dropped: Counter[str] = Counter()
        self.synced = 0      # complete sets published
        self.partial = 0     # sets published with a sensor missing
        self.resets = 0      # time jumps that cleared the state
        self.reset()

    def reset(self) -> None:
        """Forget every queued message and the published history (counters are kept)."""
        self._queues: dict[str, list[_Queued]] = {s: [] for s in self.sensors}
        self._last_member_ns: dict[str, int | None] = {s: None for s in self.sensors}
        self._last_set_ns: int | None = None
        self._last_members: set[str] = set()
        self._newest_ns: int | None = None
        self._last_now_ns: int | None = None

    def pending(self) -> dict[str, int]:
        """Queued messages per sensor."""
        return {s: len(q) for s, q in self._queues.items()}

    def add(self, sensor: str, stamp_ns: int, payload: Any, now_ns: int) -> list[SyncedSet]:
        """Queue a message; returns the sets that are now ready (usually zero or one)."""
        if sensor not in self._queues:
            raise KeyError(f'unknown sensor {sensor!r}; configured: {self.sensors}')
        self._check_time_jump(stamp_ns, now_ns)
        queue = self._queues[sensor]
        last_member = self._last_member_ns[sensor]
        if stamp_ns == last_member or any(q.stamp_ns == stamp_ns for q in queue):
            self.dropped[f'{sensor}/duplicate_stamp'] += 1
            return self.poll(now_ns)
        if last_member is not None and stamp_ns < last_member:
            self.dropped[f'{sensor}/out_of_order'] += 1
            return self.poll(now_ns)
        if self._belongs_to_last_set(sensor, stamp_ns):
            self.dropped[f'{sensor}/late'] += 1  # its set was published without it
            return self.poll(now_ns)
        bisect.insort(queue, _Queued(stamp_ns, now_ns, payload))
        self._newest_ns = stamp_ns if self._newest_ns is None else max(self._newest_ns, stamp_ns)
        if len(queue) > self.queue_size:
            queue.pop(0)
            self.dropped[f'{sensor}/queue_overflow'] += 1
        return self.poll(now_ns)

    def poll(self, now_ns: int) -> list[SyncedSet]:
        """Sets that are complete, or due because a sensor stayed silent for ``max_wait``."""
        self._check_time_jump(None, now_ns)
        ready = []
        while True:
            chosen = self._next_set(now_ns)
            if chosen is None:
                return ready
            synced = self._emit(chosen)
            if synced is not None:
                ready.append(synced)

    def _next_set(self, now_ns: int) -> dict[str, int] | None:
        """The set to publish next, in stamp order: a complete set does not overtake an older message
        that may still complete its own set, until that message has waited ``max_wait``."""
        complete = self._earliest_complete()
        overdue = self._earliest_overdue(now_ns)
        if complete is None or (overdue is not None and self._set_stamp(overdue) < self._set_stamp(complete)):
            return overdue
        floor_ns = min(complete.values()) - self.slop_ns   # older messages cannot join this set
        if any(queue and queue[0].stamp_ns < floor_ns for queue in self._queues.values()):
            return None
        return complete

    def _check_time_jump(self, stamp_ns: int | None, now_ns: int) -> None:
        jumped = (stamp_ns is not None and self._newest_ns is not None
                  and stamp_ns < self._newest_ns - self.time_jump_ns)
        jumped |= self._last_now_ns is not None and now_ns < self._last_now_ns - self.time_jump_ns
        if jumped:
            self.resets += 1
            self.reset()
        self._last_now_ns = now_ns if self._last_now_ns is None else max(self._last_now_ns, now_ns)

    def _set_stamp(self, chosen: dict[str, int]) -> int:
        return chosen[next(s for s in self.sensors if s in chosen)]

    def _closest(self, sensor: str, stamp_ns: int) -> int | None:
        queue = self._queues[sensor]
        if not queue:
            return None
        return min((q.stamp_ns for q in queue), key=lambda t: (abs(t - stamp_ns), t))

    def _earliest_complete(self) -> dict[str, int] | None:
        """The oldest set with every sensor present and within slop, matched on the reference sensor."""
        if not all(self._queues.values()):
            return None
        reference, others = self.sensors[0], self.sensors[1:]
        for queued in self._queues[reference]:
            chosen = {reference: queued.stamp_ns} | {s: self._closest(s, queued.stamp_ns) for s in others}
            if max(chosen.values()) - min(chosen.values()) <= self.slop_ns:
                return chosen
        return None

    def _earliest_overdue(self, now_ns: int) -> dict[str, int] | None:
        """A partial set around the oldest message that waited ``max_wait`` for its partners."""
        overdue = [(q.stamp_ns, sensor) for sensor, queue in self._queues.items() for q in queue
                   if now_ns - q.arrival_ns >= self.max_wait_ns]
        if not overdue:
            return None
        anchor_ns, anchor_sensor = min(overdue)
        chosen = {anchor_sensor: anchor_ns}
        candidates = sorted((abs(t - anchor_ns), s, t) for s in self.sensors if s != anchor_sensor
                            for t in [self._closest(s, anchor_ns)] if t is not None)
        for _, sensor, stamp_ns in candidates:
            stamps = list(chosen.values()) + [stamp_ns]
            if max(stamps) - min(stamps) <= self.slop_ns:
                chosen[sensor] = stamp_ns
        return chosen

    def _emit(self, chosen: dict[str, int]) -> SyncedSet | None:
        set_ns = self._set_stamp(chosen)
        if self._last_set_ns is not None and set_ns <= self._last_set_ns:
            for sensor, stamp_ns in chosen.items():  # stamps must increase: this set comes too late
                self._drop_older(sensor, stamp_ns + 1, 'late')
            return None
        members = {}
        for sensor, stamp_ns in chosen.items():
            self._drop_older(sensor, stamp_ns, 'unmatched')
            queued = self._queues[sensor].pop(0)
            members[sensor] = (queued.stamp_ns, queued.payload)
            self._last_member_ns[sensor] = queued.stamp_ns
        self._last_set_ns, self._last_members = set_ns, set(members)
        for sensor in self.sensors:
            queue = self._queues[sensor]
            while queue and self._belongs_to_last_set(sensor, queue[0].stamp_ns):
                queue.pop(0)
                self.dropped[f'{sensor}/unmatched'] += 1
        missing = [s for s in self.sensors if s not in members]
        if missing:
            self.partial += 1
        else:
            self.synced += 1
        return SyncedSet(set_ns, members, missing)

    def _belongs_to_last_set(self, sensor: str, stamp_ns: int) -> bool:
        """A message of a sensor that was missing from the last published set, within its slop window."""
        return (self._last_set_ns is not None and sensor not in self._last_members
                and stamp_ns <= self._last_set_ns + self.slop_ns)

    def _drop_older(self, sensor: str, stamp_ns: int, reason: str) -> None:
        queue = self._queues[sensor]
        while queue and queue[0].stamp_ns < stamp_ns:
            queue.pop(0)
            self.dropped[f'{sensor}/{reason}'] += 1
