"""Takeover statistics from odometry, and the critic's own reaction-time window.

:class:`TakeoverStatistics` integrates the distance and time driven from the
odometry track (since start and since the last takeover), counts takeovers per
reason and gives ``km_per_takeover``. A gap in odometry or a jump (bag loop,
simulator reset, teleport) is not counted as driving: the totals survive it,
the step across it is dropped.
"""

import math
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

from stack_common.constants import NS_PER_S
from stack_common.odometry import EgoState

# Consecutive odometry messages further apart than this are a gap, not a step.
MAX_STEP_GAP_S = 1.0
# A step implying more than this speed is a jump (reset, teleport), not driving.
MAX_PLAUSIBLE_SPEED_MPS = 100.0


@dataclass
class TakeoverInterval:
    stamp_ns: int
    distance_m: float   # driven since the previous takeover (or the start)
    time_s: float
    reasons: list[str]


class TakeoverStatistics:
    def __init__(self):
        self.distance_m = 0.0
        self.driven_s = 0.0
        self.since_takeover_m = 0.0
        self.since_takeover_s = 0.0
        self.per_reason: Counter[str] = Counter()
        self.intervals: list[TakeoverInterval] = []
        self.dropped_steps = 0
        self._previous: EgoState | None = None

    @property
    def takeovers(self) -> int:
        return len(self.intervals)

    def break_track(self) -> None:
        """The next odometry starts a new piece of track (after a time jump)."""
        self._previous = None

    def on_odometry(self, state: EgoState) -> None:
        previous, self._previous = self._previous, state
        if previous is None:
            return
        dt = (state.stamp_ns - previous.stamp_ns) / NS_PER_S
        if dt <= 0:
            if dt < 0:
                self.dropped_steps += 1
            return
        step = math.hypot(state.x - previous.x, state.y - previous.y)
        if dt > MAX_STEP_GAP_S or step > MAX_PLAUSIBLE_SPEED_MPS * dt:
            self.dropped_steps += 1
            return
        self.distance_m += step
        self.driven_s += dt
        self.since_takeover_m += step
        self.since_takeover_s += dt

    def record_takeover(self, stamp_ns: int, reasons: list[str]) -> None:
        self.intervals.append(TakeoverInterval(stamp_ns, self.since_takeover_m, self.since_takeover_s,
                                               list(reasons)))
        self.per_reason.update(set(reasons))
        self.since_takeover_m = self.since_takeover_s = 0.0

    @property
    def km_per_takeover(self) -> float | None:
        """Kilometres driven per takeover; None before the first takeover (the distance is a lower bound then)."""
        return self.distance_m / 1000 / self.takeovers if self.takeovers else None

    def summary(self) -> dict:
        return {
            'distance_m': round(self.distance_m, 3),
            'distance_km': round(self.distance_m / 1000, 6),
            'driven_s': round(self.driven_s, 3),
            'takeovers': self.takeovers,
            'km_per_takeover': None if self.km_per_takeover is None else round(self.km_per_takeover, 6),
            'takeovers_per_reason': dict(sorted(self.per_reason.items())),
            'since_last_takeover_m': round(self.since_takeover_m, 3),
            'since_last_takeover_s': round(self.since_takeover_s, 3),
            'between_takeovers': [{'stamp_ns': i.stamp_ns, 'distance_m': round(i.distance_m, 3),
                                   'time_s': round(i.time_s, 3), 'reasons': i.reasons} for i in self.intervals],
            'dropped_odometry_steps': self.dropped_steps,
        }


class LatencyWindow:
    """The last ``size`` durations in milliseconds, for p50/p99/max on /diagnostics."""

    def __init__(self, size: int = 1000):
        self.values: deque[float] = deque(maxlen=size)
        self.count = 0

    def add(self, ms: float) -> None:
        self.values.append(ms)
        self.count += 1

    def summary(self) -> dict:
        if not self.values:
            return {'count': 0}
        values = np.fromiter(self.values, float)
        return {'count': self.count, 'p50_ms': float(np.percentile(values, 50)),
                'p99_ms': float(np.percentile(values, 99)), 'max_ms': float(values.max())}
