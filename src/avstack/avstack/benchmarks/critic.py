"""The critic's reaction time and watchdog latency, in-process and over real DDS.

* In-process (the core as the node runs it, no DDS): from the moment a
  message is in the callback to the takeover message being built, for a
  ~100k-point cloud that puts an obstacle in the path of the latest plan, and
  for an 8-point plan that drifts into the road's fence. Also the cost of a
  plan and a cloud that pass (the cloud read from its serialised bytes, as the
  node's raw subscription hands it over), and the copy of those bytes that
  rclpy's raw take makes (before the callback, so outside the node's own
  measure).
* Over DDS (critic_node as its own process, fed 1280x720 images, ~100k-point
  clouds and odometry at 10 Hz by this process): the node's own measure from
  callback entry to takeover published (``critic/timing`` on /diagnostics),
  the time from publishing a bad plan here to receiving the takeover here,
  and how long after the last plan the planner watchdog fires.
"""

import contextlib
import os
import random
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Path as PathMsg
from rclpy.node import Node
from rclpy.serialization import serialize_message
from sensor_msgs.msg import PointCloud2

from avstack.benchmarks import Measurement
from avstack.runtime.launcher import Launcher, NodeSpec
from avstack.runtime.observer import StackObserver
from avstack.runtime.ros import RosRuntime
from avstack.synthetic.sensor_source import SyntheticSensorSource
from avstack.synthetic.scene import Box, SyntheticScene
from critic_monitor.monitor import CriticCore
from critic_monitor.state_machine import TakeoverState
from stack_common import topics
from stack_common.config import load_schema, validate
from stack_common.constants import NS_PER_S
from stack_common.intake import parse_cloud
from stack_common.odometry import EgoState
from stack_common.pointcloud import array_to_cloud, points_xyz
from stack_common.qos import PLAN_QOS, SENSOR_QOS, STATUS_QOS
from stack_common.takeover import TakeoverReason, takeover_to_msg
from stack_common.trajectory import Trajectory, path_to_trajectory, trajectory_to_path

CRITIC = NodeSpec('critic_node', 'critic_monitor', 'critic_monitor.critic_node')
PLAN_TIMES_S = 0.5 * np.arange(1, 9)   # the planner's 8 waypoints
STARTUP_TIMEOUT_S = 60.0


# Sideways drift of a bad plan: it meets the road's fence ~1.3 s ahead, within the collision check's horizon.
BAD_DRIFT_MPS = 4.0


def lane_plan(stamp_ns: int, speed_mps: float, drift_mps: float = 0.0) -> Trajectory:
    """Straight down the ego lane; ``drift_mps`` sideways (``BAD_DRIFT_MPS``) takes it into the fence."""
    x, y = speed_mps * PLAN_TIMES_S, drift_mps * PLAN_TIMES_S
    heading = np.full(len(PLAN_TIMES_S), np.arctan2(drift_mps, speed_mps))
    return Trajectory(stamp_ns, 'base_link', PLAN_TIMES_S.copy(), np.stack([x, y], 1), heading)


class PlannerStandIn(Node):
    """A planner double: one lane plan per lidar frame, stamped with the frame's stamp as the planner does (the
    critic aligns it with the odometry of that stamp: a plan stamped on receipt would lag the odometry on a loaded
    machine, and the next plan would look shifted).

    ``enabled`` pauses it (a dead planner); ``bad_every`` > 0 makes every
    n-th plan drift into the fence, and ``bad_sent`` records when each went out.
    """

    def __init__(self, speed_mps: float, bad_every: int = 0, **node_kwargs):
        super().__init__('planner_stand_in', **node_kwargs)
        self.speed_mps, self.bad_every = speed_mps, bad_every
        self.enabled = threading.Event()
        self.enabled.set()
        self.count = 0
        self.bad_sent: list[float] = []
        self.last_sent = 0.0
        self.pub = self.create_publisher(PathMsg, topics.TRAJECTORY, PLAN_QOS)
        self.create_subscription(PointCloud2, topics.lidar_topic('top'), self.on_lidar, SENSOR_QOS, raw=True)

    def on_lidar(self, data) -> None:
        if not self.enabled.is_set():
            return
        self.count += 1
        bad = self.bad_every > 0 and self.count % self.bad_every == 0
        drift_mps = BAD_DRIFT_MPS if bad else 0.0
        msg = trajectory_to_path(lane_plan(parse_cloud(data).stamp_ns, self.speed_mps, drift_mps))
        self.last_sent = time.monotonic()
        if bad:
            self.bad_sent.append(self.last_sent)
        self.pub.publish(msg)


class TimingWatcher(Node):
    """The latest ``critic/timing`` values the critic reports on /diagnostics."""

    def __init__(self, **node_kwargs):
        super().__init__('critic_timing_watcher', **node_kwargs)
        self.timing: dict[str, str] = {}
        self.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self.on_diagnostics, STATUS_QOS)

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == 'critic/timing':
                self.timing = {kv.key: kv.value for kv in status.values}


# --- in-process --------------------------------------------------------------------------------

@contextlib.contextmanager
def realtime(priority: int):
    """This thread at SCHED_FIFO ``priority`` (as critic_node runs its callbacks) where permitted.

    Yields the scheduling in words. It keeps other users' jobs from preempting the measured
    compute, which is what the node's real-time priority does live.
    """
    try:
        previous = os.sched_getscheduler(0), os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError):
        yield 'normal'
        return
    try:
        yield f'SCHED_FIFO {priority}'
    finally:
        os.sched_setscheduler(0, *previous)


def core_reaction(trials: int) -> dict[str, np.ndarray]:
    """Milliseconds per event type, each timed from a message in hand to the takeover message built."""
    config = validate(load_schema('critic_monitor', 'critic_node'), {}, 'critic_node')
    scene = SyntheticScene()
    blocked_scene = SyntheticScene(boxes=(Box(15.0, 0.0, 4.5, 1.9, 1.5),))
    clear_bytes = serialize_message(array_to_cloud(scene.lidar(0.0), 1, 'lidar_top'))
    blocked_bytes = serialize_message(array_to_cloud(blocked_scene.lidar(0.0), 1, 'lidar_top'))
    start_ns = 1_000 * NS_PER_S
    core = CriticCore(config, start_ns)
    now = start_ns
    times = {name: [] for name in ('bad plan', 'blocking cloud', 'good plan', 'clear cloud', 'take cloud')}

    def timed(name: str, handle) -> list:
        started = time.perf_counter()
        transitions = handle()
        for t in transitions:
            if t.state == TakeoverState.TAKEOVER_REQUESTED:
                takeover_to_msg(t.stamp_ns, t.state.value, [TakeoverReason(r.check, r.message, r.value, r.threshold)
                                                             for r in t.reasons])
        times[name].append((time.perf_counter() - started) * 1e3)
        return transitions

    def cloud(data: bytes, stamp_ns):
        return lambda: core.on_lidar('top', points_xyz(parse_cloud(data).array()), stamp_ns, stamp_ns)

    def plan(stamp_ns, drift):
        msg = trajectory_to_path(lane_plan(stamp_ns, scene.speed_mps, drift))
        return lambda: core.on_trajectory(path_to_trajectory(msg), stamp_ns + 30_000_000)

    def nominal_cycle() -> None:
        nonlocal now
        now += NS_PER_S // 10
        core.on_odometry(EgoState(now, 0.0, 0.0, 0.0, scene.speed_mps), now)
        core.on_input('camera', config['camera_topics'][0], now)
        timed('clear cloud', cloud(clear_bytes, now))
        timed('good plan', plan(now, 0.0))
        core.tick(now + 30_000_000)

    for _ in range(trials):
        for _ in range(30):   # the first time, start-up: every input heard, the checks passing for a second
            nominal_cycle()
            if core.state == TakeoverState.TAKEOVER_REQUESTED:
                core.reset(now + 30_000_000)
            if core.state == TakeoverState.NOMINAL:
                break
        assert core.state == TakeoverState.NOMINAL, core.machine.reasons
        caught = timed('bad plan', plan(now, BAD_DRIFT_MPS))
        assert any(t.requests_takeover for t in caught), 'the bad plan was not caught'
        for _ in range(10):
            nominal_cycle()
            if core.reset(now + 30_000_000)[0]:
                break
        transitions = timed('blocking cloud', cloud(blocked_bytes, now + 40_000_000))
        assert any(t.requests_takeover for t in transitions), 'the blocking cloud was not caught'
        started = time.perf_counter()
        bytearray(blocked_bytes)   # one fresh copy, as the raw take makes out of DDS
        times['take cloud'].append((time.perf_counter() - started) * 1e3)
    return {name: np.array(values) for name, values in times.items()}


# --- over DDS ----------------------------------------------------------------------------------

def dds_reaction(duration_s: float, watchdog_trials: int, realtime_priority: int | None = None) -> dict:
    """``realtime_priority`` None: the node's default (real-time callbacks where permitted)."""
    params = {'statistics_path': '', 'state_machine': {'auto_clear_after_s': 0.3}}
    if realtime_priority is not None:
        params['realtime_priority'] = realtime_priority
    config = {'critic_node': {'ros__parameters': params}}
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / 'critic.yaml'
        path.write_text(yaml.safe_dump(config))
        with open(Path(workdir) / 'critic.log', 'w') as log, RosRuntime(threads=4) as ros, \
                Launcher(path, nodes=(CRITIC,), output=log):
            observer = ros.add(StackObserver(context=ros.context))
            watcher = ros.add(TimingWatcher(context=ros.context))
            source = ros.add(SyntheticSensorSource(context=ros.context, replay_frames=20))
            planner = ros.add(PlannerStandIn(source.scene.speed_mps, context=ros.context))
            if not observer.wait_for(lambda o: o.critic_state == 'NOMINAL', STARTUP_TIMEOUT_S):
                raise RuntimeError(f'critic_node did not start: {Path(workdir, "critic.log").read_text()[-2000:]}')

            planner.bad_every = 10
            time.sleep(duration_s)
            planner.bad_every = 0
            end_to_end = []
            for sent in planner.bad_sent:
                event = next((t for t in observer.takeovers if t.monotonic_s >= sent
                              and any(r.check == 'collision' for r in t.reasons)), None)
                if event is not None and event.monotonic_s - sent < 0.5:
                    end_to_end.append((event.monotonic_s - sent) * 1e3)
            node_timing = dict(watcher.timing)

            watchdog = []
            for _ in range(watchdog_trials):
                planner.enabled.set()
                observer.wait_for(lambda o: not o.takeover_active, 5.0)
                before = len(observer.takeovers)
                time.sleep(1.0)   # plans flowing, critic nominal
                planner.enabled.clear()
                if observer.wait_for(lambda o, before=before: any(r.check == 'trajectory_timeout'
                                                                  for t in o.takeovers[before:] for r in t.reasons),
                                     5.0):
                    event = next(t for t in observer.takeovers[before:]
                                 if any(r.check == 'trajectory_timeout' for r in t.reasons))
                    silence = next(r.value for r in event.reasons if r.check == 'trajectory_timeout')
                    watchdog.append(((event.monotonic_s - planner.last_sent) * 1e3, silence * 1e3))
    return {'end_to_end_ms': np.array(end_to_end), 'bad_plans': len(planner.bad_sent), 'node': node_timing,
            'watchdog_ms': np.array(watchdog).reshape(-1, 2)}


def node_measurements(node: dict, suffix: str) -> list[Measurement]:
    """The node's own receipt -> takeover published times from ``critic/timing``."""
    out = []
    for key, label in (('reaction_p50_ms', 'p50'), ('reaction_p99_ms', 'p99'), ('reaction_max_ms', 'max')):
        out.append(Measurement(f'node receipt -> takeover published {label}{suffix}',
                               float(node[key]) if key in node else None, 'ms',
                               f'critic_node process ({node.get("scheduling", "?")}), '
                               f'n={node.get("reaction_count", 0)}, DDS input at 10 Hz'))
    return out


def run(options) -> list[Measurement]:
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.randrange(100, 200)))
    trials = 50 if options.quick else 300
    with realtime(10) as scheduling:
        core = core_reaction(trials)
    measurements = []
    for name, note in (('bad plan', '8-point plan into the fence, all checks'),
                       ('blocking cloud', '~100k points, box in the lane, decode + filter + sweep'),
                       ('good plan', 'all checks pass'), ('clear cloud', '~100k points, collision re-check passes'),
                       ('take cloud', 'copy of the raw bytes, before the callback; not in the node measure')):
        for q in (50, 99):
            measurements.append(Measurement(f'core {name} -> takeover p{q}' if 'bad' in name or 'blocking' in name
                                            else f'core {name} p{q}', float(np.percentile(core[name], q)), 'ms',
                                            f'in-process ({scheduling}), n={len(core[name])}; {note}'))

    dds = dds_reaction(10.0 if options.quick else 60.0, 2 if options.quick else 8)
    measurements += node_measurements(dds['node'], '')
    if not options.quick:
        # The same with the callback thread at normal priority, for comparison.
        measurements += node_measurements(dds_reaction(30.0, 0, realtime_priority=0)['node'], ' (normal sched)')
    e2e = dds['end_to_end_ms']
    for q in (50, 99):
        measurements.append(Measurement(f'DDS bad plan sent -> takeover received p{q}',
                                        float(np.percentile(e2e, q)) if len(e2e) else None, 'ms',
                                        f'{len(e2e)} of {dds["bad_plans"]} bad plans, both DDS hops'))
    watchdog = dds['watchdog_ms']
    if len(watchdog):
        timeout_ms = 300.0
        measurements += [
            Measurement('planner watchdog: last plan sent -> takeover received max', float(watchdog[:, 0].max()), 'ms',
                         f'n={len(watchdog)}, timeout {timeout_ms:.0f} ms + one 20 ms timer period'),
            Measurement('planner watchdog: silence when fired max', float(watchdog[:, 1].max()), 'ms',
                         'measured in the node; the bound is timeout + period = 320 ms'),
        ]
    return measurements
