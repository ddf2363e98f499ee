"""Perception tokenization time per frame: one 1280x720 camera + one 120k-point lidar, default config.

Frames of the synthetic scene go through the same code as the live node: the
wire messages (bgr8 Image, PointCloud2 with the synthetic driver's padded
layout) are decoded with stack_common, fed to :class:`PerceptionCore`, and the
token set is encoded back into its PointCloud2. Torch runs on one thread, as
the node does (``num_threads: 1``). Reported: p50 and p99 per stage and per
frame. "tokenize" is what the issue's target speaks of: from decoded arrays
to the token set (resize, points to base_link, BEV grid, camera anchors,
encoders).
"""

import os
import time

import cv2
import numpy as np
import torch
from tqdm import tqdm

from avstack.benchmarks import Measurement
from avstack.runtime.paths import default_config
from avstack.synthetic.scene import SyntheticScene
from perception_llm.pipeline import PerceptionCore
from stack_common.config import load_node_config
from stack_common.image import image_msg_to_rgb, rgb_to_image_msg
from stack_common.odometry import EgoState
from stack_common.pointcloud import array_to_cloud, cloud_to_array, points_xyz_intensity
from stack_common.tokens import tokens_to_cloud

LIDAR_POINTS = 120_000
PERIOD_NS = 100_000_000
WARMUP_FRAMES = 5
TARGET_P50_MS = 25.0


def sensor_messages(frames: int, scene: SyntheticScene | None = None):
    """``frames`` (stamp_ns, camera Image, lidar PointCloud2) of the synthetic scene at 10 Hz."""
    scene = scene or SyntheticScene(azimuths=4000)   # ~130k returns, cut to exactly LIDAR_POINTS
    messages = []
    for i in range(frames):
        stamp_ns, t_s = (i + 1) * PERIOD_NS, i * PERIOD_NS / 1e9
        points = scene.lidar(t_s)
        if points.size < LIDAR_POINTS:
            raise RuntimeError(f'the scene gives {points.size} points, the benchmark needs {LIDAR_POINTS}')
        messages.append((stamp_ns, rgb_to_image_msg(scene.camera(t_s), stamp_ns, 'camera_front_optical', 'bgr8'),
                         array_to_cloud(points[:LIDAR_POINTS], stamp_ns, 'lidar_top')))
    return messages


def measure(frames: int, progress: bool = True) -> dict[str, np.ndarray]:
    """Per-frame times in ms by stage (after warm-up frames)."""
    config = load_node_config('perception_llm', 'perception_node', default_config())
    torch.set_num_threads(config['num_threads'])   # as the node does
    cv2.setNumThreads(config['num_threads'])
    core = PerceptionCore(config)
    camera, lidar = core.cameras[0], core.lidars[0]
    times: dict[str, list[float]] = {}
    messages = sensor_messages(frames + WARMUP_FRAMES)
    for index, (stamp_ns, image_msg, cloud_msg) in enumerate(tqdm(messages, desc='perception frames', unit='frame',
                                                                 disable=None if progress else True)):
        core.add_odometry(EgoState(stamp_ns, 0.0, 0.0, 0.0, 8.0))
        start = time.perf_counter()
        rgb = image_msg_to_rgb(image_msg)
        decoded_camera = time.perf_counter()
        points, intensity = points_xyz_intensity(cloud_to_array(cloud_msg))
        decoded_lidar = time.perf_counter()
        ready = core.add_camera(camera, stamp_ns, rgb, stamp_ns)
        ready += core.add_lidar(lidar, stamp_ns, points, intensity, stamp_ns)
        if len(ready) != 1 or ready[0].missing:
            raise RuntimeError(f'frame {index}: expected one complete set, got {ready}')
        frame = core.tokenize(ready[0])
        tokenized = time.perf_counter()
        tokens_to_cloud(frame.tokens)
        done = time.perf_counter()
        if index < WARMUP_FRAMES:
            continue
        for stage, ms in frame.stages_ms.items():
            times.setdefault(stage, []).append(ms)
        for stage, ms in (('decode camera', decoded_camera - start), ('decode lidar', decoded_lidar - decoded_camera),
                          ('tokenize', tokenized - decoded_lidar), ('tokens to PointCloud2', done - tokenized),
                          ('frame total', done - start)):
            times.setdefault(stage, []).append(ms * 1e3)
    return {stage: np.array(values) for stage, values in times.items()}


def run(options) -> list[Measurement]:
    frames = 20 if options.quick else 200
    load_before = os.getloadavg()[0]
    times = measure(frames)
    # the machine's other work shows up in every number below: say how busy it was
    measurements = [Measurement('load average (1 min) before / after', load_before, '',
                                f'after: {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores')]
    for stage, values in times.items():
        note = f'{frames} frames, 1280x720 + {LIDAR_POINTS // 1000}k points, 1 torch thread'
        if stage == 'tokenize':
            note += f'; target p50 <= {TARGET_P50_MS:.0f} ms'
        measurements.append(Measurement(f'{stage} p50', float(np.percentile(values, 50)), 'ms', note))
        measurements.append(Measurement(f'{stage} p99', float(np.percentile(values, 99)), 'ms'))
    return measurements
