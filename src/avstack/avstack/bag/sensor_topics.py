"""Topics by role: :func:`resolve_sensor_topics` finds the camera, lidar and odometry topics a perception
config asks for in a bag: by the configured name, by message type when the names differ, or as a ``--map``
entry names them."""

from dataclasses import dataclass, field

from avstack.bag.codec import (
    CAMERA_INFO_TYPE, CAMERA_TYPES, CLOUD_TYPE, COMPRESSED_IMAGE_TYPE, ODOMETRY_TYPE, BagError, is_known_type)
from avstack.bag.reader import Bag
from stack_common import topics as stack_topics

# Topics of the stack's own outputs: never mistaken for a sensor when topics are found by type.
STACK_OUTPUTS = (stack_topics.FUSED_TOKENS,)


@dataclass(frozen=True)
class SensorTopic:
    key: str          # 'camera/front', 'lidar/top', 'odometry'
    topic: str
    type_name: str

    @property
    def compressed(self) -> bool:
        return self.type_name == COMPRESSED_IMAGE_TYPE


@dataclass
class SensorTopics:
    cameras: dict[str, SensorTopic]   # sensor name -> topic
    lidars: dict[str, SensorTopic]
    odometry: SensorTopic | None
    camera_infos: dict[str, SensorTopic] = field(default_factory=dict)   # camera name -> its camera_info topic

    def all(self) -> list[SensorTopic]:
        return list(self.cameras.values()) + list(self.lidars.values()) + (
            [self.odometry] if self.odometry else []) + list(self.camera_infos.values())

    def by_topic(self) -> dict[str, SensorTopic]:
        return {t.topic: t for t in self.all()}


def _camera_group(topic: str) -> str:
    return topic.removesuffix('/compressed')


def _pick(bag: Bag, key: str, role: str, types: tuple[str, ...], configured: list[str], mapping: dict[str, str],
          taken: set[str], required: bool) -> SensorTopic | None:
    shortcut = key.split('/')[0]
    mapped = mapping.get(key) or (mapping.get(shortcut) if shortcut != key else None)
    if mapped:
        info = bag.topics.get(mapped)
        if info is None:
            raise BagError(f'--map {key}={mapped}: topic {mapped} is not in {bag.path} '
                           f'({role} topics there: {", ".join(bag.topics_of_type(*types)) or "none"})')
        if info.type_name not in types:
            raise BagError(f'--map {key}={mapped}: {mapped} is {info.type_name}, a {role} needs {" or ".join(types)}')
        return SensorTopic(key, mapped, info.type_name)
    for topic in configured:
        info = bag.topics.get(topic)
        if info is not None and info.type_name in types and topic not in taken:
            return SensorTopic(key, topic, info.type_name)
    candidates = [t for t in bag.topics_of_type(*types) if t not in taken and t not in STACK_OUTPUTS]
    if role == 'camera':  # raw and compressed of one camera are one candidate; raw decodes faster
        groups = {}
        for topic in candidates:
            groups.setdefault(_camera_group(topic), []).append(topic)
        candidates = [min(group, key=len) for group in groups.values()]
    if len(candidates) == 1:
        topic = candidates[0]
        return SensorTopic(key, topic, bag.topics[topic].type_name)
    if not candidates and not required:
        return None
    if not candidates:
        raise BagError(f'{bag.path}: no {role} topic ({" or ".join(types)}) for {key}; '
                       f'topics: {bag.describe_topics()}')
    raise BagError(f'{bag.path}: {len(candidates)} {role} topics ({", ".join(candidates)}) for {key}: '
                   f'name one with --map {key}=TOPIC')


def resolve_sensor_topics(bag: Bag, perception_config: dict, mapping: dict[str, str] | None = None) -> SensorTopics:
    """The bag topics of each sensor of ``perception_config``; camera and lidar are required."""
    mapping = dict(mapping or {})
    known = {f'camera/{n}' for n in perception_config['cameras']} | {f'lidar/{n}' for n in perception_config['lidars']}
    unknown = sorted(k for k in mapping if k not in known | {'camera', 'lidar', 'odometry'})
    if unknown:
        raise BagError(f'--map {unknown[0]}: no such sensor in the perception config '
                       f'(sensors: {", ".join(sorted(known | {"odometry"}))})')
    if not bag.topics_of_type(*CAMERA_TYPES, CLOUD_TYPE):
        raise BagError(f'{bag.path}: no camera or lidar topic (sensor_msgs/msg/Image, CompressedImage or PointCloud2), '
                       f'nothing to perceive; topics: {bag.describe_topics()}')
    taken: set[str] = set()
    cameras, lidars = {}, {}
    for name in perception_config['cameras']:
        section = perception_config['camera'].get(name, {})
        configured = [section.get('topic') or stack_topics.camera_topic(name)]
        configured += [c + '/compressed' for c in configured] + [stack_topics.compressed_camera_topic(name)]
        cameras[name] = _pick(bag, f'camera/{name}', 'camera', CAMERA_TYPES, configured, mapping, taken, True)
        taken.add(cameras[name].topic)
    for name in perception_config['lidars']:
        configured = [perception_config['lidar'].get(name, {}).get('topic') or stack_topics.lidar_topic(name)]
        lidars[name] = _pick(bag, f'lidar/{name}', 'lidar', (CLOUD_TYPE,), configured, mapping, taken, True)
        taken.add(lidars[name].topic)
    odometry = _pick(bag, 'odometry', 'odometry', (ODOMETRY_TYPE,), [perception_config['odometry_topic']],
                     mapping, taken, False)
    for sensor in [*cameras.values(), *lidars.values(), *([odometry] if odometry else [])]:
        if not is_known_type(sensor.type_name):
            raise BagError(f'{sensor.topic}: unknown message type {sensor.type_name!r}')
    sensor_topics = [s.topic for s in [*cameras.values(), *lidars.values()]]
    if not any(bag.topics[topic].count for topic in sensor_topics):
        raise BagError(f'{bag.path}: its camera and lidar topics ({", ".join(sensor_topics)}) hold no messages, '
                       f'nothing to read')
    # A camera's configured camera_info topic, when the bag has it (optional, as live).
    camera_infos = {}
    for name in perception_config['cameras']:
        topic = perception_config['camera'].get(name, {}).get('camera_info_topic')
        if topic and topic in bag.topics and bag.topics[topic].type_name == CAMERA_INFO_TYPE:
            camera_infos[name] = SensorTopic(f'camera_info/{name}', topic, CAMERA_INFO_TYPE)
    return SensorTopics(cameras, lidars, odometry, camera_infos)
