"""Trajectory tracking: pure pursuit for steering, PID for speed. Plain numpy, no ROS, no simulator.

Owns: turning the newest planned trajectory (poses in ``base_link`` at its stamp, pose ``i`` due at
``stamp + t_s[i]``) into a steering angle and an acceleration for a kinematic bicycle, given where the
vehicle was at the trajectory's stamp and where it is now (so a plan that is a few cycles old is still
followed from the right place). Real-vehicle users use it as is with their wheelbase and the position of
their odometry reference point; the sim bridge maps its output to highway-env's normalised action.
Does not own: actuator limits beyond the configured clamps, the vehicle interface, the trajectory message.

Steering: the lookahead point is where the path crosses a circle of radius ``d = max(lookahead_min_m,
lookahead_time_s * speed)`` around the vehicle (the path's last segment extended when it is shorter). On a
kinematic bicycle whose reference point lies ``a = rear_axle_to_reference_m`` ahead of the rear axle, that
point moves at the slip angle ``beta`` to the heading, ``sin(beta) = a * k`` for path curvature ``k``, so the
arc to the lookahead point (bearing ``alpha``) is tangent to that direction: ``k = 2 sin(alpha - beta) / d``,
solved exactly by ``tan(beta) = c sin(alpha) / (1 + c cos(alpha))`` with ``c = 2 a / d``; the steering angle
is ``atan(wheelbase * k / cos(beta))``. ``a = 0`` (the usual rear-axle reference) is plain pure pursuit,
``k = 2 y / d^2``.
Speed: the reference is the plan's own speed ``speed_preview_s`` ahead, its slope the feed-forward
acceleration, and a PID with a clamped integral corrects the rest. It never commands reversing.
"""

import math
from dataclasses import dataclass

import numpy as np

from stack_common.trajectory import Trajectory


@dataclass(frozen=True)
class ControllerConfig:
    wheelbase_m: float = 5.0
    rear_axle_to_reference_m: float = 2.5   # highway-env: odometry is the vehicle's centre
    lookahead_min_m: float = 6.0
    lookahead_time_s: float = 0.8
    speed_preview_s: float = 0.3
    kp: float = 1.0            # (m/s^2) per (m/s)
    ki: float = 0.1            # (m/s^2) per (m)
    kd: float = 0.0            # (m/s^2) per (m/s^2)
    integral_limit_m: float = 5.0
    max_accel_mps2: float = 5.0
    max_decel_mps2: float = 5.0
    max_steering_rad: float = math.pi / 4

    @classmethod
    def from_params(cls, params: dict) -> 'ControllerConfig':
        return cls(**{name: float(value) for name, value in params.items()})


@dataclass(frozen=True)
class Pose2D:
    x: float
    y: float
    yaw: float


@dataclass
class ControlCommand:
    steering_rad: float
    acceleration_mps2: float
    target_speed_mps: float
    lookahead_base_link: tuple[float, float]   # the pursued point, in the current base_link


def relative_pose(reference: Pose2D, pose: Pose2D) -> Pose2D:
    """``pose`` expressed in the frame of ``reference`` (both in the same parent frame)."""
    c, s = math.cos(reference.yaw), math.sin(reference.yaw)
    dx, dy = pose.x - reference.x, pose.y - reference.y
    return Pose2D(c * dx + s * dy, -s * dx + c * dy, math.atan2(math.sin(pose.yaw - reference.yaw),
                                                                  math.cos(pose.yaw - reference.yaw)))


def transform_points(points_xy: np.ndarray, from_frame_in_to: Pose2D) -> np.ndarray:
    """Points given in a frame whose pose in the target frame is ``from_frame_in_to``, in the target frame."""
    c, s = math.cos(from_frame_in_to.yaw), math.sin(from_frame_in_to.yaw)
    rotation = np.array([[c, -s], [s, c]])
    return points_xy @ rotation.T + np.array([from_frame_in_to.x, from_frame_in_to.y])


def path_in_current_frame(trajectory: Trajectory, pose_at_stamp: Pose2D, pose_now: Pose2D) -> tuple[np.ndarray,
                                                                                                  np.ndarray]:
    """``(t_s, xy)`` of the plan in the current base_link, starting with the pose it was planned from (t=0)."""
    t_s = np.concatenate([[0.0], np.asarray(trajectory.t_s, dtype=float)])
    xy = np.concatenate([[[0.0, 0.0]], np.asarray(trajectory.xy, dtype=float).reshape(-1, 2)])
    stamp_in_now = relative_pose(pose_now, pose_at_stamp)
    return t_s, transform_points(xy, stamp_in_now)


def plan_speeds(t_s: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Speed of each segment of the plan (m/s); a plan standing still has zero speed."""
    dt = np.diff(t_s)
    return np.linalg.norm(np.diff(xy, axis=0), axis=1) / np.where(dt > 0, dt, np.inf)


def lookahead_point(xy: np.ndarray, distance_m: float) -> np.ndarray:
    """The first point ahead of the closest path point at ``distance_m`` from the origin (the vehicle)."""
    ranges = np.linalg.norm(xy, axis=1)
    start = int(np.argmin(ranges))
    for i in range(start, len(xy) - 1):
        a, b = xy[i], xy[i + 1]
        if np.linalg.norm(b) < distance_m:
            continue
        # Solve |a + u (b - a)| = distance for u in [0, 1]: the far crossing of this segment.
        d = b - a
        qa, qb, qc = d @ d, 2 * a @ d, a @ a - distance_m ** 2
        if qa <= 1e-12:
            return b.copy()
        u = (-qb + math.sqrt(max(qb * qb - 4 * qa * qc, 0.0))) / (2 * qa)
        return a + min(max(u, 0.0), 1.0) * d
    # The path ends inside the circle: extend its last direction (or the vehicle's heading) to reach it.
    end = xy[-1]
    direction = xy[-1] - xy[-2] if len(xy) >= 2 and np.linalg.norm(xy[-1] - xy[-2]) > 1e-6 else np.array([1.0, 0.0])
    direction = direction / np.linalg.norm(direction)
    qb, qc = 2 * end @ direction, end @ end - distance_m ** 2
    u = (-qb + math.sqrt(max(qb * qb - 4 * qc, 0.0))) / 2
    return end + max(u, 0.0) * direction


MAX_SLIP_RAD = math.asin(0.99)


class TrajectoryController:
    def __init__(self, config: ControllerConfig = ControllerConfig()):
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget the integral and the last error (a new episode, or the stack gets the wheel back)."""
        self._integral_m = 0.0
        self._last_error: float | None = None

    def steering_towards(self, target: np.ndarray) -> float:
        """The steering angle that takes the reference point along an arc through ``target`` (base_link)."""
        cfg = self.config
        distance = max(math.hypot(target[0], target[1]), 1e-3)
        bearing = math.atan2(target[1], target[0])
        c = 2.0 * cfg.rear_axle_to_reference_m / distance
        beta = max(min(math.atan2(c * math.sin(bearing), 1.0 + c * math.cos(bearing)), MAX_SLIP_RAD), -MAX_SLIP_RAD)
        curvature_per_m = 2.0 * math.sin(bearing - beta) / distance
        steering = math.atan(cfg.wheelbase_m * curvature_per_m / math.cos(beta))
        return max(min(steering, cfg.max_steering_rad), -cfg.max_steering_rad)

    def command(self, trajectory: Trajectory, pose_at_stamp: Pose2D, pose_now: Pose2D, elapsed_s: float,
                speed_mps: float, dt_s: float) -> ControlCommand:
        """The command for now; ``elapsed_s`` is now - the trajectory's stamp, ``dt_s`` the control period."""
        cfg = self.config
        t_s, xy = path_in_current_frame(trajectory, pose_at_stamp, pose_now)

        lookahead_m = max(cfg.lookahead_min_m, cfg.lookahead_time_s * max(speed_mps, 0.0))
        target = lookahead_point(xy, lookahead_m)
        steering = self.steering_towards(target)

        speeds = plan_speeds(t_s, xy)
        mid_times = 0.5 * (t_s[:-1] + t_s[1:])
        preview_t = elapsed_s + cfg.speed_preview_s
        target_speed = float(np.interp(preview_t, mid_times, speeds)) if len(speeds) else 0.0
        feed_forward = float(np.interp(preview_t, mid_times[1:], np.diff(speeds) / np.diff(mid_times))) \
            if len(speeds) >= 2 else 0.0

        error = target_speed - speed_mps
        derivative = 0.0 if self._last_error is None or dt_s <= 0 else (error - self._last_error) / dt_s
        self._last_error = error
        unclamped = feed_forward + cfg.kp * error + cfg.ki * self._integral_m + cfg.kd * derivative
        acceleration = min(max(unclamped, -cfg.max_decel_mps2), cfg.max_accel_mps2)
        if acceleration == unclamped:   # no windup while saturated
            limit = cfg.integral_limit_m
            self._integral_m = min(max(self._integral_m + error * dt_s, -limit), limit)
        if dt_s > 0 and speed_mps + acceleration * dt_s < 0.0:   # stop, never reverse
            acceleration = -max(speed_mps, 0.0) / dt_s
        return ControlCommand(steering, acceleration, target_speed, (float(target[0]), float(target[1])))
