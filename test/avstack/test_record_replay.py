"""Record live DDS topics into rosbag2 files and replay them: round trips over real DDS and real bags.

Recording: what was published comes back byte for byte from the bag (read
with ``rosbags``, not with our own reader), with each topic's QoS in
metadata.yaml; the CLI closes the bag cleanly on SIGINT. Replay: the
recorded bytes are published with the recorded timing, ``--clock`` drives
sim-time nodes, and the stack survives the time jump of ``--loop``.
"""

import os
import signal
import subprocess
import sys
from itertools import pairwise
import threading
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry, Path as PathMsg
from rclpy.duration import Duration
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from rclpy.serialization import serialize_message
from rosbags.interfaces import QosDurability, QosReliability
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import Image

from avstack import cli
from avstack.bag.codec import deserialize, serialize
from avstack.bag.writer import BagWriter
from avstack.bag.recorder import Recorder
from avstack.bag.player import BagPlayer, PlaybackClock
from avstack.runtime.ros import RosRuntime
from avstack.synthetic.scene import SyntheticScene
from avstack.runtime.launcher import DEFAULT_LAYOUT, LAYOUTS, Launcher
from avstack.runtime.observer import StackObserver
from avstack.synthetic.bag import START_NS, SyntheticBagSpec, write_synthetic_bag
from stack_common import topics
from stack_common.image import rgb_to_image_msg
from stack_common.qos import LATCHED_QOS, PLAN_QOS, SENSOR_QOS
from stack_common.takeover import TakeoverReason, takeover_to_msg
from stack_common.timeutil import stamp_to_ns
from stack_common.trajectory import Trajectory, trajectory_to_path

from support import STACK_CONFIG

DISCOVERY_TIMEOUT_S = 30.0
DELIVERY_TIMEOUT_S = 20.0
STACK_STARTUP_TIMEOUT_S = 120.0
# PLAN_QOS but deep enough that a burst of test messages stays in the writer until acknowledged.
BURST_QOS = QoSProfile(depth=100, reliability=PLAN_QOS.reliability, durability=PLAN_QOS.durability)


def read_back(bag_dir: Path) -> tuple[dict[str, list[bytes]], dict]:
    """Messages per topic and the connection metadata, read with the rosbags library itself."""
    messages: dict[str, list[bytes]] = {}
    with Reader(bag_dir) as reader:
        connections = {c.topic: c for c in reader.connections}
        for connection, _, data in reader.messages():
            messages.setdefault(connection.topic, []).append(bytes(data))
    return messages, connections


def plan_msg(k: int) -> PathMsg:
    t_s = np.arange(1, 11) * 0.5
    return trajectory_to_path(Trajectory(k * 100_000_000, 'base_link', t_s, np.stack([t_s * 8, 0 * t_s], 1),
                                         np.zeros(10)))


class Talker(Node):
    """Publishers of three roles: a reliable plan, a latched takeover and a best-effort camera."""

    def __init__(self, **kwargs):
        super().__init__('talker', **kwargs)
        self.matched = {name: threading.Event() for name in ('plan', 'takeover', 'camera')}
        events = {name: PublisherEventCallbacks(matched=lambda info, n=name: info.current_count and
                                                self.matched[n].set()) for name in self.matched}
        self.plan = self.create_publisher(PathMsg, topics.TRAJECTORY, BURST_QOS, event_callbacks=events['plan'])
        self.takeover = self.create_publisher(DiagnosticArray, topics.TAKEOVER_REQUEST, LATCHED_QOS,
                                              event_callbacks=events['takeover'])
        self.camera = self.create_publisher(Image, topics.camera_topic('front'), SENSOR_QOS,
                                            event_callbacks=events['camera'])


def test_recorder_round_trip_keeps_bytes_counts_and_qos(ros_domain, tmp_path):
    scene = SyntheticScene()
    plans = [serialize_message(plan_msg(k)) for k in range(20)]
    takeover = serialize_message(takeover_to_msg(5, 'TAKEOVER_REQUESTED',
                                                 [TakeoverReason('trajectory_timeout', 'silent 0.4 s', 0.4, 0.3)]))
    images = [serialize_message(rgb_to_image_msg(scene.camera(0.1 * k), k, 'camera_front_optical', 'bgr8'))
              for k in range(3)]
    out = tmp_path / 'roundtrip'
    with RosRuntime() as ros:
        talker = ros.add(Talker(context=ros.context))
        with Recorder(ros, out, topics=[topics.TRAJECTORY, topics.TAKEOVER_REQUEST, topics.camera_topic('front')],
                      storage='mcap') as recorder:
            assert recorder.wait_for_topics([topics.TRAJECTORY, topics.TAKEOVER_REQUEST,
                                             topics.camera_topic('front')], DISCOVERY_TIMEOUT_S)
            for event in talker.matched.values():
                assert event.wait(DISCOVERY_TIMEOUT_S), 'the recorder never matched a publisher'
            for data in plans:
                talker.plan.publish(data)
            talker.takeover.publish(takeover)
            # Best effort may drop under load by design: publish the large images in lockstep.
            for k, data in enumerate(images):
                talker.camera.publish(data)
                assert recorder.wait_for_counts(
                    lambda c, k=k: c.get(topics.camera_topic('front'), 0) > k, DELIVERY_TIMEOUT_S)
            assert recorder.wait_for_counts(lambda c: c[topics.TRAJECTORY] == len(plans)
                                            and c[topics.TAKEOVER_REQUEST] == 1, DELIVERY_TIMEOUT_S), recorder.counts
        counts = recorder.counts
    assert counts == {topics.TRAJECTORY: 20, topics.TAKEOVER_REQUEST: 1, topics.camera_topic('front'): 3}
    assert (out / 'metadata.yaml').is_file()
    messages, connections = read_back(out)
    assert messages[topics.TRAJECTORY] == plans
    assert messages[topics.TAKEOVER_REQUEST] == [takeover]
    assert messages[topics.camera_topic('front')] == images
    plan_qos = connections[topics.TRAJECTORY].ext.offered_qos_profiles[0]
    assert plan_qos.reliability == QosReliability.RELIABLE and plan_qos.durability == QosDurability.VOLATILE
    assert connections[topics.TAKEOVER_REQUEST].ext.offered_qos_profiles[0].durability == \
        QosDurability.TRANSIENT_LOCAL
    assert connections[topics.camera_topic('front')].ext.offered_qos_profiles[0].reliability == \
        QosReliability.BEST_EFFORT


def test_recorder_with_all_topics_picks_up_publishers_that_appear_later(ros_domain, tmp_path):
    with RosRuntime() as ros, Recorder(ros, tmp_path / 'all', topics=None, storage='sqlite3') as recorder:
        talker = ros.add(Talker(context=ros.context))   # after the recorder started
        assert recorder.wait_for_topics([topics.TRAJECTORY, topics.TAKEOVER_REQUEST], DISCOVERY_TIMEOUT_S)
        assert talker.matched['takeover'].wait(DISCOVERY_TIMEOUT_S)
        talker.takeover.publish(takeover_to_msg(1, 'WAITING', []))
        assert recorder.wait_for_counts(lambda c: c[topics.TAKEOVER_REQUEST] == 1, DELIVERY_TIMEOUT_S)
    messages, connections = read_back(tmp_path / 'all')
    assert [deserialize(data, 'diagnostic_msgs/msg/DiagnosticArray') for data in messages[topics.TAKEOVER_REQUEST]] \
        == [takeover_to_msg(1, 'WAITING', [])]
    assert topics.TRAJECTORY in connections   # recorded though nothing was published on it


def test_playback_clock_maps_bag_time_to_wall_time_at_a_rate():
    clock = PlaybackClock(rate=2.0)
    clock.restart(bag_start_ns=10 * 10**9, wall_start_s=100.0)
    assert clock.wall_at(12 * 10**9) == pytest.approx(101.0)
    assert clock.bag_at(101.5) == 13 * 10**9
    clock.restart(bag_start_ns=10 * 10**9, wall_start_s=200.0)   # a loop: the same bag time, later
    assert clock.wall_at(10 * 10**9) == 200.0


def test_record_cli_closes_the_bag_on_sigint_with_nothing_lost(ros_domain, tmp_path):
    out = tmp_path / 'cli_bag'
    plans = [serialize_message(plan_msg(k)) for k in range(50)]
    process = subprocess.Popen([sys.executable, '-m', 'avstack.cli', 'record', '--out', str(out),
                                '--storage', 'sqlite3', topics.TRAJECTORY],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    try:
        with RosRuntime() as ros:
            talker = ros.add(Talker(context=ros.context))
            assert talker.matched['plan'].wait(DISCOVERY_TIMEOUT_S), 'avstack record never subscribed'
            for data in plans:
                talker.plan.publish(data)
            assert talker.plan.wait_for_all_acked(Duration(seconds=DELIVERY_TIMEOUT_S))
            process.send_signal(signal.SIGINT)
            output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            print('avstack record output:', process.communicate()[0])  # shown by pytest on failure
    assert process.returncode == 0, output
    assert 'wrote 50 messages on 1 topics' in output, output
    messages, connections = read_back(out)
    assert messages[topics.TRAJECTORY] == plans
    assert next(out.glob('*.db3')).stat().st_size > 0
    assert connections[topics.TRAJECTORY].ext.offered_qos_profiles[0].reliability == QosReliability.RELIABLE


def test_record_cli_usage_errors_exit_2(tmp_path, capsys):
    assert cli.main(['record', '--out', str(tmp_path / 'x'), '--all', '/a']) == 2
    assert 'not both' in capsys.readouterr().err
    assert not (tmp_path / 'x').exists()
    (tmp_path / 'exists').mkdir()
    (tmp_path / 'exists' / 'notes.txt').write_text('mine')
    assert cli.main(['record', '--out', str(tmp_path / 'exists'), '--all']) == 2
    assert 'is not empty' in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ replay

PLAYED_PLANS = 20
PLAN_PERIOD_NS = 50_000_000
FIRST_PLAN_NS = 200_000_000   # after the bag's first message: /clock reaches the subscriber before the first plan


def plan_bag(path: Path) -> tuple[Path, list[bytes], list[int]]:
    """A bag of reliable plans at 20 Hz (1 s) after a leading odometry message."""
    plans = [serialize(plan_msg(k), 'nav_msgs/msg/Path') for k in range(PLAYED_PLANS)]
    log_times = [START_NS + FIRST_PLAN_NS + k * PLAN_PERIOD_NS for k in range(PLAYED_PLANS)]
    with BagWriter(path, 'mcap') as writer:
        writer.add_topic(topics.ODOMETRY, 'nav_msgs/msg/Odometry', [SENSOR_QOS])
        writer.add_topic(topics.TRAJECTORY, 'nav_msgs/msg/Path', [PLAN_QOS])
        writer.write(topics.ODOMETRY, START_NS, serialize(Odometry(), 'nav_msgs/msg/Odometry'))
        for log_ns, data in zip(log_times, plans, strict=True):
            writer.write(topics.TRAJECTORY, log_ns, data)
    return path, plans, log_times


def test_replay_publishes_recorded_bytes_and_its_clock_drives_sim_time_across_a_loop(ros_domain, tmp_path):
    bag, plans, log_times = plan_bag(tmp_path / 'plans')
    watched = [topics.TRAJECTORY, topics.CLOCK]
    with RosRuntime(threads=3) as ros:
        player = BagPlayer(ros, bag, rate=2.0, loop=True, clock_hz=100.0, only_topics=[topics.TRAJECTORY])
        # One recorder on sim time (a node following /clock), one on wall time (arrival order).
        on_sim_time = Recorder(ros, tmp_path / 'sim', watched, node_name='sim_recorder', use_sim_time=True).start()
        on_wall_time = Recorder(ros, tmp_path / 'wall', watched, node_name='wall_recorder').start()
        try:
            for recorder in (on_sim_time, on_wall_time):
                assert recorder.wait_for_topics(watched, DISCOVERY_TIMEOUT_S)
            assert player.wait_for_subscribers(watched, DISCOVERY_TIMEOUT_S)
            player.start()
            for recorder in (on_sim_time, on_wall_time):
                assert recorder.wait_for_counts(lambda c: c.get(topics.TRAJECTORY, 0) >= 2 * PLAYED_PLANS, 30.0), \
                    recorder.counts
        finally:
            player.stop()
            on_sim_time.stop()
            on_wall_time.stop()
    assert player.status.loops >= 2

    arrived = read_back(tmp_path / 'wall')[0]
    assert arrived[topics.TRAJECTORY][:2 * PLAYED_PLANS] == plans * 2   # the recorded bytes, in order, twice
    clock = [stamp_to_ns(deserialize(d, 'rosgraph_msgs/msg/Clock').clock) for d in arrived[topics.CLOCK]]
    assert min(clock) >= START_NS and max(clock) <= log_times[-1]
    jumps_back = [b - a for a, b in pairwise(clock) if b < a]
    assert jumps_back and min(jumps_back) <= -(log_times[-1] - log_times[0]) // 2, 'no loop in /clock'

    # The sim-time recorder's receipts are bag times (the bag's epoch, not today), each near its message's
    # log time (a receipt racing the loop's jump back may read either side's clock).
    with Reader(tmp_path / 'sim') as reader:
        received = [(t, bytes(d)) for c, t, d in reader.messages() if c.topic == topics.TRAJECTORY]
    logged = dict(zip(plans, log_times, strict=True))
    assert all(START_NS <= t <= log_times[-1] + 1_000_000_000 for t, _ in received)
    offsets_s = [(t - logged[d]) / 1e9 for t, d in received]
    # A second of bag time (half of one at rate 2) covers a loaded machine's /clock lag; wall time would be
    # years off.
    assert abs(float(np.median(offsets_s))) < 1.0, offsets_s


def test_replay_cli_plays_a_bag_once_and_reports_bad_input(ros_domain, tmp_path, capsys):
    bag, plans, _ = plan_bag(tmp_path / 'plans')
    assert cli.main(['replay', str(bag), '--rate', '20', '--remap', f'{topics.TRAJECTORY}:=/elsewhere']) == 0
    assert 'published 21 messages on 2 topics, 1 full pass(es)' in capsys.readouterr().out
    assert cli.main(['replay', str(tmp_path / 'missing')]) == 2
    assert 'no such bag' in capsys.readouterr().err
    assert cli.main(['replay', str(bag), '--remap', 'nonsense']) == 2
    assert 'expected /from:=/to' in capsys.readouterr().err
    assert cli.main(['replay', str(bag), '--topics', '/not/there']) == 2
    assert '/not/there' in capsys.readouterr().err


@pytest.mark.timeout(300)
def test_the_stack_follows_a_looping_replay_on_sim_time_and_survives_the_jump_back(ros_domain, tmp_path):
    bag = write_synthetic_bag(tmp_path / 'drive', SyntheticBagSpec(duration_s=3.0))
    sensors = [topics.camera_topic('front'), topics.lidar_topic('top'), topics.ODOMETRY]
    with open(tmp_path / 'nodes.log', 'w') as log, RosRuntime(threads=3) as ros, \
            Launcher(STACK_CONFIG, use_sim_time=True, output=log) as launcher:
        observer = ros.add(StackObserver(context=ros.context,
                                         parameter_overrides=[Parameter('use_sim_time', value=True)]))
        player = BagPlayer(ros, bag, loop=True, clock_hz=100.0)
        try:
            assert player.wait_for_subscribers(sensors + [topics.CLOCK], STACK_STARTUP_TIMEOUT_S), 'see nodes.log'
            player.start()

            def jumped_back_and_planned_again(o: StackObserver) -> bool:
                stamps = [r.stamp_ns for r in o.trajectories]
                jump = next((i for i in range(1, len(stamps)) if stamps[i] < stamps[i - 1] - 1_000_000_000), None)
                return jump is not None and len(stamps) - jump >= 10
            assert observer.wait_for(jumped_back_and_planned_again, STACK_STARTUP_TIMEOUT_S), \
                f'{len(observer.trajectories)} trajectories, {player.status.loops} loops: see nodes.log'
        finally:
            player.stop()
        running = {name: entry.process.poll() for name, entry in launcher.running.items()}
        trajectories = list(observer.trajectories)
        log.flush()
        node_output = (tmp_path / 'nodes.log').read_text()   # before the nodes are stopped
    assert running == {spec.name: None for spec in LAYOUTS[DEFAULT_LAYOUT]}, running   # every process still up
    assert 'Traceback' not in node_output and 'Exception' not in node_output, node_output
    # On sim time the nodes' clocks are the bag's: a plan reaches the observer near its sensor stamp (wall time
    # would be years off; the observer's /clock, 100 Hz from a loaded process, may trail the plans a little).
    latencies_s = [(r.receipt_ns - r.stamp_ns) / 1e9 for r in trajectories]
    assert abs(float(np.median(latencies_s))) < 1.0, latencies_s
    assert {r.stamp_ns for r in trajectories} <= set(camera_stamps(bag))


def camera_stamps(bag: Path) -> list[int]:
    with Reader(bag) as reader:
        return [stamp_to_ns(deserialize(bytes(d), c.msgtype).header.stamp) for c, _, d in reader.messages()
                if c.topic == topics.camera_topic('front')]
