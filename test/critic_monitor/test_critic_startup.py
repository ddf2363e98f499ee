"""Start-up in any order: the critic waits, latching nothing, until every input was heard and a plan came.

A real :class:`CriticCore` on the shipped defaults (startup_timeout_s 5 s, startup_grace_s 10 s, watchdogs
0.3 s for plans and 0.5 s for sensors), fed the way the node feeds it, with a 50 Hz timer. Inputs start in
different orders; once running, each sensor keeps its 10 Hz (odometry 25 Hz) and plans come at 10 Hz.
"""

import itertools

import pytest

from critic_monitor.monitor import CriticCore
from critic_monitor.state_machine import TakeoverState
from stack_common import topics
from stack_common.odometry import EgoState

from critic_drive import CAMERA, PLAN_LATENCY_NS, S, T0, TICK_NS, critic_config, profile_plan

LIDAR = topics.lidar_topic('top')
INPUTS = ('camera', 'lidar', 'odometry', 'planner')


class Bringup:
    """Inputs that start at given times (None: never) and then keep their rates; the critic's timer ticks."""

    def __init__(self, starts_s: dict, config: dict | None = None):
        self.config = critic_config(config)
        self.core = CriticCore(self.config, T0)
        self.starts_ns = {name: None if start is None else T0 + int(start * S) for name, start in starts_s.items()}
        self.now = T0
        self.transitions = []

    def running(self, name: str) -> bool:
        start = self.starts_ns.get(name)
        return start is not None and self.now >= start

    def run(self, seconds: float) -> list:
        out = []
        end = self.now + int(seconds * S)
        while self.now < end:
            self.now += TICK_NS
            t = self.now - T0
            if self.running('odometry') and t % (2 * TICK_NS) == 0:
                self.core.on_odometry(EgoState(self.now, 8.0 * t / S, 0.0, 0.0, 8.0), self.now)
            if t % (5 * TICK_NS) == 0:
                if self.running('camera'):
                    self.core.on_input('camera', CAMERA, self.now)
                if self.running('lidar'):
                    out += self.core.on_lidar('top', [[30.0, 0.0, -1.78]], self.now, self.now)
                if self.running('planner'):
                    out += self.core.on_trajectory(profile_plan(self.now - PLAN_LATENCY_NS), self.now)
            out += self.core.tick(self.now)
        self.transitions += out
        return out

    def requests(self) -> list:
        return [t for t in self.transitions if t.requests_takeover]


ORDERS = list(itertools.permutations(INPUTS))


@pytest.mark.parametrize('order', ORDERS, ids=['-'.join(o) for o in ORDERS])
def test_inputs_starting_in_any_order_within_the_timeout_give_no_takeover(order):
    # each input 0.7 s after the one before it: longer than any watchdog, within the 5 s start-up timeout
    bringup = Bringup({name: 0.5 + 0.7 * i for i, name in enumerate(order)})
    bringup.run(4.0)
    assert not bringup.requests(), [t.describe() for t in bringup.transitions]
    assert [(t.previous, t.state) for t in bringup.transitions] == [(TakeoverState.WAITING, TakeoverState.NOMINAL)]
    # it left WAITING once every input had been heard and the checks had passed for nominal_hold_s, not later
    last_start = max(bringup.starts_ns.values())
    hold_ns = int(bringup.config['state_machine']['nominal_hold_s'] * S)
    assert 0 <= bringup.transitions[0].stamp_ns - last_start - hold_ns <= 5 * TICK_NS


def test_a_first_plan_before_the_first_camera_message_latches_nothing():
    """The held-out case: the plan (reliable) beats the camera (best effort) to the critic."""
    bringup = Bringup({'lidar': 0.0, 'odometry': 0.0, 'planner': 0.1, 'camera': 0.4})
    bringup.run(0.3)
    assert bringup.core.state == TakeoverState.WAITING and not bringup.transitions
    assert bringup.core.waiting_for() == [CAMERA]
    camera = next(r for r in bringup.core.results(bringup.now) if r.check == 'camera_timeout')
    assert camera.ok and 'waiting for the first camera message' in camera.message
    bringup.run(2.0)
    assert bringup.core.state == TakeoverState.NOMINAL and not bringup.requests()


def test_waiting_names_everything_not_heard_yet_the_plans_included():
    bringup = Bringup({'lidar': 0.0})
    bringup.run(0.5)
    assert bringup.core.waiting_for() == [topics.TRAJECTORY, CAMERA, topics.ODOMETRY]
    assert LIDAR not in bringup.core.waiting_for()


def test_a_sensor_that_never_starts_gives_exactly_one_request_naming_it_after_the_startup_timeout():
    bringup = Bringup({'lidar': 0.0, 'odometry': 0.0, 'planner': 1.0, 'camera': None})
    timeout_s = bringup.config['state_machine']['startup_timeout_s']
    bringup.run(1.0 + timeout_s + 3.0)
    (request,) = bringup.requests()
    assert [r.check for r in request.reasons] == ['camera_timeout']
    assert CAMERA in request.reasons[0].message and 'no camera message received yet' in request.reasons[0].message
    assert 0 <= request.stamp_ns - (bringup.core.first_plan_ns + timeout_s * S) <= TICK_NS
    assert bringup.core.machine.takeover_active


def test_without_any_plan_start_up_ends_after_the_grace_period_naming_the_planner():
    bringup = Bringup({'camera': 0.0, 'lidar': 0.0, 'odometry': 0.0, 'planner': None})
    grace_s = bringup.config['state_machine']['startup_grace_s']
    bringup.run(grace_s - 0.1)
    assert bringup.core.state == TakeoverState.WAITING and not bringup.transitions
    bringup.run(0.5)
    (request,) = bringup.requests()
    assert [r.check for r in request.reasons] == ['trajectory_timeout']
    assert 'no trajectory message received yet' in request.reasons[0].message


def test_a_watchdog_counts_from_its_inputs_first_message_not_from_the_start():
    # the camera starts 3 s after the critic: had its watchdog counted from the start, it would have fired
    bringup = Bringup({'lidar': 0.0, 'odometry': 0.0, 'planner': 0.0, 'camera': 3.0})
    bringup.run(3.5)
    camera = next(r for r in bringup.core.results(bringup.now) if r.check == 'camera_timeout')
    assert camera.ok and camera.value < camera.threshold
    assert not bringup.requests()


def test_a_stack_warming_up_stays_waiting_until_its_plans_pass_then_runs_without_a_takeover():
    """The first plans of a loaded machine come late and stale; start-up waits for the checks to pass."""
    bringup = Bringup({name: 0.0 for name in INPUTS})
    fresh_plan = bringup.core.on_trajectory
    bringup.core.on_trajectory = lambda plan, now: fresh_plan(profile_plan(now - 400_000_000), now)   # 0.4 s old
    bringup.run(1.0)
    assert bringup.core.state == TakeoverState.WAITING and not bringup.transitions
    assert bringup.core.waiting_for() == [] and bringup.core.startup_failures(bringup.now) == ['staleness']
    bringup.core.on_trajectory = fresh_plan
    bringup.run(0.9)
    assert bringup.core.state == TakeoverState.WAITING, 'the checks must pass for nominal_hold_s first'
    bringup.run(0.5)
    assert [(t.previous, t.state) for t in bringup.transitions] == [(TakeoverState.WAITING, TakeoverState.NOMINAL)]


def test_a_check_still_failing_when_start_up_times_out_requests_the_takeover():
    bringup = Bringup({name: 0.0 for name in INPUTS})
    stale = bringup.core.on_trajectory
    bringup.core.on_trajectory = lambda plan, now: stale(profile_plan(now - 400_000_000), now)
    bringup.run(bringup.config['state_machine']['startup_timeout_s'] + 0.5)
    (request,) = bringup.requests()
    assert [r.check for r in request.reasons] == ['staleness']


def test_stopping_requests_a_takeover_naming_it_and_nothing_changes_after():
    bringup = Bringup({name: 0.0 for name in INPUTS}, {'state_machine': {'auto_clear_after_s': 0.5}})
    bringup.run(1.5)
    assert bringup.core.state == TakeoverState.NOMINAL
    (stop,) = bringup.core.stop(bringup.now)
    assert stop.state == TakeoverState.TAKEOVER_REQUESTED and [r.check for r in stop.reasons] == ['critic_stopped']
    assert bringup.run(2.0) == [], 'inputs and ticks after the stop changed the state (auto clear)'
    assert bringup.core.machine.takeover_active
    assert bringup.core.reset(bringup.now)[0] is False
    assert bringup.core.statistics.summary()['takeovers'] == 0, 'a stop is no takeover of the drive'
