"""PointCloud2 <-> structured arrays for any layout (property-based), and clear errors for bad clouds."""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sensor_msgs.msg import PointCloud2, PointField

from stack_common.pointcloud import (
    LIDAR_CHANNELS, MAX_POINTS, CloudDecodeError, array_to_cloud, cloud_dtype, cloud_to_array, decode_cloud,
    point_channels, points_xyz, points_xyz_intensity)

from support import examples

OPTIONAL_FIELDS = {'intensity': '<f4', 'ring': '<u2', 'time': '<f8', 'label': 'u1', 't_ns': '<u4'}


@st.composite
def cloud_layouts(draw):
    """A dtype with x, y, z (float32 or float64), some optional fields, in any order, with any padding."""
    xyz_type = draw(st.sampled_from(['<f4', '<f8']))
    fields = [('x', xyz_type), ('y', xyz_type), ('z', xyz_type)]
    fields += [(name, OPTIONAL_FIELDS[name]) for name in draw(st.lists(st.sampled_from(sorted(OPTIONAL_FIELDS)),
                                                                       unique=True, max_size=4))]
    fields = draw(st.permutations(fields))
    names, formats, offsets, offset = [], [], [], 0
    for name, fmt in fields:
        offset += draw(st.integers(0, 5))  # padding before the field
        names.append(name), formats.append(fmt), offsets.append(offset)
        offset += np.dtype(fmt).itemsize
    itemsize = offset + draw(st.integers(0, 9))
    return np.dtype({'names': names, 'formats': formats, 'offsets': offsets, 'itemsize': itemsize})


@given(dtype=cloud_layouts(), count=st.integers(0, 50), seed=st.integers(0, 2 ** 16))
@examples(150)
def test_any_layout_round_trips(dtype, count, seed):
    rng = np.random.default_rng(seed)
    points = np.zeros(count, dtype)
    for name in dtype.names:
        kind = dtype.fields[name][0]
        points[name] = rng.uniform(-100, 100, count) if kind.kind == 'f' else rng.integers(0, 200, count)
    msg = array_to_cloud(points, 1_500_000_000_123, 'lidar')
    assert msg.point_step == dtype.itemsize
    decoded = cloud_to_array(msg)
    assert decoded.dtype.names == dtype.names
    for name in dtype.names:
        np.testing.assert_array_equal(decoded[name], points[name])
    xyz = points_xyz(decoded)
    np.testing.assert_allclose(xyz, np.stack([points['x'], points['y'], points['z']], 1).astype(np.float32))


def test_nan_and_inf_points_are_dropped_and_intensity_kept_aligned():
    dtype = np.dtype([('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('intensity', '<f4')])
    points = np.array([(1, 2, 3, 10), (np.nan, 0, 0, 20), (4, np.inf, 6, 30), (7, 8, 9, np.nan)], dtype)
    xyz, intensity = points_xyz_intensity(cloud_to_array(array_to_cloud(points, 0, 'l')))
    np.testing.assert_array_equal(xyz, [[1, 2, 3], [7, 8, 9]])
    np.testing.assert_array_equal(intensity, [10, 0])


def test_cloud_without_intensity_has_none():
    points = np.zeros(3, [('x', '<f8'), ('y', '<f8'), ('z', '<f8')])
    _, intensity = points_xyz_intensity(points)
    assert intensity is None


def test_organised_cloud_with_row_padding():
    dtype = np.dtype([('x', '<f4'), ('y', '<f4'), ('z', '<f4')])
    rows = [np.array([(r, c, 0) for c in range(4)], dtype) for r in range(3)]
    row_step = 4 * 12 + 8
    data = b''.join(row.tobytes() + bytes(8) for row in rows)
    msg = array_to_cloud(np.concatenate(rows), 0, 'l')
    decoded = decode_cloud(msg.fields, 12, row_step, 4, 3, False, data)
    np.testing.assert_array_equal(decoded['x'], np.repeat(np.arange(3), 4))


def test_a_cloud_whose_row_step_was_left_unset_decodes_as_unpadded_rows():
    dtype = np.dtype([('x', '<f4'), ('y', '<f4'), ('z', '<f4')])
    points = np.array([(r, c, 0) for r in range(2) for c in range(3)], dtype)
    decoded = decode_cloud(array_to_cloud(points, 0, 'l').fields, 12, 0, 3, 2, False, points.tobytes())
    np.testing.assert_array_equal(decoded, points)


def test_an_unpadded_cloud_is_mapped_without_copying():
    data = bytearray(np.arange(12, dtype='<f4').tobytes())
    decoded = decode_cloud([X], 4, 8, 2, 6, False, data)   # 6 rows of 2 points, no padding between rows
    assert np.shares_memory(decoded, np.frombuffer(data, np.uint8))
    np.testing.assert_array_equal(decoded['x'], np.arange(12))


def test_big_endian_cloud():
    dtype = np.dtype([('x', '>f4'), ('y', '>f4'), ('z', '>f4')])
    points = np.array([(1.5, -2.0, 3.25)], dtype)
    msg = array_to_cloud(points.astype([('x', '<f4'), ('y', '<f4'), ('z', '<f4')]), 0, 'l')
    decoded = decode_cloud(msg.fields, 12, 12, 1, 1, True, points.tobytes())
    np.testing.assert_array_equal(points_xyz(decoded), [[1.5, -2.0, 3.25]])


def _cloud(fields, point_step, width, data) -> PointCloud2:
    return PointCloud2(height=1, width=width, fields=fields, point_step=point_step, row_step=point_step * width,
                       data=data)


X = PointField(name='x', offset=0, datatype=PointField.FLOAT32, count=1)


@pytest.mark.parametrize('fields, point_step, width, size, reason, message', [
    ([X], 4, 10, 39, 'truncated', 'cloud data has 39 bytes, 10x1 points need 40'),
    ([PointField(name='x', offset=0, datatype=99, count=1)], 4, 1, 4, 'bad_field', "'x' has unknown datatype 99"),
    ([PointField(name='x', offset=2, datatype=7, count=1)], 4, 1, 4, 'bad_layout', "'x' ends past point_step 4"),
    ([PointField(name='x', offset=0, datatype=7, count=2)], 4, 1, 4, 'bad_layout', "'x' ends past point_step 4"),
    ([X, PointField(name='x', offset=4, datatype=7, count=1)], 8, 1, 8, 'bad_field', "'x' appears twice"),
    ([X], 0, 1, 4, 'bad_layout', 'point_step 0, width 1, height 1'),
    ([], 0, 1, 4, 'bad_layout', 'point_step 0, width 1, height 1'),
    ([X], 2 ** 31 + 4, 1, 0, 'bad_layout', 'overlapping or invalid fields'),   # numpy: not a C int
])
def test_malformed_clouds_name_their_reason(fields, point_step, width, size, reason, message):
    with pytest.raises(CloudDecodeError) as error:
        cloud_to_array(_cloud(fields, point_step, width, bytes(size)))
    assert error.value.reason == reason and message in str(error.value)


@pytest.mark.parametrize('width, height, reason, message', [
    (-1, 1, 'bad_layout', 'width -1'),
    (1, -1, 'bad_layout', 'height -1'),
    (MAX_POINTS // 2 + 1, 2, 'bad_size', f'{MAX_POINTS + 2} points exceed the limit of {MAX_POINTS}'),
    (MAX_POINTS, 1, 'truncated', f'{MAX_POINTS}x1 points need'),              # the limit itself is allowed
    (4, 3, 'truncated', 'cloud data has 55 bytes, 4x3 points need 56'),       # short by the last row's end
])
def test_bad_sizes_name_their_reason(width, height, reason, message):
    with pytest.raises(CloudDecodeError) as error:
        decode_cloud([X], 4, 20, width, height, False, bytes(55))
    assert error.value.reason == reason and message in str(error.value)


def test_a_cloud_of_no_rows_or_one_byte_points_decodes():
    assert decode_cloud([X], 4, 0, 5, 0, False, b'').size == 0
    byte = PointField(name='label', offset=0, datatype=PointField.UINT8, count=1)
    np.testing.assert_array_equal(decode_cloud([byte], 1, 3, 3, 1, False, bytes([7, 8, 9]))['label'], [7, 8, 9])


def test_a_big_endian_message_decodes_and_cloud_dtype_defaults_to_little_endian():
    big = np.array([(1.5, -2.0, 3.25)], [('x', '>f4'), ('y', '>f4'), ('z', '>f4')])
    msg = array_to_cloud(big.astype([('x', '<f4'), ('y', '<f4'), ('z', '<f4')]), 0, 'l')
    msg.is_bigendian, msg.data = True, big.tobytes()
    np.testing.assert_array_equal(points_xyz(cloud_to_array(msg)), [[1.5, -2.0, 3.25]])
    assert cloud_dtype(msg.fields, 12)['x'] == np.dtype('<f4')


def test_array_to_cloud_writes_a_flat_little_endian_cloud_that_may_hold_invalid_points():
    points = np.zeros(5, [('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('ring', '<u2')])
    msg = array_to_cloud(points, 0, 'l')
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 5, 14, 70)
    assert msg.is_bigendian is False and msg.is_dense is False


def test_a_field_type_pointcloud2_cannot_carry_is_named():
    with pytest.raises(ValueError, match="field 'flag' has a dtype PointCloud2 cannot carry"):
        array_to_cloud(np.zeros(2, [('x', '<f4'), ('flag', '?')]), 0, 'l')


def test_xyz_with_count_2_is_rejected_with_the_rule():
    with pytest.raises(CloudDecodeError, match="field 'x' has count 2; x, y and z must have count 1"):
        points_xyz(np.zeros(2, [('x', '<f4', (2,)), ('y', '<f4'), ('z', '<f4')]))


def test_coordinates_come_as_float32_and_out_of_range_values_are_dropped_silently():
    points = np.array([(1e300, 0, 0, 1.0), (1, 2, 3, np.inf), (4, 5, 6, -np.inf)],
                      [('x', '<f8'), ('y', '<f8'), ('z', '<f8'), ('intensity', '<f8')])
    with warnings.catch_warnings():
        warnings.simplefilter('error')   # no overflow warning from float64 beyond float32
        xyz, intensity = points_xyz_intensity(points)
    assert xyz.dtype == np.float32
    np.testing.assert_array_equal(xyz, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(intensity, [0, 0])   # infinite intensities become 0


def test_cloud_without_xyz_is_rejected():
    with pytest.raises(CloudDecodeError) as error:
        points_xyz(np.zeros(2, [('x', '<f4'), ('intensity', '<f4')]))
    assert error.value.reason == 'missing_field' and "cloud has no field(s) ['y', 'z']" in str(error.value)


def test_every_lidar_channel_stays_aligned_with_its_points():
    points = np.array([(1, 2, 3, 10, -1.5), (np.nan, 0, 0, 20, 2.5), (4, 5, 6, 30, 3.5)],
                      [('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('intensity', '<f4'), ('radial_velocity', '<f4')])
    xyz, channels = point_channels(points, LIDAR_CHANNELS)
    np.testing.assert_array_equal(xyz, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(channels['intensity'], [10, 30])
    np.testing.assert_array_equal(channels['radial_velocity'], [-1.5, 3.5])
