"""Per-stage compute time of the stack's cores in one process, on synthetic frames with the default config.

Each stage does what the live nodes do, on the nodes' thread counts: decode
(the serialised camera and lidar messages copied as a raw take copies them out
of DDS, then parsed by :mod:`stack_common.intake`, the camera straight to the
encoder's input size), perception (sync, preparation, encoders), planner
(model forward and mode selection), critic (its own copy and parse of the
cloud, lidar filtering and the checks of one plan). Their sum is the stack's
compute per frame without the ROS plumbing between the stages: what
``avstack bench`` divides the end-to-end latency by for the overhead ratio.
"""

import time

import cv2
import numpy as np
import torch
from rclpy.serialization import serialize_message

from avstack.runtime.paths import default_config
from avstack.synthetic.scene import SyntheticScene
from critic_monitor.monitor import CriticCore
from perception_llm.camera_encoder import camera_rgb
from perception_llm.pipeline import PerceptionCore
from perception_llm.weights import load_encoders
from planner.loading import load_planner
from stack_common.config import load_node_config
from stack_common.image import rgb_to_image_msg
from stack_common.intake import parse_cloud, parse_image
from stack_common.odometry import EgoState
from stack_common.pointcloud import array_to_cloud, points_xyz, points_xyz_intensity

PERIOD_NS = 100_000_000


def stage_times_ms(frames: int, warmup: int = 3) -> dict[str, np.ndarray]:
    config = default_config()
    perception_cfg = load_node_config('perception_llm', 'perception_node', config)
    planner_cfg = load_node_config('planner', 'planner_node', config)
    perception = PerceptionCore(perception_cfg, load_encoders(perception_cfg)[0])
    planner, _ = load_planner(planner_cfg)
    critic_cfg = load_node_config('critic_monitor', 'critic_node', config)
    critic = CriticCore(critic_cfg, 1)
    camera, lidar = perception.cameras[0], perception.lidars[0]
    size = perception.encoder_config.input_width, perception.encoder_config.input_height
    scene = SyntheticScene()
    times = {stage: [] for stage in ('decode', 'perception', 'planner', 'critic')}
    for i in range(frames + warmup):
        stamp = (i + 1) * PERIOD_NS
        image_data = serialize_message(rgb_to_image_msg(scene.camera(i * 0.1), stamp, 'camera', 'bgr8'))
        cloud_data = serialize_message(array_to_cloud(scene.lidar(i * 0.1), stamp, 'lidar'))
        ego = scene.ego(i * 0.1)
        ego.stamp_ns = stamp
        perception.add_odometry(ego)
        critic.on_odometry(EgoState(**vars(ego)), stamp)

        torch.set_num_threads(perception_cfg['num_threads'])   # each stage on its node's threads
        cv2.setNumThreads(perception_cfg['num_threads'])
        start = time.perf_counter()
        image = parse_image(bytes(image_data))   # bytes(): the copy a raw take makes
        rgb, image_size = camera_rgb(image, *size)
        cloud = parse_cloud(bytes(cloud_data))
        points, intensity = points_xyz_intensity(cloud.array())
        decoded = time.perf_counter()
        perception.add_camera(camera, image.stamp_ns, rgb, stamp, image_size=image_size)
        frame = perception.tokenize(perception.add_lidar(lidar, cloud.stamp_ns, points, intensity, stamp)[0])
        torch.set_num_threads(planner_cfg['num_threads'])
        tokenized = time.perf_counter()
        plan = planner.plan(frame.tokens)
        planned = time.perf_counter()
        critic_cloud = parse_cloud(bytes(cloud_data))
        critic.on_lidar(critic_cfg['lidars'][0], points_xyz(critic_cloud.array()), stamp, stamp)
        critic.on_trajectory(plan.trajectory, stamp + 1)
        checked = time.perf_counter()
        if i >= warmup:
            for stage, (a, b) in {'decode': (start, decoded), 'perception': (decoded, tokenized),
                                  'planner': (tokenized, planned), 'critic': (planned, checked)}.items():
                times[stage].append((b - a) * 1e3)
    return {stage: np.array(values) for stage, values in times.items()}
