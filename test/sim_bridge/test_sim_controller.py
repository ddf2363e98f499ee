"""The trajectory controller (pure pursuit + PID) tracks reference paths: a pure core test, no simulator.

The plant is a kinematic bicycle with its reference point at the centre (as highway-env's vehicles), stepped
at 100 Hz while the controller runs at 10 Hz on plans made every cycle like the planner's: the next 4 s of the
reference, 8 poses 0.5 s apart, in base_link at the plan's stamp, delivered one cycle late.
The error is the plant's own distance from the reference path (not the controller's estimate). Tolerances,
after 3 s of settling: 0.08 m on the straight from a 1 m offset start (measured 0.051 m, still converging at
3 s) and 0.12 m on a 60 m radius curve (measured 0.083 m, 0.059 m steady: the 8-pose plan's chords cut the
curve), speed within 0.5 m/s of the reference. A controller that takes its arc tangent to the heading, not to
the reference point's direction of travel, runs 0.56 m inside that curve.
"""

import math

import numpy as np
import pytest

from sim_bridge.controller import ControllerConfig, Pose2D, TrajectoryController, lookahead_point, relative_pose
from stack_common.trajectory import Trajectory

CONTROL_DT_S = 0.1
PLANT_SUBSTEPS = 10
WHEELBASE_M = 5.0


class CentreBicycle:
    """x, y, yaw of the vehicle centre; beta = atan(tan(steering) / 2) as in highway-env's Vehicle."""

    def __init__(self, x: float, y: float, yaw: float, speed: float):
        self.x, self.y, self.yaw, self.speed = x, y, yaw, speed

    def step(self, steering: float, acceleration: float, dt: float) -> None:
        beta = math.atan(0.5 * math.tan(steering))
        self.x += self.speed * math.cos(self.yaw + beta) * dt
        self.y += self.speed * math.sin(self.yaw + beta) * dt
        self.yaw += self.speed * math.sin(beta) / (WHEELBASE_M / 2) * dt
        self.speed += acceleration * dt

    @property
    def pose(self) -> Pose2D:
        return Pose2D(self.x, self.y, self.yaw)


RADIUS_M = 60.0


def straight_reference(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([s, np.zeros_like(s)], axis=1), np.zeros_like(s)


def straight_offset(vehicle: CentreBicycle) -> float:
    return abs(vehicle.y)


def circle_reference(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    angle = s / RADIUS_M   # a left turn starting at the origin heading +x, around (0, RADIUS_M)
    return np.stack([RADIUS_M * np.sin(angle), RADIUS_M * (1 - np.cos(angle))], axis=1), angle


def circle_offset(vehicle: CentreBicycle) -> float:
    return abs(math.hypot(vehicle.x, vehicle.y - RADIUS_M) - RADIUS_M)


def plan_from(reference, arc_m: float, speed_mps: float, pose: Pose2D, stamp_ns: int) -> Trajectory:
    """The next 4 s of the reference from arc length ``arc_m``, in base_link at ``pose``."""
    t_s = 0.5 * np.arange(1, 9)
    xy, heading = reference(arc_m + speed_mps * t_s)
    c, s = math.cos(pose.yaw), math.sin(pose.yaw)
    local = (xy - [pose.x, pose.y]) @ np.array([[c, -s], [s, c]])
    return Trajectory(stamp_ns, 'base_link', t_s, local, heading - pose.yaw)


def closest_arc(reference, pose: Pose2D, guess_m: float) -> float:
    candidates = guess_m + np.linspace(-5.0, 10.0, 1501)
    xy, _ = reference(candidates)
    return float(candidates[np.argmin(np.hypot(xy[:, 0] - pose.x, xy[:, 1] - pose.y))])


def track(reference, offset, speed_mps: float, start: CentreBicycle, duration_s: float = 15.0):
    """The vehicle's distance from the reference path (``offset`` of the plant) and its speed error, from 3 s on."""
    controller = TrajectoryController(ControllerConfig(wheelbase_m=WHEELBASE_M, rear_axle_to_reference_m=2.5))
    vehicle, arc_m = start, 0.0
    pending, errors, speed_errors = None, [], []
    for step in range(int(duration_s / CONTROL_DT_S)):
        now_ns = step * 100_000_000
        arc_m = closest_arc(reference, vehicle.pose, arc_m)
        plan = plan_from(reference, arc_m, speed_mps, vehicle.pose, now_ns)
        if pending is not None:   # a plan arrives one control cycle after its stamp
            trajectory, pose_at_stamp = pending
            command = controller.command(trajectory, pose_at_stamp, vehicle.pose,
                                         (now_ns - trajectory.stamp_ns) / 1e9, vehicle.speed, CONTROL_DT_S)
            if step * CONTROL_DT_S >= 3.0:
                errors.append(offset(vehicle))
                speed_errors.append(abs(vehicle.speed - speed_mps))
        else:
            command = None
        pending = (plan, vehicle.pose)
        for _ in range(PLANT_SUBSTEPS):
            vehicle.step(command.steering_rad if command else 0.0,
                         command.acceleration_mps2 if command else 0.0, CONTROL_DT_S / PLANT_SUBSTEPS)
    return np.array(errors), np.array(speed_errors)


def test_tracks_a_straight_path_from_an_offset_start_within_8_cm():
    errors, speed_errors = track(straight_reference, straight_offset, 20.0,
                                 CentreBicycle(0.0, 1.0, math.radians(3), 16.0))
    assert errors.max() <= 0.08, f'the vehicle was {errors.max():.3f} m off the path'
    assert speed_errors.max() <= 0.5, f'max speed error {speed_errors.max():.2f} m/s'


def test_tracks_a_60_m_radius_curve_within_12_cm():
    errors, speed_errors = track(circle_reference, circle_offset, 15.0, CentreBicycle(0.0, -0.5, 0.0, 15.0))
    assert errors.max() <= 0.12, f'the vehicle was {errors.max():.3f} m off the path'
    assert speed_errors.max() <= 0.5, f'max speed error {speed_errors.max():.2f} m/s'


def test_a_plan_that_stops_brakes_to_standstill_without_reversing():
    controller = TrajectoryController()
    vehicle = CentreBicycle(0.0, 0.0, 0.0, 10.0)
    speeds = []
    for step in range(100):
        pose = vehicle.pose
        plan = Trajectory(step, 'base_link', 0.5 * np.arange(1, 9), np.zeros((8, 2)), np.zeros(8))
        command = controller.command(plan, pose, pose, 0.0, vehicle.speed, CONTROL_DT_S)
        vehicle.step(command.steering_rad, command.acceleration_mps2, CONTROL_DT_S)
        speeds.append(vehicle.speed)
    assert speeds[-1] == pytest.approx(0.0, abs=1e-6)
    assert min(speeds) >= -1e-9


def test_lookahead_point_lies_on_the_path_at_the_lookahead_distance():
    path = np.array([[0.0, 0.0], [5.0, 0.0], [10.0, 5.0]])
    point = lookahead_point(path, 7.0)
    assert np.linalg.norm(point) == pytest.approx(7.0)
    assert point[1] > 0 and point[0] > 5.0
    # A path shorter than the lookahead is extended along its last direction.
    assert lookahead_point(np.array([[0.0, 0.0], [1.0, 0.0]]), 6.0) == pytest.approx([6.0, 0.0])


def test_relative_pose_round_trips():
    reference = Pose2D(3.0, -2.0, 0.7)
    pose = Pose2D(5.0, 1.0, -0.4)
    local = relative_pose(reference, pose)
    c, s = math.cos(reference.yaw), math.sin(reference.yaw)
    assert reference.x + c * local.x - s * local.y == pytest.approx(pose.x)
    assert reference.y + s * local.x + c * local.y == pytest.approx(pose.y)
    assert local.yaw == pytest.approx(-1.1)
