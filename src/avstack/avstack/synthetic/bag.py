"""Rosbags of the synthetic scene, as a driver and ``ros2 bag record`` would have written them.

For tests and the eval benchmark: camera (raw bgr8 or jpeg), lidar and
odometry from :class:`~avstack.synthetic.scene.SyntheticScene`, with header stamps
at capture and log times a few milliseconds later (the transport), in either
storage, in the on-disk layout of humble, jazzy or kilted:

* kilted: metadata.yaml version 9, QoS enums as strings;
* jazzy: version 8 (QoS enums as numbers, type hashes, ``ros_distro``);
* humble: version 5 (no type hashes, no custom data or distro) and, for
  sqlite3, the humble database schema (no message_definitions table, no
  type_description_hash column).
"""

import heapq
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from rclpy.serialization import serialize_message
from rosbags.typesys import get_types_from_msg

from avstack.bag.codec import CLOUD_TYPE, COMPRESSED_IMAGE_TYPE, IMAGE_TYPE, ODOMETRY_TYPE
from avstack.bag.reader import METADATA_FILE
from avstack.bag.writer import BagWriter
from avstack.synthetic.scene import SyntheticScene
from stack_common import topics
from stack_common.constants import NS_PER_S
from stack_common.image import rgb_to_compressed_msg, rgb_to_image_msg
from stack_common.odometry import ego_to_odometry
from stack_common.pointcloud import array_to_cloud
from stack_common.qos import SENSOR_QOS

DISTROS = ('humble', 'jazzy', 'kilted')
METADATA_VERSIONS = {'humble': 5, 'jazzy': 8, 'kilted': 9}
START_NS = 1_700_000_000 * NS_PER_S      # a plausible epoch time for the first stamp
# capture -> recorder receipt, per sensor (deterministic, so bags are reproducible)
TRANSPORT_NS = {'camera': 12_000_000, 'lidar': 18_000_000, 'odometry': 2_000_000}


@dataclass
class SyntheticBagSpec:
    duration_s: float = 2.0
    camera_hz: float = 10.0
    lidar_hz: float = 10.0
    odometry_hz: float = 50.0
    compressed: bool = False                 # jpeg CompressedImage instead of raw bgr8
    camera_topic: str = topics.camera_topic('front')
    lidar_topic: str = topics.lidar_topic('top')
    odometry_topic: str = topics.ODOMETRY
    storage: str = 'mcap'
    distro: str = 'kilted'
    # log time runs this many times faster than the stamps: a lockstep simulator's recording (1: real time)
    recording_speedup: float = 1.0
    # (topic, type, offset from the start in ns, bytes): also on a sensor topic (e.g. a corrupt message)
    extra_messages: tuple[tuple[str, str, int, bytes], ...] = ()
    # (type, .msg text) for extra message types this machine does not have
    custom_types: tuple[tuple[str, str], ...] = ()


def write_synthetic_bag(out: Path, spec: SyntheticBagSpec | None = None,
                        scene: SyntheticScene | None = None) -> Path:
    """Write the bag directory ``out`` (the default :class:`SyntheticBagSpec` without ``spec``); returns it."""
    spec = spec or SyntheticBagSpec()
    if spec.distro not in DISTROS:
        raise ValueError(f'distro {spec.distro!r}: expected one of {DISTROS}')
    scene = scene or SyntheticScene()
    camera_topic = spec.camera_topic
    if camera_topic and spec.compressed and not camera_topic.endswith('/compressed'):
        camera_topic += '/compressed'
    out = Path(out)
    # rosbags writes versions 8 and 9; older layouts are rewritten from 8 afterwards
    with BagWriter(out, spec.storage, version=9 if spec.distro == 'kilted' else 8) as bag:
        for type_name, text in spec.custom_types:
            bag.typestore.register(get_types_from_msg(text, type_name))
        for topic, type_name in ((camera_topic, COMPRESSED_IMAGE_TYPE if spec.compressed else IMAGE_TYPE),
                                 (spec.lidar_topic, CLOUD_TYPE), (spec.odometry_topic, ODOMETRY_TYPE)):
            if topic:
                bag.add_topic(topic, type_name, [SENSOR_QOS])
        extra = []
        for topic, type_name, offset_ns, data in spec.extra_messages:
            bag.add_topic(topic, type_name, [SENSOR_QOS])
            extra.append((START_NS + offset_ns, topic, data))
        for log_ns, topic, data in heapq.merge(_messages(scene, spec, camera_topic), sorted(extra),
                                               key=lambda m: m[:2]):
            bag.write(topic, log_ns, data)
    if spec.distro != 'kilted':
        as_distro(out, spec.distro)
    return out


def _times(rate_hz: float, duration_s: float) -> np.ndarray:
    return np.arange(0.0, duration_s - 1e-9, 1.0 / rate_hz)


def _log_time(spec: SyntheticBagSpec, stamp_ns: int, sensor: str) -> int:
    """When the recorder received a message stamped ``stamp_ns``."""
    return START_NS + round((stamp_ns - START_NS) / spec.recording_speedup) + TRANSPORT_NS[sensor]


def _messages(scene: SyntheticScene, spec: SyntheticBagSpec, camera_topic: str):
    """``(log time, topic, bytes)`` of all sensors in log-time order, rendered as they are written."""
    sources = [_odometry(scene, spec) if spec.odometry_topic else (), _lidar(scene, spec) if spec.lidar_topic else (),
               _camera(scene, spec, camera_topic) if camera_topic else ()]
    return heapq.merge(*sources, key=lambda m: m[:2])


def _odometry(scene: SyntheticScene, spec: SyntheticBagSpec):
    for t_s in _times(spec.odometry_hz, spec.duration_s):
        ego = scene.ego(t_s)
        ego.stamp_ns += START_NS
        yield _log_time(spec, ego.stamp_ns, 'odometry'), spec.odometry_topic, serialize_message(ego_to_odometry(ego))


def _lidar(scene: SyntheticScene, spec: SyntheticBagSpec):
    for t_s in _times(spec.lidar_hz, spec.duration_s):
        stamp = scene.ego(t_s).stamp_ns + START_NS
        cloud = array_to_cloud(scene.lidar(t_s), stamp, 'lidar_top')
        yield _log_time(spec, stamp, 'lidar'), spec.lidar_topic, serialize_message(cloud)


def _camera(scene: SyntheticScene, spec: SyntheticBagSpec, camera_topic: str):
    for t_s in _times(spec.camera_hz, spec.duration_s):
        stamp = scene.ego(t_s).stamp_ns + START_NS
        rgb = scene.camera(t_s)
        msg = (rgb_to_compressed_msg(rgb, stamp, 'camera_front_optical') if spec.compressed
               else rgb_to_image_msg(rgb, stamp, 'camera_front_optical', 'bgr8'))
        yield _log_time(spec, stamp, 'camera'), camera_topic, serialize_message(msg)


def as_distro(bag_dir: Path, distro: str) -> None:
    """Rewrite a version-8 bag written by rosbags into the layout ``ros2 bag record`` of ``distro`` writes."""
    path = Path(bag_dir) / METADATA_FILE
    document = yaml.safe_load(path.read_text())
    info = document['rosbag2_bagfile_information']
    info['version'] = METADATA_VERSIONS[distro]
    info['ros_distro'] = distro
    if distro == 'humble':
        for key in ('ros_distro', 'custom_data'):
            info.pop(key, None)
        for entry in info['topics_with_message_count']:
            entry['topic_metadata'].pop('type_description_hash', None)
        for db in Path(bag_dir).glob('*.db3'):
            _humble_sqlite(db)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def _humble_sqlite(db: Path) -> None:
    """The humble rosbag2_storage_default_plugins schema (version 3): no type descriptions."""
    connection = sqlite3.connect(db)
    try:
        connection.executescript("""
            DROP TABLE IF EXISTS message_definitions;
            ALTER TABLE topics RENAME TO topics_new;
            CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
                                serialization_format TEXT NOT NULL, offered_qos_profiles TEXT NOT NULL);
            INSERT INTO topics SELECT id, name, type, serialization_format, offered_qos_profiles FROM topics_new;
            DROP TABLE topics_new;
            UPDATE schema SET schema_version = 3, ros_distro = 'humble';
        """)
        connection.commit()
        connection.execute('VACUUM')
    finally:
        connection.close()
