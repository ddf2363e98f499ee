"""Raw sensor intake: serialised ``sensor_msgs`` Image, CompressedImage and PointCloud2 -> numpy, no rclpy message.

A subscription created with ``raw=True`` hands its callback the message as DDS
delivered it: CDR bytes. Converting those into an rclpy message and then into
numpy copies a camera frame or a lidar sweep (several MB) about three times;
parsing the few header fields here and viewing the data where it lies copies
nothing. The live nodes (perception, the critic's lidar view), ``avstack eval``
and the training datasets all read sensor messages through this module, so
they see the same arrays.

- :func:`parse_image`, :func:`parse_compressed_image`, :func:`parse_cloud`:
  bytes -> :class:`RawImage`, :class:`RawCompressedImage`, :class:`RawCloud`
  (stamp, frame and the data as a view into the bytes).
- :meth:`RawImage.rgb` resizes in the wire's channel order before converting
  to RGB (fewer pixels to convert); :meth:`RawCompressedImage.rgb` lets
  libjpeg decode a JPEG at 1/2, 1/4 or 1/8 of its size when the caller needs
  no more than that.

Bytes that are not such a message raise :class:`ImageDecodeError` or
:class:`CloudDecodeError` with reason ``bad_cdr``; a well-formed message with
bad contents raises the same errors as :mod:`stack_common.image` and
:mod:`stack_common.pointcloud`, from the same checks.
"""

import struct
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, NamedTuple

import numpy as np

from stack_common.pointcloud import CloudDecodeError, decode_cloud

# The 4-byte encapsulation header in front of every serialised message: representation id, then options.
_CDR_BE, _CDR_LE = b'\x00\x00', b'\x00\x01'
# libjpeg scales while decoding (DCT scaling): factor -> name of the OpenCV flag.
_JPEG_REDUCED = ((8, 'IMREAD_REDUCED_COLOR_8'), (4, 'IMREAD_REDUCED_COLOR_4'), (2, 'IMREAD_REDUCED_COLOR_2'))
# JPEG start-of-frame markers (baseline, extended, progressive, lossless...; not DHT 0xC4, JPG 0xC8, DAC 0xCC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _image() -> ModuleType:
    """:mod:`stack_common.image` (and OpenCV) on first use: the critic parses clouds only and never loads them."""
    from stack_common import image
    return image


class _Reader:
    """A cursor over CDR (XCDR1) bytes; alignment counts from the end of the encapsulation header."""

    def __init__(self, data, error: type, what: str):
        self.data = memoryview(data).cast('B') if not isinstance(data, memoryview) else data.cast('B')
        self.error, self.what = error, what
        if len(self.data) < 4 or bytes(self.data[:2]) not in (_CDR_BE, _CDR_LE):
            head = bytes(self.data[:4]).hex() or 'nothing'
            self.fail(f'not a CDR-encoded message (encapsulation header {head})')
        self.order = '<' if bytes(self.data[:2]) == _CDR_LE else '>'
        self.pos = 4

    def fail(self, detail: str):
        raise self.error('bad_cdr', f'{self.what}: {detail}')

    def _take(self, size: int, align: int) -> int:
        self.pos += -(self.pos - 4) % align
        start, self.pos = self.pos, self.pos + size
        if self.pos > len(self.data):
            self.fail(f'{len(self.data)} bytes end inside a field at byte {start}')
        return start

    def u8(self) -> int:
        return self.data[self._take(1, 1)]

    def u32(self) -> int:
        return struct.unpack_from(self.order + 'I', self.data, self._take(4, 4))[0]

    def i32(self) -> int:
        return struct.unpack_from(self.order + 'i', self.data, self._take(4, 4))[0]

    def octets(self) -> memoryview:
        """A ``sequence<uint8>``: the bytes where they lie."""
        size = self.u32()
        start = self._take(size, 1)
        return self.data[start:start + size]

    def string(self) -> str:
        raw = self.octets()
        if not raw:
            self.fail('a string without its terminating NUL')
        try:
            return bytes(raw).partition(b'\0')[0].decode('utf-8')   # up to the first NUL, as rclpy reads it
        except UnicodeDecodeError as error:
            self.fail(f'a string that is not UTF-8 ({error.reason})')

    def header(self) -> tuple[int, str]:
        """``std_msgs/Header`` -> (stamp in ns, frame_id)."""
        sec, nanosec = self.i32(), self.u32()
        return sec * 1_000_000_000 + nanosec, self.string()


@dataclass(frozen=True)
class RawImage:
    """A ``sensor_msgs/Image``: header fields and the pixel bytes (a view into the message)."""

    stamp_ns: int
    frame_id: str
    height: int
    width: int
    encoding: str
    step: int
    data: memoryview

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) as received: the pixels the camera's intrinsics are in."""
        return self.width, self.height

    def pixels(self) -> np.ndarray:
        """``(H, W, channels)`` view in the wire's channel order, with the checks of ``image.decode_raw``."""
        return _image().raw_pixels(self.height, self.width, self.encoding, self.step, self.data)

    def rgb(self, resize: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """Contiguous ``(H, W, 3) uint8`` RGB; ``resize`` (per channel) runs first, on the wire's channels."""
        pixels = self.pixels()
        return _image().pixels_to_rgb(resize(pixels) if resize is not None else pixels, self.encoding)


@dataclass(frozen=True)
class RawCompressedImage:
    """A ``sensor_msgs/CompressedImage``: header fields and the payload (a view into the message)."""

    stamp_ns: int
    frame_id: str
    format: str
    data: memoryview

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) of a JPEG from its frame header without decoding; None for PNG or no header."""
        return jpeg_size(self.data)

    def rgb(self, at_least: tuple[int, int] | None = None) -> np.ndarray:
        """``(H, W, 3) uint8`` RGB; a JPEG at least ``at_least`` (width, height) big is decoded reduced.

        The reduction is the largest of 1/2, 1/4, 1/8 that still leaves both
        sides at least ``at_least``: libjpeg then averages each 8x8 block down
        while decoding, which costs a fraction of a full decode and a resize.
        """
        return _image().decode_compressed(self.format, self.data, self.reduction(at_least)[1])

    def reduction(self, at_least: tuple[int, int] | None) -> tuple[int, int]:
        """(factor, OpenCV flag) the payload decodes at for ``at_least``; (1, IMREAD_COLOR) in full."""
        size = self.size if at_least is not None else None
        if size is not None:
            for factor, flag in _JPEG_REDUCED:
                if -(-size[0] // factor) >= at_least[0] and -(-size[1] // factor) >= at_least[1]:
                    return factor, getattr(_image().cv2, flag)
        return 1, _image().cv2.IMREAD_COLOR


class Field(NamedTuple):
    """One ``sensor_msgs/PointField``."""

    name: str
    offset: int
    datatype: int
    count: int


@dataclass(frozen=True)
class RawCloud:
    """A ``sensor_msgs/PointCloud2``: header, layout and the point bytes (a view into the message)."""

    stamp_ns: int
    frame_id: str
    height: int
    width: int
    fields: tuple[Field, ...]
    is_bigendian: bool
    point_step: int
    row_step: int
    data: memoryview
    is_dense: bool

    def array(self) -> np.ndarray:
        """A flat structured array of the points; the checks of :func:`~stack_common.pointcloud.decode_cloud`."""
        return decode_cloud(self.fields, self.point_step, self.row_step, self.width, self.height,
                            self.is_bigendian, self.data)


def parse_image(data) -> RawImage:
    """Serialised ``sensor_msgs/Image`` -> :class:`RawImage`; :class:`ImageDecodeError` ``bad_cdr`` otherwise."""
    cdr = _Reader(data, _image().ImageDecodeError, 'sensor_msgs/Image')
    stamp_ns, frame_id = cdr.header()
    height, width, encoding, _, step = cdr.u32(), cdr.u32(), cdr.string(), cdr.u8(), cdr.u32()
    return RawImage(stamp_ns, frame_id, height, width, encoding, step, cdr.octets())


def parse_compressed_image(data) -> RawCompressedImage:
    """Serialised ``sensor_msgs/CompressedImage`` -> :class:`RawCompressedImage`."""
    cdr = _Reader(data, _image().ImageDecodeError, 'sensor_msgs/CompressedImage')
    stamp_ns, frame_id = cdr.header()
    format_ = cdr.string()
    return RawCompressedImage(stamp_ns, frame_id, format_, cdr.octets())


def parse_cloud(data) -> RawCloud:
    """Serialised ``sensor_msgs/PointCloud2`` -> :class:`RawCloud`; :class:`CloudDecodeError` ``bad_cdr`` otherwise."""
    cdr = _Reader(data, CloudDecodeError, 'sensor_msgs/PointCloud2')
    stamp_ns, frame_id = cdr.header()
    height, width, count = cdr.u32(), cdr.u32(), cdr.u32()
    if count > (len(cdr.data) - cdr.pos) // 13:     # a PointField takes at least 13 bytes
        cdr.fail(f'{count} fields cannot fit in {len(cdr.data)} bytes')
    fields = tuple(Field(cdr.string(), cdr.u32(), cdr.u8(), cdr.u32()) for _ in range(count))
    is_bigendian, point_step, row_step = bool(cdr.u8()), cdr.u32(), cdr.u32()
    points = cdr.octets()
    return RawCloud(stamp_ns, frame_id, height, width, fields, is_bigendian, point_step, row_step, points,
                    bool(cdr.u8()))


def jpeg_size(data) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame segment; None when ``data`` has none (PNG, truncated)."""
    view = memoryview(data).cast('B') if not isinstance(data, memoryview) else data.cast('B')
    if len(view) < 4 or view[0] != 0xFF or view[1] != 0xD8:
        return None
    pos = 2
    while pos + 4 <= len(view):
        if view[pos] != 0xFF:
            return None
        marker = view[pos + 1]
        if marker == 0xFF:           # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):   # markers without a length
            pos += 2
            continue
        length = (view[pos + 2] << 8) | view[pos + 3]
        if marker in _JPEG_SOF:
            if pos + 9 > len(view) or length < 7:
                return None
            height, width = (view[pos + 5] << 8) | view[pos + 6], (view[pos + 7] << 8) | view[pos + 8]
            return (width, height) if width and height else None
        if marker == 0xDA or length < 2:           # start of scan before any frame header: not a JPEG we know
            return None
        pos += 2 + length
    return None
