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
import threading
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Path as PathMsg
from rclpy.duration import Duration
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.serialization import serialize_message
from rosbags.interfaces import QosDurability, QosReliability
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import Image

from avstack import cli
from avstack.record import Recorder
from avstack.ros_runtime import RosRuntime
from avstack.synthetic import SyntheticScene
from stack_common import topics
from stack_common.image import rgb_to_image_msg
from stack_common.qos import LATCHED_QOS, PLAN_QOS, SENSOR_QOS
from stack_common.takeover import TakeoverReason, takeover_to_msg
from stack_common.trajectory import Trajectory, trajectory_to_path

DISCOVERY_TIMEOUT_S = 30.0
DELIVERY_TIMEOUT_S = 20.0
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
    (tmp_path / 'exists').mkdir()
    assert cli.main(['record', '--out', str(tmp_path / 'exists'), '--all']) == 2
    assert 'already exists' in capsys.readouterr().err
