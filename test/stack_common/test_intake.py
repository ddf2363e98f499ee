"""Raw intake: serialised Image, CompressedImage and PointCloud2 parsed without rclpy messages.

The oracle is rclpy's own serializer (what DDS hands a raw subscription) and
the message-based conversions of stack_common; big-endian CDR comes from the
rosbags typestore. Any bytes at all give an array or a decode error with a
reason, never another exception.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import Image, PointCloud2

from perception_llm.camera_encoder import resize_image
from stack_common.image import ImageDecodeError, compressed_msg_to_rgb, image_msg_to_rgb, rgb_to_compressed_msg, \
    rgb_to_image_msg
from stack_common.intake import jpeg_size, parse_cloud, parse_compressed_image, parse_image
from stack_common.pointcloud import CloudDecodeError, array_to_cloud, cloud_to_array

from support import examples

ENCODINGS = ['rgb8', 'bgr8', 'mono8', 'rgba8', 'bgra8']
STAMP_NS = 1_700_000_123_456_789_012


def random_rgb(height, width, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def image_bytes(rgb, encoding='bgr8', padding=0, frame_id='camera_front_optical') -> tuple[object, bytes]:
    msg = rgb_to_image_msg(rgb, STAMP_NS, frame_id, encoding, row_padding=padding)
    return msg, serialize_message(msg)


@given(height=st.integers(1, 24), width=st.integers(1, 24), padding=st.integers(0, 9),
       encoding=st.sampled_from(ENCODINGS), frame_id=st.text(max_size=12), seed=st.integers(0, 1000))
@examples(80)
def test_image_parses_as_rclpy_decodes_it(height, width, padding, encoding, frame_id, seed):
    _, data = image_bytes(random_rgb(height, width, seed), encoding, padding, frame_id)
    msg = deserialize_message(data, Image)   # what a subscriber gets (a NUL ends a string on the wire)
    raw = parse_image(data)
    assert (raw.stamp_ns, raw.frame_id, raw.encoding, raw.size, raw.step) == (
        STAMP_NS, msg.header.frame_id, encoding, (width, height), msg.step)
    np.testing.assert_array_equal(raw.rgb(), image_msg_to_rgb(msg))


@pytest.mark.parametrize('encoding', ENCODINGS)
@pytest.mark.parametrize('size', [(1280, 720), (641, 359), (256, 128), (100, 50)])
def test_resizing_before_colour_conversion_gives_the_same_pixels(encoding, size):
    msg, data = image_bytes(random_rgb(size[1], size[0], 3), encoding, padding=5)
    resized = []   # the shapes the resize saw: the wire's channels, before any conversion

    def resize(pixels):
        resized.append(pixels.shape)
        return resize_image(pixels, 256, 128)
    small = parse_image(data).rgb(resize)
    assert resized == [(size[1], size[0], {'mono8': 1, 'rgba8': 4, 'bgra8': 4}.get(encoding, 3))]
    assert small.shape == (128, 256, 3) and small.flags.c_contiguous
    np.testing.assert_array_equal(small, resize_image(image_msg_to_rgb(msg), 256, 128))


def test_pixels_and_points_are_views_into_the_message_bytes():
    _, data = image_bytes(random_rgb(6, 8), 'bgr8')
    assert np.shares_memory(parse_image(data).pixels(), np.frombuffer(data, np.uint8))
    points = np.zeros(40, [('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('intensity', '<f4')])
    data = serialize_message(array_to_cloud(points, STAMP_NS, 'lidar_top'))
    assert np.shares_memory(parse_cloud(data).array(), np.frombuffer(data, np.uint8))


OPTIONAL_FIELDS = {'intensity': '<f4', 'ring': '<u2', 'time': '<f8', 'label': 'u1'}


@st.composite
def clouds(draw):
    xyz = draw(st.sampled_from(['<f4', '<f8']))
    fields = [('x', xyz), ('y', xyz), ('z', xyz)] + [
        (name, OPTIONAL_FIELDS[name]) for name in draw(st.lists(st.sampled_from(sorted(OPTIONAL_FIELDS)), unique=True))]
    names, formats, offsets, offset = [], [], [], 0
    for name, fmt in draw(st.permutations(fields)):
        offset += draw(st.integers(0, 5))
        names.append(name), formats.append(fmt), offsets.append(offset)
        offset += np.dtype(fmt).itemsize
    itemsize = offset + draw(st.integers(0, 7))
    dtype = np.dtype({'names': names, 'formats': formats, 'offsets': offsets, 'itemsize': itemsize})
    count = draw(st.integers(0, 40))
    points = np.zeros(count, dtype)
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    for name in names:
        points[name] = rng.uniform(-50, 50, count) if dtype[name].kind == 'f' else rng.integers(0, 100, count)
    return array_to_cloud(points, STAMP_NS, draw(st.text(max_size=10)))


@given(msg=clouds())
@examples(80)
def test_cloud_parses_as_rclpy_decodes_it(msg):
    data = serialize_message(msg)
    msg = deserialize_message(data, PointCloud2)   # what a subscriber gets (a NUL ends a string on the wire)
    raw = parse_cloud(data)
    assert (raw.stamp_ns, raw.frame_id, raw.width, raw.height, raw.point_step) == (
        STAMP_NS, msg.header.frame_id, msg.width, msg.height, msg.point_step)
    assert [tuple(f) for f in raw.fields] == [(f.name, f.offset, f.datatype, f.count) for f in msg.fields]
    expected, parsed = cloud_to_array(msg), raw.array()
    assert parsed.dtype == expected.dtype
    np.testing.assert_array_equal(parsed, expected)


def test_big_endian_cdr_parses_too():
    store = get_typestore(Stores.ROS2_KILTED)
    rgb = random_rgb(5, 7)
    msg, little = image_bytes(rgb, 'rgb8', padding=2)
    big = bytes(store.serialize_cdr(store.deserialize_cdr(little, 'sensor_msgs/msg/Image'), 'sensor_msgs/msg/Image',
                                    little_endian=False))
    assert big[:2] == b'\x00\x00'
    raw = parse_image(big)
    assert (raw.stamp_ns, raw.frame_id) == (STAMP_NS, 'camera_front_optical')
    np.testing.assert_array_equal(raw.rgb(), rgb)
    cloud = array_to_cloud(np.arange(12, dtype='<f4').view([('x', '<f4'), ('y', '<f4'), ('z', '<f4')]).ravel(),
                           STAMP_NS, 'lidar_top')
    big = bytes(store.serialize_cdr(store.deserialize_cdr(serialize_message(cloud), 'sensor_msgs/msg/PointCloud2'),
                                    'sensor_msgs/msg/PointCloud2', little_endian=False))
    np.testing.assert_array_equal(parse_cloud(big).array(), cloud_to_array(cloud))


def test_compressed_image_parses_and_jpeg_size_is_read_from_its_header():
    rgb = random_rgb(90, 160)
    for format_ in ('jpeg', 'png'):
        msg = rgb_to_compressed_msg(rgb, STAMP_NS, 'cam', format_)
        raw = parse_compressed_image(serialize_message(msg))
        assert (raw.stamp_ns, raw.frame_id, raw.format) == (STAMP_NS, 'cam', format_)
        assert raw.size == ((160, 90) if format_ == 'jpeg' else None)
        np.testing.assert_array_equal(raw.rgb(), compressed_msg_to_rgb(msg))


@pytest.mark.parametrize('at_least, factor', [(None, 1), ((1280, 720), 1), ((640, 360), 2), ((639, 300), 2),
                                              ((320, 180), 4), ((256, 128), 4), ((160, 90), 8), ((8, 8), 8)])
def test_a_jpeg_decodes_reduced_to_no_less_than_asked(at_least, factor):
    msg = rgb_to_compressed_msg(random_rgb(720, 1280), STAMP_NS, 'cam', 'jpeg')
    raw = parse_compressed_image(serialize_message(msg))
    assert raw.reduction(at_least)[0] == factor
    assert raw.rgb(at_least).shape == (720 // factor, 1280 // factor, 3)


def test_jpeg_size_of_odd_payloads_is_none():
    assert jpeg_size(b'') is None
    assert jpeg_size(b'\xff\xd8\xff') is None
    assert jpeg_size(b'\x89PNG\r\n\x1a\n') is None
    payload = rgb_to_compressed_msg(random_rgb(33, 47), 0, 'c', 'jpeg').data.tobytes()
    assert jpeg_size(payload) == (47, 33)
    assert jpeg_size(payload[:20]) is None


@pytest.mark.parametrize('parse, error', [(parse_image, ImageDecodeError), (parse_compressed_image, ImageDecodeError),
                                          (parse_cloud, CloudDecodeError)])
@pytest.mark.parametrize('data', [b'', b'\x00\x01', b'\x00\x07\x00\x00' + bytes(64), b'\x00\x01\x00\x00' + bytes(3),
                                  b'\x00\x01\x00\x00' + bytes(8) + b'\xff\xff\xff\x7f'])
def test_bytes_that_are_no_such_message_are_bad_cdr(parse, error, data):
    with pytest.raises(error) as raised:
        parse(data)
    assert raised.value.reason == 'bad_cdr'


def _decode_image(data):
    parse_image(data).rgb(lambda pixels: resize_image(pixels, 16, 8))


def _decode_compressed(data):
    parse_compressed_image(data).rgb((8, 8))


def _decode_cloud(data):
    parse_cloud(data).array()


def _valid(kind: str, seed: int) -> bytes:
    if kind == 'image':
        return image_bytes(random_rgb(5, 9, seed), ENCODINGS[seed % 5], seed % 3)[1]
    if kind == 'compressed':
        return serialize_message(rgb_to_compressed_msg(random_rgb(16, 16, seed), 0, 'c', 'jpeg'))
    points = np.zeros(6, [('x', '<f4'), ('y', '<f4'), ('z', '<f4')])
    return serialize_message(array_to_cloud(points, 0, 'lidar'))


DECODERS = {'image': (_decode_image, ImageDecodeError), 'compressed': (_decode_compressed, ImageDecodeError),
            'cloud': (_decode_cloud, CloudDecodeError)}


@given(kind=st.sampled_from(sorted(DECODERS)), seed=st.integers(0, 100), cut=st.integers(0, 10_000),
       flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
       tail=st.binary(max_size=16))
@examples(300)
def test_damaged_messages_decode_or_raise_a_reason(kind, seed, cut, flips, tail):
    """Truncated, bit-flipped and extended messages: an array, or the conversion's error with a reason."""
    data = bytearray(_valid(kind, seed))
    data = data[:cut % (len(data) + 1)] + tail
    for position, value in flips:
        if data:
            data[position % len(data)] = value
    decode, error = DECODERS[kind]
    try:
        decode(bytes(data))
    except error as raised:
        assert raised.reason and str(raised)


@given(kind=st.sampled_from(sorted(DECODERS)), data=st.binary(max_size=300))
@examples(200)
def test_arbitrary_bytes_decode_or_raise_a_reason(kind, data):
    decode, error = DECODERS[kind]
    for candidate in (data, b'\x00\x01\x00\x00' + data):
        try:
            decode(candidate)
        except error as raised:
            assert raised.reason
