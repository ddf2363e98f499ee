"""Reading rosbag2 files: the one place that opens them (with ``rosbags``).

:func:`open_bag` opens a rosbag2 directory (``metadata.yaml`` + mcap or sqlite3
files, written by humble, jazzy, kilted or ``rosbags``) or a bare
``.mcap``/``.db3`` file, and iterates messages in log-time order as raw CDR
bytes (:func:`avstack.bag.codec.deserialize` turns them into rclpy messages).
Every problem with a bag (missing, truncated, corrupt, no metadata, unknown
types) raises :class:`~avstack.bag.codec.BagError` with one line naming the
file or topic.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

try:
    from compression import zstd            # Python >= 3.14
except ImportError:
    from backports import zstd              # what rosbags itself uses before 3.14
from rosbags.rosbag2 import Reader

from avstack.bag.codec import BagError, is_known_type, one_line

METADATA_FILE = 'metadata.yaml'


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
            raise BagError(f'{self._file_label()}: corrupt or truncated ({one_line(error)})') from None

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
        detail = one_line(error)
        if path.is_dir():
            names = [p.name for p in path.iterdir() if p.suffix in ('.mcap', '.db3', '.yaml')]
            detail += f' (files: {", ".join(sorted(names))})'
        raise BagError(f'{path}: cannot open the bag: {detail}') from None
