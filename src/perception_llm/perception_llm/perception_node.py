"""perception_node: camera(s) + lidar(s) + odometry in, fused tokens out.

Parameters: ``perception_llm/schema/perception_node.schema.json``. The node
takes camera and lidar messages raw (their CDR bytes), decodes them with
:mod:`stack_common.intake` (cameras straight to the encoder's input size),
hands arrays to :class:`PerceptionCore` and publishes what it returns:
tokens on ``/perception/fused_tokens``, one status per synced set on
``/perception/status`` (key ``missing``: the sensors that did not make it,
comma-separated), and its counters on ``/diagnostics`` once a second. Bad
messages are counted, logged (throttled) and skipped by the stack's boundary
guard; no exception leaves a callback.
"""

import time
from collections import Counter
from typing import Callable

import cv2
import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from perception_llm.camera_encoder import camera_rgb
from perception_llm.pipeline import ODOMETRY, PerceptionCore
from perception_llm.sensors import CameraSpec, LidarSpec
from perception_llm.weights import load_encoders
from stack_common import topics
from stack_common.boundary import BoundaryGuard, ConversionError
from stack_common.camera_info import camera_info_to_intrinsics
from stack_common.constants import DIAGNOSTICS_PERIOD_S, WARN_THROTTLE_S
from stack_common.diagnostics import OK, WARN, diagnostic_array, make_status
from stack_common.intake import parse_cloud, parse_compressed_image, parse_image
from stack_common.node_main import run_node
from stack_common.odometry import odometry_to_ego
from stack_common.pointcloud import LIDAR_CHANNELS, point_channels
from stack_common.qos import ODOMETRY_QOS, SENSOR_QOS, STATUS_QOS, TOKENS_QOS
from stack_common.ros_params import declare_node_config
from stack_common.tokens import TokenSet, tokens_to_cloud

POLL_PERIOD_S = 0.02
STATUS_NAME = 'perception/sensors'


class PerceptionNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__('perception_node', **node_kwargs)
        config = declare_node_config(self, 'perception_llm')
        torch.set_num_threads(config['num_threads'])
        cv2.setNumThreads(config['num_threads'])
        encoders, note = load_encoders(config)
        if note:
            self.get_logger().warning(note)
        self.core = PerceptionCore(config, encoders, warn=lambda text: self.get_logger().warning(
            text, throttle_duration_sec=WARN_THROTTLE_S))
        self.decode_ms: list[float] = []
        self.tokenize_ms: list[float] = []
        self._reported: Counter[str] = Counter()
        # Composed with the planner in one process (planner.driving_process): each token set goes to this
        # callable in memory first, then out on the topic as always.
        self.token_sink: Callable[[TokenSet], None] | None = None
        # Drops land in the core's counters (dropped/<sensor>/<reason>), next to the ones the core counts itself.
        self.boundary = BoundaryGuard(self, self.core.dropped)
        guard = self.boundary.guard

        self.tokens_pub = self.create_publisher(PointCloud2, topics.FUSED_TOKENS, TOKENS_QOS)
        self.status_pub = self.create_publisher(DiagnosticArray, topics.PERCEPTION_STATUS, STATUS_QOS)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, STATUS_QOS)
        for camera in self.core.camera_specs:
            self.create_subscription(CompressedImage if camera.compressed else Image, camera.topic,
                                     guard(camera.key, lambda data, c=camera: self.on_camera(c, data)),
                                     SENSOR_QOS, raw=True)
            if camera.camera_info_topic:
                self.create_subscription(CameraInfo, camera.camera_info_topic, guard(
                    f'{camera.key}/camera_info', lambda msg, c=camera: self.on_camera_info(c, msg)), SENSOR_QOS)
        for lidar in self.core.lidar_specs:
            self.create_subscription(PointCloud2, lidar.topic,
                                     guard(lidar.key, lambda data, s=lidar: self.on_lidar(s, data)),
                                     SENSOR_QOS, raw=True)
        self.create_subscription(Odometry, config['odometry_topic'], guard(ODOMETRY, self.on_odometry),
                                 ODOMETRY_QOS)
        self.create_timer(POLL_PERIOD_S, guard('poll', self.on_poll))
        self.create_timer(DIAGNOSTICS_PERIOD_S, guard('diagnostics', self.publish_diagnostics))
        self.get_logger().info(
            f'cameras {[c.topic for c in self.core.camera_specs]}, lidars {[s.topic for s in self.core.lidar_specs]}'
            f' -> {topics.FUSED_TOKENS} ({self.core.encoder_config.max_tokens(len(self.core.cameras))} tokens max)')

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def on_camera(self, camera: CameraSpec, data: bytes) -> None:
        start = time.perf_counter()
        msg = parse_compressed_image(data) if camera.compressed else parse_image(data)
        rgb, size = camera_rgb(msg, self.core.encoder_config.input_width, self.core.encoder_config.input_height)
        self.decode_ms.append((time.perf_counter() - start) * 1e3)
        self.publish(self.core.add_camera(camera.name, msg.stamp_ns, rgb, self.now_ns(), msg.frame_id, size))

    def on_camera_info(self, camera: CameraSpec, msg: CameraInfo) -> None:
        intrinsics = camera_info_to_intrinsics(msg)   # a CameraInfoError is counted by the boundary guard
        try:
            changed = self.core.set_intrinsics(camera.name, intrinsics)
        except ValueError as error:
            raise ConversionError('unusable', str(error)) from error
        if changed:
            model = self.core.camera_models[camera.name]
            self.get_logger().info(f'{camera.key}: intrinsics from {camera.camera_info_topic}: fx {model.fx:.1f}, '
                                   f'fy {model.fy:.1f}, cx {model.cx:.1f}, cy {model.cy:.1f}, '
                                   f'{len(model.distortion)} distortion coefficients')

    def on_lidar(self, lidar: LidarSpec, data: bytes) -> None:
        start = time.perf_counter()
        msg = parse_cloud(data)
        cloud = msg.array()
        points, channels = point_channels(cloud, LIDAR_CHANNELS)
        intensity = channels.get('intensity')
        self.decode_ms.append((time.perf_counter() - start) * 1e3)
        if len(points) < cloud.size:
            self.flag(lidar.key, 'nonfinite_points', f'{cloud.size - len(points)} of {cloud.size} points not finite')
        if cloud.size == 0:
            self.flag(lidar.key, 'empty_cloud', 'cloud has no points')
        elif intensity is None:
            self.flag(lidar.key, 'no_intensity', 'cloud has no intensity field; the BEV intensity channel is 0')
        self.publish(self.core.add_lidar(lidar.name, msg.stamp_ns, points, intensity, self.now_ns(), msg.frame_id,
                                         channels.get('radial_velocity')))

    def on_odometry(self, msg: Odometry) -> None:
        self.core.add_odometry(odometry_to_ego(msg))

    def on_poll(self) -> None:
        self.publish(self.core.poll(self.now_ns()))


    def flag(self, sensor: str, reason: str, detail: str) -> None:
        self.core.flagged[f'{sensor}/{reason}'] += 1
        self.get_logger().warning(f'{sensor}: {detail}', throttle_duration_sec=WARN_THROTTLE_S)

    def publish(self, synced_sets) -> None:
        for synced in synced_sets:
            frame = self.core.tokenize(synced)
            self.tokenize_ms.append(frame.tokenize_ms)
            if self.token_sink is not None:
                self.token_sink(frame.tokens)
            self.tokens_pub.publish(tokens_to_cloud(frame.tokens))
            missing, no_intrinsics = ','.join(frame.missing), ','.join(frame.no_intrinsics)
            message = f'missing: {missing}' if frame.missing else 'all sensors'
            if frame.no_intrinsics:
                message += f'; no intrinsics yet (camera tokens without position): {no_intrinsics}'
            status = make_status(STATUS_NAME, WARN if frame.missing else OK, message,
                                 {'missing': missing, 'no_intrinsics': no_intrinsics, 'tokens': len(frame.tokens),
                                  'tokenize_ms': frame.tokenize_ms}, hardware_id='perception_llm')
            self.status_pub.publish(diagnostic_array(frame.tokens.stamp_ns, [status]))
            if frame.missing:
                self.get_logger().warning(f'published tokens without {missing}', throttle_duration_sec=WARN_THROTTLE_S)

    def publish_diagnostics(self) -> None:
        counters = self.core.counters()
        new = Counter({k: v for k, v in counters.items() if k.startswith(('dropped/', 'flagged/'))}) - self._reported
        new_partial = counters['partial_sets'] - self._reported['partial_sets']
        self._reported = Counter({k: v for k, v in counters.items() if isinstance(v, int)})
        decode, tokenize = np.asarray(self.decode_ms or [np.nan]), np.asarray(self.tokenize_ms or [np.nan])
        self.decode_ms.clear()
        self.tokenize_ms.clear()
        values = counters | {'decode_p50_ms': float(np.percentile(decode, 50)),
                             'tokenize_p50_ms': float(np.percentile(tokenize, 50)),
                             'tokenize_p99_ms': float(np.percentile(tokenize, 99)),
                             'tokenize_max_ms': float(np.max(tokenize))}
        problems = sorted(new) + ([f'{new_partial} partial sets'] if new_partial else [])
        message = 'ok' if not problems else 'since last report: ' + ', '.join(problems)
        status = make_status('perception_node', WARN if problems else OK, message, values,
                             hardware_id='perception_llm')
        self.diagnostics_pub.publish(diagnostic_array(self.now_ns(), [status]))


def main(args=None) -> int:
    return run_node(PerceptionNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
