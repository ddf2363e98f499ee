"""Every critic check: a plan (or input) that passes and one that fails, with reason and measured value.

The checks run inside a real :class:`CriticCore` fed the way the node feeds
it (odometry at 25 Hz, a 50 Hz timer, plans at receipt), so the "output" here
is the transition the node would publish, with its reasons.
"""


import numpy as np
import pytest

from critic_monitor.checks import (
    CheckResult, SelfDoubt, check_kinematics, check_silence, check_staleness, check_start_deviation, check_stopping,
    check_trajectory_shift, collision_result, kinematics, plan_is_usable)
from critic_monitor.collision import CollisionResult
from critic_monitor.geometry import PlanPath, Pose2D
from critic_monitor.monitor import CriticCore
from critic_monitor.state_machine import TakeoverState
from stack_common import topics
from stack_common.assessment import Assessment
from stack_common.config import ConfigError
from stack_common.trajectory import Trajectory

from critic_drive import CAMERA, S, T0, TICK_NS, box_points, critic_config, profile_plan, reasons_of, started, with_nan


def with_heading_jump(stamp_ns: int) -> Trajectory:
    plan = profile_plan(stamp_ns)
    plan.heading[3:] += 1.0
    return plan


def shifted(stamp_ns: int, lateral_m: float) -> Trajectory:
    plan = profile_plan(stamp_ns)
    plan.xy[:, 1] += lateral_m
    return plan


# check, ego speed, good plan, bad plan (both from a stamp), relation of the measured value to the threshold
PLAN_CASES = [
    ('validity', 8.0, profile_plan, with_nan, 'above'),
    ('interval', 20.0, lambda s: profile_plan(s, speed=lambda t: 20.0), lambda s: profile_plan(s, speed=lambda t: 44.0),
     'above'),
    ('curvature', 1.2, lambda s: profile_plan(s, lambda t: 1.2, lambda t: 0.1),
     lambda s: profile_plan(s, lambda t: 1.2, lambda t: 1 / 3), 'above'),
    ('lateral_acceleration', 16.0, lambda s: profile_plan(s, lambda t: 16.0, lambda t: 0.01),
     lambda s: profile_plan(s, lambda t: 16.0, lambda t: 0.02), 'above'),
    ('longitudinal_acceleration', 5.0, lambda s: profile_plan(s, lambda t: 5 + 2 * t),
     lambda s: profile_plan(s, lambda t: 5 + 5 * min(t, 2.0)), 'above'),
    ('longitudinal_deceleration', 16.0, lambda s: profile_plan(s, lambda t: 16 - 2 * t),
     lambda s: profile_plan(s, lambda t: max(16 - 10.7 * t, 0.0)), 'above'),
    ('lateral_jerk', 10.0, lambda s: profile_plan(s, lambda t: 10.0, lambda t: 0.03),
     lambda s: profile_plan(s, lambda t: 10.0, lambda t: 0.03 if t < 1.0 else -0.03), 'above'),
    ('relative_heading', 8.0, profile_plan, with_heading_jump, 'above'),
    ('stopping', 15.0, lambda s: profile_plan(s, lambda t: 15.0),
     lambda s: profile_plan(s, lambda t: max(15 - 7.5 * t, 0)), 'below'),
]


@pytest.mark.parametrize('check, speed, good, bad, relation', PLAN_CASES, ids=[c[0] for c in PLAN_CASES])
def test_plan_check_passes_a_good_plan_and_fails_a_bad_one_with_its_value(check, speed, good, bad, relation):
    drive = started(speed, config={'checks': {'consistency': {'trajectory_shift': {'enabled': False}}}})
    drive.plan(good(drive.now))
    assert drive.result(check).ok, drive.result(check)
    assert not reasons_of(drive.transitions, check)

    transitions = drive.plan(bad(drive.now))
    assert transitions, f'{check}: the bad plan caused no transition'
    severity = drive.config['checks'].get('kinematics', {}).get(check, drive.config['checks'].get(
        check, drive.config['checks']['consistency'].get(check)))['severity']
    (reason,) = reasons_of(transitions, check)
    assert reason.severity == severity
    if severity == 'critical':
        assert transitions[-1].state == TakeoverState.TAKEOVER_REQUESTED
    else:  # a warning warns; a bad plan may break critical limits besides (a sideways start is a sharp turn)
        assert transitions[-1].state == TakeoverState.WARNING or any(
            r.severity == 'critical' for r in transitions[-1].reasons)
    assert reason.value is not None and reason.threshold is not None
    assert (reason.value > reason.threshold) if relation == 'above' else (reason.value < reason.threshold)
    assert f'{check}: ' in transitions[-1].describe() and f'{reason.value:.4g} vs' in transitions[-1].describe()


@pytest.mark.parametrize('speed, profile, ok', [
    (25.0, lambda t: 25.0, True),                      # highway speed, a 4 s plan: the horizon holds no whole stop
    (25.0, lambda t: max(25 - 2.5 * t, 0.0), True),    # slowing down gently
    (25.0, lambda t: max(25 - 12.5 * t, 0.0), False),  # stops within 2 s: far harder than 3 m/s^2
    (2.4, lambda t: max(2.4 - 2.5 * t, 0.0), True),    # comes to rest gently: no margin asked beyond the stop
    (6.5, lambda t: max(6.5 - 6.5 * t, 0.0), False),   # comes to rest at 6.5 m/s^2
], ids=['cruise', 'slowing', 'hard-stop', 'gentle-stop', 'firm-stop'])
def test_stopping_asks_for_room_to_brake_at_3_mps2_within_the_plan(speed, profile, ok):
    drive = started(speed, config={'checks': {'consistency': {'trajectory_shift': {'enabled': False}}}})
    drive.plan(profile_plan(drive.now, profile))
    result = drive.result('stopping')
    assert result.ok == ok, result
    assert (result.value >= result.threshold) == ok


def test_trajectory_shift_passes_a_consistent_plan_and_fails_a_jump():
    drive = started(8.0)
    drive.plan(drive.straight(drive.now))
    drive.now += S // 10
    drive.core.on_odometry(drive.ego(drive.now), drive.now)
    drive.plan(drive.straight(drive.now))
    assert drive.result('trajectory_shift').ok, drive.result('trajectory_shift')
    drive.now += S // 10
    drive.core.on_odometry(drive.ego(drive.now), drive.now)
    transitions = drive.plan(shifted(drive.now, 0.8))
    (reason,) = reasons_of(transitions, 'trajectory_shift')
    assert reason.value == pytest.approx(0.8, abs=0.05) and reason.threshold == 0.5
    assert 'lateral' in reason.message


def test_staleness_passes_a_fresh_plan_and_fails_an_old_one():
    drive = started()
    drive.plan(drive.straight(drive.now), latency_ns=100_000_000)
    assert drive.result('staleness').ok
    transitions = drive.plan(drive.straight(drive.now), latency_ns=450_000_000)
    (reason,) = reasons_of(transitions, 'staleness')
    assert reason.value == pytest.approx(0.45) and reason.threshold == 0.3
    assert transitions[-1].state == TakeoverState.TAKEOVER_REQUESTED


def test_collision_passes_a_clear_lane_and_fails_a_box_in_the_path():
    drive = started()
    drive.cloud_xy = box_points(centre_x=drive.speed_mps * (drive.now - T0) / S + 15.0, centre_y=3.5)
    drive.run(0.2, plans_hz=10)
    assert drive.result('collision').ok and 'clear' in drive.result('collision').message
    drive.cloud_xy = box_points(centre_x=drive.speed_mps * (drive.now - T0) / S + 15.0, centre_y=0.0)
    transitions = drive.run(0.2, plans_hz=10)
    (reason,) = reasons_of(transitions, 'collision')
    assert transitions[0].state == TakeoverState.TAKEOVER_REQUESTED
    # The box's near face is ~12.75 m ahead; the footprint's front (3.8 m + 0.2 m margin) reaches it after
    # ~8.75 m of the plan, i.e. ~1.1 s at 8 m/s minus the plan's age.
    assert 0.8 < reason.value < 1.2 and reason.threshold == 1.5


def test_self_doubt_needs_m_low_assessments_in_a_row():
    drive = started()
    low = Assessment(drive.now, 0, plan_score=0.01, confidence=0.5)
    good = Assessment(drive.now, 0, plan_score=0.6, confidence=0.5)
    for _ in range(4):
        assert drive.core.on_assessment(low, drive.now) == []
    assert drive.core.on_assessment(good, drive.now) == [], 'a good plan resets the run'
    assert drive.result('self_doubt').ok
    out = []
    for _ in range(5):
        out += drive.core.on_assessment(low, drive.now)
    (reason,) = reasons_of(out, 'self_doubt')
    assert out[-1].state == TakeoverState.WARNING
    assert reason.value == pytest.approx(0.01) and reason.threshold == 0.05 and '5 plans in a row' in reason.message


@pytest.mark.parametrize('watchdog', ['trajectory', 'camera', 'lidar', 'odometry'])
def test_watchdog_fires_within_its_timeout_plus_one_timer_period(watchdog):
    drive = started()
    config = drive.config
    timeout_s = config['checks']['watchdogs'][watchdog]['timeout_s']
    period_s = 1.0 / config['timer_hz']
    assert drive.result(f'{watchdog}_timeout').ok
    if watchdog != 'trajectory':
        drive.alive[watchdog] = False
    topic = {'trajectory': topics.TRAJECTORY, 'camera': CAMERA, 'lidar': '/sensors/lidar/top/points',
             'odometry': '/vehicle/odometry'}[watchdog]
    last_message = drive.core.last_seen[(watchdog, topic)]
    transitions = drive.run(timeout_s + 0.2, plans_hz=0 if watchdog == 'trajectory' else 10)
    fired = [t for t in transitions if reasons_of([t], f'{watchdog}_timeout')]
    assert fired, [t.describe() for t in transitions]
    reason = reasons_of(fired[:1], f'{watchdog}_timeout')[0]
    fired_after_s = (fired[0].stamp_ns - last_message) / S
    assert timeout_s < fired_after_s <= timeout_s + period_s + 1e-9
    assert reason.value == pytest.approx(fired_after_s) and reason.threshold == timeout_s
    assert topic in reason.message


def test_sensor_loss_reported_by_perception_is_a_warning_with_the_sensor_named():
    drive = started()
    assert drive.core.on_sensor_loss([], drive.now) == []
    transitions = drive.core.on_sensor_loss(['front'], drive.now)
    (reason,) = reasons_of(transitions, 'sensor_loss')
    assert transitions[-1].state == TakeoverState.WARNING and 'front' in reason.message and reason.value == 1.0


def test_a_disabled_check_never_fails():
    drive = started(config={'checks': {'kinematics': {'relative_heading': {'enabled': False}}}})
    drive.plan(with_heading_jump(drive.now))
    assert all(r.check != 'relative_heading' for r in drive.core.results(drive.now))


def test_severity_is_configurable():
    drive = started(config={'checks': {'kinematics': {'relative_heading': {'severity': 'warn'}}}})
    transitions = drive.plan(with_heading_jump(drive.now))
    assert transitions[-1].state == TakeoverState.WARNING and reasons_of(transitions, 'relative_heading')


def test_an_unusable_plan_fails_validity_and_skips_the_geometric_checks():
    drive = started()
    transitions = drive.plan(with_nan(drive.now))
    assert [r.check for r in transitions[-1].reasons] == ['validity']
    assert drive.result('curvature').ok and 'skipped' in drive.result('curvature').message


def test_time_jumping_back_restarts_the_core_cleanly():
    drive = started()
    drive.plan(with_nan(drive.now))
    assert drive.core.machine.takeover_active
    drive.now = T0 - 30 * S       # bag loop
    withdrawn = drive.core.tick(drive.now)
    assert [(t.previous, t.state) for t in withdrawn] == [(TakeoverState.TAKEOVER_REQUESTED, TakeoverState.WAITING)]
    assert drive.core.tick(drive.now + TICK_NS) == []
    assert drive.core.state == TakeoverState.WAITING and drive.core.restarts == 1
    assert drive.core.plan is None and not drive.core.clouds and len(drive.core.history) == 0
    assert drive.plan(drive.straight(drive.now)) == [], 'start-up again: the sensors are not heard yet'
    assert drive.core.waiting_for() == [CAMERA, topics.lidar_topic('top'), topics.ODOMETRY]
    transitions = drive.run(1.5, plans_hz=10)
    assert [(t.previous, t.state) for t in transitions] == [(TakeoverState.WAITING, TakeoverState.NOMINAL)]


def test_no_clock_yet_is_ignored():
    """Under sim time the node clock reads 0 until /clock arrives."""
    core = CriticCore(critic_config(), 0)
    assert core.tick(0) == [] and core.on_trajectory(profile_plan(0), 0) == []
    assert core.tick(5 * S) == [] and core.state == TakeoverState.WAITING
    assert core.restarts == 0


def test_a_lidar_without_extrinsics_is_a_config_error():
    with pytest.raises(ConfigError, match="rear"):
        CriticCore(critic_config({'lidars': ['top', 'rear']}), T0)


# --- each check's result on its own: the value, threshold, severity and message a takeover request carries --

def test_staleness_reports_the_age_against_its_limit_and_an_age_at_the_limit_passes():
    cfg = {'severity': 'critical', 'max_age_s': 0.3}
    fresh = check_staleness(0.12, cfg)
    assert fresh == CheckResult('staleness', True, 'critical', '120 ms old at receipt', 0.12, 0.3)
    assert check_staleness(0.3, cfg).ok
    old = check_staleness(0.45, cfg)
    assert (old.ok, old.message, old.value, old.threshold) == (False, 'plan is 450 ms old at receipt', 0.45, 0.3)
    assert check_staleness(2.0, cfg).message == 'plan is 2000 ms old at receipt'
    assert check_staleness(0.25, {'severity': 'warn', 'max_age_s': 3.0}).message == '250 ms old at receipt'


KINEMATICS = {check: {'enabled': True, 'severity': 'warn', key: limit} for check, key, limit in (
    ('interval', 'max_interval_m', 10.0), ('curvature', 'max_curvature_1pm', 0.3),
    ('lateral_acceleration', 'max_lat_accel_mps2', 4.0), ('longitudinal_acceleration', 'max_accel_mps2', 3.0),
    ('longitudinal_deceleration', 'max_decel_mps2', 5.0), ('lateral_jerk', 'max_lat_jerk_mps3', 5.0),
    ('relative_heading', 'max_relative_heading_rad', 0.5))}


def straight_8mps() -> PlanPath:
    """Straight ahead at exactly 8 m/s: 4 m every 0.5 s."""
    t_s = 0.5 * np.arange(1, 9)
    return PlanPath.from_trajectory(Trajectory(0, 'base_link', t_s, np.stack([8.0 * t_s, 0 * t_s], 1), np.zeros(8)))


def test_each_kinematic_result_names_its_quantity_unit_and_where_its_peak_is():
    path = straight_8mps()
    results = {r.check: r for r in check_kinematics(path, KINEMATICS)}
    assert results['interval'].describe() == 'max point interval 4 m at t=0.25 s [4 vs 10]'
    assert results['curvature'].describe() == 'max curvature 0 1/m at t=0.50 s [0 vs 0.3]'
    assert results['lateral_acceleration'].describe() == 'max lateral acceleration 0 m/s^2 at t=0.50 s [0 vs 4]'
    assert results['longitudinal_acceleration'].message.startswith('max acceleration 0 m/s^2 at t=')
    assert results['longitudinal_deceleration'].message.startswith('max deceleration 0 m/s^2 at t=')  # not "-0"
    assert results['lateral_jerk'].message == 'max lateral jerk 0 m/s^3 at t=0.75 s'
    assert results['relative_heading'].message == 'max heading change between points 0 rad at t=0.25 s'
    assert all(r.ok and r.severity == 'warn' for r in results.values())
    assert (results['interval'].value, results['interval'].threshold) == pytest.approx((4.0, 10.0))


def test_a_kinematic_value_at_its_limit_passes_and_above_it_fails_with_the_limit_named():
    path = straight_8mps()
    at = check_kinematics(path, {**KINEMATICS, 'interval': {'enabled': True, 'severity': 'warn',
                                                            'max_interval_m': 4.0}})
    assert at[0].ok
    above = check_kinematics(path, {**KINEMATICS, 'interval': {'enabled': True, 'severity': 'critical',
                                                               'max_interval_m': 3.5}})[0]
    assert (above.ok, above.severity, above.threshold) == (False, 'critical', 3.5)
    assert above.message == 'point interval 4 m at t=0.25 s exceeds 3.5 m'


def test_curvature_and_lateral_acceleration_of_a_circle_are_one_over_its_radius_and_v_squared_over_it():
    angle = 8.0 * 0.5 * np.arange(1, 9) / 20.0   # 8 m/s around a circle of 20 m to the right
    plan = Trajectory(0, 'base_link', 0.5 * np.arange(1, 9),
                      np.stack([20.0 * np.sin(angle), -20.0 * (1 - np.cos(angle))], 1), -angle)
    k = kinematics(PlanPath.from_trajectory(plan))
    np.testing.assert_allclose(k.curvature_1pm, -1 / 20.0, rtol=1e-3)
    np.testing.assert_allclose(k.lat_accel_mps2, -8.0 ** 2 / 20.0, rtol=1e-2)   # speeds along chords


def test_a_plan_too_short_to_measure_its_curvature_passes_it_with_zero_and_says_nowhere():
    path = PlanPath.from_trajectory(profile_plan(0, speed=lambda t: 0.5))   # 2 m in 4 s: no 2 m on both sides
    curvature = {r.check: r for r in check_kinematics(path, KINEMATICS)}['curvature']
    assert curvature.ok and curvature.value == 0.0 and curvature.message == 'max curvature 0 1/m'


@pytest.mark.parametrize('t_s, usable', [
    ([0.5, 1.0], True),               # two points, from the stamp on
    ([0.0, 1.0, 2.0], True),          # a first waypoint at the stamp
    ([0.5, 0.5, 1.0], False),         # a repeated time
    ([-0.5, 0.5, 1.0], False),        # a first waypoint before the stamp
    ([0.5], False),
])
def test_a_plan_is_usable_for_the_geometric_checks_with_two_points_and_increasing_times_from_its_stamp(t_s, usable):
    n = len(t_s)
    plan = Trajectory(0, 'base_link', np.array(t_s), np.stack([np.arange(n), np.zeros(n)], 1), np.zeros(n))
    assert plan_is_usable(plan) == usable


SHIFT = {'severity': 'warn', 'window_s': 1.0, 'max_lateral_shift_m': 1.0, 'max_forward_shift_m': 2.0,
         'max_backward_shift_m': 0.3}


def heading_north(t_s, x_m, y_m) -> PlanPath:
    """A plan along +y of its frame (10 m/s), ``x_m``/``y_m`` (functions of plan time) off that line."""
    t_s = np.asarray(t_s, float)
    xy = np.stack([x_m(t_s), 10.0 * t_s + y_m(t_s)], 1)
    return PlanPath.from_trajectory(Trajectory(0, 'base_link', t_s, xy, np.full(len(t_s), np.pi / 2)))


def test_trajectory_shift_splits_the_difference_along_the_previous_plans_heading_in_the_current_frame():
    # the previous plan, 0.1 s older, drove along +x of its own frame, which is 60 degrees left in the current one
    t_s = 0.5 * np.arange(1, 9)
    previous = PlanPath.from_trajectory(Trajectory(0, 'base_link', t_s, np.stack([10.0 * t_s, 0.0 * t_s], 1),
                                                   np.zeros(8)))
    yaw = np.radians(60.0)
    previous_in_current = Pose2D(0.0, 0.0, yaw)

    def along_previous(forward, right):
        """A plan on the previous one's line, ``forward(t)`` ahead of it and ``right`` to its right."""
        along = 10.0 * (t_s + 0.1) + forward(t_s)
        xy = np.stack([along * np.cos(yaw) + right * np.sin(yaw), along * np.sin(yaw) - right * np.cos(yaw)], 1)
        return PlanPath.from_trajectory(Trajectory(0, 'base_link', t_s, xy, np.full(8, yaw)))

    # the current one 0.3 m to the right and behind, by 0.35 m at now (0.5 s after its stamp), less later
    current = along_previous(lambda t: -0.4 * (1 - t / 4), 0.3)
    jumped = check_trajectory_shift(previous, current, previous_in_current, 0.1, 0.5, SHIFT)
    assert (jumped.ok, jumped.value, jumped.threshold) == (False, pytest.approx(0.35), 0.3)
    assert jumped.message == ('plan jumped backward 0.35 m against the previous one (limit 0.30 m; '
                              'lateral 0.30 m, forward 0.00 m, backward 0.35 m)')
    ahead = check_trajectory_shift(previous, along_previous(lambda t: 0.5 + 0 * t, -0.2),
                                   previous_in_current, 0.1, 0.5, SHIFT)
    assert ahead == CheckResult('trajectory_shift', True, 'warn', 'lateral 0.20 m, forward 0.50 m, backward 0.00 m',
                                pytest.approx(0.2), 1.0)


def test_trajectory_shift_compares_only_where_both_plans_reach_and_passes_without_overlap():
    t_s = 0.5 * np.arange(1, 9)
    current = heading_north(t_s, lambda t: 0 * t, lambda t: 0 * t)
    # the previous plan ends 0.5 s after the current stamp (then it stands where the current one drives on)
    previous = heading_north([0.25, 0.5, 0.6], lambda t: 0 * t, lambda t: 0 * t)
    short = check_trajectory_shift(previous, current, Pose2D(0.0, -1.0, 0.0), 0.1, 0.0, SHIFT)
    assert short.ok and short.value == pytest.approx(0.0, abs=1e-9)
    gone = check_trajectory_shift(previous, current, Pose2D(), 0.1, 0.55, SHIFT)
    assert gone == CheckResult('trajectory_shift', True, 'warn', 'no overlap with the previous plan near the ego')


def test_collision_result_says_why_it_passes_and_a_contact_at_the_horizon_fails():
    cfg = {'severity': 'critical', 'horizon_s': 1.5}
    assert collision_result(None, 0.1, cfg) == CheckResult('collision', True, 'critical', 'no lidar points yet',
                                                           None, 1.5)
    assert collision_result(None, 0.1, cfg).describe() == 'no lidar points yet'
    clear = collision_result(CollisionResult(False, candidates=3), 0.1, cfg, ' (note)')
    assert clear == CheckResult('collision', True, 'critical', 'footprint clear (3 points near the path) (note)',
                                None, 1.5)
    at = collision_result(CollisionResult(True, 1.75, 14.0, np.array([18.0, 0.5]), 28), 0.25, cfg)
    assert (at.ok, at.value, at.threshold) == (False, 1.5, 1.5)
    assert at.message == 'footprint meets a point at (18.0, 0.5) m after 14.0 m, 1.50 s from now'
    later = collision_result(CollisionResult(True, 2.0, 16.0, np.array([20.0, 0.5]), 32), 0.25, cfg)
    assert later == CheckResult('collision', True, 'critical',
                                'footprint meets a point at (20.0, 0.5) m after 16.0 m, 1.75 s from now', 1.75, 1.5)


def test_self_doubt_counts_each_low_quantity_at_its_threshold_as_good_and_a_good_plan_restarts_the_run():
    doubt = SelfDoubt({'severity': 'warn', 'min_plan_score': 0.05, 'min_confidence': 0.2, 'consecutive_plans': 2})
    assert SelfDoubt(doubt.cfg).update(Assessment(0, 0, plan_score=0.01, confidence=0.1)).ok, 'one low plan is not M'
    at_thresholds = doubt.update(Assessment(0, 0, plan_score=0.05, confidence=0.2))
    assert at_thresholds == CheckResult('self_doubt', True, 'warn', 'score 0.050, confidence 0.200', 0.05, 0.05)
    low = Assessment(0, 0, plan_score=0.6, confidence=0.1)
    first = doubt.update(low)
    assert first.ok and first.message == 'score 0.600, confidence 0.100; low for 1 plan(s)'
    assert doubt.update(Assessment(0, 0, plan_score=0.6, confidence=0.5)).ok
    assert doubt.update(low).ok, 'the good plan restarted the run'
    both = doubt.update(Assessment(0, 0, plan_score=0.01, confidence=0.1))
    assert both == CheckResult('self_doubt', False, 'warn',
                               'plan score 0.010 < 0.050; confidence 0.100 < 0.200 for 2 plans in a row', 0.01, 0.05)
    only_confidence = doubt.update(low)
    assert (only_confidence.ok, only_confidence.value, only_confidence.threshold) == (False, 0.1, 0.2)


def test_a_watchdog_result_says_how_long_its_input_has_been_silent_and_on_which_topic():
    cfg = {'severity': 'critical', 'timeout_s': 0.3}
    assert check_silence('camera', None, cfg) == CheckResult('camera_timeout', False, 'critical',
                                                             'no camera message received yet', None, 0.3)
    assert check_silence('camera', 0.04, cfg) == CheckResult('camera_timeout', True, 'critical',
                                                             'last camera 40 ms ago', 0.04, 0.3)
    assert check_silence('lidar', 0.35, cfg, '/sensors/lidar/top/points') == CheckResult(
        'lidar_timeout', False, 'critical', 'no lidar for 350 ms on /sensors/lidar/top/points', 0.35, 0.3)
    assert check_silence('lidar', 2.5, cfg).message == 'no lidar for 2500 ms'
    assert check_silence('lidar', 2.5, {'severity': 'warn', 'timeout_s': 5.0}).message == 'last lidar 2500 ms ago'
    assert check_silence('camera', 0.2, cfg, '/c', seen=False) == CheckResult(
        'camera_timeout', True, 'critical', 'start-up: waiting for the first camera message on /c', 0.2, 0.3)


START_CFG = {'severity': 'warn', 'max_lateral_m': 1.0, 'max_heading_rad': 0.5}


def test_start_deviation_measures_the_ego_beside_and_against_a_plan_heading_at_an_angle():
    h = np.radians(30.0)   # a plan at 8 m/s along 30 degrees: at 0.5 s it is 4 m on
    t_s = 0.5 * np.arange(1, 9)
    plan = Trajectory(0, 'base_link', t_s, 8.0 * t_s[:, None] * [np.cos(h), np.sin(h)], np.full(8, h))
    at = 4.0 * np.array([np.cos(h), np.sin(h)])
    ego = at + 0.5 * np.array([np.cos(h), np.sin(h)]) + 0.6 * np.array([-np.sin(h), np.cos(h)])  # ahead, left
    result = check_start_deviation(plan, Pose2D(ego[0], ego[1], h + 0.2), 0.5, START_CFG)
    assert result == CheckResult('start_deviation', True, 'warn', 'ego 0.60 m beside the plan, heading off by 0.20 rad',
                                 pytest.approx(0.6), 1.0)
    turned = check_start_deviation(plan, Pose2D(ego[0], ego[1], h - 0.7), 0.5, START_CFG)
    assert turned == CheckResult('start_deviation', False, 'warn', 'ego 0.60 m beside the plan, heading off by '
                                 '0.70 rad: heading limit 0.50 rad', pytest.approx(0.7), 0.5)
    beside = check_start_deviation(plan, Pose2D(*(at - 1.2 * np.array([-np.sin(h), np.cos(h)])), h), 0.5, START_CFG)
    assert (beside.ok, beside.value, beside.threshold) == (False, pytest.approx(1.2), 1.0)
    assert beside.message == 'ego 1.20 m beside the plan, heading off by 0.00 rad: lateral limit 1.00 m'


def test_start_deviation_at_its_limits_passes():
    plan = Trajectory(0, 'base_link', 0.5 * np.arange(1, 9), np.stack([4.0 * np.arange(1, 9), np.zeros(8)], 1),
                      np.zeros(8))
    assert check_start_deviation(plan, Pose2D(4.0, 1.0, 0.5), 0.5, START_CFG).ok


STOP_CFG = {'severity': 'warn', 'decel_mps2': 3.0, 'margin_m': 2.0, 'min_speed_mps': 0.28}


def ending_at(end_mps: float) -> PlanPath:
    """8 m/s for 3.5 s, then ``end_mps`` over the last 0.5 s."""
    t_s = 0.5 * np.arange(1, 9)
    x = np.r_[4.0 * np.arange(1, 8), 28.0 + 0.5 * end_mps]
    return PlanPath.from_trajectory(Trajectory(0, 'base_link', t_s, np.stack([x, 0 * x], 1), np.zeros(8)))


def test_stopping_reports_the_room_ahead_against_the_braking_distance_within_the_plan_plus_margin():
    result = check_stopping(straight_8mps(), 8.0, 0.5, STOP_CFG)   # 28 m ahead; 8 m/s stops in 10.7 m, 2.67 s
    assert result == CheckResult('stopping', True, 'warn', '28.0 m ahead; braking at 3 m/s^2 from 8.0 m/s covers '
                                 '12.7 m within the plan', 28.0, pytest.approx(8.0 ** 2 / 6 + 2.0))
    fast = check_stopping(straight_8mps(), 20.0, 0.5, STOP_CFG)    # only 3.5 s of the 6.7 s stop are in the plan
    assert (fast.ok, fast.value, fast.threshold) == (False, 28.0, pytest.approx(20 * 3.5 - 1.5 * 3.5 ** 2 + 2.0))
    assert fast.message.startswith('plan too short: 28.0 m ahead; braking at 3 m/s^2 from 20.0 m/s covers 53.6 m')
    late = check_stopping(straight_8mps(), 8.0, 3.8, STOP_CFG)     # 0.2 s of plan left
    assert (late.value, late.threshold) == pytest.approx((1.6, 8 * 0.2 - 1.5 * 0.2 ** 2 + 2.0))


@pytest.mark.parametrize('end_mps, rest', [(0.0, True), (3.0, True), (4.0, False), (5.0, False), (8.0, False)])
def test_stopping_asks_no_margin_of_a_plan_that_ends_slowly_enough_to_stop_within_it(end_mps, rest):
    result = check_stopping(ending_at(end_mps), 8.0, 0.5, STOP_CFG)
    assert result.threshold == pytest.approx(8.0 ** 2 / 6 + (0.0 if rest else 2.0))
    assert result.message.endswith(' (it comes to rest)') is rest


def test_stopping_of_an_ego_standing_still_passes_and_from_the_minimum_speed_on_it_is_checked():
    assert check_stopping(straight_8mps(), -0.1, 0.5, STOP_CFG) == CheckResult(
        'stopping', True, 'warn', 'standing still (-0.10 m/s)', 28.0, 0.0)
    assert 'standing' not in check_stopping(straight_8mps(), 0.28, 0.5, STOP_CFG).message
