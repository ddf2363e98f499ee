"""perception_node: camera(s) + lidar(s) + odometry in, fused tokens out.

Parameters: ``perception_llm/schema/perception_node.schema.json``. The node
decodes with :mod:`stack_common`, hands arrays to :class:`PerceptionCore`
and publishes what it returns; bad messages are counted and skipped.
"""

import time

import numpy as np
import torch
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image, PointCloud2
from nav_msgs.msg import Odometry
from diagnostic_msgs.msg import DiagnosticArray

from perception_llm.pipeline import PerceptionCore
from perception_llm.weights import load_encoders
from stack_common import topics
from stack_common.diagnostics import OK, WARN, diagnostic_array, make_status
from stack_common.image import ImageDecodeError, compressed_msg_to_rgb, image_msg_to_rgb
from stack_common.node_main import run_node
from stack_common.odometry import odometry_to_ego
from stack_common.pointcloud import CloudDecodeError, cloud_to_array, points_xyz_intensity
from stack_common.qos import SENSOR_QOS, STATUS_QOS, TOKENS_QOS
from stack_common.ros_params import declare_node_config
from stack_common.timeutil import stamp_to_ns
from stack_common.tokens import tokens_to_cloud

POLL_PERIOD_S = 0.02
DIAGNOSTICS_PERIOD_S = 1.0
WARN_THROTTLE_S = 5.0


class PerceptionNode(Node):
    def __init__(self):
        super().__init__('perception_node')
        config = declare_node_config(self, 'perception_llm')
        torch.set_num_threads(config['num_threads'])
        encoders, note = load_encoders(config)
        if note:
            self.get_logger().warning(note)
        self.core = PerceptionCore(config, encoders)
        self.decode_ms: list[float] = []
        self.tokenize_ms: list[float] = []

        self.tokens_pub = self.create_publisher(PointCloud2, topics.FUSED_TOKENS, TOKENS_QOS)
        self.status_pub = self.create_publisher(DiagnosticArray, topics.PERCEPTION_STATUS, STATUS_QOS)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, STATUS_QOS)
        for name in self.core.cameras:
            section = config['camera'].get(name, {})
            compressed = section.get('compressed', False)
            topic = section.get('topic') or (topics.compressed_camera_topic(name) if compressed
                                             else topics.camera_topic(name))
            self.create_subscription(CompressedImage if compressed else Image, topic,
                                     lambda msg, n=name: self.on_camera(n, msg), SENSOR_QOS)
        for name in self.core.lidars:
            topic = config['lidar'].get(name, {}).get('topic') or topics.lidar_topic(name)
            self.create_subscription(PointCloud2, topic, lambda msg, n=name: self.on_lidar(n, msg), SENSOR_QOS)
        self.create_subscription(Odometry, config['odometry_topic'], self.on_odometry, SENSOR_QOS)
        self.create_timer(POLL_PERIOD_S, self.on_poll)
        self.create_timer(DIAGNOSTICS_PERIOD_S, self.publish_diagnostics)

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def on_camera(self, name: str, msg) -> None:
        start = time.perf_counter()
        try:
            rgb = compressed_msg_to_rgb(msg) if isinstance(msg, CompressedImage) else image_msg_to_rgb(msg)
        except ImageDecodeError as error:
            return self.reject(f'camera/{name}', error)
        self.decode_ms.append((time.perf_counter() - start) * 1e3)
        self.publish(self.core.add_camera(name, stamp_to_ns(msg.header.stamp), rgb, self.now_ns()))

    def on_lidar(self, name: str, msg: PointCloud2) -> None:
        start = time.perf_counter()
        try:
            points, intensity = points_xyz_intensity(cloud_to_array(msg))
        except CloudDecodeError as error:
            return self.reject(f'lidar/{name}', error)
        self.decode_ms.append((time.perf_counter() - start) * 1e3)
        self.publish(self.core.add_lidar(name, stamp_to_ns(msg.header.stamp), points, intensity, self.now_ns()))

    def on_odometry(self, msg: Odometry) -> None:
        self.core.add_odometry(odometry_to_ego(msg))

    def on_poll(self) -> None:
        self.publish(self.core.poll(self.now_ns()))

    def reject(self, sensor: str, error: ValueError) -> None:
        self.core.dropped[f'{sensor}:{error.reason}'] += 1
        self.get_logger().warning(f'{sensor}: dropped a message: {error}', throttle_duration_sec=WARN_THROTTLE_S)

    def publish(self, synced_sets) -> None:
        for synced in synced_sets:
            frame = self.core.tokenize(synced)
            self.tokenize_ms.append(frame.tokenize_ms)
            self.tokens_pub.publish(tokens_to_cloud(frame.tokens))
            status = make_status('perception/sensors', WARN if frame.missing else OK,
                                 f'missing: {", ".join(frame.missing)}' if frame.missing else 'all sensors',
                                 {'missing': ','.join(frame.missing), 'tokens': len(frame.tokens)},
                                 hardware_id='perception_llm')
            self.status_pub.publish(diagnostic_array(frame.tokens.stamp_ns, [status]))
            if frame.missing:
                self.get_logger().warning(f'published tokens without {frame.missing}',
                                          throttle_duration_sec=WARN_THROTTLE_S)

    def publish_diagnostics(self) -> None:
        decode, tokenize = np.asarray(self.decode_ms or [0.0]), np.asarray(self.tokenize_ms or [0.0])
        self.decode_ms.clear()
        self.tokenize_ms.clear()
        sync = self.core.sync
        values = {f'received/{k}': v for k, v in sorted(self.core.received.items())}
        values |= {f'dropped/{k}': v for k, v in sorted((self.core.dropped + sync.dropped).items())}
        values |= {'synced': sync.synced, 'partial_sets': sync.partial, 'time_resets': sync.resets,
                   'published': self.core.published,
                   'decode_p50_ms': float(np.percentile(decode, 50)),
                   'tokenize_p50_ms': float(np.percentile(tokenize, 50)),
                   'tokenize_max_ms': float(tokenize.max())}
        level = WARN if any(k.startswith('dropped/') for k in values) else OK
        status = make_status('perception_node', level, 'running', values, hardware_id='perception_llm')
        self.diagnostics_pub.publish(diagnostic_array(self.now_ns(), [status]))


def main(args=None) -> int:
    return run_node(PerceptionNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
