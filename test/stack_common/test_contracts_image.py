"""Image and CompressedImage <-> RGB: every supported encoding, any row padding, and clear errors."""

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stack_common.image import (
    ImageDecodeError, compressed_msg_to_rgb, decode_compressed, decode_raw, encode_raw, image_msg_to_rgb,
    pixels_to_rgb, raw_pixels, rgb_to_compressed_msg, rgb_to_image_msg)

from support import examples


def random_rgb(height=7, width=5, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8'])
@pytest.mark.parametrize('padding', [0, 1, 3, 64])
def test_color_encodings_round_trip_with_any_row_padding(encoding, padding):
    rgb = random_rgb()
    msg = rgb_to_image_msg(rgb, 123, 'cam', encoding, row_padding=padding)
    assert msg.step == rgb.shape[1] * (4 if 'a' in encoding else 3) + padding
    np.testing.assert_array_equal(image_msg_to_rgb(msg), rgb)


def test_bgr8_channel_order_is_swapped():
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    msg = rgb_to_image_msg(red, 0, 'cam', 'bgr8')
    assert bytes(msg.data[:3]) == bytes([0, 0, 255])
    np.testing.assert_array_equal(image_msg_to_rgb(msg), red)


def test_mono8_decodes_to_grey_rgb():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    decoded = decode_raw(3, 4, 'mono8', 6, np.concatenate([grey, np.zeros((3, 2), np.uint8)], axis=1).tobytes())
    assert decoded.shape == (3, 4, 3)
    np.testing.assert_array_equal(decoded[..., 1], grey)


def test_mono8_resized_before_the_colour_conversion_decodes_to_grey_rgb():
    """OpenCV's resize drops the channel axis of one-channel pixels; the conversion takes them either way."""
    grey = np.arange(24, dtype=np.uint8).reshape(4, 6)
    pixels = raw_pixels(4, 6, 'mono8', 6, grey.tobytes())
    resized = cv2.resize(pixels, (3, 2), interpolation=cv2.INTER_NEAREST)
    assert resized.ndim == 2
    decoded = pixels_to_rgb(resized, 'mono8')
    assert decoded.shape == (2, 3, 3)
    np.testing.assert_array_equal(decoded[..., 0], resized)


def test_decoded_rgb8_with_row_padding_is_contiguous():
    """rgb8 needs no conversion, so the padded rows are copied out, not handed on as a strided view."""
    decoded = image_msg_to_rgb(rgb_to_image_msg(random_rgb(), 0, 'c', 'rgb8', row_padding=3))
    assert decoded.flags['C_CONTIGUOUS']


def test_encoding_without_padding_by_default_writes_bare_rows():
    step, data = encode_raw(random_rgb(7, 5), 'bgr8')
    assert (step, len(data)) == (15, 7 * 15)


@given(height=st.integers(1, 20), width=st.integers(1, 20), padding=st.integers(0, 17),
       encoding=st.sampled_from(['rgb8', 'bgr8', 'rgba8', 'bgra8']), seed=st.integers(0, 1000))
@examples(60)
def test_any_size_and_padding_round_trips(height, width, padding, encoding, seed):
    rgb = random_rgb(height, width, seed)
    np.testing.assert_array_equal(image_msg_to_rgb(rgb_to_image_msg(rgb, 0, 'c', encoding, padding)), rgb)


def test_png_is_lossless_and_jpeg_is_close():
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[8:24, 10:40] = (200, 30, 90)
    np.testing.assert_array_equal(compressed_msg_to_rgb(rgb_to_compressed_msg(rgb, 0, 'c', 'png')), rgb)
    jpeg = compressed_msg_to_rgb(rgb_to_compressed_msg(rgb, 0, 'c', 'jpeg'))
    assert jpeg.shape == rgb.shape
    assert np.abs(jpeg.astype(int) - rgb).mean() < 4


@pytest.mark.parametrize('height, width, encoding, step, size, reason, message', [
    (2, 2, 'yuv422', 4, 8, 'unknown_encoding', "unsupported image encoding 'yuv422'; expected one of ['bgr8', "),
    (2, 2, 'rgb8', 5, 10, 'bad_step', 'step 5 < width * channels = 6'),
    (2, 2, 'rgb8', 6, 11, 'truncated', 'image data has 11 bytes, expected height * step = 12'),
    (0, 2, 'rgb8', 6, 0, 'bad_size', 'image size 2x0 is empty or too large'),
    (2, 0, 'rgb8', 6, 0, 'bad_size', 'image size 0x2 is empty or too large'),
    (100000, 100000, 'mono8', 100000, 10, 'bad_size', 'image size 100000x100000'),
    (8192, 8192, 'mono8', 8192, 10, 'truncated', 'image data has 10 bytes'),   # the largest size allowed
    (8192, 8193, 'mono8', 8193, 10, 'bad_size', 'image size 8193x8192'),       # one column more
])
def test_malformed_images_name_their_reason(height, width, encoding, step, size, reason, message):
    with pytest.raises(ImageDecodeError) as error:
        decode_raw(height, width, encoding, step, bytes(size))
    assert error.value.reason == reason and message in str(error.value)


def test_messages_carry_stamp_frame_and_the_default_rgb8_without_padding():
    rgb = random_rgb()
    raw = rgb_to_image_msg(rgb, 1_700_000_000_123_456_789, 'cam')
    assert (raw.encoding, raw.step) == ('rgb8', 15)
    for msg in (raw, rgb_to_compressed_msg(rgb, 1_700_000_000_123_456_789, 'cam')):
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (1_700_000_000, 123_456_789,
                                                                                         'cam')


def test_compressed_payloads_are_what_their_format_says():
    assert bytes(rgb_to_compressed_msg(random_rgb(), 0, 'c', 'jpeg').data[:2]) == b'\xff\xd8'
    assert bytes(rgb_to_compressed_msg(random_rgb(), 0, 'c', 'png').data[:4]) == b'\x89PNG'
    msg = rgb_to_compressed_msg(random_rgb(), 0, 'c', 'jpeg')
    msg.format = 'JPG'   # some drivers write jpg, in any case
    assert compressed_msg_to_rgb(msg).shape == (7, 5, 3)


def test_the_default_compressed_format_is_jpeg():
    msg = rgb_to_compressed_msg(random_rgb(), 0, 'c')
    assert msg.format == 'jpeg' and bytes(msg.data[:2]) == b'\xff\xd8'


def test_an_image_opencv_cannot_compress_is_named_with_its_format():
    too_wide = np.zeros((1, 70_000, 3), np.uint8)   # JPEG's limit is 65,500 pixels a side
    with pytest.raises(ValueError, match='OpenCV could not encode jpeg'):
        rgb_to_compressed_msg(too_wide, 0, 'c', 'jpeg')


def test_an_encoding_that_cannot_be_written_is_named():
    with pytest.raises(ValueError, match="cannot encode to 'yuv422'"):
        rgb_to_image_msg(random_rgb(), 0, 'c', 'yuv422')


def test_corrupt_and_unknown_compressed_payloads_are_rejected():
    msg = rgb_to_compressed_msg(random_rgb(), 0, 'c', 'jpeg')
    msg.data = msg.data[:20]
    with pytest.raises(ImageDecodeError) as error:
        compressed_msg_to_rgb(msg)
    assert error.value.reason == 'corrupt' and 'jpeg payload of 20 bytes does not decode' in str(error.value)
    msg.format = 'tiff'
    with pytest.raises(ImageDecodeError) as error:
        compressed_msg_to_rgb(msg)
    assert error.value.reason == 'unknown_encoding'
    assert "unsupported compressed format 'tiff'; expected jpeg or png" in str(error.value)


def test_an_empty_compressed_payload_is_corrupt():
    with pytest.raises(ImageDecodeError) as error:
        decode_compressed('png', b'')
    assert error.value.reason == 'corrupt' and 'png payload of 0 bytes does not decode' in str(error.value)
