"""Reading bags of every distro and storage we support, and finding the sensor topics in them.

Bags are written by rosbags in the on-disk layouts of humble (metadata v5,
sqlite3 without type descriptions), jazzy (v8) and kilted (v9), in mcap and
sqlite3; each is read back in log-time order and decoded with rclpy.
"""

import pytest
import yaml
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import Reader

from avstack.bag.codec import BagError, canonical_cdr, deserialize, serialize
from avstack.bag.qos import from_bag_qos
from avstack.bag.reader import open_bag
from avstack.bag.sensor_topics import resolve_sensor_topics
from avstack.bag.writer import BagWriter
from avstack.offline.stack import DecodeFailure, SensorInput, decoded_inputs
from stack_common import topics
from stack_common.config import load_node_config
from stack_common.image import rgb_to_image_msg
from stack_common.qos import SENSOR_QOS
from stack_common.takeover import TakeoverReason, takeover_to_msg

from bagtools import SMALL_SCENE, small_bag, storage_file
from support import STACK_CONFIG

PERCEPTION = load_node_config('perception_llm', 'perception_node', STACK_CONFIG)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
@pytest.mark.parametrize('distro, version', [('humble', 5), ('jazzy', 8), ('kilted', 9)])
def test_bags_of_each_distro_and_storage_read_in_log_time_order(tmp_path, storage, distro, version):
    bag_dir = small_bag(tmp_path / 'bag', storage=storage, distro=distro)
    metadata = yaml.safe_load((bag_dir / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert metadata['version'] == version and metadata['storage_identifier'] == storage
    if distro == 'humble':
        assert all('type_description_hash' not in t['topic_metadata'] for t in metadata['topics_with_message_count'])
    with open_bag(bag_dir) as bag:
        assert bag.storage == storage
        assert {name: info.count for name, info in bag.topics.items()} == {
            topics.camera_topic('front'): 10, topics.lidar_topic('top'): 10, topics.ODOMETRY: 50}
        sensors = resolve_sensor_topics(bag, PERCEPTION)
        items = list(decoded_inputs(bag, sensors))
        log_times = [message.log_time_ns for message, _ in items]
        assert log_times == sorted(log_times) and len(items) == 70
        assert all(isinstance(item, SensorInput) for _, item in items)
        first_camera = next(item for _, item in items if item.rgb is not None)
        assert first_camera.rgb.shape == (SMALL_SCENE.image_height, SMALL_SCENE.image_width, 3)
        assert (first_camera.rgb == SMALL_SCENE.camera(0.0)).all()
        first_cloud = next(item for _, item in items if item.points is not None)
        assert len(first_cloud.points) == SMALL_SCENE.lidar(0.0).size
        offered = bag.topics[topics.lidar_topic('top')].offered_qos
        assert from_bag_qos(offered[0]).reliability == SENSOR_QOS.reliability


def test_compressed_camera_topics_are_found_and_decoded(tmp_path):
    bag_dir = small_bag(tmp_path / 'bag', compressed=True)
    with open_bag(bag_dir) as bag:
        sensors = resolve_sensor_topics(bag, PERCEPTION)
        camera = sensors.cameras['front']
        assert camera.topic == topics.compressed_camera_topic('front') and camera.compressed
        item = next(item for _, item in decoded_inputs(bag, sensors) if item.sensor is camera)
    expected = SMALL_SCENE.camera(0.0).astype(int)
    assert item.rgb.shape == expected.shape and abs(item.rgb.astype(int) - expected).mean() < 3.0  # jpeg


def test_topics_are_found_by_type_when_names_differ_and_map_resolves_ambiguity(tmp_path):
    bag_dir = small_bag(tmp_path / 'bag', camera_topic='/cam0/image_raw', lidar_topic='/velodyne_points',
                        odometry_topic='/odom')
    with open_bag(bag_dir) as bag:
        sensors = resolve_sensor_topics(bag, PERCEPTION)
    assert (sensors.cameras['front'].topic, sensors.lidars['top'].topic, sensors.odometry.topic) == (
        '/cam0/image_raw', '/velodyne_points', '/odom')

    second_camera = serialize(rgb_to_image_msg(SMALL_SCENE.camera(0.0), 1, 'cam1'), 'sensor_msgs/msg/Image')
    two = small_bag(tmp_path / 'two', camera_topic='/cam0/image_raw',
                    extra_messages=(('/cam1/image_raw', 'sensor_msgs/msg/Image', 0, second_camera),))
    with open_bag(two) as bag:
        with pytest.raises(BagError, match=r'2 camera topics .*--map camera/front=TOPIC'):
            resolve_sensor_topics(bag, PERCEPTION)
        assert resolve_sensor_topics(bag, PERCEPTION, {'camera/front': '/cam1/image_raw'}).cameras[
            'front'].topic == '/cam1/image_raw'
        with pytest.raises(BagError, match=r'--map camera/front=/nope: topic /nope is not in'):
            resolve_sensor_topics(bag, PERCEPTION, {'camera/front': '/nope'})
        with pytest.raises(BagError, match=r'/vehicle/odometry is nav_msgs/msg/Odometry, a camera needs'):
            resolve_sensor_topics(bag, PERCEPTION, {'camera': topics.ODOMETRY})


def test_undecodable_messages_are_reported_not_raised(tmp_path):
    garbage = b'\x00\x01\x00\x00not a cdr image at all'
    truncated_image = rgb_to_image_msg(SMALL_SCENE.camera(0.0), 5, 'camera_front_optical', 'bgr8')
    truncated_image.data = truncated_image.data[:1000]
    serialized = serialize_message(truncated_image)
    bag_dir = small_bag(tmp_path / 'bag', extra_messages=(
        (topics.camera_topic('front'), 'sensor_msgs/msg/Image', 50_000_000, garbage),
        (topics.camera_topic('front'), 'sensor_msgs/msg/Image', 60_000_000, serialized)))
    with open_bag(bag_dir) as bag:
        failures = [item for _, item in decoded_inputs(bag, resolve_sensor_topics(bag, PERCEPTION))
                    if isinstance(item, DecodeFailure)]
    assert sorted(f.reason for f in failures) == ['bad_cdr', 'truncated']


def test_writer_output_opens_with_rosbags_and_serialization_is_canonical(tmp_path):
    msg = takeover_to_msg(7, 'TAKEOVER_REQUESTED', [TakeoverReason('collision', 'box ahead', 1.0, 2.0)])
    raw = serialize_message(msg)
    canonical = canonical_cdr(raw, 'diagnostic_msgs/msg/DiagnosticArray')
    assert canonical == canonical_cdr(canonical, 'diagnostic_msgs/msg/DiagnosticArray')
    assert deserialize(canonical, 'diagnostic_msgs/msg/DiagnosticArray') == msg
    for storage in ('mcap', 'sqlite3'):
        with BagWriter(tmp_path / storage, storage) as writer:
            writer.add_topic(topics.TAKEOVER_REQUEST, 'diagnostic_msgs/msg/DiagnosticArray')
            writer.write(topics.TAKEOVER_REQUEST, 5, canonical)
        with Reader(tmp_path / storage) as reader:
            assert [(c.topic, t, bytes(d)) for c, t, d in reader.messages()] == [(topics.TAKEOVER_REQUEST, 5,
                                                                                 canonical)]
        assert storage_file(tmp_path / storage).stat().st_size > 0
    single = BagWriter.mcap_file(tmp_path / 'one.mcap')
    single.add_topic(topics.TAKEOVER_REQUEST, 'diagnostic_msgs/msg/DiagnosticArray')
    single.write(topics.TAKEOVER_REQUEST, 9, canonical)
    single.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['mcap', 'one.mcap', 'sqlite3']
    with open_bag(tmp_path / 'one.mcap') as bag:
        assert [m.log_time_ns for m in bag.messages()] == [9]
