"""rosbag2 files: the one place that opens them (with ``rosbags``) and writes them.

Reading: :func:`open_bag` opens a rosbag2 directory (``metadata.yaml`` + mcap
or sqlite3 files, written by humble, jazzy, kilted or ``rosbags``) or a bare
``.mcap``/``.db3`` file, and iterates messages in log-time order as raw CDR
bytes; :func:`deserialize` turns them into rclpy messages. Every problem with
a bag (missing, truncated, corrupt, no metadata, unknown types) raises
:class:`BagError` with one line naming the file or topic, never a traceback.

Topics by role: :func:`resolve_sensor_topics` finds the camera, lidar and
odometry topics a perception config asks for: by the configured name, by
message type when the names differ, or as a ``--map`` entry names them.

Writing: :class:`BagWriter` writes a rosbag2 directory (metadata.yaml version
9, mcap or sqlite3) that ``ros2 bag``, Foxglove and ``rosbags`` open, with
each topic's offered QoS profiles; it closes cleanly even when the code
writing it fails, so nothing written is lost.
"""

import functools
import importlib
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, LivelinessPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
try:
    from compression import zstd            # Python >= 3.14
except ImportError:
    from backports import zstd              # what rosbags itself uses before 3.14
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, Writer, WriterError
from rosbags.rosbag2.enums import StoragePlugin
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from stack_common import topics as stack_topics
from stack_common.boundary import ConversionError

IMAGE_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE_TYPE = 'sensor_msgs/msg/CompressedImage'
CAMERA_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)
CLOUD_TYPE = 'sensor_msgs/msg/PointCloud2'
CAMERA_INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
ODOMETRY_TYPE = 'nav_msgs/msg/Odometry'
STORAGES = ('mcap', 'sqlite3')
DEFAULT_DEPTH = 10
# A burst waits in a queue this deep while a slow peer catches up (rosbag2 loses it with 10): the recorder's
# subscriptions and a replay's reliable publishers.
BURST_DEPTH = 100
METADATA_FILE = 'metadata.yaml'
# Topics of the stack's own outputs: never mistaken for a sensor when topics are found by type.
STACK_OUTPUTS = (stack_topics.FUSED_TOKENS,)


class BagError(Exception):
    """A bag that cannot be used; the message is one line naming the file or topic."""


class MessageDecodeError(ConversionError):
    """A message whose bytes do not deserialise; ``reason`` is a counter name."""


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return ' '.join(text.split())


# ---------------------------------------------------------------------------------------------- types

_CLASSES: dict[str, type] = {}


def message_class(type_name: str) -> type:
    """The rclpy class of ``pkg/msg/Name``; :class:`BagError` when this machine does not have it."""
    cls = _CLASSES.get(type_name)
    if cls is not None:
        return cls
    parts = type_name.split('/')
    if len(parts) != 3 or parts[1] != 'msg':
        raise BagError(f'unknown message type {type_name!r} (expected package/msg/Name)')
    try:
        cls = getattr(importlib.import_module(f'{parts[0]}.msg'), parts[2])
    except (ImportError, AttributeError):
        raise BagError(f'unknown message type {type_name!r}: package {parts[0]!r} is not installed here') from None
    _CLASSES[type_name] = cls
    return cls


def is_known_type(type_name: str) -> bool:
    try:
        message_class(type_name)
    except BagError:
        return False
    return True


def deserialize(data: bytes | memoryview, type_name: str):
    """Raw CDR bytes -> rclpy message; :class:`MessageDecodeError` for bytes that are not that type."""
    cls = message_class(type_name)
    try:
        return deserialize_message(bytes(data) if isinstance(data, memoryview) else data, cls)
    except Exception as error:  # rclpy raises plain RuntimeError/ValueError for malformed CDR
        raise MessageDecodeError('bad_cdr', f'{type_name}: {_one_line(error)}') from None


_TYPESTORE = None


def canonical_cdr(data: bytes, type_name: str) -> bytes:
    """The CDR bytes of a message with its alignment padding zeroed.

    rclpy's serializer leaves padding bytes uninitialised, so one message can
    serialise to different bytes; a round trip through the rosbags typestore
    makes equal messages equal bytes (what a byte-for-byte comparison needs).
    """
    global _TYPESTORE
    if _TYPESTORE is None:
        _TYPESTORE = get_typestore(Stores.ROS2_KILTED)
    return bytes(_TYPESTORE.serialize_cdr(_TYPESTORE.deserialize_cdr(data, type_name), type_name))


def serialize(msg, type_name: str) -> bytes:
    """An rclpy message as canonical CDR bytes (see :func:`canonical_cdr`)."""
    return canonical_cdr(serialize_message(msg), type_name)


# ------------------------------------------------------------------------------------------------ QoS

def _duration(qos_time) -> Duration:
    return Duration(seconds=int(qos_time.sec), nanoseconds=int(qos_time.nsec))


def _qos_time(duration: Duration):
    sec, nsec = divmod(int(duration.nanoseconds), 1_000_000_000)
    return QosTime(sec, nsec)


def to_bag_qos(profile: QoSProfile):
    """An rclpy QoS profile as rosbags stores it in ``offered_qos_profiles`` (the enums share rmw values)."""
    return Qos(QosHistory(int(profile.history)), int(profile.depth), QosReliability(int(profile.reliability)),
               QosDurability(int(profile.durability)), _qos_time(profile.deadline), _qos_time(profile.lifespan),
               QosLiveliness(int(profile.liveliness)), _qos_time(profile.liveliness_lease_duration),
               bool(profile.avoid_ros_namespace_conventions))


def from_bag_qos(qos) -> QoSProfile:
    """The publishing profile for a recorded one: history, depth, reliability and durability as recorded."""
    def policy(enum, value, default):
        try:
            member = enum(value.value)
        except ValueError:
            return default
        return default if member.name in ('UNKNOWN', 'SYSTEM_DEFAULT', 'BEST_AVAILABLE') else member
    history = policy(HistoryPolicy, qos.history, HistoryPolicy.KEEP_LAST)
    # DDS discovery does not carry history and depth: recorders store UNKNOWN and 0 for them.
    return QoSProfile(history=history, depth=int(qos.depth) or DEFAULT_DEPTH,
                      reliability=policy(ReliabilityPolicy, qos.reliability, ReliabilityPolicy.RELIABLE),
                      durability=policy(DurabilityPolicy, qos.durability, DurabilityPolicy.VOLATILE),
                      liveliness=policy(LivelinessPolicy, qos.liveliness, LivelinessPolicy.AUTOMATIC))


def publishing_qos(offered: list) -> QoSProfile:
    """One profile that every subscriber of the recorded publishers could match (as ``ros2 bag play``).

    A reliable topic keeps at least ``BURST_DEPTH`` messages: a replay publishes a log's bursts as
    fast as they were logged, and a reliable writer drops a message a slow subscriber has not acknowledged
    once ``depth`` newer ones are queued (the depth takes no part in QoS matching).
    """
    if not offered:
        return QoSProfile(depth=BURST_DEPTH)
    profiles = [from_bag_qos(q) for q in offered]
    reliable = all(p.reliability == ReliabilityPolicy.RELIABLE for p in profiles)
    latched = all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in profiles)
    depth = max(p.depth for p in profiles)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(depth, BURST_DEPTH) if reliable else depth,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


# -------------------------------------------------------------------------------------------- reading

@dataclass(frozen=True)
class TopicInfo:
    name: str
    type_name: str
    count: int
    offered_qos: list = field(default_factory=list)   # rosbags Qos entries as recorded


@dataclass(frozen=True)
class BagMessage:
    topic: str
    type_name: str
    log_time_ns: int        # when the recorder received it (the bag's time axis)
    data: bytes | memoryview


class Bag:
    """An open bag; use :func:`open_bag`. Iterating twice reads the files twice."""

    def __init__(self, path: Path):
        self.path = path
        self._reader = Reader(path)
        self._reader.open()
        storage = self._reader.storage
        files = getattr(storage, 'storages', None)
        self.files = [Path(getattr(s, 'path', path)) for s in files] if files else [path]
        self.storage = 'sqlite3' if any(f.suffix == '.db3' for f in self.files) else 'mcap'
        self.ros_distro = self._reader.ros_distro
        self.topics: dict[str, TopicInfo] = {}
        for name, info in self._reader.topics.items():
            offered = [q for c in info.connections for q in getattr(c.ext, 'offered_qos_profiles', [])]
            self.topics[name] = TopicInfo(name, info.msgtype or '', info.msgcount, offered)
        self.message_count = self._reader.message_count
        self._compressed_messages = self._reader.compression_mode == 'message'
        self.start_ns = self._reader.start_time if self.message_count else 0
        self.end_ns = self._reader.end_time - 1 if self.message_count else 0

    @property
    def duration_s(self) -> float:
        return max(self.end_ns - self.start_ns, 0) / 1e9

    def topics_of_type(self, *type_names: str) -> list[str]:
        return sorted(name for name, info in self.topics.items() if info.type_name in type_names)

    def describe_topics(self) -> str:
        return ', '.join(f'{n} [{i.type_name}{"" if is_known_type(i.type_name) else ", unknown type"}]'
                         for n, i in sorted(self.topics.items())) or 'none'

    def messages(self, topics: Iterable[str] | None = None, start_ns: int | None = None,
                 stop_ns: int | None = None) -> Iterator[BagMessage]:
        """Messages in log-time order; a file that breaks while reading raises :class:`BagError`."""
        wanted = None if topics is None else set(topics)
        try:
            for storage in self._storages():
                connections = [c for c in storage.connections if wanted is None or c.topic in wanted]
                if not connections:
                    continue
                for connection, log_time_ns, data in storage.messages(connections, start_ns, stop_ns):
                    yield BagMessage(connection.topic, connection.msgtype, log_time_ns,
                                     zstd.decompress(data) if self._compressed_messages else data)
        except Exception as error:  # rosbags, sqlite3, apsw and zstd each raise their own types
            raise BagError(f'{self._file_label()}: corrupt or truncated ({_one_line(error)})') from None

    def _storages(self) -> list:
        """The open storage files, each read with its own connections.

        Not through rosbags' ``Reader.messages``: for a bag directory it pairs each ``metadata.yaml``
        connection with a file's connection only when everything is equal, the offered QoS included, and
        rosbag2's C++ writer stores an infinite QoS duration as 0 s in ``metadata.yaml`` but as
        2147483647 s 4294967295 ns in the file, so a bag recorded by ``ros2 bag`` read as empty. A file's own
        connections name topic and type, which is all a message needs (``ros2 bag play`` also pairs by topic).
        """
        reader = self._reader.storage
        return list(getattr(reader, 'storages', None) or [reader])

    def _file_label(self) -> str:
        return ', '.join(str(f) for f in self.files)

    def close(self) -> None:
        if self._reader.is_open:
            self._reader.close()

    def __enter__(self) -> 'Bag':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_bag(path: str | Path) -> Bag:
    """Open a rosbag2 directory or a bare .mcap/.db3 file; :class:`BagError` with one line otherwise."""
    path = Path(path)
    if not path.exists():
        raise BagError(f'{path}: no such bag (file or directory)')
    if path.is_dir() and not (path / METADATA_FILE).is_file():
        storage_files = sorted(p.name for p in path.iterdir() if p.suffix in ('.mcap', '.db3'))
        hint = (f'; it holds {", ".join(storage_files)}: `ros2 bag reindex {path}` recreates the metadata, '
                f'or pass the file itself') if storage_files else ''
        raise BagError(f'{path}: no {METADATA_FILE}, not a rosbag2 directory{hint}')
    if path.is_file() and path.suffix not in ('.mcap', '.db3'):
        raise BagError(f'{path}: not a rosbag2 directory or .mcap/.db3 file')
    try:
        return Bag(path)
    except BagError:
        raise
    except Exception as error:  # ReaderError, sqlite/apsw errors, struct/zstd errors on broken files
        detail = _one_line(error)
        if path.is_dir():
            names = [p.name for p in path.iterdir() if p.suffix in ('.mcap', '.db3', '.yaml')]
            detail += f' (files: {", ".join(sorted(names))})'
        raise BagError(f'{path}: cannot open the bag: {detail}') from None


# ------------------------------------------------------------------------------------- topics by role

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


# -------------------------------------------------------------------------------------------- writing

def _share_directories() -> list[Path]:
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p] + [sys.prefix]
    return [Path(p) / 'share' for p in prefixes]


def _register_from_msg_files(typestore, type_name: str, seen: set[str] | None = None) -> bool:
    """Load ``type_name`` (and the types it uses) from installed .msg files into ``typestore``."""
    seen = seen if seen is not None else set()
    if type_name in typestore.fielddefs or type_name in seen:
        return True
    seen.add(type_name)
    package, _, name = type_name.split('/')
    for share in _share_directories():
        path = share / package / 'msg' / f'{name}.msg'
        if path.is_file():
            types = get_types_from_msg(path.read_text(), type_name)
            for fields in types[type_name][1]:
                for nested in _nested_type_names(fields[1]):
                    if '/' in nested and not _register_from_msg_files(typestore, nested, seen):
                        return False
            typestore.register(types)
            return True
    return False


def _nested_type_names(description) -> Iterator[str]:
    """Type names in a rosbags field description (nodetype, detail) - nested for arrays/sequences."""
    if isinstance(description, tuple):
        for item in description:
            yield from _nested_type_names(item)
    elif isinstance(description, str):
        yield description


class BagWriter:
    """``with BagWriter(out, 'mcap') as bag: bag.add_topic(...); bag.write(...)`` - callable from any thread.

    All file access runs on one I/O thread (sqlite3 connections belong to the
    thread that made them, and callers need not wait for the disk); ``write``
    queues, ``close`` drains the queue and writes the index and metadata.yaml.
    Message definitions come from the kilted typestore, or from the installed
    ``.msg`` files of types it does not know.
    """

    def __init__(self, path: str | Path, storage: str = 'mcap', version: int = 9):
        if storage not in STORAGES:
            raise ValueError(f'storage {storage!r}: expected one of {STORAGES}')
        self.path = Path(path)
        self.single_file: Path | None = None
        if self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()   # an empty directory (a command's --out) counts as new
        if self.path.exists():
            raise BagError(f'{self.path}: already exists; choose a new output directory')
        self.storage = storage
        self.typestore = get_typestore(Stores.ROS2_KILTED)
        self._writer = Writer(self.path, version=version,
                              storage_plugin=StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3)
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix='bag_writer')
        self._connections = {}
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._closed = False
        self.counts: dict[str, int] = {}
        self._call(self._writer.open)

    @classmethod
    def mcap_file(cls, path: str | Path) -> 'BagWriter':
        """A single ``.mcap`` file (rosbag2 profile, metadata inside) instead of a bag directory."""
        path = Path(path)
        if path.suffix != '.mcap':
            raise ValueError(f'{path}: an MCAP file name ends in .mcap')
        writer = cls(path.with_suffix(''), 'mcap')
        writer.single_file = path
        return writer

    def _call(self, function, *args):
        try:
            return self._io.submit(function, *args).result()
        except (OSError, WriterError) as error:
            raise BagError(f'{self.path}: {_one_line(error)}') from None

    def add_topic(self, topic: str, type_name: str, offered_qos: Iterable = (), msgdef: str = '') -> None:
        """Declare a topic; ``offered_qos`` are rclpy QoSProfiles or rosbags Qos entries; ``msgdef``: the
        type's definition as a bag stores it, for a type this machine does not have."""
        qos = [to_bag_qos(q) if isinstance(q, QoSProfile) else q for q in offered_qos]
        with self._lock:
            if topic in self._connections:
                return
            if msgdef and type_name not in self.typestore.fielddefs:
                try:
                    self.typestore.register(get_types_from_msg(msgdef, type_name))
                except Exception as error:  # rosbags raises its own parse errors
                    raise BagError(f'{topic}: unreadable message definition of {type_name!r}: '
                                   f'{_one_line(error)}') from None
            if type_name not in self.typestore.fielddefs and not _register_from_msg_files(self.typestore, type_name):
                raise BagError(f'{topic}: no message definition for {type_name!r} on this machine')
            self._connections[topic] = self._call(functools.partial(
                self._writer.add_connection, topic, type_name, typestore=self.typestore, offered_qos_profiles=qos))
            self.counts[topic] = 0

    def has_topic(self, topic: str) -> bool:
        return topic in self._connections

    def write(self, topic: str, log_time_ns: int, data: bytes | memoryview) -> None:
        """Queue one message (bytes are kept as given: no copy, no re-serialisation)."""
        with self._lock:
            if self._closed:
                raise BagError(f'{self.path}: the bag is closed')
            if self._error is not None:
                raise BagError(f'{self.path}: writing failed: {_one_line(self._error)}')
            self._io.submit(self._write, self._connections[topic], int(log_time_ns), data)
            self.counts[topic] += 1

    def _write(self, connection, log_time_ns: int, data) -> None:
        if self._error is not None:
            return
        try:
            self._writer.write(connection, log_time_ns, data)
        except BaseException as error:  # kept and reported by the next write or close
            self._error = error

    def close(self) -> None:
        """Write what is queued, the index and metadata.yaml; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._call(self._writer.close)
        finally:
            self._io.shutdown(wait=True)
        if self.single_file is not None:
            (self.path / f'{self.path.name}.mcap').replace(self.single_file)
            (self.path / METADATA_FILE).unlink()
            self.path.rmdir()
        if self._error is not None:
            raise BagError(f'{self.path}: writing failed: {_one_line(self._error)}')

    def __enter__(self) -> 'BagWriter':
        return self

    def __exit__(self, *exc) -> None:
        self.close()
