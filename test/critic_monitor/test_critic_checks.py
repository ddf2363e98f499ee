"""Every critic check: a plan (or input) that passes and one that fails, with reason and measured value.

The checks run inside a real :class:`CriticCore` fed the way the node feeds
it (odometry at 25 Hz, a 50 Hz timer, plans at receipt), so the "output" here
is the transition the node would publish, with its reasons.
"""


import pytest

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
