"""bridge_node as a real process over real DDS: topics, stamps and frames, lockstep, and the safety driver.

The test process plays the other side: it listens to everything the bridge publishes, and in the lockstep
tests it is an "echo planner" that answers each odometry message with a straight plan stamped like it, and
a "critic" that publishes takeover requests.
"""

import json
import threading
from collections import Counter

import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry, Path
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, PointCloud2
from std_msgs.msg import Bool, String

from avstack.runtime.launcher import Launcher
from avstack.runtime.ros import RosRuntime
from avstack.sim.run import BRIDGE_NODE, SIM_ENV
from stack_common import topics
from stack_common.odometry import odometry_to_ego
from stack_common.qos import LATCHED_QOS, PLAN_QOS, STATUS_QOS
from stack_common.takeover import TakeoverReason, takeover_to_msg
from stack_common.timeutil import stamp_to_ns
from stack_common.trajectory import Trajectory, trajectory_to_path

STARTUP_TIMEOUT_S = 60.0
STEP_NS = 100_000_000
# Best effort as the sensors publish, but deep: this test checks stamps, not how fast Python deserialises.
DEEP_SENSOR_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)
# The scene info of every step, as a recorder keeps it: 10 deep, a stalled test process lost 5 in a row.
DEEP_STATUS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE)


class BridgeListener(Node):
    """Everything the bridge publishes, by stamp; optionally answers each step with a plan."""

    def __init__(self, echo_plans: bool = False, **kwargs):
        super().__init__('bridge_listener', **kwargs)
        self.changed = threading.Condition()
        self.by_stamp: dict[int, dict[str, str]] = {}    # stamp -> topic -> frame_id
        self.clock_ns: list[int] = []
        self.statuses: list[dict] = []
        self.scene: dict[int, dict] = {}
        self.odometry_count: Counter[int] = Counter()
        self.answered: set[int] = set()   # stamps the echo planner sent a plan for
        self.echo = threading.Event()
        if echo_plans:
            self.echo.set()
        self.path_pub = self.create_publisher(Path, topics.TRAJECTORY, PLAN_QOS)
        self.active_pub = self.create_publisher(Bool, topics.TAKEOVER_ACTIVE, LATCHED_QOS)
        self.request_pub = self.create_publisher(DiagnosticArray, topics.TAKEOVER_REQUEST, LATCHED_QOS)
        self.create_subscription(Clock, topics.CLOCK, self.on_clock, DEEP_SENSOR_QOS)
        self.create_subscription(Odometry, topics.ODOMETRY, self.on_odometry, DEEP_SENSOR_QOS)
        self.create_subscription(Image, topics.camera_topic('front'), lambda m: self.on_sensor('camera', m),
                                 DEEP_SENSOR_QOS)
        self.create_subscription(PointCloud2, topics.lidar_topic('top'), lambda m: self.on_sensor('lidar', m),
                                 DEEP_SENSOR_QOS)
        self.create_subscription(String, topics.SIM_SCENE_INFO, self.on_scene, DEEP_STATUS_QOS)
        self.create_subscription(String, topics.SIM_STATUS, self.on_status, STATUS_QOS)

    def _note(self, stamp_ns: int, topic: str, frame_id: str) -> None:
        with self.changed:
            self.by_stamp.setdefault(stamp_ns, {})[topic] = frame_id
            self.changed.notify_all()

    def on_clock(self, msg: Clock) -> None:
        with self.changed:
            self.clock_ns.append(stamp_to_ns(msg.clock))
            self.changed.notify_all()

    def on_sensor(self, name: str, msg) -> None:
        self._note(stamp_to_ns(msg.header.stamp), name, msg.header.frame_id)

    def on_scene(self, msg: String) -> None:
        document = json.loads(msg.data)
        self.scene[document['stamp_ns']] = document
        self._note(document['stamp_ns'], 'scene_info', '')

    def on_odometry(self, msg: Odometry) -> None:
        with self.changed:
            self.odometry_count[stamp_to_ns(msg.header.stamp)] += 1
        self._note(stamp_to_ns(msg.header.stamp), 'odometry', f'{msg.header.frame_id}->{msg.child_frame_id}')
        if self.echo.is_set():
            ego = odometry_to_ego(msg)
            t_s = 0.5 * np.arange(1, 9)
            plan = Trajectory(ego.stamp_ns, 'base_link', t_s, np.stack([ego.speed * t_s, 0 * t_s], axis=1),
                              np.zeros(8))
            self.path_pub.publish(trajectory_to_path(plan))
            with self.changed:
                self.answered.add(ego.stamp_ns)

    def on_status(self, msg: String) -> None:
        with self.changed:
            self.statuses.append(json.loads(msg.data))
            self.changed.notify_all()

    def request_takeover(self, active: bool) -> None:
        reasons = [TakeoverReason('validity', 'test request')] if active else []
        self.request_pub.publish(takeover_to_msg(0, 'TAKEOVER_REQUESTED' if active else 'NOMINAL', reasons))
        self.active_pub.publish(Bool(data=active))

    def complete_stamps(self) -> list[int]:
        with self.changed:
            return [stamp for stamp, frames in self.by_stamp.items() if len(frames) == 4]

    def steps(self) -> list[dict]:
        with self.changed:
            return [s for s in self.statuses if s['kind'] == 'step']

    def wait_for(self, predicate, timeout_s: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self), timeout_s)


def write_params(tmp_path, **bridge) -> 'Path':
    path = tmp_path / 'bridge.yaml'
    path.write_text(yaml.safe_dump({'bridge_node': {'ros__parameters': bridge}}))
    return path


@pytest.mark.timeout(180)
def test_every_step_publishes_clock_odometry_camera_lidar_and_scene_info_with_one_stamp(ros_domain, tmp_path):
    # Paced (not lockstep), so a loaded test machine loses no sensor message to a slow subscriber.
    params = write_params(tmp_path, driver='expert', duration_s=3.0, wait_for_subscribers=1, lockstep=False,
                          realtime_factor=2.0)
    with open(tmp_path / 'nodes.log', 'w') as log, RosRuntime(threads=3) as ros:
        listener = ros.add(BridgeListener(context=ros.context))
        with Launcher(params, (BRIDGE_NODE,), output=log, extra_env=SIM_ENV):
            assert listener.wait_for(lambda n: any(s['kind'] == 'done' for s in n.statuses), STARTUP_TIMEOUT_S), \
                'the bridge did not finish: see nodes.log'
            # Messages of different topics may land after 'done': give the last ones a moment.
            listener.wait_for(lambda n: len(n.complete_stamps()) >= 30, 5.0)
        with listener.changed:
            by_stamp, clock_ns, scene = dict(listener.by_stamp), list(listener.clock_ns), dict(listener.scene)
    complete = {stamp: frames for stamp, frames in by_stamp.items() if len(frames) == 4}
    assert len(complete) >= 0.9 * 30, \
        f'only {len(complete)} of ~30 steps arrived with all four topics: {sorted(by_stamp.items())}'
    for frames in complete.values():
        assert frames == {'camera': 'camera_front_topdown', 'lidar': 'lidar_top', 'odometry': 'odom->base_link',
                          'scene_info': ''}
    stamps = sorted(complete)
    assert set(np.diff(stamps)) == {STEP_NS}, 'steps are not 0.1 s of sim time apart'
    assert set(stamps) <= set(clock_ns), 'a sensor stamp that /clock never announced'
    assert clock_ns == sorted(clock_ns), '/clock went back'
    assert all(scene[s]['scenario'] == 'highway-v0' and set(scene[s]['tags']) ==
               {'lead_vehicle_braking', 'cut_in', 'merge', 'dense_traffic', 'intersection'} for s in stamps)


@pytest.mark.timeout(240)
def test_lockstep_waits_for_plans_and_a_takeover_hands_control_to_the_expert_and_back(ros_domain, tmp_path):
    hand_back_s = 1.0
    params = write_params(tmp_path, driver='model', duration_s=600.0, hand_back_s=hand_back_s,
                          lockstep_timeout_s=10.0, startup_timeout_s=STARTUP_TIMEOUT_S)
    with open(tmp_path / 'nodes.log', 'w') as log, RosRuntime(threads=3) as ros:
        listener = ros.add(BridgeListener(echo_plans=True, context=ros.context))
        listener.request_takeover(False)
        with Launcher(params, (BRIDGE_NODE,), output=log, extra_env=SIM_ENV):
            assert listener.wait_for(lambda n: len(n.steps()) >= 10, STARTUP_TIMEOUT_S), 'no steps: see nodes.log'
            assert all(s['driver'] == 'stack' for s in listener.steps())

            # Lockstep: without a plan for the current stamp, sim time stands still.
            listener.echo.clear()
            # The bridge publishes a step again while it waits for its plan: once the newest step, which the echo
            # did not answer, went out twice, the bridge is waiting. (A step answered just before the echo
            # stopped may go out twice too, when the answer is slow on a loaded machine, and then move on.)
            def waiting(n) -> bool:
                newest = max(n.odometry_count)
                return newest not in n.answered and n.odometry_count[newest] >= 2
            assert listener.wait_for(waiting, 10.0)
            frozen = max(listener.odometry_count)
            assert not listener.wait_for(lambda n: n.steps()[-1]['stamp_ns'] > frozen, 2.0), \
                'the bridge stepped without plans'
            listener.echo.set()
            listener.path_pub.publish(trajectory_to_path(Trajectory(
                frozen, 'base_link', 0.5 * np.arange(1, 9), np.zeros((8, 2)), np.zeros(8))))
            assert listener.wait_for(lambda n: n.steps()[-1]['stamp_ns'] > frozen + 5 * STEP_NS, 20.0)

            listener.request_takeover(True)
            assert listener.wait_for(lambda n: n.steps()[-1]['driver'] == 'expert', 20.0), 'no takeover'
            listener.request_takeover(False)
            taken = next(s for s in listener.steps() if s['driver'] == 'expert')
            assert listener.wait_for(lambda n: n.steps()[-1]['driver'] == 'stack'
                                     and n.steps()[-1]['stamp_ns'] > taken['stamp_ns'], 30.0), 'never handed back'
            steps = listener.steps()
        expert_steps = [s for s in steps if s['driver'] == 'expert']
        back = next(s for s in steps if s['stamp_ns'] > taken['stamp_ns'] and s['driver'] == 'stack')
    held_s = (back['stamp_ns'] - taken['stamp_ns']) / 1e9
    assert hand_back_s <= held_s <= hand_back_s + 0.15, f'the expert held the wheel for {held_s:.2f} s'
    assert len(expert_steps) == round(hand_back_s / 0.1)
    assert taken['takeovers'] == 1 and steps[-1]['takeovers'] == 1
    assert all(s['deadline_misses'] == 0 for s in steps)
