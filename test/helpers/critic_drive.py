"""A critic core driven as the node drives it, for the critic's tests (and the frame tests that use it).

:class:`Drive` feeds a real :class:`CriticCore` odometry at 25 Hz, a 50 Hz timer and plans at receipt;
:func:`started` is one past start-up at a speed; :func:`profile_plan` makes plans from speed and curvature
profiles; :func:`box_points` a box's surface as lidar points.
"""

import copy

import numpy as np

from critic_monitor.monitor import CriticCore
from critic_monitor.state_machine import TakeoverState
from stack_common.config import load_schema, validate
from stack_common.odometry import EgoState
from stack_common.trajectory import Trajectory

S = 1_000_000_000
T0 = 1_000 * S
TICK_NS = S // 50
PLAN_LATENCY_NS = 50_000_000
CAMERA = '/sensors/camera/front/image_raw'


def critic_config(overrides: dict | None = None) -> dict:
    """The schema defaults with ``overrides`` merged in (nested dicts)."""
    config = validate(load_schema('critic_monitor', 'critic_node'), {}, 'critic_node')

    def merge(target, update):
        for key, value in update.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                merge(target[key], value)
            else:
                target[key] = copy.deepcopy(value)
    merge(config, overrides or {})
    return config


def profile_plan(stamp_ns: int, speed=lambda t: 8.0, curvature=lambda t: 0.0, points: int = 8,
                 dt_s: float = 0.5) -> Trajectory:
    """A plan from the origin in base_link: speed and curvature as functions of time, integrated finely."""
    step = 0.005
    x = y = heading = 0.0
    t_s = dt_s * np.arange(1, points + 1)
    samples, t = [], 0.0
    for end in t_s:
        while t < end - 1e-9:
            v = speed(t)
            x += v * np.cos(heading) * step
            y += v * np.sin(heading) * step
            heading += v * curvature(t) * step
            t += step
        samples.append((x, y, heading))
    samples = np.array(samples)
    return Trajectory(stamp_ns, 'base_link', t_s, samples[:, :2].copy(), samples[:, 2].copy())


class Drive:
    """A CriticCore watching an ego that drives straight along x at ``speed_mps``, all inputs alive."""

    def __init__(self, speed_mps: float = 8.0, config: dict | None = None, lidar=True, camera=True, odometry=True):
        self.config = critic_config(config)
        self.core = CriticCore(self.config, T0)
        self.speed_mps = speed_mps
        self.now = T0
        self.alive = {'lidar': lidar, 'camera': camera, 'odometry': odometry}
        self.cloud_xy = np.zeros((0, 3), np.float32)   # lidar points in base_link (the lidar is 1.8 m up)
        self.transitions = []
        self.lateral_m = 0.0   # where the ego is beside the x axis it drives along (a slide, a relocalisation)

    def ego(self, stamp_ns: int) -> EgoState:
        return EgoState(stamp_ns, self.speed_mps * (stamp_ns - T0) / S, self.lateral_m, 0.0, self.speed_mps)

    def run(self, seconds: float, plans_hz: float = 0.0, plan=None) -> list:
        """Advance time: odometry at 25 Hz, camera and lidar at 10 Hz, the timer at 50 Hz, plans if asked."""
        out = []
        end = self.now + int(seconds * S)
        plan_period = int(S / plans_hz) if plans_hz else 0
        while self.now < end:
            self.now += TICK_NS
            t = self.now - T0
            if self.alive['odometry'] and t % (2 * TICK_NS) == 0:
                self.core.on_odometry(self.ego(self.now), self.now)
            if t % (5 * TICK_NS) == 0:
                if self.alive['camera']:
                    for topic in self.config['camera_topics']:
                        self.core.on_input('camera', topic, self.now)
                if self.alive['lidar']:
                    out += self.core.on_lidar('top', self.lidar_points(), self.now, self.now)
            if plan_period and t % plan_period == 0:
                out += self.core.on_trajectory((plan or self.straight)(self.now - PLAN_LATENCY_NS), self.now)
            out += self.core.tick(self.now)
        self.transitions += out
        return out

    def lidar_points(self) -> np.ndarray:
        """The static obstacle points, seen from where the ego is now (lidar frame: 1.8 m above base_link)."""
        points = self.cloud_xy.copy()
        points[:, 0] -= self.speed_mps * (self.now - T0) / S
        points[:, 2] -= 1.8
        return points

    def straight(self, stamp_ns: int) -> Trajectory:
        return profile_plan(stamp_ns, speed=lambda t: self.speed_mps)

    def plan(self, trajectory: Trajectory, latency_ns: int = PLAN_LATENCY_NS) -> list:
        """Deliver ``trajectory`` now, stamped ``latency_ns`` ago."""
        trajectory.stamp_ns = self.now - latency_ns
        out = self.core.on_trajectory(trajectory, self.now)
        self.transitions += out
        return out

    def result(self, check: str):
        return next(r for r in self.core.results(self.now) if r.check == check)


def reasons_of(transitions, check: str):
    return [r for t in transitions for r in t.reasons if r.check == check]


def started(speed_mps: float = 8.0, **kwargs) -> Drive:
    drive = Drive(speed_mps, **kwargs)
    drive.run(1.5, plans_hz=10)   # start-up: every input heard, then the checks pass for nominal_hold_s
    assert drive.core.state == TakeoverState.NOMINAL, [t.describe() for t in drive.transitions]
    return drive


def with_nan(stamp_ns: int) -> Trajectory:
    plan = profile_plan(stamp_ns)
    plan.xy[2, 1] = np.nan
    return plan


def box_points(centre_x: float, centre_y: float, length_m=4.5, width_m=1.9, height_m=1.5, spacing_m=0.1):
    """A box's surface as lidar points in base_link (z up from the ground)."""
    xs = np.arange(-length_m / 2, length_m / 2 + 1e-6, spacing_m)
    ys = np.arange(-width_m / 2, width_m / 2 + 1e-6, spacing_m)
    zs = np.arange(0.0, height_m + 1e-6, spacing_m)
    faces = [np.array(np.meshgrid(xs, [y], zs)).reshape(3, -1).T for y in (ys[0], ys[-1])]
    faces += [np.array(np.meshgrid([x], ys, zs)).reshape(3, -1).T for x in (xs[0], xs[-1])]
    faces += [np.array(np.meshgrid(xs, ys, [height_m])).reshape(3, -1).T]
    points = np.concatenate(faces).astype(np.float32)
    points[:, 0] += centre_x
    points[:, 1] += centre_y
    return points
