"""Writing rosbag2 files: :class:`BagWriter` writes a rosbag2 directory (metadata.yaml version 9, mcap or
sqlite3) that ``ros2 bag``, Foxglove and ``rosbags`` open, with each topic's offered QoS profiles; it closes
cleanly even when the code writing it fails, so nothing written is lost."""

import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

from rclpy.qos import QoSProfile
from rosbags.rosbag2 import Writer, WriterError
from rosbags.rosbag2.enums import StoragePlugin
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from avstack.bag.codec import BagError, one_line, register_from_msg_files
from avstack.bag.qos import to_bag_qos
from avstack.bag.reader import METADATA_FILE

STORAGES = ('mcap', 'sqlite3')


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
            raise BagError(f'{self.path}: {one_line(error)}') from None

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
                                   f'{one_line(error)}') from None
            if type_name not in self.typestore.fielddefs and not register_from_msg_files(self.typestore, type_name):
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
                raise BagError(f'{self.path}: writing failed: {one_line(self._error)}')
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
            raise BagError(f'{self.path}: writing failed: {one_line(self._error)}')

    def __enter__(self) -> 'BagWriter':
        return self

    def __exit__(self, *exc) -> None:
        self.close()
