"""Ego token: speed, yaw rate and an acceleration estimate from odometry history."""

import bisect
from collections import deque

import numpy as np
import torch
from torch import nn

from stack_common.odometry import EgoState

EGO_FEATURES = 3  # speed (m/s), yaw rate (rad/s), longitudinal acceleration (m/s^2)
_SCALE = np.array([1 / 10.0, 1.0, 1 / 3.0], np.float32)


class EgoHistory:
    """Recent odometry, looked up by stamp; the acceleration is a finite difference over ~0.5 s."""

    def __init__(self, horizon_ns: int = 2_000_000_000, accel_window_ns: int = 500_000_000):
        self.horizon_ns, self.accel_window_ns = horizon_ns, accel_window_ns
        self._states: deque[EgoState] = deque()

    def reset(self) -> None:
        self._states.clear()

    def add(self, state: EgoState) -> None:
        if self._states and state.stamp_ns <= self._states[-1].stamp_ns:
            if state.stamp_ns < self._states[-1].stamp_ns - self.horizon_ns:
                self.reset()  # time went back (bag loop, simulator reset)
            else:
                return
        self._states.append(state)
        while self._states[0].stamp_ns < state.stamp_ns - self.horizon_ns:
            self._states.popleft()

    def at(self, stamp_ns: int) -> EgoState | None:
        """The latest state at or before ``stamp_ns`` (else the earliest one), None without odometry."""
        if not self._states:
            return None
        stamps = [s.stamp_ns for s in self._states]
        index = max(bisect.bisect_right(stamps, stamp_ns) - 1, 0)
        return self._states[index]

    def features(self, stamp_ns: int) -> np.ndarray | None:
        """Scaled ``(EGO_FEATURES,)`` ego features at ``stamp_ns``."""
        state = self.at(stamp_ns)
        if state is None:
            return None
        before = self.at(state.stamp_ns - self.accel_window_ns)
        dt = (state.stamp_ns - before.stamp_ns) / 1e9
        accel = (state.speed - before.speed) / dt if dt > 0 else 0.0
        return np.array([state.speed, state.yaw_rate, accel], np.float32) * _SCALE


class EgoEncoder(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.projection = nn.Sequential(nn.Linear(EGO_FEATURES, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.projection(features)[:, None, :]   # (B, 1, D)
