"""Training targets computed from a log, as a rule-based planner would score plans.

* driver: the ego's logged future poses in ``base_link`` at the frame's stamp;
* critic: per candidate trajectory, a collision risk (clearance of the vehicle
  footprint to obstacle points seen by the lidar and to the logged future
  positions of other traffic), progress (path length relative to the
  logged ego's) and comfort (accelerations and jerk within limits), in the
  spirit of PDM-style rule-based scores;
* baselines and metrics: constant velocity, ADE/FDE at a horizon.

Numpy for what is computed once per frame, torch for what is scored against
the model's own predictions during training.
"""

from dataclasses import dataclass

import numpy as np
import torch

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class CriticLimits:
    """Thresholds of the rule-based scores (the planner's critic learns to predict them)."""

    footprint_radius_m: float = 1.3       # a car as a disc around each waypoint (half width + margin)
    clearance_safe_m: float = 3.0         # clearance at which the risk reaches 0
    max_lon_accel_mps2: float = 4.0
    max_lat_accel_mps2: float = 4.0
    max_jerk_mps3: float = 8.0


def future_poses(track_t_s: np.ndarray, track_xy: np.ndarray, track_yaw: np.ndarray, stamp_s: float,
                 t_s: np.ndarray) -> np.ndarray | None:
    """Logged poses at ``stamp + t_s`` in ``base_link`` at ``stamp``: ``(T, 3)`` x, y, heading; None past the log."""
    if stamp_s < track_t_s[0] or stamp_s + t_s[-1] > track_t_s[-1]:
        return None
    yaw = np.unwrap(track_yaw)
    times = np.concatenate([[stamp_s], stamp_s + t_s])
    x, y = np.interp(times, track_t_s, track_xy[:, 0]), np.interp(times, track_t_s, track_xy[:, 1])
    heading = np.interp(times, track_t_s, yaw)
    cos, sin = np.cos(heading[0]), np.sin(heading[0])
    dx, dy = x[1:] - x[0], y[1:] - y[0]
    return np.stack([cos * dx + sin * dy, -sin * dx + cos * dy, heading[1:] - heading[0]], axis=1)


def constant_velocity(speed_mps: float, t_s: np.ndarray) -> np.ndarray:
    """The constant-velocity baseline in ``base_link``: straight ahead at the current speed."""
    return np.stack([speed_mps * t_s, np.zeros_like(t_s), np.zeros_like(t_s)], axis=1)


def displacement_errors(predicted: np.ndarray, truth: np.ndarray, t_s: np.ndarray,
                        horizon_s: float) -> tuple[float, float]:
    """(ADE, FDE) in metres over the waypoints up to ``horizon_s``."""
    upto = t_s <= horizon_s + 1e-9
    errors = np.linalg.norm(predicted[..., upto, :2] - truth[..., upto, :2], axis=-1)
    return float(errors.mean()), float(errors[..., -1].mean())


def critic_targets(modes: torch.Tensor, expert: torch.Tensor, obstacles: torch.Tensor, obstacle_mask: torch.Tensor,
                   traffic: torch.Tensor, traffic_mask: torch.Tensor, dt_s: float,
                   limits: CriticLimits = CriticLimits()) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rule-based (collision risk, progress, comfort) in [0, 1] for every candidate mode.

    modes (B, K, T, 3) and expert (B, T, 3) in base_link; obstacles (B, P, 2) static points with mask (B, P);
    traffic (B, V, T, 2) other vehicles at the waypoint times with mask (B, V, T).
    """
    xy = modes[..., :2]
    static = torch.cdist(xy.flatten(1, 2), obstacles).view(*xy.shape[:3], -1)            # (B, K, T, P)
    static = static.masked_fill(~obstacle_mask[:, None, None, :], float('inf')).amin(-1)
    moving = (xy[:, :, None] - traffic[:, None]).norm(dim=-1)                              # (B, K, V, T)
    moving = moving.masked_fill(~traffic_mask[:, None], float('inf')).amin(2)
    clearance = (torch.minimum(static, moving).amin(-1) - limits.footprint_radius_m).clamp(min=0)
    risk = (1 - clearance / limits.clearance_safe_m).clamp(0, 1)

    def path_length(points):
        steps = torch.diff(points, dim=-2, prepend=torch.zeros_like(points[..., :1, :]))
        return steps.norm(dim=-1).sum(-1)
    progress = (path_length(xy) / path_length(expert[..., :2])[:, None].clamp(min=1.0)).clamp(0, 1)

    origin = torch.zeros_like(xy[..., :1, :])
    velocity = torch.diff(xy, dim=-2, prepend=origin) / dt_s
    accel = torch.diff(velocity, dim=-2) / dt_s
    jerk = torch.diff(accel, dim=-2) / dt_s
    heading = torch.atan2(velocity[..., 1], velocity[..., 0].clamp(min=1e-3))
    tangent = torch.stack([heading.cos(), heading.sin()], -1)[..., 1:, :]
    lon = (accel * tangent).sum(-1).abs() / limits.max_lon_accel_mps2
    lat = (accel[..., 0] * tangent[..., 1] - accel[..., 1] * tangent[..., 0]).abs() / limits.max_lat_accel_mps2
    excess = torch.cat([lon, lat, jerk.norm(dim=-1) / limits.max_jerk_mps3], -1)
    comfort = (1 - (excess - 1).clamp(min=0)).clamp(0, 1).amin(-1)
    return risk, progress, comfort
