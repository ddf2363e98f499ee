"""What precedes a cut: the readable part of a truncated or index-less bag, written as a complete rosbag2 bag.

A recorder killed mid-write (power cut, disk full, SIGKILL) leaves an MCAP file without its summary and end
magic, often without ``metadata.yaml``; a copy cut short loses its tail. :func:`reindex` reads every storage
file record by record with the official ``mcap`` reader, which needs no index, up to the first record that
cannot be read, and writes every message before it into a new rosbag2 directory (``metadata.yaml``, an indexed
MCAP, each topic's message definition and offered QoS as recorded) that every tool opens. The source is not
changed. A cut SQLite file has lost its page structure and holds nothing SQLite can read; an intact ``.db3``
without ``metadata.yaml`` is copied the same way.
"""

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from mcap.exceptions import McapError
from mcap.records import Channel, Message, Schema
from mcap.stream_reader import StreamReader
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import StoragePlugin
from rosbags.rosbag2.metadata import parse_qos
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from avstack.bag import METADATA_FILE, BagError, open_bag

NO_HASH = 'RIHS01_' + '0' * 64   # the type hash of a type whose definition this machine cannot hash


@dataclass
class Recovery:
    files: list[Path]
    counts: dict[str, int] = field(default_factory=dict)   # topic -> messages recovered
    start_ns: int | None = None
    end_ns: int | None = None
    recorded: int | None = None      # messages the source's metadata.yaml says were recorded, if it has one
    cut: list[str] = field(default_factory=list)   # per damaged file: where reading stopped and why

    @property
    def messages(self) -> int:
        return sum(self.counts.values())

    @property
    def duration_s(self) -> float:
        return 0.0 if self.start_ns is None else (self.end_ns - self.start_ns) / 1e9

    def describe(self) -> str:
        share = '' if not self.recorded else f' of {self.recorded} recorded ({100 * self.messages / self.recorded:.0f} %)'
        lines = [f'recovered {self.messages} messages{share}, {self.duration_s:.1f} s of bag, on {len(self.counts)} '
                 f'topics from {", ".join(f.name for f in self.files)}']
        lines += [f'  {topic}: {count}' for topic, count in sorted(self.counts.items())]
        lines += [f'  {note}' for note in self.cut] or ['  every file was read to its end']
        return '\n'.join(lines)


def storage_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise BagError(f'{source}: no such bag (file or directory)')
    files = sorted(p for p in source.iterdir() if p.suffix in ('.mcap', '.db3'))
    if not files:
        raise BagError(f'{source}: no .mcap or .db3 file to reindex')
    return files


def recorded_count(source: Path) -> int | None:
    try:
        document = yaml.safe_load((source / METADATA_FILE).read_text())
        return int(document['rosbag2_bagfile_information']['message_count'])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return None


class _Output:
    """The new bag: one connection per recorded topic, with the definition and QoS it was recorded with."""

    def __init__(self, out: Path, storage: StoragePlugin):
        self.writer = Writer(out, version=9, storage_plugin=storage)
        self.writer.open()
        self.connections = {}
        self.typestore = get_typestore(Stores.ROS2_KILTED)

    def connection(self, topic: str, msgtype: str, msgdef: str, qos_yaml: str):
        if topic not in self.connections:
            self.connections[topic] = self.writer.add_connection(
                topic, msgtype, msgdef=msgdef or None, rihs01=self._hash(msgtype, msgdef),
                typestore=self.typestore, offered_qos_profiles=parse_qos(qos_yaml) if qos_yaml else ())
        return self.connections[topic]

    def _hash(self, msgtype: str, msgdef: str) -> str:
        try:
            if msgtype not in self.typestore.fielddefs:
                self.typestore.register(get_types_from_msg(msgdef, msgtype))
            return self.typestore.hash_rihs01(msgtype)
        except Exception:   # a definition rosbags cannot parse: the bag still opens, without a type hash
            return NO_HASH


def reindex(source: Path, out: Path) -> Recovery:
    """Read ``source`` (a bag directory or one storage file) up to its first unreadable record into ``out``."""
    source = Path(source)
    files = storage_files(source)
    recovery = Recovery(files, recorded=recorded_count(source) if source.is_dir() else None)
    storage = StoragePlugin.SQLITE3 if all(f.suffix == '.db3' for f in files) else StoragePlugin.MCAP
    output = _Output(out, storage)
    try:
        for file in files:
            messages = _mcap_messages(file, recovery) if file.suffix == '.mcap' else _db3_messages(file, recovery)
            for topic, msgtype, msgdef, qos_yaml, log_time_ns, data in messages:
                output.writer.write(output.connection(topic, msgtype, msgdef, qos_yaml), log_time_ns, data)
                recovery.counts[topic] = recovery.counts.get(topic, 0) + 1
                recovery.start_ns = log_time_ns if recovery.start_ns is None else min(recovery.start_ns, log_time_ns)
                recovery.end_ns = log_time_ns if recovery.end_ns is None else max(recovery.end_ns, log_time_ns)
    finally:
        output.writer.close()
    return recovery


def _mcap_messages(path: Path, recovery: Recovery):
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    size = path.stat().st_size
    with open(path, 'rb') as stream:
        records = StreamReader(stream, skip_magic=False).records
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except (McapError, EOFError, ValueError, OSError) as error:
                recovery.cut.append(f'{path.name}: unreadable from byte {stream.tell()} of {size} '
                                    f'({type(error).__name__}{": " + str(error) if str(error) else ""}): '
                                    f'the rest of the file is lost')
                return
            if isinstance(record, Schema):
                schemas[record.id] = record
            elif isinstance(record, Channel):
                channels[record.id] = record
            elif isinstance(record, Message) and record.channel_id in channels:
                channel = channels[record.channel_id]
                schema = schemas.get(channel.schema_id)
                yield (channel.topic, schema.name if schema else '', schema.data.decode() if schema else '',
                       channel.metadata.get('offered_qos_profiles', ''), record.log_time, record.data)


def _db3_messages(path: Path, recovery: Recovery):
    try:
        bag = open_bag(path)
    except BagError as error:
        recovery.cut.append(f'{path.name}: nothing readable ({error}); SQLite cannot read a cut database')
        return
    with bag:
        definitions = {c.topic: c for c in bag._reader.connections}
        try:
            for message in bag.messages():
                connection = definitions[message.topic]
                qos = yaml.safe_dump([_qos_dict(q) for q in bag.topics[message.topic].offered_qos])
                yield (message.topic, message.type_name, connection.msgdef.data, qos, message.log_time_ns,
                       bytes(message.data))
        except BagError as error:
            recovery.cut.append(f'{path.name}: reading stopped: {error}')


def _qos_dict(qos) -> dict:
    """A rosbags Qos as the dict ``offered_qos_profiles`` holds (what parse_qos reads back)."""
    def duration(value):
        return {'sec': int(value.sec), 'nsec': int(value.nsec)}
    return {'history': int(qos.history.value), 'depth': int(qos.depth), 'reliability': int(qos.reliability.value),
            'durability': int(qos.durability.value), 'deadline': duration(qos.deadline),
            'lifespan': duration(qos.lifespan), 'liveliness': int(qos.liveliness.value),
            'liveliness_lease_duration': duration(qos.liveliness_lease_duration),
            'avoid_ros_namespace_conventions': bool(qos.avoid_ros_namespace_conventions)}
