"""Approximate-time synchronisation of any number of sensor streams.

Semantics after ``message_filters.ApproximateTimeSynchronizer``: one bounded
queue per sensor; a set is formed from one message per sensor whose stamps lie
within ``slop`` of each other, and messages that can no longer be part of any
set are dropped. Two differences, both for latency and for sensor loss: a set
is emitted as soon as it exists (no waiting for a possibly closer message),
and when a sensor stays silent for ``max_wait`` after the others arrived, the
set is emitted without it and the sensor is reported missing.

Stamps are integer nanoseconds. ``now_ns`` is the receive clock (the node's
clock, sim time included). Stamps that go back by more than ``time_jump_ns``
(a bag loop, a simulator reset) clear all state.
"""

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SyncedSet:
    stamp_ns: int                      # stamp of the reference sensor (the first present one in sensor order)
    members: dict[str, tuple[int, Any]]  # sensor -> (stamp_ns, payload)
    missing: list[str] = field(default_factory=list)


class ApproximateTimeSync:
    def __init__(self, sensors: list[str], slop_ns: int, max_wait_ns: int, queue_size: int = 5,
                 time_jump_ns: int = 1_000_000_000):
        if not sensors:
            raise ValueError('at least one sensor is needed')
        self.sensors = list(sensors)
        self.slop_ns, self.max_wait_ns, self.queue_size = slop_ns, max_wait_ns, queue_size
        self.time_jump_ns = time_jump_ns
        self.dropped: Counter[str] = Counter()
        self.synced = 0
        self.partial = 0
        self.resets = 0
        self.reset()

    def reset(self) -> None:
        # per sensor: sorted stamps, and stamp -> (payload, arrival_ns)
        self._stamps: dict[str, list[int]] = {s: [] for s in self.sensors}
        self._payloads: dict[str, dict[int, tuple[Any, int]]] = {s: {} for s in self.sensors}
        self._last_emitted: dict[str, int] = {s: -1 for s in self.sensors}
        self._newest = -1

    def add(self, sensor: str, stamp_ns: int, payload: Any, now_ns: int) -> list[SyncedSet]:
        """Queue a message; returns the sets it completed (usually zero or one)."""
        if self._newest >= 0 and stamp_ns < self._newest - self.time_jump_ns:
            self.resets += 1
            self.reset()
        stamps = self._stamps[sensor]
        if stamp_ns in self._payloads[sensor]:
            self.dropped['duplicate_stamp'] += 1
            return []
        if stamp_ns <= self._last_emitted[sensor]:
            self.dropped['out_of_order'] += 1
            return []
        bisect.insort(stamps, stamp_ns)
        self._payloads[sensor][stamp_ns] = (payload, now_ns)
        self._newest = max(self._newest, stamp_ns)
        if len(stamps) > self.queue_size:
            self._discard(sensor, stamps[0], 'queue_overflow')
        return self.poll(now_ns)

    def poll(self, now_ns: int) -> list[SyncedSet]:
        """Sets that are complete, or due because a sensor stayed silent for ``max_wait``."""
        ready = []
        while True:
            found = self._complete_set() if all(self._stamps.values()) else self._overdue_set(now_ns)
            if found is None:
                return ready
            ready.append(found)

    def _complete_set(self) -> SyncedSet | None:
        while all(self._stamps.values()):
            pivot = max(stamps[0] for stamps in self._stamps.values())
            chosen = {s: self._closest(s, pivot) for s in self.sensors}
            if max(chosen.values()) - min(chosen.values()) <= self.slop_ns:
                self.synced += 1
                return self._emit(chosen, [])
            # Heads older than pivot - slop can never join a set any more.
            for sensor, stamps in self._stamps.items():
                while stamps and stamps[0] < pivot - self.slop_ns:
                    self._discard(sensor, stamps[0], 'unmatched')
        return None

    def _overdue_set(self, now_ns: int) -> SyncedSet | None:
        present = [s for s in self.sensors if self._stamps[s]]
        if not present:
            return None
        oldest_arrival = min(self._payloads[s][self._stamps[s][0]][1] for s in present)
        if now_ns - oldest_arrival < self.max_wait_ns:
            return None
        pivot = max(self._stamps[s][0] for s in present)
        chosen = {s: self._closest(s, pivot) for s in present}
        chosen = {s: t for s, t in chosen.items() if abs(t - pivot) <= self.slop_ns}
        for sensor in present:  # what is older than the emitted set cannot be used any more
            while self._stamps[sensor] and self._stamps[sensor][0] < chosen.get(sensor, pivot - self.slop_ns):
                self._discard(sensor, self._stamps[sensor][0], 'unmatched')
        self.partial += 1
        return self._emit(chosen, [s for s in self.sensors if s not in chosen])

    def _closest(self, sensor: str, stamp_ns: int) -> int:
        return min(self._stamps[sensor], key=lambda t: abs(t - stamp_ns))

    def _emit(self, chosen: dict[str, int], missing: list[str]) -> SyncedSet:
        members = {}
        for sensor, stamp in chosen.items():
            while self._stamps[sensor][0] < stamp:
                self._discard(sensor, self._stamps[sensor][0], 'unmatched')
            self._stamps[sensor].pop(0)
            members[sensor] = (stamp, self._payloads[sensor].pop(stamp)[0])
            self._last_emitted[sensor] = stamp
        reference = next(s for s in self.sensors if s in members)
        return SyncedSet(members[reference][0], members, missing)

    def _discard(self, sensor: str, stamp_ns: int, reason: str) -> None:
        self._stamps[sensor].remove(stamp_ns)
        del self._payloads[sensor][stamp_ns]
        self.dropped[reason] += 1
