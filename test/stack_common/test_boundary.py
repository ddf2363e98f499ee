"""The boundary of every node: a message that breaks its contract is counted, warned about and survived.

Unit tests of :class:`stack_common.boundary.BoundaryGuard` on a real rclpy node, and the regression the
issue found by chance: a 3-point cloud whose ``intensity`` field has ``count: 2`` (legal in ROS) killed the
critic. Here it goes over DDS to the critic and perception processes, which use it and keep running.
"""

import threading
from collections import Counter

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.node import Node
from sensor_msgs.msg import PointCloud2, PointField

from avstack.runtime.launcher import STACK_NODES, Launcher
from avstack.runtime.ros import RosRuntime
from stack_common import topics
from stack_common.boundary import BoundaryGuard, ConversionError
from stack_common.pointcloud import cloud_to_array, points_xyz_intensity
from stack_common.qos import SENSOR_QOS, STATUS_QOS

from support import STACK_CONFIG

STARTUP_TIMEOUT_S = 90.0
CRITIC_AND_PERCEPTION = tuple(n for n in STACK_NODES if n.name in ('critic_node', 'perception_node'))


def dual_intensity_cloud(stamp_ns: int = 0, xyz_count: int = 1) -> PointCloud2:
    """The cloud of the issue: 3 points, x y z float32, then an intensity field of count 2 (5 floats a point)."""
    fields = [PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=xyz_count if name == 'x' else 1)
              for i, name in enumerate('xyz')]
    fields[1].offset, fields[2].offset = 4 * xyz_count, 4 * xyz_count + 4
    fields.append(PointField(name='intensity', offset=4 * xyz_count + 8, datatype=PointField.FLOAT32, count=2))
    point_step = 4 * xyz_count + 16
    values = np.arange(3 * point_step // 4, dtype='<f4') + 10.0
    msg = PointCloud2(height=1, width=3, fields=fields, point_step=point_step, row_step=3 * point_step,
                      is_bigendian=False, is_dense=True, data=values.tobytes())
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10 ** 9)
    msg.header.frame_id = 'lidar_top'
    return msg


def test_an_intensity_field_with_count_2_decodes_to_its_first_value_per_point():
    xyz, intensity = points_xyz_intensity(cloud_to_array(dual_intensity_cloud()))
    np.testing.assert_array_equal(xyz, [[10, 11, 12], [15, 16, 17], [20, 21, 22]])
    np.testing.assert_array_equal(intensity, [13, 18, 23])


def test_a_coordinate_field_with_count_2_is_rejected_with_a_clear_error():
    with pytest.raises(ConversionError, match="field 'x' has count 2") as raised:
        points_xyz_intensity(cloud_to_array(dual_intensity_cloud(xyz_count=2)))
    assert raised.value.reason == 'bad_field'


@pytest.fixture
def node():
    context = Context()
    rclpy.init(context=context)
    made = Node('boundary_test', context=context)
    yield made
    made.destroy_node()
    rclpy.try_shutdown(context=context)


class FakeTime:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_guard_counts_conversion_errors_and_unexpected_exceptions_and_returns(node):
    guard = BoundaryGuard(node)

    def convert(value):
        if value == 'bad':
            raise ConversionError('bad_value', 'not a number')
        if value == 'bug':
            raise ZeroDivisionError('division by zero')
        return value
    callback = guard.guard('input', convert)
    assert callback('good') == 'good'
    callback('bad'), callback('bad'), callback('bug')
    assert guard.counts == {'input/bad_value': 2, 'input/internal_error': 1}
    assert guard.values() == {'dropped/input/bad_value': 2, 'dropped/input/internal_error': 1}


def test_the_guard_warns_once_per_throttle_period_per_reason_and_says_how_many_it_skipped(node, capfd):
    time = FakeTime()
    guard = BoundaryGuard(node, throttle_s=5.0, clock=time)
    for _ in range(3):
        guard.drop('lidar/top', 'truncated', 'short')
    guard.drop('lidar/top', 'bad_field', 'x twice')       # another reason warns at once
    time.now += 5.0
    guard.drop('lidar/top', 'truncated', 'short')
    lines = [line for line in capfd.readouterr().err.splitlines() if 'dropped a message' in line]
    assert len(lines) == 3, lines
    assert lines[0].endswith('lidar/top: dropped a message (truncated): short')
    assert 'bad_field' in lines[1]
    assert lines[2].endswith('(2 more since the last warning)')
    assert guard.counts['lidar/top/truncated'] == 4


def test_the_guard_counts_into_a_counter_it_is_given(node):
    counts = Counter({'camera/front/out_of_order': 1})
    guard = BoundaryGuard(node, counts)
    guard.guard('camera/front', lambda: (_ for _ in ()).throw(ConversionError('truncated', 'short')))()
    assert counts == {'camera/front/out_of_order': 1, 'camera/front/truncated': 1}


def test_after_shutdown_an_exception_leaves_the_callback_for_run_node_to_end_cleanly():
    context = Context()
    rclpy.init(context=context)
    made = Node('boundary_shutdown', context=context)
    guard = BoundaryGuard(made)
    rclpy.shutdown(context=context)
    with pytest.raises(RuntimeError):
        guard.guard('input', lambda: (_ for _ in ()).throw(RuntimeError('context invalid')))()
    made.destroy_node()


class NodeWatcher(Node):
    """Publishes clouds and keeps the latest /diagnostics values of the critic and of perception."""

    def __init__(self, **kwargs):
        super().__init__('boundary_watcher', **kwargs)
        self.changed = threading.Condition()
        self.values: dict[str, dict[str, str]] = {}
        self.cloud_pub = self.create_publisher(PointCloud2, topics.lidar_topic('top'), SENSOR_QOS)
        self.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self.on_diagnostics, STATUS_QOS)

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        with self.changed:
            for status in msg.status:
                self.values[status.name] = {kv.key: kv.value for kv in status.values} | {'': status.message}
            self.changed.notify_all()

    def value(self, status: str, key: str) -> str:
        return self.values.get(status, {}).get(key, '')

    def send_until(self, make_cloud, predicate, timeout_s: float) -> bool:
        """Publish a cloud every 0.1 s (best effort: the first may go before discovery) until ``predicate``."""
        deadline = self.get_clock().now().nanoseconds + int(timeout_s * 1e9)
        with self.changed:
            while not predicate(self):
                now = self.get_clock().now().nanoseconds
                if now > deadline:
                    return False
                self.cloud_pub.publish(make_cloud(now))
                self.changed.wait(0.1)
            return True


@pytest.mark.timeout(240)
def test_the_3_point_cloud_with_a_2_count_intensity_leaves_critic_and_perception_running(ros_domain, tmp_path):
    with open(tmp_path / 'nodes.log', 'w') as log, RosRuntime() as ros, \
            Launcher(STACK_CONFIG, nodes=CRITIC_AND_PERCEPTION, output=log) as launcher:
        watcher = ros.add(NodeWatcher(context=ros.context))
        # Both nodes use it: perception counts it received, the critic's lidar watchdog heard it.
        assert watcher.send_until(
            dual_intensity_cloud,
            lambda w: int(w.value('perception_node', 'received/lidar/top') or 0) >= 3
            and w.value('critic/lidar_timeout', '').startswith('last lidar'), STARTUP_TIMEOUT_S), \
            f'the clouds were not used: {watcher.values}; see {tmp_path / "nodes.log"}'
        # A cloud whose x has count 2 cannot be used: both drop it, count it on /diagnostics and go on.
        assert watcher.send_until(
            lambda stamp: dual_intensity_cloud(stamp, xyz_count=2),
            lambda w: w.value('perception_node', 'dropped/lidar/top/bad_field')
            and w.value('critic/timing', 'dropped/lidar/top/bad_field'), 30.0), watcher.values
        for name in ('critic_node', 'perception_node'):
            assert launcher.running[name].process.poll() is None, f'{name} died; see {tmp_path / "nodes.log"}'
        unexpected = [k for name in ('perception_node', 'critic/timing') for k in watcher.values[name]
                      if k.endswith('internal_error')]
        assert not unexpected, f'unexpected exceptions: {unexpected}; see {tmp_path / "nodes.log"}'
