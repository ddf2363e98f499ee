"""The critic's checks: each takes plain arrays and returns a :class:`CheckResult`.

A check never sees a ROS message. Thresholds and severities come from the
``checks`` section of the node config.
"""

from dataclasses import dataclass

import numpy as np

from stack_common.trajectory import Trajectory

WARN, CRITICAL = 'warn', 'critical'


@dataclass(frozen=True)
class CheckResult:
    check: str
    ok: bool
    severity: str
    message: str
    value: float | None = None
    threshold: float | None = None


def passed(check: str, severity: str, message: str = 'ok', value=None, threshold=None) -> CheckResult:
    return CheckResult(check, True, severity, message, value, threshold)


def failed(check: str, severity: str, message: str, value=None, threshold=None) -> CheckResult:
    return CheckResult(check, False, severity, message, value, threshold)


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
    if trajectory.frame_id != cfg['frame_id']:
        return failed(name, severity, f'plan frame {trajectory.frame_id!r}, expected {cfg["frame_id"]!r}')
    return passed(name, severity)


def check_staleness(age_s: float, cfg: dict) -> CheckResult:
    """Age of a trajectory at receipt (receive time - header stamp)."""
    name, severity, limit = 'staleness', cfg['severity'], cfg['max_age_s']
    if age_s > limit:
        return failed(name, severity, f'plan is {age_s * 1e3:.0f} ms old at receipt', age_s, limit)
    return passed(name, severity, value=age_s, threshold=limit)


def check_silence(name: str, silent_s: float | None, cfg: dict) -> CheckResult:
    """A watchdog on input ``name``: ``silent_s`` since its last message (None: never received)."""
    check, severity, limit = f'{name}_timeout', cfg['severity'], cfg['timeout_s']
    if silent_s is None:
        return failed(check, severity, f'no {name} message received yet', None, limit)
    if silent_s > limit:
        return failed(check, severity, f'no {name} for {silent_s * 1e3:.0f} ms', silent_s, limit)
    return passed(check, severity, value=silent_s, threshold=limit)
