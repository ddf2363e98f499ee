"""Camera images: ``sensor_msgs/Image`` and ``CompressedImage`` <-> RGB arrays.

Decoding returns a contiguous ``(H, W, 3) uint8`` RGB array whatever the wire
encoding. Malformed messages raise :class:`ImageDecodeError` whose ``reason``
names a diagnostics counter.
"""

import array

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from stack_common.boundary import ConversionError
from stack_common.timeutil import ns_to_stamp

# encoding -> (channels, OpenCV conversion to RGB or None when already RGB)
RAW_ENCODINGS = {
    'rgb8': (3, None),
    'bgr8': (3, cv2.COLOR_BGR2RGB),
    'rgba8': (4, cv2.COLOR_RGBA2RGB),
    'bgra8': (4, cv2.COLOR_BGRA2RGB),
    'mono8': (1, cv2.COLOR_GRAY2RGB),
}
# encoding <- RGB, for publishers and tests
_FROM_RGB = {
    'rgb8': None,
    'bgr8': cv2.COLOR_RGB2BGR,
    'rgba8': cv2.COLOR_RGB2RGBA,
    'bgra8': cv2.COLOR_RGB2BGRA,
    'mono8': cv2.COLOR_RGB2GRAY,
}
COMPRESSED_FORMATS = ('jpeg', 'png')
MAX_IMAGE_PIXELS = 8192 * 8192


class ImageDecodeError(ConversionError):
    """A camera message that cannot be decoded; ``reason`` is a counter name."""


def decode_raw(height: int, width: int, encoding: str, step: int, data) -> np.ndarray:
    """Decode raw image bytes (any row padding) to a contiguous RGB array."""
    return pixels_to_rgb(raw_pixels(height, width, encoding, step, data), encoding)


def raw_pixels(height: int, width: int, encoding: str, step: int, data) -> np.ndarray:
    """The pixels of raw image bytes as an ``(H, W, channels)`` view in the wire's channel order (no copy)."""
    if encoding not in RAW_ENCODINGS:
        raise ImageDecodeError(
            'unknown_encoding',
            f'unsupported image encoding {encoding!r}; expected one of {sorted(RAW_ENCODINGS)}')
    channels = RAW_ENCODINGS[encoding][0]
    if height <= 0 or width <= 0 or height * width > MAX_IMAGE_PIXELS:
        raise ImageDecodeError('bad_size', f'image size {width}x{height} is empty or too large')
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageDecodeError('bad_step', f'step {step} < width * channels = {row_bytes}')
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size < height * step:
        raise ImageDecodeError(
            'truncated', f'image data has {buffer.size} bytes, expected height * step = {height * step}')
    return buffer[:height * step].reshape(height, step)[:, :row_bytes].reshape(height, width, channels)


def pixels_to_rgb(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """``(H, W, channels)`` pixels of ``encoding`` (any size: resized ones too) -> contiguous ``(H, W, 3)`` RGB."""
    channels, conversion = RAW_ENCODINGS[encoding]
    if conversion is None:
        return np.ascontiguousarray(pixels)
    if channels == 1 and pixels.ndim == 3:
        pixels = pixels[:, :, 0]
    return cv2.cvtColor(np.ascontiguousarray(pixels), conversion)


def decode_compressed(format_: str, data, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode a jpeg/png payload to RGB. ``format_`` follows image_transport ('jpeg', 'rgb8; jpeg compressed bgr8').

    ``flags``: an OpenCV ``IMREAD_*`` colour flag, e.g. ``IMREAD_REDUCED_COLOR_2`` for half size.
    """
    fmt = format_.lower()
    if not any(name in fmt for name in COMPRESSED_FORMATS + ('jpg',)):
        raise ImageDecodeError(
            'unknown_encoding', f'unsupported compressed format {format_!r}; expected jpeg or png')
    buffer = np.frombuffer(data, dtype=np.uint8)
    bgr = cv2.imdecode(buffer, flags) if buffer.size else None
    if bgr is None:
        raise ImageDecodeError('corrupt', f'{format_} payload of {buffer.size} bytes does not decode')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def encode_raw(rgb: np.ndarray, encoding: str, row_padding: int = 0) -> tuple[int, bytes]:
    """Encode RGB to ``encoding``; returns ``(step, data)`` with ``row_padding`` extra bytes per row."""
    if encoding not in _FROM_RGB:
        raise ValueError(f'cannot encode to {encoding!r}')
    conversion = _FROM_RGB[encoding]
    pixels = rgb if conversion is None else cv2.cvtColor(rgb, conversion)
    height, width = rgb.shape[:2]
    rows = pixels.reshape(height, -1)
    if row_padding:
        rows = np.concatenate([rows, np.zeros((height, row_padding), np.uint8)], axis=1)
    return rows.shape[1], np.ascontiguousarray(rows).tobytes()


def image_msg_to_rgb(msg: Image) -> np.ndarray:
    return decode_raw(msg.height, msg.width, msg.encoding, msg.step, msg.data)


def compressed_msg_to_rgb(msg: CompressedImage) -> np.ndarray:
    return decode_compressed(msg.format, msg.data)


def rgb_to_image_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str,
                     encoding: str = 'rgb8', row_padding: int = 0) -> Image:
    step, data = encode_raw(rgb, encoding, row_padding)
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, step=step)
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.data = array.array('B', data)
    return msg


def rgb_to_compressed_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str, format_: str = 'jpeg') -> CompressedImage:
    ok, payload = cv2.imencode('.jpg' if format_ == 'jpeg' else '.png', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f'OpenCV could not encode {format_}')
    msg = CompressedImage(format=format_)
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.data = array.array('B', payload.tobytes())
    return msg
