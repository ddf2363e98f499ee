"""Ego token: speed, yaw rate and an acceleration estimate from odometry history.

:class:`EgoHistory` (no torch) keeps recent odometry and gives the scaled
``(EGO_FEATURES,)`` features at a sensor set's stamp; :class:`EgoEncoder`
(torch) turns a batch of them into one token each, whose first
``EGO_FEATURES`` channels are the scaled features themselves (the token
contract, :data:`stack_common.tokens.EGO_STATE_SCALE`): the planner reads
the measured state there, not through a normalised embedding.
"""

import bisect
from collections import deque

import numpy as np
import torch
from torch import nn

from stack_common.odometry import EgoState
from stack_common.tokens import EGO_STATE_FEATURES, EGO_STATE_SCALE

EGO_FEATURES = EGO_STATE_FEATURES  # speed (m/s), yaw rate (rad/s), longitudinal acceleration (m/s^2)
# brings city-driving magnitudes to about unit scale: 10 m/s, 1 rad/s, 3 m/s^2
EGO_FEATURE_SCALE = (1.0 / np.array(EGO_STATE_SCALE)).astype(np.float32)


class EgoHistory:
    """Recent odometry, looked up by stamp; the acceleration is a finite difference over ``accel_window``."""

    def __init__(self, horizon_ns: int = 2_000_000_000, accel_window_ns: int = 500_000_000,
                 max_age_ns: int = 500_000_000, time_jump_ns: int = 1_000_000_000):
        self.horizon_ns, self.accel_window_ns = horizon_ns, accel_window_ns
        self.max_age_ns, self.time_jump_ns = max_age_ns, time_jump_ns
        self._states: deque[EgoState] = deque()
        self._stamps: deque[int] = deque()

    def reset(self) -> None:
        self._states.clear()
        self._stamps.clear()

    def __len__(self) -> int:
        return len(self._states)

    def add(self, state: EgoState) -> str | None:
        """Keep ``state``; returns why it was not kept ('duplicate_stamp', 'out_of_order', 'non_finite')."""
        values = (state.speed, state.yaw_rate)
        if not all(np.isfinite(values)):
            return 'non_finite'
        if self._stamps and state.stamp_ns <= self._stamps[-1]:
            if state.stamp_ns < self._stamps[-1] - self.time_jump_ns:
                self.reset()  # time went back (bag loop, simulator reset)
            elif state.stamp_ns == self._stamps[-1]:
                return 'duplicate_stamp'
            else:
                return 'out_of_order'
        self._states.append(state)
        self._stamps.append(state.stamp_ns)
        while self._stamps[0] < state.stamp_ns - self.horizon_ns:
            self._states.popleft()
            self._stamps.popleft()
        return None

    def at(self, stamp_ns: int) -> EgoState | None:
        """The state closest to ``stamp_ns`` and at most ``max_age`` from it, else None."""
        if not self._states:
            return None
        index = bisect.bisect_left(self._stamps, stamp_ns)
        candidates = [i for i in (index - 1, index) if 0 <= i < len(self._stamps)]
        best = min(candidates, key=lambda i: abs(self._stamps[i] - stamp_ns))
        if abs(self._stamps[best] - stamp_ns) > self.max_age_ns:
            return None
        return self._states[best]

    def features(self, stamp_ns: int) -> np.ndarray | None:
        """Scaled ``(EGO_FEATURES,) float32`` ego features at ``stamp_ns``; None without recent odometry."""
        state = self.at(stamp_ns)
        if state is None:
            return None
        index = max(bisect.bisect_right(self._stamps, state.stamp_ns - self.accel_window_ns) - 1, 0)
        before = self._states[index]
        dt_s = (state.stamp_ns - before.stamp_ns) / 1e9
        accel = (state.speed - before.speed) / dt_s if dt_s > 0 else 0.0
        return np.array([state.speed, state.yaw_rate, accel], np.float32) * EGO_FEATURE_SCALE


class EgoEncoder(nn.Module):
    """``(B, EGO_FEATURES)`` -> ``(B, 1, D)``: the features themselves, then ``D - EGO_FEATURES`` learned channels."""

    def __init__(self, dim: int):
        super().__init__()
        learned = dim - EGO_FEATURES
        self.projection = nn.Sequential(nn.Linear(EGO_FEATURES, learned), nn.GELU(), nn.Linear(learned, learned))
        self.norm = nn.LayerNorm(learned)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.cat([features, self.norm(self.projection(features))], dim=-1)[:, None, :]
