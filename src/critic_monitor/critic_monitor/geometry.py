"""Plane geometry of the critic: 2-D poses, the ego's recent pose history, plans as timed polylines.

Metres, radians and integer nanoseconds, in numpy; no ROS. By the trajectory
contract a plan is expressed in ``base_link`` at its stamp, so its implicit
start is the origin at t = 0: :class:`PlanPath` makes that start explicit,
which is what lets the checks see the first 0.5 s of motion.
"""

import bisect
import math
from dataclasses import dataclass

import numpy as np
import transforms3d

from stack_common.constants import NS_PER_S
from stack_common.odometry import EgoState
from stack_common.trajectory import Trajectory

# A plan whose first waypoint is this close to its stamp already contains its start.
START_EPS_S = 1e-3
# Odometry stamps that go back by more than this are a new drive (bag loop, simulator reset).
STAMP_JUMP_BACK_NS = NS_PER_S
POSE_JUMP_M = 2.0   # odometry moving this much farther than its speed allows jumped (a new episode, relocalised)


def wrap_angle(angle):
    """Angles to [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


def rotation_from_rpy(rotation_rpy_rad) -> np.ndarray:
    """Sensor orientation from roll, pitch, yaw (static x-y-z axes, as the perception config uses)."""
    return transforms3d.euler.euler2mat(*rotation_rpy_rad, axes='sxyz')


@dataclass(frozen=True)
class Pose2D:
    """A frame in the plane: origin (x, y) and heading yaw, relative to some parent frame."""
    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0

    def compose(self, other: 'Pose2D') -> 'Pose2D':
        """``other`` (given in this frame) expressed in this frame's parent."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return Pose2D(self.x + c * other.x - s * other.y, self.y + s * other.x + c * other.y,
                      float(wrap_angle(self.yaw + other.yaw)))

    def inverse(self) -> 'Pose2D':
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return Pose2D(-c * self.x - s * self.y, s * self.x - c * self.y, -self.yaw)

    def apply(self, xy: np.ndarray) -> np.ndarray:
        """Points given in this frame, expressed in the parent frame (keeps float32 float32)."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        rotation = np.array([[c, s], [-s, c]], dtype=xy.dtype)  # transposed: row vectors
        return xy @ rotation + np.array([self.x, self.y], dtype=xy.dtype)

    @property
    def is_identity(self) -> bool:
        return self.x == 0.0 and self.y == 0.0 and self.yaw == 0.0


class PoseHistory:
    """The ego's recent odometry poses by stamp: where it was at a time and how it moved between two.

    Interpolates between odometry messages and extrapolates with the last
    twist for at most ``max_extrapolation_s`` beyond them (a cloud or a receipt
    time is usually a few ms newer than the latest odometry).
    """

    def __init__(self, horizon_s: float = 10.0, max_extrapolation_s: float = 0.5):
        self.horizon_ns = int(horizon_s * NS_PER_S)
        self.max_extrapolation_ns = int(max_extrapolation_s * NS_PER_S)
        self.clear()

    def clear(self) -> None:
        self._stamps: list[int] = []
        self._states: list[EgoState] = []

    def __len__(self) -> int:
        return len(self._stamps)

    @property
    def latest(self) -> EgoState | None:
        return self._states[-1] if self._states else None

    def jumps(self, state: EgoState) -> bool:
        """Whether ``state`` lies farther from the latest pose than its speed allows in the time between
        (plus ``POSE_JUMP_M``): a relocalisation, or the simulator starting a new episode."""
        latest = self.latest
        if latest is None or state.stamp_ns <= latest.stamp_ns:
            return False
        reach = max(abs(latest.speed), abs(state.speed)) * (state.stamp_ns - latest.stamp_ns) / NS_PER_S
        return math.hypot(state.x - latest.x, state.y - latest.y) > reach + POSE_JUMP_M

    def add(self, state: EgoState) -> None:
        if self._stamps and state.stamp_ns < self._stamps[-1] - STAMP_JUMP_BACK_NS:
            self.clear()
        if self._stamps and state.stamp_ns <= self._stamps[-1]:
            if state.stamp_ns < self._stamps[-1]:
                return  # out of order by a little: keep the history monotonic
            self._states[-1] = state
            return
        self._stamps.append(state.stamp_ns)
        self._states.append(state)
        cut = bisect.bisect_left(self._stamps, state.stamp_ns - self.horizon_ns)
        if cut > 0:
            del self._stamps[:cut], self._states[:cut]

    def pose_at(self, stamp_ns: int) -> Pose2D | None:
        """The ego pose in the odometry frame at ``stamp_ns``; None when it is too far outside the history."""
        if not self._stamps:
            return None
        i = bisect.bisect_left(self._stamps, stamp_ns)
        if i < len(self._stamps) and self._stamps[i] == stamp_ns:
            state = self._states[i]
            return Pose2D(state.x, state.y, state.yaw)
        if 0 < i < len(self._stamps):
            a, b = self._states[i - 1], self._states[i]
            f = (stamp_ns - a.stamp_ns) / (b.stamp_ns - a.stamp_ns)
            yaw = a.yaw + f * float(wrap_angle(b.yaw - a.yaw))
            return Pose2D(a.x + f * (b.x - a.x), a.y + f * (b.y - a.y), float(wrap_angle(yaw)))
        state = self._states[0] if i == 0 else self._states[-1]
        dt_ns = stamp_ns - state.stamp_ns
        if abs(dt_ns) > self.max_extrapolation_ns:
            return None
        dt = dt_ns / NS_PER_S
        # Constant twist in base_link over a short interval (straight-line approximation).
        c, s = math.cos(state.yaw), math.sin(state.yaw)
        forward, left = state.speed * dt, state.lateral_speed * dt
        return Pose2D(state.x + c * forward - s * left, state.y + s * forward + c * left,
                      float(wrap_angle(state.yaw + state.yaw_rate * dt)))

    def motion(self, from_ns: int, to_ns: int) -> Pose2D | None:
        """Where ``base_link`` at ``to_ns`` is, seen from ``base_link`` at ``from_ns``.

        Its :meth:`Pose2D.apply` moves points from the frame at ``to_ns`` into
        the frame at ``from_ns``. None without odometry covering both times.
        """
        if from_ns == to_ns:
            return Pose2D()
        start, end = self.pose_at(from_ns), self.pose_at(to_ns)
        if start is None or end is None:
            return None
        return start.inverse().compose(end)


@dataclass
class PlanPath:
    """A plan as a timed polyline from its start: ``t_s``, ``xy``, ``heading`` (unwrapped), arc length ``s``."""
    t_s: np.ndarray
    xy: np.ndarray
    heading: np.ndarray
    s: np.ndarray

    @classmethod
    def from_trajectory(cls, trajectory: Trajectory) -> 'PlanPath':
        """The plan from the contract's start: the origin at t = 0, heading 0, prepended."""
        t_s = np.asarray(trajectory.t_s, float)
        xy = np.asarray(trajectory.xy, float).reshape(-1, 2)
        heading = np.asarray(trajectory.heading, float)
        if len(t_s) and t_s[0] > START_EPS_S:
            t_s = np.concatenate([[0.0], t_s])
            xy = np.concatenate([[np.zeros(2)], xy])
            heading = np.concatenate([[0.0], heading])
        return cls.from_points(t_s, xy, heading)

    @classmethod
    def from_points(cls, t_s: np.ndarray, xy: np.ndarray, heading: np.ndarray) -> 'PlanPath':
        heading = np.unwrap(heading)
        s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
        return cls(t_s, xy, heading, s)

    def __len__(self) -> int:
        return len(self.t_s)

    @property
    def length_m(self) -> float:
        return float(self.s[-1])

    @property
    def duration_s(self) -> float:
        return float(self.t_s[-1])

    def at_time(self, t_s) -> tuple[np.ndarray, np.ndarray]:
        """Positions ``(n, 2)`` and headings ``(n,)`` at plan times ``t_s`` (held at the ends)."""
        t_s = np.atleast_1d(np.asarray(t_s, float))
        xy = np.stack([np.interp(t_s, self.t_s, self.xy[:, 0]), np.interp(t_s, self.t_s, self.xy[:, 1])], axis=-1)
        return xy, np.interp(t_s, self.t_s, self.heading)

    def arc_length_at_time(self, t_s: float) -> float:
        return float(np.interp(t_s, self.t_s, self.s))

    def speed_at_time(self, t_s: float) -> float:
        """Speed of the segment the plan is on at ``t_s`` (the first or last segment outside)."""
        i = int(np.clip(np.searchsorted(self.t_s, t_s, side='right') - 1, 0, len(self.t_s) - 2))
        return float((self.s[i + 1] - self.s[i]) / (self.t_s[i + 1] - self.t_s[i]))
