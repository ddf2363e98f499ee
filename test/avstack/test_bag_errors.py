"""Bad bags: each gives one line naming the file or topic and a non-zero exit, never a traceback.

Run through ``avstack eval`` as a user would; the errors come from
:mod:`avstack.bag.reader` before any model is loaded.
"""

import os
import random

import pytest

from avstack import cli
from stack_common import topics

from bagtools import small_bag, storage_file


def eval_error(bag, tmp_path, capsys, *extra) -> tuple[int, str]:
    code = cli.main(['eval', str(bag), '--out', str(tmp_path / 'out'), '--no-plots', *extra])
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line(code: int, err: str, *names: str) -> None:
    assert code != 0
    assert 'Traceback' not in err and len(err.splitlines()) == 1, err
    for name in names:
        assert name in err, err


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_truncated_storage_file(tmp_path, capsys, storage):
    bag = small_bag(tmp_path / 'bag', storage=storage)
    data_file = storage_file(bag)
    data_file.write_bytes(data_file.read_bytes()[:data_file.stat().st_size // 2])
    code, err = eval_error(bag, tmp_path, capsys)
    assert_one_line(code, err, data_file.name)
    assert code == 2   # an input file error


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_corrupt_storage_file(tmp_path, capsys, storage):
    bag = small_bag(tmp_path / 'bag', storage=storage)
    data_file = storage_file(bag)
    data = bytearray(data_file.read_bytes())
    data[:4096] = random.Random(0).randbytes(4096)   # header and first records
    data_file.write_bytes(bytes(data))
    code, err = eval_error(bag, tmp_path, capsys)
    assert_one_line(code, err, data_file.name)


def test_sqlite3_corrupt_in_the_middle_fails_while_reading(tmp_path, capsys):
    bag = small_bag(tmp_path / 'bag', storage='sqlite3')
    data_file = storage_file(bag)
    data = bytearray(data_file.read_bytes())
    middle = len(data) // 3   # inside the message pages: the overflow-page chains of the big messages break
    data[middle:middle + 8192] = random.Random(1).randbytes(8192)
    data_file.write_bytes(bytes(data))
    code, err = eval_error(bag, tmp_path, capsys)
    assert_one_line(code, err, data_file.name, 'corrupt')
    assert code == 2   # an input file error


def test_missing_metadata_yaml(tmp_path, capsys):
    bag = small_bag(tmp_path / 'bag')
    (bag / 'metadata.yaml').unlink()
    code, err = eval_error(bag, tmp_path, capsys)
    assert_one_line(code, err, str(bag), 'metadata.yaml', 'ros2 bag reindex', storage_file(bag).name)


def test_no_such_bag(tmp_path, capsys):
    code, err = eval_error(tmp_path / 'nothing_here', tmp_path, capsys)
    assert_one_line(code, err, 'nothing_here', 'no such bag')


def test_no_camera_topic(tmp_path, capsys):
    bag = small_bag(tmp_path / 'bag', camera_topic='')
    code, err = eval_error(bag, tmp_path, capsys)
    assert_one_line(code, err, 'no camera topic', 'camera/front', topics.lidar_topic('top'))


def test_no_lidar_topic(tmp_path, capsys):
    bag = small_bag(tmp_path / 'bag', lidar_topic='')
    code, err = eval_error(bag, tmp_path, capsys)
    assert_one_line(code, err, 'no lidar topic', 'lidar/top')


def test_unknown_message_types(tmp_path, capsys):
    # A driver's raw packets: a type this machine does not have, where a lidar cloud was expected.
    packet = bytes(4) + (8).to_bytes(4, 'little') + bytes(range(8))
    bag = small_bag(tmp_path / 'bag', lidar_topic='', custom_types=(('velodyne_msgs/msg/VelodyneScan',
                                                                     'uint8[] packet'),),
                    extra_messages=(('/velodyne_packets', 'velodyne_msgs/msg/VelodyneScan', 0, packet),))
    code, err = eval_error(bag, tmp_path, capsys)
    assert_one_line(code, err, 'no lidar topic', '/velodyne_packets [velodyne_msgs/msg/VelodyneScan, unknown type]')
    code, err = eval_error(bag, tmp_path, capsys, '--map', 'lidar=/velodyne_packets')
    assert_one_line(code, err, '/velodyne_packets', 'velodyne_msgs/msg/VelodyneScan')


def test_bad_usage_exits_2(tmp_path, capsys):
    bag = small_bag(tmp_path / 'bag')
    code, err = eval_error(bag, tmp_path, capsys, '--map', 'camera/front')
    assert code == 2 and 'expected ROLE=/topic' in err
    config = tmp_path / 'bad.yaml'
    config.write_text('planner_node:\n  ros__parameters:\n    preset: enormous\n')
    code, err = eval_error(bag, tmp_path, capsys, '--config', str(config))
    assert code == 2 and 'preset' in err and 'Traceback' not in err
    assert not os.path.exists(tmp_path / 'out' / 'output.mcap')
