"""Message types of bags: rclpy classes by type name, CDR bytes to and from messages, definitions of types
this machine has only as installed ``.msg`` files, and :class:`BagError`, the one error every bag problem
raises (one line naming the file or topic, never a traceback)."""

import importlib
import os
import sys
from pathlib import Path
from typing import Iterator

from rclpy.serialization import deserialize_message, serialize_message
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from stack_common.boundary import ConversionError

IMAGE_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE_TYPE = 'sensor_msgs/msg/CompressedImage'
CAMERA_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)
CLOUD_TYPE = 'sensor_msgs/msg/PointCloud2'
CAMERA_INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
ODOMETRY_TYPE = 'nav_msgs/msg/Odometry'


class BagError(Exception):
    """A bag that cannot be used; the message is one line naming the file or topic."""


class MessageDecodeError(ConversionError):
    """A message whose bytes do not deserialise; ``reason`` is a counter name."""


def one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return ' '.join(text.split())


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
        raise MessageDecodeError('bad_cdr', f'{type_name}: {one_line(error)}') from None


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


def _share_directories() -> list[Path]:
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p] + [sys.prefix]
    return [Path(p) / 'share' for p in prefixes]


def register_from_msg_files(typestore, type_name: str, seen: set[str] | None = None) -> bool:
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
                    if '/' in nested and not register_from_msg_files(typestore, nested, seen):
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
