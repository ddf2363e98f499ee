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
from rosbags.rosbag2.metadata import parse_qos

from avstack.bag.codec import BagError
from avstack.bag.reader import METADATA_FILE, open_bag
from avstack.bag.writer import BagWriter


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
        share = (f' of {self.recorded} recorded ({100 * self.messages / self.recorded:.0f} %)'
                 if self.recorded else '')
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


def reindex(source: Path, out: Path) -> Recovery:
    """Read ``source`` (a bag directory or one storage file) up to its first unreadable record into ``out``."""
    source = Path(source)
    files = storage_files(source)
    recovery = Recovery(files, recorded=recorded_count(source) if source.is_dir() else None)
    with BagWriter(out, 'sqlite3' if all(f.suffix == '.db3' for f in files) else 'mcap') as writer:
        for file in files:
            messages = _mcap_messages(file, recovery) if file.suffix == '.mcap' else _db3_messages(file, recovery)
            for topic, msgtype, msgdef, qos, log_time_ns, data in messages:
                writer.add_topic(topic, msgtype, qos, msgdef)
                writer.write(topic, log_time_ns, data)
                recovery.counts[topic] = recovery.counts.get(topic, 0) + 1
                recovery.start_ns = log_time_ns if recovery.start_ns is None else min(recovery.start_ns, log_time_ns)
                recovery.end_ns = log_time_ns if recovery.end_ns is None else max(recovery.end_ns, log_time_ns)
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
                qos = channel.metadata.get('offered_qos_profiles', '')
                yield (channel.topic, schema.name if schema else '', schema.data.decode() if schema else '',
                       parse_qos(qos) if qos else [], record.log_time, record.data)


def _db3_messages(path: Path, recovery: Recovery):
    try:
        bag = open_bag(path)
    except BagError as error:
        recovery.cut.append(f'{path.name}: nothing readable ({error}); SQLite cannot read a cut database')
        return
    with bag:
        definitions = {c.topic: c.msgdef.data for c in bag._reader.connections}
        try:
            for message in bag.messages():
                yield (message.topic, message.type_name, definitions[message.topic],
                       bag.topics[message.topic].offered_qos, message.log_time_ns, bytes(message.data))
        except BagError as error:
            recovery.cut.append(f'{path.name}: reading stopped: {error}')
