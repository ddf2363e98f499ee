"""critic_node as its own process over real DDS: takeover, reset service, diagnostics, markers, statistics, sim time.

The test process plays the rest of the stack: a synthetic sensor source
(camera, ~30k-point lidar, odometry at 10 Hz), a planner stand-in that
publishes a straight plan down the ego lane for every lidar frame, and
observers. It waits on conditions with deadlines, never on sleeps.
"""

import json
import threading
import time
from pathlib import Path

import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from avstack.benchmarks.critic import CRITIC, PlannerStandIn
from avstack.launcher import Launcher
from avstack.observer import StackObserver
from avstack.ros_runtime import RosRuntime
from avstack.sensor_source import SyntheticSensorSource
from avstack.synthetic import SyntheticScene
from critic_monitor.monitor import PLAN_CHECKS
from stack_common import topics
from stack_common.qos import LATCHED_QOS, STATUS_QOS
from stack_common.takeover import msg_to_takeover
from stack_common.timeutil import NS_PER_S, ns_to_stamp

STARTUP_TIMEOUT_S = 60.0
WATCHDOGS = ('trajectory_timeout', 'camera_timeout', 'lidar_timeout', 'odometry_timeout')
# The takeover flow, not its timing (test_fault_injection.py and the benchmarks time the defaults): liveness
# limits that a loaded test machine, whose sensors and planner stand-in run in one Python process, keeps.
# The start-up grace ends at the first plan; a long one only covers a slow start.
FLOW_TIMING = {'checks': {'staleness': {'max_age_s': 1.0}, 'watchdogs': {
    'trajectory': {'timeout_s': 1.0}, 'camera': {'timeout_s': 2.0}, 'lidar': {'timeout_s': 2.0},
    'odometry': {'timeout_s': 2.0}}}, 'state_machine': {'startup_grace_s': STARTUP_TIMEOUT_S}}


def write_config(tmp_path: Path, **critic_params) -> Path:
    path = tmp_path / 'critic.yaml'
    path.write_text(yaml.safe_dump({'critic_node': {'ros__parameters': {
        'statistics_path': str(tmp_path / 'statistics.json'), **critic_params}}}))
    return path


class CriticWatcher(Node):
    """Collects the critic's /diagnostics, markers and takeover stamps."""

    def __init__(self, **kwargs):
        super().__init__('critic_watcher', **kwargs)
        self.changed = threading.Condition()
        self.statuses: dict[str, DiagnosticStatus] = {}
        self.diagnostics_count = 0
        self.markers: list[MarkerArray] = []
        self.request_stamps: list[tuple[int, list]] = []
        self.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self.on_diagnostics, STATUS_QOS)
        self.create_subscription(MarkerArray, topics.CRITIC_MARKERS, self.on_markers, STATUS_QOS)
        self.create_subscription(DiagnosticArray, topics.TAKEOVER_REQUEST, self.on_request, LATCHED_QOS)
        self.reset_client = self.create_client(Trigger, '/critic_node/reset')

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        with self.changed:
            for status in msg.status:
                if status.hardware_id == 'critic_monitor':
                    self.statuses[status.name] = status
            self.diagnostics_count += 1
            self.changed.notify_all()

    def checks_pass(self) -> bool:
        """Every check status of the latest /diagnostics is OK (or has no input yet)."""
        return all(status.level in (DiagnosticStatus.OK, DiagnosticStatus.STALE) for name, status in
                   self.statuses.items() if name not in ('critic/state', 'critic/statistics', 'critic/timing'))

    def on_markers(self, msg: MarkerArray) -> None:
        with self.changed:
            self.markers.append(msg)
            self.changed.notify_all()

    def on_request(self, msg: DiagnosticArray) -> None:
        with self.changed:
            self.request_stamps.append(msg_to_takeover(msg))
            self.changed.notify_all()

    def wait_for(self, predicate, timeout_s: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self), timeout_s)

    def value(self, status: str, key: str) -> str | None:
        with self.changed:
            found = self.statuses.get(status)
            return None if found is None else {kv.key: kv.value for kv in found.values}.get(key)

    def reset(self, timeout_s: float = 10.0) -> Trigger.Response:
        assert self.reset_client.wait_for_service(timeout_sec=timeout_s), 'no ~/reset service'
        future = self.reset_client.call_async(Trigger.Request())
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        assert done.wait(timeout_s), 'reset call timed out'
        return future.result()


@pytest.mark.timeout(180)
def test_killed_plans_request_a_takeover_that_the_reset_service_clears_once_plans_are_back(ros_domain, tmp_path):
    config = write_config(tmp_path, **FLOW_TIMING)
    scene = SyntheticScene(image_width=320, image_height=180, azimuths=1000)
    with open(tmp_path / 'critic.log', 'w') as log, RosRuntime(threads=3) as ros, \
            Launcher(config, nodes=(CRITIC,), output=log) as launcher:
        observer = ros.add(StackObserver(context=ros.context))
        watcher = ros.add(CriticWatcher(context=ros.context))
        ros.add(SyntheticSensorSource(scene=scene, context=ros.context))
        planner = ros.add(PlannerStandIn(scene.speed_mps, context=ros.context))

        assert watcher.wait_for(lambda w: w.value('critic/state', 'state') == 'NOMINAL', STARTUP_TIMEOUT_S), \
            f'critic never NOMINAL: {watcher.value("critic/state", "state")}; see {tmp_path / "critic.log"}'
        # One /diagnostics status per enabled check, each with its value and threshold.
        expected = {f'critic/{c}' for c in PLAN_CHECKS + WATCHDOGS + ('sensor_loss', 'self_doubt')}
        assert watcher.wait_for(lambda w: expected <= set(w.statuses), 5.0), expected - set(watcher.statuses)
        assert watcher.wait_for(lambda w: w.value('critic/collision', 'threshold') == '1.5', 5.0)
        assert not observer.takeover_active and not observer.takeovers
        # The checked footprint reaches RViz; the lane is clear, so there is no contact marker.
        assert watcher.wait_for(lambda w: w.markers, 5.0)
        footprint, contact = watcher.markers[-1].markers
        assert len(footprint.points) >= 8 and contact.action == contact.DELETE

        # A warning (perception lost the camera) is published with its value, then escalates when it persists.
        status_pub = watcher.create_publisher(DiagnosticArray, topics.PERCEPTION_STATUS, STATUS_QOS)

        def perception_status(missing: str) -> DiagnosticArray:
            return DiagnosticArray(status=[DiagnosticStatus(name='perception/sync', values=[
                KeyValue(key='missing', value=missing)])])
        status_pub.publish(perception_status('front'))
        assert watcher.wait_for(lambda w: w.value('critic/state', 'state') in ('WARNING', 'TAKEOVER_REQUESTED')
                                and 'front' in (w.value('critic/state', 'reason/sensor_loss') or ''), 5.0)
        assert '[1 vs 0]' in watcher.value('critic/state', 'reason/sensor_loss')
        assert observer.wait_for(lambda o: o.takeover_active and any(
            r.check == 'sensor_loss' for t in o.takeovers for r in t.reasons), 5.0), 'the warning did not escalate'
        status_pub.publish(perception_status(''))
        seen = watcher.diagnostics_count
        assert watcher.wait_for(lambda w: w.diagnostics_count > seen and w.checks_pass(), 10.0)
        assert watcher.reset().success
        assert observer.wait_for(lambda o: not o.takeover_active, 5.0)

        stopped_at = time.monotonic()
        planner.enabled.clear()
        assert observer.wait_for(lambda o: o.takeover_active and any(
            r.check == 'trajectory_timeout' and t.monotonic_s >= stopped_at for t in o.takeovers for r in t.reasons),
            5.0), observer.takeovers
        event = next(t for t in observer.takeovers
                     if t.monotonic_s >= stopped_at and any(r.check == 'trajectory_timeout' for r in t.reasons))
        # timeout + a plan in flight from this (loaded) process; the critic's own clock is checked just below
        assert event.monotonic_s - stopped_at < 1.0 + 1.0
        reason = next(r for r in event.reasons if r.check == 'trajectory_timeout')
        assert reason.threshold == 1.0 < reason.value <= 1.0 + 0.1

        refused = watcher.reset()
        assert not refused.success and 'trajectory_timeout' in refused.message
        assert observer.takeover_active

        planner.enabled.set()
        seen = watcher.diagnostics_count
        assert watcher.wait_for(lambda w: w.diagnostics_count > seen and w.checks_pass(), 10.0), \
            {n: s.message for n, s in watcher.statuses.items() if s.level not in (DiagnosticStatus.OK,)}
        response = watcher.reset()
        assert response.success, response.message
        assert observer.wait_for(lambda o: not o.takeover_active, 5.0)
        assert watcher.wait_for(lambda w: w.request_stamps and w.request_stamps[-1][1] == [], 5.0), \
            'the cleared request (no reasons) was not published'
        launcher.stop()
        assert launcher.running['critic_node'].process.returncode == 0

    statistics = json.loads((tmp_path / 'statistics.json').read_text())
    assert statistics['takeovers'] == 2
    assert statistics['takeovers_per_reason'] == {'sensor_loss': 1, 'trajectory_timeout': 1}
    assert statistics['distance_m'] > 0 and statistics['driven_s'] > 0
    assert statistics['state'] == 'NOMINAL' and statistics['reaction']['count'] >= 1
    # Real-time callbacks where the process may have them (root or CAP_SYS_NICE), else normal scheduling.
    assert statistics['scheduling'] in ('SCHED_FIFO 10', 'normal')


@pytest.mark.timeout(120)
def test_under_sim_time_watchdogs_follow_the_clock_and_a_jump_back_restarts_cleanly(ros_domain, tmp_path):
    config = write_config(tmp_path, state_machine={'startup_grace_s': 2.0})
    start_ns = 1_000 * NS_PER_S
    with open(tmp_path / 'critic.log', 'w') as log, \
            RosRuntime() as ros, Launcher(config, nodes=(CRITIC,), use_sim_time=True, output=log) as launcher:
        observer = ros.add(StackObserver(context=ros.context))
        watcher = ros.add(CriticWatcher(context=ros.context))
        clock_node = ros.add(Node('sim_clock', context=ros.context))
        clock_pub = clock_node.create_publisher(Clock, topics.CLOCK, 10)
        sim = {'now': start_ns, 'rate': 0.0}

        def publish_clock():
            sim['now'] += int(sim['rate'] * 0.01 * NS_PER_S)
            clock_pub.publish(Clock(clock=ns_to_stamp(sim['now'])))
        clock_node.create_timer(0.01, publish_clock)   # wall-clock timer: this node is not on sim time

        # Frozen sim time: the critic's timer cannot fire, so the inputs' silence is no takeover.
        assert watcher.reset_client.wait_for_service(timeout_sec=STARTUP_TIMEOUT_S), \
            f'critic did not start; see {tmp_path / "critic.log"}'
        assert not watcher.wait_for(lambda w: w.request_stamps and w.request_stamps[-1][1], 1.0)

        sim['rate'] = 4.0   # 4 s of sim time per wall second
        assert observer.wait_for(lambda o: o.takeover_active, 10.0)
        stamp_ns, reasons = next((s, r) for s, r in watcher.request_stamps if r)
        assert {r.check for r in reasons} >= set(WATCHDOGS)
        # Nothing was ever received: the watchdogs count once the 2 s (sim) grace period is over.
        assert start_ns + 2 * NS_PER_S <= stamp_ns <= start_ns + 3 * NS_PER_S

        sim['now'], sim['rate'] = start_ns - 100 * NS_PER_S, 1.0   # the bag loops
        assert observer.wait_for(lambda o: not o.takeover_active, 10.0), 'the jump back did not withdraw the request'
        assert watcher.wait_for(lambda w: w.value('critic/state', 'time_resets') == '1', 10.0)
        assert launcher.running['critic_node'].process.poll() is None
