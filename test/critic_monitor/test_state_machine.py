"""The takeover state machine: waiting, immediate critical requests, escalation, hysteresis, latch, reset."""

import pytest

from critic_monitor.checks import CRITICAL, WARN, failed, passed
from critic_monitor.state_machine import TakeoverState, TakeoverStateMachine, Transition

S = 1_000_000_000
T0 = 1_000 * S
PERIOD = S // 50   # a 50 Hz timer

CFG = {'startup_grace_s': 10.0, 'startup_timeout_s': 5.0, 'escalate_count': 10, 'escalate_window_s': 1.0,
       'nominal_hold_s': 1.0, 'auto_clear_after_s': 0.0}

OK_RESULTS = [passed('validity', CRITICAL), passed('sensor_loss', WARN)]
CRITICAL_FAILURE = [failed('validity', CRITICAL, '3 non-finite values in the plan', 3, 0), passed('sensor_loss', WARN)]
WARNING = [passed('validity', CRITICAL), failed('sensor_loss', WARN, 'perception reports missing: front', 1, 0)]


def machine(**overrides) -> TakeoverStateMachine:
    m = TakeoverStateMachine({**CFG, **overrides}, T0)
    m.start_monitoring()
    return m


def states(transitions):
    return [(t.previous, t.state) for t in transitions]


def test_waiting_latches_nothing_until_monitoring_starts_then_judges_at_once():
    m = TakeoverStateMachine(CFG, T0)
    assert m.update(T0 + 50 * S, CRITICAL_FAILURE, tick=True) == []
    assert m.state == TakeoverState.WAITING and not m.takeover_active
    m.start_monitoring()
    transitions = m.update(T0 + 50 * S + 1, CRITICAL_FAILURE)
    assert states(transitions) == [(TakeoverState.WAITING, TakeoverState.NOMINAL),
                                   (TakeoverState.NOMINAL, TakeoverState.TAKEOVER_REQUESTED)]


def test_monitoring_with_passing_checks_is_nominal():
    m = machine()
    assert states(m.update(T0 + S, OK_RESULTS)) == [(TakeoverState.WAITING, TakeoverState.NOMINAL)]


def test_a_request_from_outside_names_its_reason_and_joins_a_latched_one():
    m = machine()
    m.update(T0, CRITICAL_FAILURE)
    stopped = failed('critic_stopped', CRITICAL, 'the critic stopped')
    [transition] = m.request(T0 + S, [stopped])
    assert (transition.previous, transition.state) == (TakeoverState.TAKEOVER_REQUESTED,) * 2
    assert [r.check for r in transition.reasons] == ['validity', 'critic_stopped']
    idle = TakeoverStateMachine(CFG, T0)   # still waiting: the request comes all the same
    assert states(idle.request(T0, [stopped])) == [(TakeoverState.WAITING, TakeoverState.TAKEOVER_REQUESTED)]


def test_a_critical_failure_requests_at_once_with_its_measured_value():
    m = machine()
    m.update(T0, OK_RESULTS)
    transitions = m.update(T0 + 1, CRITICAL_FAILURE)   # not a tick: any update reacts
    assert states(transitions) == [(TakeoverState.NOMINAL, TakeoverState.TAKEOVER_REQUESTED)]
    reason = transitions[0].reasons[0]
    assert (reason.check, reason.value, reason.threshold) == ('validity', 3.0, 0.0)
    assert 'validity: 3 non-finite values in the plan [3 vs 0]' in transitions[0].describe()


def test_warnings_escalate_only_when_they_persist_over_timer_cycles():
    m = machine()
    m.update(T0, OK_RESULTS)
    assert states(m.update(T0 + PERIOD, WARNING, tick=True)) == [(TakeoverState.NOMINAL, TakeoverState.WARNING)]
    # Messages between ticks do not count toward escalation.
    for i in range(50):
        assert m.update(T0 + PERIOD + i, WARNING) == []
    for cycle in range(2, 10):
        assert m.update(T0 + cycle * PERIOD, WARNING, tick=True) == []
    transitions = m.update(T0 + 10 * PERIOD, WARNING, tick=True)
    assert states(transitions) == [(TakeoverState.WARNING, TakeoverState.TAKEOVER_REQUESTED)]
    assert transitions[0].reasons[0].check == 'sensor_loss'


def test_warning_returns_to_nominal_only_after_the_hold_time():
    m = machine(escalate_count=1000)
    m.update(T0, WARNING, tick=True)
    assert m.update(T0 + S // 2, OK_RESULTS, tick=True) == []
    assert m.state == TakeoverState.WARNING
    transitions = m.update(T0 + S, OK_RESULTS, tick=True)
    assert states(transitions) == [(TakeoverState.WARNING, TakeoverState.NOMINAL)]
    assert transitions[0].stamp_ns == T0 + S


@pytest.mark.parametrize('bad', [CRITICAL_FAILURE, WARNING], ids=['critical', 'warning'])
def test_an_input_alternating_good_and_bad_every_cycle_does_not_flap_the_output(bad):
    """Two seconds of a flickering input: the output changes state at most twice and never clears."""
    m = machine(auto_clear_after_s=0.5)
    m.update(T0, OK_RESULTS)
    outputs, transitions = [], []
    for cycle in range(1, 101):
        transitions += m.update(T0 + cycle * PERIOD, bad if cycle % 2 else OK_RESULTS, tick=True)
        outputs.append(m.takeover_active)
    changes = [t for t in transitions if t.previous != t.state]
    assert len(changes) <= 2, [t.describe() for t in changes]
    assert outputs[-1] and all(outputs[outputs.index(True):]), 'the request must stay latched while flickering'
    assert len(transitions) == len(changes), 'a flickering reason must not be republished every cycle'


def test_a_latched_request_clears_on_reset_only_once_every_check_passes():
    m = machine()
    m.update(T0, CRITICAL_FAILURE)
    ok, message, transitions = m.reset(T0 + S, CRITICAL_FAILURE)
    assert not ok and 'validity' in message and transitions == [] and m.takeover_active
    assert m.update(T0 + 60 * S, OK_RESULTS, tick=True) == [] and m.takeover_active, 'latched without auto-clear'
    ok, message, transitions = m.reset(T0 + 61 * S, OK_RESULTS)
    assert ok and states(transitions) == [(TakeoverState.TAKEOVER_REQUESTED, TakeoverState.NOMINAL)]
    assert not m.takeover_active


def test_reset_without_a_request_changes_nothing():
    m = machine()
    m.update(T0, OK_RESULTS)
    ok, message, transitions = m.reset(T0 + 1, OK_RESULTS)
    assert ok and transitions == [] and 'NOMINAL' in message


def test_auto_clear_after_a_nominal_period_when_configured():
    m = machine(auto_clear_after_s=2.0)
    m.update(T0, CRITICAL_FAILURE)
    assert m.update(T0 + S, OK_RESULTS, tick=True) == []
    assert m.update(T0 + 2 * S - 1, OK_RESULTS, tick=True) == []
    assert states(m.update(T0 + 2 * S, OK_RESULTS, tick=True)) == [
        (TakeoverState.TAKEOVER_REQUESTED, TakeoverState.NOMINAL)]


def test_any_positive_auto_clear_period_clears_and_zero_never_does():
    shortest = machine(auto_clear_after_s=1e-9)   # one nanosecond
    shortest.update(T0, CRITICAL_FAILURE)
    assert states(shortest.update(T0 + 1, OK_RESULTS, tick=True)) == [
        (TakeoverState.TAKEOVER_REQUESTED, TakeoverState.NOMINAL)]
    off = machine(auto_clear_after_s=0.0)
    off.update(T0, CRITICAL_FAILURE)
    assert off.update(T0 + 600 * S, OK_RESULTS, tick=True) == [] and off.takeover_active


def test_a_check_failing_anew_while_latched_is_published():
    """E.g. the planner watchdog fired at start-up, recovered, and fires again when the planner dies."""
    m = machine()
    m.update(T0, CRITICAL_FAILURE)
    timeout = failed('trajectory_timeout', CRITICAL, 'no trajectory for 320 ms', 0.32, 0.3)
    first = m.update(T0 + S, CRITICAL_FAILURE + [timeout])
    assert states(first) == [(TakeoverState.TAKEOVER_REQUESTED, TakeoverState.TAKEOVER_REQUESTED)]
    assert {r.check for r in first[0].reasons} == {'validity', 'trajectory_timeout'}
    assert m.update(T0 + S + PERIOD, CRITICAL_FAILURE + [timeout]) == [], 'still failing: nothing new'
    m.update(T0 + 2 * S, OK_RESULTS)                  # recovered for longer than nominal_hold_s
    again = m.update(T0 + 4 * S, OK_RESULTS + [timeout])
    assert [r.check for r in again[0].reasons if r.check == 'trajectory_timeout'] == ['trajectory_timeout']


def test_an_outside_request_clears_by_itself_only_after_the_auto_clear_period():
    m = machine(auto_clear_after_s=1.0)
    m.update(T0, OK_RESULTS)                                    # passing for far longer than auto-clear
    m.request(T0 + 10 * S, [failed('critic_stopped', CRITICAL, 'the critic stopped')])
    assert m.update(T0 + 10 * S + PERIOD, OK_RESULTS, tick=True) == [] and m.takeover_active
    assert states(m.update(T0 + 11 * S, OK_RESULTS, tick=True)) == [
        (TakeoverState.TAKEOVER_REQUESTED, TakeoverState.NOMINAL)]


def test_a_reason_requested_from_outside_is_not_new_when_the_checks_then_report_it():
    m = machine()
    m.update(T0, OK_RESULTS)
    timeout = failed('trajectory_timeout', CRITICAL, 'no trajectory for 320 ms', 0.32, 0.3)
    m.request(T0 + S, [timeout])
    assert m.update(T0 + S + PERIOD, OK_RESULTS + [timeout]) == [], 'still failing: nothing new'


def test_restart_goes_back_to_waiting():
    m = machine()
    m.update(T0, CRITICAL_FAILURE)
    m.restart(T0 + S)
    assert m.state == TakeoverState.WAITING and not m.takeover_active and m.reasons == []


def test_a_log_line_names_the_reasons_that_changed_not_every_earlier_one():
    first = failed('staleness', CRITICAL, 'plan too old', 0.5, 0.3)
    second = failed('collision', CRITICAL, 'hit', 1, 0)
    request = Transition(0, TakeoverState.NOMINAL, TakeoverState.TAKEOVER_REQUESTED, [first])
    update = Transition(1, TakeoverState.TAKEOVER_REQUESTED, TakeoverState.TAKEOVER_REQUESTED, [first, second])
    clear = Transition(2, TakeoverState.TAKEOVER_REQUESTED, TakeoverState.NOMINAL, [])
    assert request.describe_change([]) == 'NOMINAL -> TAKEOVER_REQUESTED (new: staleness: plan too old [0.5 vs 0.3])'
    assert update.describe_change([first]) == \
        'TAKEOVER_REQUESTED -> TAKEOVER_REQUESTED (new: collision: hit [1 vs 0])'
    assert clear.describe_change([first, second]) == 'TAKEOVER_REQUESTED -> NOMINAL (cleared: staleness, collision)'
    assert 'again: staleness' in update.describe_change([first, second])
    swap = Transition(3, TakeoverState.TAKEOVER_REQUESTED, TakeoverState.TAKEOVER_REQUESTED, [second])
    assert swap.describe_change([first]) == \
        'TAKEOVER_REQUESTED -> TAKEOVER_REQUESTED (new: collision: hit [1 vs 0]; cleared: staleness)'


def test_a_log_line_without_reasons_names_only_the_states():
    start = Transition(0, TakeoverState.WAITING, TakeoverState.NOMINAL, [])
    assert start.describe_change([]) == 'WAITING -> NOMINAL'


def test_every_transition_carries_the_time_it_happened():
    m = machine(escalate_count=2, auto_clear_after_s=1.0)
    stamps = [t.stamp_ns for t in m.update(T0 + 1, WARNING, tick=True)]                # WAITING -> NOMINAL -> WARNING
    stamps += [t.stamp_ns for t in m.update(T0 + 2, WARNING, tick=True)]               # escalated
    timeout = failed('trajectory_timeout', CRITICAL, 'no trajectory for 320 ms', 0.32, 0.3)
    stamps += [t.stamp_ns for t in m.update(T0 + 3, WARNING + [timeout])]             # a further reason
    stamps += [t.stamp_ns for t in m.update(T0 + 3 + S, OK_RESULTS, tick=True)]       # auto-clear
    assert stamps == [T0 + 1, T0 + 1, T0 + 2, T0 + 3, T0 + 3 + S]
    m.update(T0 + 4 * S, CRITICAL_FAILURE)
    assert [t.stamp_ns for t in m.reset(T0 + 5 * S, OK_RESULTS)[2]] == [T0 + 5 * S]
    stopped = failed('critic_stopped', CRITICAL, 'the critic stopped')
    assert [t.stamp_ns for t in m.request(T0 + 6 * S, [stopped])] == [T0 + 6 * S]     # from outside


def test_reset_answers_name_the_failing_checks_or_say_it_cleared():
    m = machine()
    m.update(T0, CRITICAL_FAILURE)
    timeout = failed('trajectory_timeout', CRITICAL, 'no trajectory for 320 ms', 0.32, 0.3)
    assert m.reset(T0 + S, CRITICAL_FAILURE + [timeout])[:2] == (False, 'still failing: validity, trajectory_timeout')
    assert m.reset(T0 + 2 * S, OK_RESULTS)[:2] == (True, 'takeover request cleared')


def test_critical_reasons_come_first_and_describe_lists_them():
    m = machine()
    m.update(T0, OK_RESULTS)
    timeout = failed('trajectory_timeout', CRITICAL, 'no trajectory for 320 ms', 0.32, 0.3)
    transition, = m.update(T0 + 1, WARNING + [timeout])
    assert [r.check for r in transition.reasons] == ['trajectory_timeout', 'sensor_loss']
    assert transition.describe() == ('NOMINAL -> TAKEOVER_REQUESTED (trajectory_timeout: no trajectory for 320 ms '
                                     '[0.32 vs 0.3]; sensor_loss: perception reports missing: front [1 vs 0])')
    assert m.reset(T0 + 2, OK_RESULTS)[2][0].describe() == 'TAKEOVER_REQUESTED -> NOMINAL'


def test_the_update_that_ends_waiting_counts_as_a_timer_cycle():
    m = machine(escalate_count=1)
    transitions = m.update(T0 + PERIOD, WARNING, tick=True)   # start-up ends on a tick with a warning
    assert states(transitions)[-1] == (TakeoverState.NOMINAL, TakeoverState.TAKEOVER_REQUESTED)


def test_a_warning_exactly_one_window_old_no_longer_counts_toward_escalation():
    m = machine(escalate_count=2, escalate_window_s=1.0, nominal_hold_s=10.0)
    m.update(T0, WARNING, tick=True)
    assert m.update(T0 + S, WARNING, tick=True) == [] and m.state == TakeoverState.WARNING


def test_a_reason_failing_again_exactly_the_hold_time_later_is_not_new():
    m = machine()
    timeout = failed('trajectory_timeout', CRITICAL, 'no trajectory for 320 ms', 0.32, 0.3)
    m.update(T0, CRITICAL_FAILURE + [timeout])
    m.update(T0 + PERIOD, CRITICAL_FAILURE)                       # the timeout recovers ...
    assert m.update(T0 + S, CRITICAL_FAILURE + [timeout]) == []  # ... and fails again nominal_hold_s after
