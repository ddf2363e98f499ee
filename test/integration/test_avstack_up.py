"""`avstack up`: output prefixed per node, Ctrl-C stops everything with the critic's last word a takeover
request, start-up in any order needs no reset, and the monitor outlives what it monitors: a killed or hung
(SIGSTOP) driving process (perception and planner, composed: the default layout) is taken over within the
watchdog bound while the critic keeps running; a dead critic stops the stack; --respawn restarts a process.

The critic runs its shipped checks and start-up rule: with no sensors (Ctrl-C) and with a sensor that never
starts, every check as shipped (stack_helpers.stack_config; only the start-up grace of a loaded machine changed);
where the stack must become NOMINAL on the synthetic road, stack_helpers.shipped_critic (the three checks the
shipped model's plans fail there off, staleness for a loaded machine). Sensors come from this process.
"""

import os
import signal
import threading
import time

import psutil
import pytest
from rclpy.node import Node
from std_msgs.msg import Bool

from avstack.runtime.observer import StackObserver
from avstack.runtime.ros import RosRuntime
from avstack.synthetic.sensor_source import SyntheticSensorSource
from stack_common import topics
from stack_common.config import load_node_config
from stack_common.qos import LATCHED_QOS

from support import STACK_CONFIG
from stack_helpers import (LOADED_MACHINE_STARTUP_GRACE_S, NEVER_HEARD, PROCESSES, STARTUP_TIMEOUT_S, Up,
                           shipped_critic, stack_config, takeover_reasons, wait_until_nominal)

MARGIN_S = 0.1   # the critic's 50 Hz timer, scheduling and the DDS hop to this process
LINGER_S = 3.0   # how long the stopped critic serves its last request to late joiners here


@pytest.fixture
def stack():
    """Starts `avstack up ARGS...`; whatever the test's outcome, no stack outlives it."""
    started: list[Up] = []

    def start(*arguments: str) -> Up:
        started.append(Up(*arguments))
        return started[-1]
    yield start
    for up in started:
        up.stop()


def gone(pids: list[int]) -> bool:
    return not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def watchdog_s() -> float:
    return load_node_config('critic_monitor', 'critic_node', STACK_CONFIG)['checks']['watchdogs']['trajectory'][
        'timeout_s']


class LateSubscriber(Node):
    """Subscribes to /critic/takeover_active only when created: what a vehicle interface started late sees."""

    def __init__(self, **kwargs):
        super().__init__('late_subscriber', **kwargs)
        self.values: list[bool] = []
        self.received = threading.Event()
        self.create_subscription(Bool, topics.TAKEOVER_ACTIVE, self.on_active, LATCHED_QOS)

    def on_active(self, msg: Bool) -> None:
        self.values.append(msg.data)
        self.received.set()


@pytest.mark.timeout(180)
def test_ctrl_c_stops_every_node_and_exits_0_leaving_a_takeover_request_for_a_late_subscriber(ros_domain, tmp_path,
                                                                                              stack):
    up = stack('--config', str(stack_config(tmp_path, {'startup_grace_s': LOADED_MACHINE_STARTUP_GRACE_S},
                                            shutdown_linger_s=LINGER_S)))
    with RosRuntime() as ros:
        observer = ros.add(StackObserver(context=ros.context))
        up.wait_ready()
        assert observer.wait_for(lambda o: o.critic_state == 'WAITING', 10.0), 'the critic reports WAITING'
        assert not observer.takeover_active
        children = [c.pid for c in psutil.Process(up.process.pid).children()]
        assert len(children) == len(PROCESSES)
        up.process.send_signal(signal.SIGINT)
        assert observer.wait_for(lambda o: o.takeover_active and o.takeovers, 10.0), up.log()
        assert [r.check for r in observer.takeovers[-1].reasons] == ['critic_stopped']
        late = ros.add(LateSubscriber(context=ros.context))
        assert late.received.wait(LINGER_S) and late.values[-1] is True, 'a late subscriber heard no takeover'
        assert up.process.wait(30) == 0
    assert gone(children)


def start_stack_and_sensors(stack, up_arguments, ros: RosRuntime, sensors_first: bool, **source_kwargs):
    """`avstack up` and the synthetic sensors, the sensors started before the nodes or once every node is up."""
    source = ros.add(SyntheticSensorSource(context=ros.context, replay_frames=20, **source_kwargs)) \
        if sensors_first else None
    up = stack(*up_arguments)
    up.wait_ready()
    return up, source or ros.add(SyntheticSensorSource(context=ros.context, replay_frames=20, **source_kwargs))


@pytest.mark.timeout(240)
@pytest.mark.parametrize('fault, sensors_first', [(signal.SIGKILL, False), (signal.SIGSTOP, True)],
                         ids=['kill-9, sensors after the nodes', 'SIGSTOP, sensors before the nodes'])
def test_a_dead_or_hung_driving_process_is_taken_over_within_the_watchdog_bound_and_the_critic_outlives_it(
        ros_domain, tmp_path, stack, fault, sensors_first):
    with RosRuntime(threads=3) as ros:
        observer = ros.add(StackObserver(context=ros.context))
        up, _ = start_stack_and_sensors(stack, ['--config', str(shipped_critic(tmp_path))], ros, sensors_first)
        try:
            wait_until_nominal(observer)   # no reset: start-up in this order latched nothing
            driving, critic = up.node_pid('planner.driving_process'), up.node_pid('critic_monitor.critic_node')
            faulted_at, faulted_ns = time.monotonic(), time.time_ns()
            os.kill(driving, fault)

            def taken_over(o: StackObserver) -> bool:
                return any(t.monotonic_s >= faulted_at and any(r.check == 'trajectory_timeout' for r in t.reasons)
                           for t in o.takeovers)
            assert observer.wait_for(taken_over, 5.0), f'no takeover naming the planner: {takeover_reasons(observer)}'
            event = next(t for t in observer.takeovers if t.monotonic_s >= faulted_at)
            # on the critic's clock (the request's stamp; the same system clock as this process's): when it
            # decided, not when this loaded process heard of it (999 ms at receipt once, on a loaded machine)
            reaction_s = (event.stamp_ns - faulted_ns) / 1e9
            assert reaction_s <= watchdog_s() + MARGIN_S, f'takeover {reaction_s * 1e3:.0f} ms after the fault'

            # The critic keeps running and publishing; the launcher keeps it (and the rest) running.
            if fault == signal.SIGKILL:
                assert up.wait_for(lambda lines: any('driving_process exited with -9; critic_node keeps watching'
                                                     in line for line in lines), 5.0), up.log()
            seen = len(observer.trajectories)
            assert not observer.wait_for(lambda o: not o.takeover_active or len(o.trajectories) > seen, 2.0)
            assert up.process.poll() is None and psutil.Process(critic).status() != psutil.STATUS_ZOMBIE
        finally:
            code = up.stop()
    assert (code != 0) == (fault == signal.SIGKILL), f'exit code {code}: non-zero exactly when a node died'
    assert observer.takeover_active


@pytest.mark.timeout(240)
def test_a_first_plan_before_the_first_camera_message_needs_no_reset(ros_domain, tmp_path, stack):
    """Lidar and odometry flow before the nodes start, the camera only once they are up: perception plans
    without the camera (a partial set), so the critic's first plan comes before its first camera message."""
    with RosRuntime(threads=3) as ros:
        observer = ros.add(StackObserver(context=ros.context))
        up, source = start_stack_and_sensors(stack, ['--config', str(shipped_critic(tmp_path))], ros, True,
                                             camera=False)
        assert observer.wait_for(lambda o: o.trajectories, STARTUP_TIMEOUT_S), up.log()
        # the critic's state comes on its own topic, maybe after the first plans (it said 'unknown' once)
        assert observer.wait_for(lambda o: o.critic_state == 'WAITING', 10.0), observer.critic_state
        assert not observer.takeovers
        source.camera_enabled.set()
        wait_until_nominal(observer)
        assert up.stop() == 0


@pytest.mark.timeout(240)
def test_a_sensor_that_never_starts_gives_exactly_one_request_naming_it(ros_domain, tmp_path, stack):
    # every check as shipped: the request names the silent camera, and with it whatever check still fails then
    config = stack_config(tmp_path, {'startup_grace_s': LOADED_MACHINE_STARTUP_GRACE_S})
    startup_timeout_s = load_node_config('critic_monitor', 'critic_node', config)['state_machine']['startup_timeout_s']
    with RosRuntime(threads=3) as ros:
        observer = ros.add(StackObserver(context=ros.context))
        started = time.monotonic()
        up, _ = start_stack_and_sensors(stack, ['--config', str(config)], ros, True, camera=False)
        assert observer.wait_for(lambda o: o.takeovers, STARTUP_TIMEOUT_S), up.log()
        event = observer.takeovers[0]
        # the critic's watchdog names the topic and no other input; perception reports the same camera missing
        # from its sets; plan checks that fail then (the shipped model on the synthetic road) are named too
        never_heard = [r for r in event.reasons if NEVER_HEARD in r.message]
        assert [r.check for r in never_heard] == ['camera_timeout'], takeover_reasons(observer)
        assert topics.camera_topic('front') in never_heard[0].message
        assert all('camera/front' in r.message for r in event.reasons if r.check == 'sensor_loss'), \
            takeover_reasons(observer)
        # startup_timeout_s after the critic's first plan (which this process may hear earlier or later: discovery)
        assert event.monotonic_s - started >= startup_timeout_s
        # one request, latched (a further reason may update it: a loaded machine's stale plan)
        assert not up.wait_for(lambda lines: len(new_requests(lines)) > 1, 2.0), new_requests(up.lines)
        up.stop()


def new_requests(lines: list[str]) -> list[str]:
    """The critic's log lines of a new takeover request (not of an update of a latched one)."""
    return [line for line in lines if line.startswith('[critic_node]') and '-> TAKEOVER_REQUESTED' in line
            and 'TAKEOVER_REQUESTED -> TAKEOVER_REQUESTED' not in line]


@pytest.mark.timeout(180)
def test_a_dead_critic_stops_the_stack_with_a_nonzero_exit(ros_domain, stack):
    up = stack()
    up.wait_ready()
    children = [c.pid for c in psutil.Process(up.process.pid).children()]
    os.kill(up.node_pid('critic_monitor.critic_node'), signal.SIGKILL)
    assert up.process.wait(30) != 0
    assert up.wait_for(lambda lines: any('critic_node exited with -9; nothing monitors the stack' in line
                                         for line in lines), 5.0), up.log()
    assert gone(children)


@pytest.mark.timeout(180)
def test_with_respawn_a_dead_node_is_started_again(ros_domain, stack):
    up = stack('--respawn')
    up.wait_ready()
    first = up.node_pid('planner.driving_process')
    os.kill(first, signal.SIGKILL)
    assert up.wait_for(lambda lines: any('respawning' in line for line in lines), 10.0)
    # a respawned node logs again through the launcher: wait for its start-up line after the kill
    seen = len(up.lines)
    assert up.wait_for(lambda lines: any(line.startswith('[driving_process]') for line in lines[seen:]),
                       STARTUP_TIMEOUT_S)
    assert up.node_pid('planner.driving_process') != first and up.process.poll() is None
    assert up.stop() == 0
