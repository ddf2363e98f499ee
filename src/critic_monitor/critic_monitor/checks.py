"""The critic's checks: plain arrays in, one :class:`CheckResult` per check out.

A check never sees a ROS message. Each has a section in the ``checks`` part of
the node config with ``enabled``, ``severity`` (``warn`` or ``critical``) and
its thresholds; a result carries the measured value and the threshold it was
held against, which is what a takeover request publishes.

Plans are evaluated as :class:`~critic_monitor.geometry.PlanPath` (the plan
with its implicit start at the origin, t = 0), so the first segment, from the
ego to the first waypoint, is checked like every other.
"""

from dataclasses import dataclass

import numpy as np

from critic_monitor.collision import CollisionResult
from critic_monitor.geometry import PlanPath, Pose2D, wrap_angle
from stack_common.assessment import Assessment
from stack_common.trajectory import Trajectory

WARN, CRITICAL = 'warn', 'critical'
# Curvature is measured over at least this much path on either side of a point: a 5 cm error of one
# point over 0.5 m sides reads as a curvature of 1.6 1/m (twice the tightest a car turns), over 2 m as
# 0.1 1/m. A slow plan's waypoints are closer than that, so its curvature is taken at points resampled
# along the path this far before and after each waypoint.
MIN_CURVATURE_BASE_M = 2.0
# Samples of the near-ego window in which two consecutive plans are compared.
SHIFT_SAMPLES = 6


@dataclass(frozen=True)
class CheckResult:
    check: str
    ok: bool
    severity: str
    message: str
    value: float | None = None
    threshold: float | None = None

    def describe(self) -> str:
        """The message with the measured value against its threshold, as logs and reasons show it."""
        if self.value is None or self.threshold is None:
            return self.message
        return f'{self.message} [{self.value:.4g} vs {self.threshold:.4g}]'


def passed(check: str, severity: str, message: str = 'ok', value=None, threshold=None) -> CheckResult:
    return CheckResult(check, True, severity, message, _float(value), _float(threshold))


def failed(check: str, severity: str, message: str, value=None, threshold=None) -> CheckResult:
    return CheckResult(check, False, severity, message, _float(value), _float(threshold))


def _float(value):
    return None if value is None else float(value)


def _limit(check: str, cfg: dict, value: float, threshold: float, what: str, unit: str,
           where: str = '') -> CheckResult:
    """Fail when ``value`` exceeds ``threshold``; the message says what, how much and where."""
    value = float(value) + 0.0  # no "-0" in messages
    text = f'{what} {value:.3g} {unit}{where}'
    if value > threshold:
        return failed(check, cfg['severity'], f'{text} exceeds {threshold:.3g} {unit}', value, threshold)
    return passed(check, cfg['severity'], f'max {text}', value, threshold)


def plan_is_usable(trajectory: Trajectory) -> bool:
    """Finite, two or more points, strictly increasing times: what the geometric checks need."""
    values = np.concatenate([trajectory.t_s.ravel(), trajectory.xy.ravel(), trajectory.heading.ravel()])
    return (len(trajectory) >= 2 and bool(np.isfinite(values).all())
            and bool((np.diff(trajectory.t_s) > 0).all()) and trajectory.t_s[0] >= 0)


# --- validity and timing -------------------------------------------------------------------------

def check_validity(trajectory: Trajectory, cfg: dict) -> CheckResult:
    """Finite values, enough points, strictly increasing times, the configured frame."""
    name, severity = 'validity', cfg['severity']
    values = np.concatenate([trajectory.t_s.ravel(), trajectory.xy.ravel(), trajectory.heading.ravel()])
    bad = int(np.count_nonzero(~np.isfinite(values)))
    if bad:
        return failed(name, severity, f'{bad} non-finite values in the plan', bad, 0)
    if len(trajectory) < cfg['min_points']:
        return failed(name, severity, f'plan has {len(trajectory)} points, fewer than {cfg["min_points"]}',
                      len(trajectory), cfg['min_points'])
    steps = np.diff(trajectory.t_s)
    if len(steps) and steps.min() <= 0:
        return failed(name, severity, 'waypoint times are not strictly increasing', float(steps.min()), 0.0)
    if trajectory.t_s[0] < 0:
        return failed(name, severity, f'first waypoint {trajectory.t_s[0]:.3f} s before the plan stamp',
                      float(trajectory.t_s[0]), 0.0)
    if trajectory.frame_id != cfg['frame_id']:
        return failed(name, severity, f'plan frame {trajectory.frame_id!r}, expected {cfg["frame_id"]!r}')
    return passed(name, severity, f'{len(trajectory)} points')


def check_staleness(age_s: float, cfg: dict) -> CheckResult:
    """Age of a trajectory at receipt (receive time - header stamp)."""
    name, severity, limit = 'staleness', cfg['severity'], cfg['max_age_s']
    if age_s > limit:
        return failed(name, severity, f'plan is {age_s * 1e3:.0f} ms old at receipt', age_s, limit)
    return passed(name, severity, f'{age_s * 1e3:.0f} ms old at receipt', age_s, limit)


def check_silence(name: str, silent_s: float | None, cfg: dict, source: str = '', seen: bool = True) -> CheckResult:
    """A watchdog on input ``name``: ``silent_s`` since its last message (of the topics heard so far, while
    start-up still waits for one that was never ``seen``); None: never received, and start-up is over."""
    check, severity, limit = f'{name}_timeout', cfg['severity'], cfg['timeout_s']
    on = f' on {source}' if source else ''
    if silent_s is None:
        return failed(check, severity, f'no {name} message received yet{on}', None, limit)
    if silent_s > limit:
        return failed(check, severity, f'no {name} for {silent_s * 1e3:.0f} ms{on}', silent_s, limit)
    if not seen:
        return passed(check, severity, f'start-up: waiting for the first {name} message{on}', silent_s, limit)
    return passed(check, severity, f'last {name} {silent_s * 1e3:.0f} ms ago', silent_s, limit)


# --- kinematics ----------------------------------------------------------------------------------

@dataclass
class Kinematics:
    """Finite-difference profiles of a plan; ``t_*`` say at which plan time each value applies."""
    interval_m: np.ndarray        # (n-1,) distance between consecutive points
    speed_mps: np.ndarray         # (n-1,) per segment
    accel_mps2: np.ndarray        # (n-2,) between segments, signed
    curvature_1pm: np.ndarray     # (n-2,) signed, NaN where the points are too close
    lat_accel_mps2: np.ndarray    # (n-2,) signed v^2 kappa
    lat_jerk_mps3: np.ndarray     # (n-3,)
    relative_heading_rad: np.ndarray  # (n-1,) heading change between consecutive points
    t_segment: np.ndarray
    t_inner: np.ndarray
    t_jerk: np.ndarray


def kinematics(path: PlanPath) -> Kinematics:
    t, xy = path.t_s, path.xy
    d = np.diff(xy, axis=0)
    dt = np.diff(t)
    interval = np.hypot(d[:, 0], d[:, 1])
    speed = interval / dt
    t_segment = (t[:-1] + t[1:]) / 2
    accel = np.diff(speed) / np.diff(t_segment)
    curvature = signed_curvature(path)
    v_inner = (speed[:-1] + speed[1:]) / 2
    lat_accel = v_inner ** 2 * curvature
    t_inner = t[1:-1]
    with np.errstate(invalid='ignore'):
        lat_jerk = np.diff(lat_accel) / np.diff(t_inner)
    relative = np.abs(wrap_angle(np.diff(path.heading)))
    return Kinematics(interval, speed, accel, curvature, lat_accel, lat_jerk, relative, t_segment, t_inner,
                      (t_inner[:-1] + t_inner[1:]) / 2)


def signed_curvature(path: PlanPath) -> np.ndarray:
    """(n-2,) signed Menger curvature (2 sin(turn) / chord) at each inner point, from the points on the
    path at least ``MIN_CURVATURE_BASE_M`` before and after it (its neighbours where they are farther);
    NaN where the path does not reach that far on both sides."""
    s = path.s
    inner = s[1:-1]
    base = np.maximum(MIN_CURVATURE_BASE_M, np.minimum(inner - s[:-2], s[2:] - inner))
    before, after = inner - base, inner + base
    valid = (before >= -1e-9) & (after <= s[-1] + 1e-9)

    def at(arc):
        return np.stack([np.interp(arc, s, path.xy[:, 0]), np.interp(arc, s, path.xy[:, 1])], axis=1)

    a_xy, b_xy, c_xy = at(before), path.xy[1:-1], at(after)
    a, b = b_xy - a_xy, c_xy - b_xy
    side_a, side_b = np.hypot(a[:, 0], a[:, 1]), np.hypot(b[:, 0], b[:, 1])
    chord = np.hypot(*(c_xy - a_xy).T)
    cross = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    with np.errstate(divide='ignore', invalid='ignore'):
        curvature = 2 * cross / (side_a * side_b * chord)
    return np.where(valid & (np.minimum(np.minimum(side_a, side_b), chord) > 1e-6), curvature, np.nan)


def _peak(values: np.ndarray, times: np.ndarray) -> tuple[float, str]:
    """The largest finite value (0 when none) and where it is."""
    finite = np.isfinite(values)
    if not finite.any():
        return 0.0, ''
    i = int(np.argmax(np.where(finite, values, -np.inf)))
    return float(values[i]), f' at t={times[i]:.2f} s'


def check_kinematics(path: PlanPath, cfg: dict) -> list[CheckResult]:
    """Point interval, curvature, lateral acceleration, acceleration, deceleration, lateral jerk,
    relative heading: the enabled ones of ``cfg`` (the ``checks.kinematics`` section)."""
    k = kinematics(path)
    results = []
    specs = (
        ('interval', 'max_interval_m', k.interval_m, k.t_segment, 'point interval', 'm'),
        ('curvature', 'max_curvature_1pm', np.abs(k.curvature_1pm), k.t_inner, 'curvature', '1/m'),
        ('lateral_acceleration', 'max_lat_accel_mps2', np.abs(k.lat_accel_mps2), k.t_inner,
         'lateral acceleration', 'm/s^2'),
        ('longitudinal_acceleration', 'max_accel_mps2', k.accel_mps2, k.t_inner, 'acceleration', 'm/s^2'),
        ('longitudinal_deceleration', 'max_decel_mps2', -k.accel_mps2, k.t_inner, 'deceleration', 'm/s^2'),
        ('lateral_jerk', 'max_lat_jerk_mps3', np.abs(k.lat_jerk_mps3), k.t_jerk, 'lateral jerk', 'm/s^3'),
        ('relative_heading', 'max_relative_heading_rad', k.relative_heading_rad, k.t_segment,
         'heading change between points', 'rad'),
    )
    for check, key, values, times, what, unit in specs:
        section = cfg[check]
        if section['enabled']:
            value, where = _peak(values, times)
            results.append(_limit(check, section, max(value, 0.0), section[key], what, unit, where))
    return results


# --- consistency ---------------------------------------------------------------------------------

def check_trajectory_shift(previous: PlanPath, current: PlanPath, previous_in_current: Pose2D,
                           previous_offset_s: float, age_s: float, cfg: dict) -> CheckResult:
    """Shift of the current plan against the previous one near the ego, at the same absolute times.

    Both plans are sampled over ``window_s`` from now (``age_s`` after the
    current stamp; ``previous_offset_s`` = current stamp - previous stamp);
    the previous plan is moved into the current frame with
    ``previous_in_current`` (odometry). The difference is split along the
    previous plan's heading into forward/backward and lateral parts.
    """
    name, severity = 'trajectory_shift', cfg['severity']
    times = age_s + np.linspace(0.0, cfg['window_s'], SHIFT_SAMPLES)
    previous_times = times + previous_offset_s
    overlap = (times <= current.duration_s) & (previous_times <= previous.duration_s)
    if not overlap.any():
        return passed(name, severity, 'no overlap with the previous plan near the ego')
    current_xy, _ = current.at_time(times[overlap])
    previous_xy, previous_heading = previous.at_time(previous_times[overlap])
    previous_xy = previous_in_current.apply(previous_xy)
    previous_heading = previous_heading + previous_in_current.yaw
    d = current_xy - previous_xy
    c, s = np.cos(previous_heading), np.sin(previous_heading)
    forward, lateral = d[:, 0] * c + d[:, 1] * s, d[:, 1] * c - d[:, 0] * s
    lateral_m = float(np.abs(lateral).max())
    forward_m, backward_m = max(float(forward.max()), 0.0) + 0.0, max(float(-forward.min()), 0.0) + 0.0
    text = f'lateral {lateral_m:.2f} m, forward {forward_m:.2f} m, backward {backward_m:.2f} m'
    for value, key, what in ((lateral_m, 'max_lateral_shift_m', 'lateral'),
                             (forward_m, 'max_forward_shift_m', 'forward'),
                             (backward_m, 'max_backward_shift_m', 'backward')):
        if value > cfg[key]:
            return failed(name, severity, f'plan jumped {what} {value:.2f} m against the previous one '
                          f'(limit {cfg[key]:.2f} m; {text})', value, cfg[key])
    return passed(name, severity, text, lateral_m, cfg['max_lateral_shift_m'])


def check_start_deviation(trajectory: Trajectory, ego_in_plan: Pose2D, age_s: float, cfg: dict) -> CheckResult:
    """How far beside the plan the ego is now, and its heading against the plan's.

    The plan is taken from the contract's start (the ego at its stamp) to where it puts the ego at the ego's
    time (``age_s`` after its stamp); ``ego_in_plan`` comes from odometry: how far the car drifted off the
    plan while the plan was on its way. (A plan whose waypoints lie beside the ego does not start at it: its
    first segment turns harder than any car can, which the kinematic checks fail. Extrapolating the start
    back from the first waypoints, as this check once did, misplaces it whenever a plan starts with a lane
    change or an S-bend: 2.4-2.8 m of false deviation on the simulator expert's own lane changes.)
    """
    name, severity = 'start_deviation', cfg['severity']
    path = PlanPath.from_trajectory(trajectory)
    xy, heading = path.at_time(age_s)
    dx, dy, h = ego_in_plan.x - xy[0, 0], ego_in_plan.y - xy[0, 1], float(heading[0])
    lateral = abs(-np.sin(h) * dx + np.cos(h) * dy)
    heading_off = abs(float(wrap_angle(ego_in_plan.yaw - h)))
    text = f'ego {lateral:.2f} m beside the plan, heading off by {heading_off:.2f} rad'
    if lateral > cfg['max_lateral_m']:
        return failed(name, severity, f'{text}: lateral limit {cfg["max_lateral_m"]:.2f} m', lateral,
                      cfg['max_lateral_m'])
    if heading_off > cfg['max_heading_rad']:
        return failed(name, severity, f'{text}: heading limit {cfg["max_heading_rad"]:.2f} rad', heading_off,
                      cfg['max_heading_rad'])
    return passed(name, severity, text, lateral, cfg['max_lateral_m'])


# --- stopping ------------------------------------------------------------------------------------

def check_stopping(path: PlanPath, speed_mps: float, age_s: float, cfg: dict) -> CheckResult:
    """The plan leaves room to stop at ``decel_mps2``: ahead of the ego it reaches at least as far as braking
    at that rate would within the plan's remaining horizon, plus ``margin_m`` unless the plan ends slowly
    enough to stop within the margin itself.

    Where the horizon outlasts the stop (v / decel), that is Autoware's ``forward_trajectory_length``
    (v^2 / 2 decel + margin). A 4 s plan cannot show a whole stop from above 12 m/s at 3 m/s^2: asking for
    one would fail every plan at highway speed, so only the part of the stop within the horizon is asked.
    A plan that comes to rest, or creeps at its end so slowly that braking at ``decel_mps2`` stops it within
    ``margin_m`` of its end, needs no margin beyond its end: a car creeping up to a stop line at 0.5 m/s is
    not short of room.
    """
    name, severity, decel = 'stopping', cfg['severity'], cfg['decel_mps2']
    ahead = path.length_m - path.arc_length_at_time(age_s)
    if abs(speed_mps) < cfg['min_speed_mps']:
        return passed(name, severity, f'standing still ({speed_mps:.2f} m/s)', ahead, 0.0)
    speed = abs(speed_mps)
    braking_s = min(speed / decel, max(path.duration_s - age_s, 0.0))
    end_speed = path.speed_at_time(path.duration_s)
    comes_to_rest = end_speed < cfg['min_speed_mps'] or end_speed ** 2 / (2 * decel) <= cfg['margin_m']
    needed = speed * braking_s - 0.5 * decel * braking_s ** 2 + (0.0 if comes_to_rest else cfg['margin_m'])
    text = (f'{ahead:.1f} m ahead; braking at {decel:g} m/s^2 from {speed:.1f} m/s covers {needed:.1f} m '
            f'within the plan' + (' (it comes to rest)' if comes_to_rest else ''))
    if ahead < needed:
        return failed(name, severity, f'plan too short: {text}', ahead, needed)
    return passed(name, severity, text, ahead, needed)


# --- collision -----------------------------------------------------------------------------------

def collision_result(contact: CollisionResult | None, age_s: float, cfg: dict, note: str = '') -> CheckResult:
    """The collision check's verdict: a contact within ``horizon_s`` from now fails.

    ``value`` is the time from now to the first contact (seconds).
    """
    name, severity, horizon = 'collision', cfg['severity'], cfg['horizon_s']
    if contact is None:
        return passed(name, severity, 'no lidar points yet' + note, threshold=horizon)
    if not contact.contact:
        return passed(name, severity, f'footprint clear ({contact.candidates} points near the path)' + note,
                      threshold=horizon)
    time_to_contact = max(contact.time_s - age_s, 0.0)
    x, y = contact.point_xy
    text = (f'footprint meets a point at ({x:.1f}, {y:.1f}) m after {contact.distance_m:.1f} m, '
            f'{time_to_contact:.2f} s from now' + note)
    if time_to_contact <= horizon:
        return failed(name, severity, text, time_to_contact, horizon)
    return passed(name, severity, text, time_to_contact, horizon)


# --- self-doubt ----------------------------------------------------------------------------------

class SelfDoubt:
    """The planner's own plan score or confidence below its threshold for M plans in a row."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.run = 0

    def reset(self) -> None:
        self.run = 0

    def update(self, assessment: Assessment) -> CheckResult:
        cfg, name = self.cfg, 'self_doubt'
        low = []  # (measured, threshold, text) of each quantity below its threshold
        if assessment.plan_score < cfg['min_plan_score']:
            low.append((assessment.plan_score, cfg['min_plan_score'],
                        f'plan score {assessment.plan_score:.3f} < {cfg["min_plan_score"]:.3f}'))
        if assessment.confidence < cfg['min_confidence']:
            low.append((assessment.confidence, cfg['min_confidence'],
                        f'confidence {assessment.confidence:.3f} < {cfg["min_confidence"]:.3f}'))
        self.run = self.run + 1 if low else 0
        if self.run >= cfg['consecutive_plans']:
            value, threshold, _ = low[0]
            return failed(name, cfg['severity'], f'{"; ".join(t for *_, t in low)} for {self.run} plans in a row',
                          value, threshold)
        return passed(name, cfg['severity'], f'score {assessment.plan_score:.3f}, confidence '
                      f'{assessment.confidence:.3f}' + (f'; low for {self.run} plan(s)' if self.run else ''),
                      assessment.plan_score, cfg['min_plan_score'])
