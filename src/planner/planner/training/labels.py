"""Training targets measured from outcomes, as a rule-based planner would score plans.

* driver: the expert's plan from the frame's state (``/sim/expert_plan``, a rollout of the expert from
  exactly this state) where the log has it, else the ego's logged future poses;
* critic (scorer): for any candidate trajectory, the terms of :data:`planner.model.SCORE_TERMS`, measured
  against what happened around it (Hydra-MDP distils such rule-based metrics into its scorer heads):
  ``collision_free`` against the other vehicles' boxes at the same instants (their logged futures every
  0.1 s; contacts from a vehicle behind are not the candidate's fault) or, in logs without object tracks,
  against the lidar's obstacle points over the critic's collision horizon; ``on_road`` (every waypoint near a
  lane centre line); ``comfortable``, ``can_stop`` and ``consistent`` are the independent critic's own
  kinematic, stopping and trajectory-shift checks (``critic_monitor.checks``, numpy, with the critic
  configuration the stack runs), so the scorer learns exactly what the critic will say; ``progress`` is the
  candidate's path length against the expert's;
* baselines and metrics: constant velocity, ADE/FDE at a horizon.

All numpy: the candidates of a frame are scored once, when its cache record is written.
"""

from dataclasses import dataclass

import numpy as np

from critic_monitor.checks import check_kinematics, check_stopping, check_trajectory_shift
from critic_monitor.geometry import PlanPath, Pose2D
from planner.model import SCORE_TERMS
from stack_common.trajectory import Trajectory


@dataclass(frozen=True)
class OutcomeRules:
    """How outcomes are measured: the ego's box, contact and lane tolerances, and the critic's checks."""

    checks: dict                         # the critic's ``checks`` section (config/stack.yaml)
    vehicle_length_m: float = 4.8
    vehicle_width_m: float = 1.9
    fine_dt_s: float = 0.1               # contacts are checked this often between waypoints
    lane_half_width_m: float = 2.0
    off_road_margin_m: float = 0.75      # lane points are 2 m apart: a point beside a lane is up to 1 m farther

    @classmethod
    def from_critic(cls, critic: dict) -> 'OutcomeRules':
        """The rules of a ``critic_node`` configuration (so labels follow a site's own critic settings)."""
        vehicle = critic['vehicle']
        return cls(critic['checks'], float(vehicle['length_m']), float(vehicle['width_m']))

    def to_dict(self) -> dict:
        return {'checks': self.checks, 'vehicle_length_m': self.vehicle_length_m,
                'vehicle_width_m': self.vehicle_width_m, 'fine_dt_s': self.fine_dt_s,
                'lane_half_width_m': self.lane_half_width_m, 'off_road_margin_m': self.off_road_margin_m}


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


# --------------------------------------------------------------------------------------------- geometry


def with_origin(plans: np.ndarray) -> np.ndarray:
    """(..., T + 1, 3): the plan's implicit start (the ego at t = 0) prepended."""
    return np.concatenate([np.zeros_like(plans[..., :1, :]), plans], -2)


def at_time(plans: np.ndarray, t_s: np.ndarray, dt_s: float) -> np.ndarray:
    """(..., S, 3) poses of plans (..., T, 3) that start at the origin and step ``dt_s``, at times t_s (S,)."""
    path = with_origin(plans)
    position = np.clip(np.asarray(t_s) / dt_s, 0, path.shape[-2] - 1)
    low = np.minimum(np.floor(position).astype(int), path.shape[-2] - 2)
    u = (position - low)[:, None]
    return path[..., low, :] + (path[..., low + 1, :] - path[..., low, :]) * u


def _circles(xy: np.ndarray, heading: np.ndarray, length: np.ndarray, width: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Three discs covering a box (centre, heading, length, width): centres (..., 3, 2) and radius (...)."""
    offset = np.maximum(length - width, 0) / 2
    along = np.stack([np.cos(heading), np.sin(heading)], -1)
    centres = xy[..., None, :] + along[..., None, :] * (offset[..., None, None] * np.array([-1.0, 0.0, 1.0])[:, None])
    return centres, width / 2


def collision_free(candidates: np.ndarray, frame: dict, dt_s: float, rules: OutcomeRules) -> np.ndarray:
    """(C,) 1 where the candidate (C, T, 3) meets no other vehicle and no obstacle, else 0.

    ``frame['traffic'] (V, S, 5)`` x, y, heading, length, width of the other vehicles every ``fine_dt_s``
    (S instants from ``fine_dt_s`` on) with ``traffic_mask (V, S)``; ``obstacles (P, 2)`` lidar obstacle
    points with their mask, used only in frames without tracks, over the critic's collision horizon.
    """
    traffic, traffic_mask = frame['traffic'], frame['traffic_mask']
    steps = traffic.shape[1]
    times = rules.fine_dt_s * np.arange(1, steps + 1)
    poses = at_time(candidates, times, dt_s)                                            # (C, S, 3)
    ego_c, ego_r = _circles(poses[..., :2], poses[..., 2], np.full(poses.shape[:2], rules.vehicle_length_m),
                            np.full(poses.shape[:2], rules.vehicle_width_m))         # (C, S, 3, 2)
    margin = rules.checks['collision']['margin_m']
    oth_c, oth_r = _circles(traffic[..., :2], traffic[..., 2], traffic[..., 3], traffic[..., 4])   # (V, S, 3, 2)
    gap_sq = np.square(ego_c[:, None, :, :, None, :] - oth_c[None, :, :, None, :, :]).sum(-1)     # (C,V,S,3,3)
    reach = ego_r[:, None, :, None, None] + oth_r[None, :, :, None, None] + margin
    touching = (gap_sq < np.square(reach)).reshape(*gap_sq.shape[:3], -1).any(-1) & traffic_mask[None]  # (C,V,S)
    # A vehicle whose centre is behind the candidate when they first touch runs into it: not its fault.
    rel = traffic[None, :, :, :2] - poses[:, None, :, :2]
    ahead = rel[..., 0] * np.cos(poses[:, None, :, 2]) + rel[..., 1] * np.sin(poses[:, None, :, 2])
    first = touching.argmax(-1)                                                                       # (C, V)
    at_fault = touching.any(-1) & (np.take_along_axis(ahead, first[..., None], -1)[..., 0] > 0)
    hit = at_fault.any(-1)
    obstacles = frame['obstacles'][frame['obstacle_mask']]
    if len(obstacles) and not traffic_mask.any():
        near = poses[:, :int(round(rules.checks['collision']['horizon_s'] / rules.fine_dt_s))]
        centres, radius = _circles(near[..., :2], near[..., 2], np.full(near.shape[:2], rules.vehicle_length_m),
                                   np.full(near.shape[:2], rules.vehicle_width_m))
        distance_sq = np.square(centres[..., None, :] - obstacles).sum(-1)                 # (C, S, 3, P)
        hit |= (distance_sq < np.square(radius[..., None, None] + margin)).reshape(len(candidates), -1).any(-1)
    return (~hit).astype(np.float32)


def on_road(candidates: np.ndarray, lanes: np.ndarray, rules: OutcomeRules) -> np.ndarray:
    """(C,) 1 where every waypoint lies within a lane (its centre line nearer than half a lane + margin)."""
    distance_sq = np.square(candidates[:, :, None, :2] - lanes[None, None]).sum(-1)       # (C, T, L)
    limit = rules.lane_half_width_m + rules.off_road_margin_m
    return (distance_sq.min(-1) <= limit ** 2).all(-1).astype(np.float32)


def progress(candidates: np.ndarray, expert: np.ndarray) -> np.ndarray:
    """(C,) path length against the expert's, capped at 1 (an expert standing still: 1)."""
    def length(plans):
        return np.linalg.norm(np.diff(with_origin(plans)[..., :2], axis=-2), axis=-1).sum(-1)
    return np.clip(length(candidates) / max(float(length(expert)), 1.0), 0, 1).astype(np.float32)


def _path(plan: np.ndarray, dt_s: float) -> PlanPath:
    t_s = dt_s * np.arange(1, len(plan) + 1)
    return PlanPath.from_trajectory(Trajectory(0, 'base_link', t_s, plan[:, :2], plan[:, 2]))


def critic_verdicts(candidates: np.ndarray, frame: dict, dt_s: float, rules: OutcomeRules) -> dict[str, np.ndarray]:
    """(C,) each of ``comfortable``, ``can_stop``, ``consistent``: what the critic's own checks say of a
    candidate received as soon as it was made (no age)."""
    checks = rules.checks
    previous = _path(frame['previous'], dt_s) if frame['previous_valid'] else None
    verdicts = {'comfortable': [], 'can_stop': [], 'consistent': []}
    for plan in candidates:
        path = _path(plan, dt_s)
        verdicts['comfortable'].append(all(r.ok for r in check_kinematics(path, checks['kinematics'])))
        verdicts['can_stop'].append(check_stopping(path, float(frame['speed_mps']), 0.0, checks['stopping']).ok)
        verdicts['consistent'].append(previous is None or check_trajectory_shift(
            previous, path, Pose2D(*map(float, frame['previous_pose'])), float(frame['previous_offset_s']), 0.0,
            checks['consistency']['trajectory_shift']).ok)
    return {name: np.array(values, np.float32) for name, values in verdicts.items()}


def outcome_scores(candidates: np.ndarray, frame: dict, dt_s: float, rules: OutcomeRules
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Targets (C, terms) in [0, 1] in the order of SCORE_TERMS, and where each is known (C, terms)."""
    candidates = np.asarray(candidates, np.float64)
    lanes = frame['lanes'][frame['lanes_mask']]
    targets = {'collision_free': collision_free(candidates, frame, dt_s, rules),
               'on_road': on_road(candidates, lanes, rules) if len(lanes) else np.ones(len(candidates), np.float32),
               'progress': progress(candidates, frame['future']),
               **critic_verdicts(candidates, frame, dt_s, rules)}
    known = {name: np.ones(len(candidates), bool) for name in targets}
    known['on_road'][:] = len(lanes) > 0
    known['consistent'][:] = bool(frame['previous_valid'])
    return (np.stack([targets[name] for name in SCORE_TERMS], -1),
            np.stack([known[name] for name in SCORE_TERMS], -1))


def candidate_set(expert: np.ndarray, speed_mps: float, dt_s: float) -> np.ndarray:
    """(CANDIDATES, T, 3): the expert's plan (T, 3) first, then plausible alternatives for the scorer to tell
    apart (the fixed vocabulary it is trained on, scored once per frame when the cache is built, as Hydra-MDP
    scores its trajectory vocabulary offline): straight on at constant speed, braking at 3 and 6 m/s^2,
    accelerating at 2 m/s^2; the expert's path at 0.6, 0.8 and 1.2 times its pace; the expert's plan drifting
    1 and 2 m to either side or changing lanes (4 m) to either side; curving off to either side."""
    horizon = len(expert)
    t = dt_s * np.arange(1, horizon + 1)
    v = max(float(speed_mps), 0.0)

    def straight(accel: float) -> np.ndarray:
        tt = np.minimum(t, v / -accel) if accel < 0 else t
        x = v * tt + 0.5 * accel * tt ** 2
        return np.stack([x, np.zeros_like(x), np.zeros_like(x)], -1)

    def paced(factor: float) -> np.ndarray:
        return at_time(expert, factor * t, dt_s)

    def sideways(offset_m: float) -> np.ndarray:
        u = np.minimum(t / 3.0, 1.0)
        lateral = offset_m * (3 * u ** 2 - 2 * u ** 3)
        heading = offset_m * (6 * u * (1 - u) / 3.0) / max(v, 1.0)   # d lateral / d distance
        return expert + np.stack([np.zeros_like(t), lateral, heading], -1)

    def curving(curvature: float) -> np.ndarray:
        heading = curvature * v * t
        return np.stack([np.sin(heading) / curvature, (1 - np.cos(heading)) / curvature, heading], -1)

    return np.stack([expert, straight(0.0), straight(-3.0), straight(-6.0), straight(2.0), paced(0.6), paced(0.8),
                     paced(1.2), sideways(1.0), sideways(-1.0), sideways(2.0), sideways(-2.0), sideways(4.0),
                     sideways(-4.0), curving(0.02), curving(-0.02)])


CANDIDATES = 16   # len of candidate_set's vocabulary


def score_candidates(frame: dict, dt_s: float, rules: OutcomeRules) -> dict:
    """The candidate vocabulary of one frame (its labels and obstacles, as :func:`frame_record` has them)
    and its outcome scores: ``candidates (C, T, 3)``, ``candidate_scores (C, terms)``, ``candidate_known``."""
    candidates = candidate_set(np.asarray(frame['future'], np.float64), float(frame['speed_mps']), dt_s)
    scores, known = outcome_scores(candidates, frame, dt_s, rules)
    return {'candidates': candidates.astype(np.float32), 'candidate_scores': scores, 'candidate_known': known}
