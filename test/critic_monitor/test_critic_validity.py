"""The critic's validity check, one rule at a time: a plan in another frame, times that do not increase,
waypoints before the stamp, non-finite values, too few points. Each is refused at its boundary and
accepted just inside it, and a refused plan requests a takeover in a running critic core."""

import numpy as np
import pytest

from critic_monitor.checks import check_validity
from critic_monitor.state_machine import TakeoverState
from stack_common.trajectory import Trajectory

from critic_drive import T0, Drive, critic_config, profile_plan

VALIDITY = critic_config()['checks']['validity']


def plan(t_s=None, frame_id='base_link', points: int = 8) -> Trajectory:
    straight = profile_plan(T0, points=points)
    if t_s is not None:
        straight.t_s = np.asarray(t_s, float)
    straight.frame_id = frame_id
    return straight


def test_the_shipped_rule_expects_base_link_and_at_least_2_points():
    assert VALIDITY['frame_id'] == 'base_link' and VALIDITY['min_points'] >= 2


@pytest.mark.parametrize('frame_id', ['map', 'odom', '', 'base_link ', 'Base_link'])
def test_a_plan_in_another_frame_is_invalid(frame_id):
    result = check_validity(plan(frame_id=frame_id), VALIDITY)
    assert not result.ok and result.check == 'validity'
    assert f'plan frame {frame_id!r}, expected \'base_link\'' in result.message


@pytest.mark.parametrize('t_s, smallest_step', [
    ([0.5, 1.0, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5], 0.0),        # a repeated time
    ([0.5, 1.0, 1.5, 1.4, 2.0, 2.5, 3.0, 3.5], -0.1),       # one going back
    ([3.5, 3.0, 2.5, 2.0, 1.5, 1.0, 0.5, 0.1], -0.5),       # all reversed
])
def test_waypoint_times_that_do_not_strictly_increase_are_invalid(t_s, smallest_step):
    result = check_validity(plan(t_s), VALIDITY)
    assert not result.ok and 'not strictly increasing' in result.message
    assert result.value == pytest.approx(smallest_step) and result.threshold == 0.0


def test_times_increasing_by_a_microsecond_are_valid():
    assert check_validity(plan(0.5 + 1e-6 * np.arange(8)), VALIDITY).ok


def test_a_first_waypoint_before_the_stamp_is_invalid_and_one_at_the_stamp_is_valid():
    early = check_validity(plan(np.arange(8) * 0.5 - 0.25), VALIDITY)
    assert not early.ok and 'before the plan stamp' in early.message and early.value == -0.25
    assert check_validity(plan(np.arange(8) * 0.5), VALIDITY).ok


@pytest.mark.parametrize('field', ['t_s', 'xy', 'heading'])
@pytest.mark.parametrize('value', [np.nan, np.inf, -np.inf])
def test_any_non_finite_value_is_invalid_and_counted(field, value):
    bad = plan()
    getattr(bad, field).reshape(-1)[3] = value
    result = check_validity(bad, VALIDITY)
    assert not result.ok and result.value == 1 and '1 non-finite values' in result.message


def test_fewer_points_than_the_minimum_are_invalid_and_the_minimum_is_valid():
    minimum = VALIDITY['min_points']
    short = check_validity(plan(points=minimum - 1), VALIDITY)
    assert not short.ok and short.value == minimum - 1 and short.threshold == minimum
    assert check_validity(plan(points=minimum), VALIDITY).ok


@pytest.mark.parametrize('spoil', [
    lambda p: setattr(p, 'frame_id', 'map'),
    lambda p: p.t_s.__setitem__(slice(None), p.t_s[::-1].copy()),
])
def test_a_running_critic_requests_a_takeover_for_a_plan_in_the_wrong_frame_or_time_order(spoil):
    drive = Drive()
    drive.run(3.0, plans_hz=10.0)
    assert drive.core.machine.state == TakeoverState.NOMINAL

    def spoiled(stamp_ns):
        bad = drive.straight(stamp_ns)
        spoil(bad)
        return bad
    drive.run(1.0, plans_hz=10.0, plan=spoiled)
    requested = [t for t in drive.transitions if t.state == TakeoverState.TAKEOVER_REQUESTED]
    assert requested and 'validity' in {r.check for r in requested[0].reasons}
