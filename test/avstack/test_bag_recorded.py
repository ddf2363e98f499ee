"""Bags written by rosbag2 itself (``../shared/data/rosbag2_recorded``): read whole, replayed, refused clearly.

Every other bag test reads bags our own writer made. These four were written by rosbag2's C++ writer
(metadata versions 4 and 7, mcap and sqlite3, unknown ``test_msgs`` types, no sensor topics). What our
reader finds is checked against the official ``mcap`` reader and against sqlite3 itself; replay is
received by a real subscriber over DDS, with the recorded QoS.
"""

import sqlite3
import threading
from collections import Counter
from pathlib import Path

import pytest
from mcap.reader import make_reader
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin
from rosbags.typesys import Stores, get_typestore
from std_msgs.msg import String

from avstack import cli
from avstack.bag.codec import deserialize, serialize
from avstack.bag.reader import open_bag
from avstack.bag.writer import BagWriter
from avstack.bag.player import BagPlayer
from avstack.runtime.ros import RosRuntime
from stack_common import topics

from bagtools import storage_file

BAGS = ('talker_mcap', 'talker_sqlite3', 'cdr_test_mcap', 'cdr_test_sqlite3')
DISCOVERY_TIMEOUT_S = 30.0


def official_messages(bag_dir: Path) -> list[tuple[str, int, bytes]]:
    """(topic, log time, bytes) of every message, in log-time order, as the official mcap reader or sqlite3 see
    the storage file."""
    path = storage_file(bag_dir)
    if path.suffix == '.mcap':
        with path.open('rb') as stream:
            return [(channel.topic, message.log_time, bytes(message.data))
                    for _, channel, message in make_reader(stream).iter_messages(log_time_order=True)]
    with sqlite3.connect(f'file:{path}?mode=ro', uri=True) as db:
        rows = db.execute('SELECT topics.name, messages.timestamp, messages.data FROM messages '
                          'JOIN topics ON messages.topic_id = topics.id ORDER BY messages.timestamp, messages.id')
        return [(topic, stamp, bytes(data)) for topic, stamp, data in rows]


@pytest.mark.parametrize('name', BAGS)
def test_every_message_of_a_bag_written_by_ros2_bag_is_read_as_the_official_readers_read_it(recorded_bags, name):
    expected = official_messages(recorded_bags / name)
    with open_bag(recorded_bags / name) as bag:
        read = [(m.topic, m.log_time_ns, bytes(m.data)) for m in bag.messages()]
        assert read == expected
        assert len(read) == bag.message_count == (20 if name.startswith('talker') else 7)
        assert {n: t.count for n, t in bag.topics.items() if t.count} == Counter(topic for topic, _, _ in read)


def test_a_message_compressed_bag_reads_back_its_bytes(tmp_path):
    typestore = get_typestore(Stores.ROS2_KILTED)
    writer = Writer(tmp_path / 'zstd', version=9, storage_plugin=StoragePlugin.MCAP)
    writer.set_compression(CompressionMode.MESSAGE, CompressionFormat.ZSTD)
    payloads = [serialize(String(data=f'message {k}'), 'std_msgs/msg/String') for k in range(3)]
    with writer:
        connection = writer.add_connection('/chatter', 'std_msgs/msg/String', typestore=typestore)
        for k, data in enumerate(payloads):
            writer.write(connection, 1_000 + k, data)
    with open_bag(tmp_path / 'zstd') as bag:
        assert [bytes(m.data) for m in bag.messages()] == payloads


class Listener(Node):
    """A plain subscriber of /topic, as any ROS 2 node would be."""

    def __init__(self, **kwargs):
        super().__init__('talker_listener', **kwargs)
        self.changed = threading.Condition()
        self.received: list[str] = []
        qos = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(String, '/topic', self.on_message, qos)

    def on_message(self, msg: String) -> None:
        with self.changed:
            self.received.append(msg.data)
            self.changed.notify_all()

    def wait_for(self, predicate, timeout_s: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self), timeout_s)


@pytest.mark.parametrize('name', ['talker_mcap', 'talker_sqlite3'])
def test_replaying_the_talker_bag_publishes_all_10_strings_with_the_recorded_qos(ros_domain, recorded_bags, name):
    with open_bag(recorded_bags / name) as bag:
        strings = [deserialize(m.data, m.type_name).data for m in bag.messages(['/topic'])]
    assert strings == [f'Hello, world! {k}' for k in range(10)]
    with RosRuntime(threads=3) as ros:
        listener = ros.add(Listener(context=ros.context))
        player = BagPlayer(ros, recorded_bags / name, rate=5.0)
        try:
            assert player.wait_for_subscribers(['/topic'], DISCOVERY_TIMEOUT_S)
            player.start()
            assert listener.wait_for(lambda n: len(n.received) >= 10, 20.0), listener.received
            assert player.wait_until(lambda status: status.loops == 1, 10.0)
            # The QoS each publisher offers over DDS, as a subscriber's discovery sees it: the recorded one.
            offered = {topic: next(info.qos_profile for info in listener.get_publishers_info_by_topic(topic)
                                   if info.node_name == 'avstack_player') for topic in ('/topic', '/rosout')}
        finally:
            player.stop()
    assert listener.received == strings
    assert player.status.published == {'/topic': 10, '/rosout': 10}
    assert offered['/topic'].reliability == ReliabilityPolicy.RELIABLE
    assert offered['/topic'].durability == DurabilityPolicy.VOLATILE
    assert offered['/rosout'].reliability == ReliabilityPolicy.RELIABLE
    assert offered['/rosout'].durability == DurabilityPolicy.TRANSIENT_LOCAL


@pytest.mark.parametrize('name', ['cdr_test_mcap', 'cdr_test_sqlite3'])
def test_replay_names_and_counts_unknown_types_and_fails_when_nothing_is_left_to_publish(
        ros_domain, recorded_bags, name, capsys):
    assert cli.main(['replay', str(recorded_bags / name)]) == 2
    err = capsys.readouterr().err
    assert "not playing /array_topic: 4 message(s) of unknown message type 'test_msgs/msg/Arrays'" in err
    assert "not playing /test_topic: 3 message(s) of unknown message type 'test_msgs/msg/BasicTypes'" in err
    assert err.strip().splitlines()[-1].endswith('nothing to publish from '
                                                 f'{recorded_bags / name}: no topic to publish (not playing '
                                                 '/array_topic, /test_topic)')


def test_replay_that_would_publish_nothing_exits_2_and_says_why(ros_domain, recorded_bags, capsys):
    talker = recorded_bags / 'talker_mcap'
    assert cli.main(['replay', str(talker), '--topics', '/parameter_events']) == 2
    assert '(/parameter_events) hold no messages' in capsys.readouterr().err
    assert cli.main(['replay', str(talker), '--start-offset', '10']) == 2
    assert 'the start offset is past its end (4.5 s)' in capsys.readouterr().err


@pytest.mark.parametrize('name', BAGS)
def test_eval_of_a_bag_without_sensors_says_so_in_one_line(recorded_bags, name, tmp_path, capsys):
    assert cli.main(['eval', str(recorded_bags / name), '--out', str(tmp_path / 'out'), '--no-plots']) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    assert 'no camera or lidar topic' in err and ('/topic [std_msgs/msg/String]' in err or
                                                  '/array_topic [test_msgs/msg/Arrays, unknown type]' in err)


def test_eval_of_a_bag_whose_sensor_topics_are_empty_says_it_has_nothing_to_read(tmp_path, capsys):
    with BagWriter(tmp_path / 'empty', 'mcap') as writer:
        writer.add_topic(topics.camera_topic('front'), 'sensor_msgs/msg/Image')
        writer.add_topic(topics.lidar_topic('top'), 'sensor_msgs/msg/PointCloud2')
    assert cli.main(['eval', str(tmp_path / 'empty'), '--out', str(tmp_path / 'out'), '--no-plots']) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'hold no messages, nothing to read' in err, err
