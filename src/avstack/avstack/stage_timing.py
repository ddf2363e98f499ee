"""Per-stage compute time of the stack's cores in one process, on synthetic frames with the default config.

Stages: decode (Image and PointCloud2 to arrays), perception (sync, prepare,
encode), planner (model forward and mode selection), critic (lidar filtering
and the checks of one plan). Their sum is the stack's compute per frame
without any ROS plumbing.
"""

import time

import numpy as np
import torch

from avstack.paths import default_config
from avstack.synthetic import SyntheticScene
from critic_monitor.monitor import CriticCore
from perception_llm.pipeline import PerceptionCore
from perception_llm.weights import load_encoders
from planner.loading import load_planner
from stack_common.config import load_node_config
from stack_common.image import image_msg_to_rgb, rgb_to_image_msg
from stack_common.odometry import EgoState
from stack_common.pointcloud import array_to_cloud, cloud_to_array, points_xyz_intensity

PERIOD_NS = 100_000_000


def stage_times_ms(frames: int, warmup: int = 3) -> dict[str, np.ndarray]:
    torch.set_num_threads(1)
    config = default_config()
    perception_cfg = load_node_config('perception_llm', 'perception_node', config)
    perception = PerceptionCore(perception_cfg, load_encoders(perception_cfg)[0])
    planner, _ = load_planner(load_node_config('planner', 'planner_node', config))
    critic_cfg = load_node_config('critic_monitor', 'critic_node', config)
    critic = CriticCore(critic_cfg, 1)
    camera, lidar = perception.cameras[0], perception.lidars[0]
    scene = SyntheticScene()
    times = {stage: [] for stage in ('decode', 'perception', 'planner', 'critic')}
    for i in range(frames + warmup):
        stamp = (i + 1) * PERIOD_NS
        image_msg = rgb_to_image_msg(scene.camera(i * 0.1), stamp, 'camera', 'bgr8')
        cloud_msg = array_to_cloud(scene.lidar(i * 0.1), stamp, 'lidar')
        ego = scene.ego(i * 0.1)
        ego.stamp_ns = stamp
        perception.add_odometry(ego)
        critic.on_odometry(EgoState(**vars(ego)), stamp)

        start = time.perf_counter()
        rgb = image_msg_to_rgb(image_msg)
        points, intensity = points_xyz_intensity(cloud_to_array(cloud_msg))
        decoded = time.perf_counter()
        perception.add_camera(camera, stamp, rgb, stamp)
        frame = perception.tokenize(perception.add_lidar(lidar, stamp, points, intensity, stamp)[0])
        tokenized = time.perf_counter()
        plan = planner.plan(frame.tokens)
        planned = time.perf_counter()
        critic.on_lidar(critic_cfg['lidars'][0], points, stamp, stamp)
        critic.on_trajectory(plan.trajectory, stamp + 1)
        checked = time.perf_counter()
        if i >= warmup:
            for stage, (a, b) in {'decode': (start, decoded), 'perception': (decoded, tokenized),
                                  'planner': (tokenized, planned), 'critic': (planned, checked)}.items():
                times[stage].append((b - a) * 1e3)
    return {stage: np.array(values) for stage, values in times.items()}
