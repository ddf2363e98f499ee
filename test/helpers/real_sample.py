"""The two real camera + lidar frames of ../shared/data/real_urban_sample as a driver would publish them, and
perception parameters with their calibration."""

import json
from pathlib import Path

import cv2
import numpy as np
import transforms3d

from perception_llm.calibration import sensor_to_base
from stack_common.config import load_schema, validate
from stack_common.image import image_msg_to_rgb, rgb_to_image_msg
from stack_common.pointcloud import array_to_cloud, cloud_to_array, points_xyz_intensity

SCENES = ('scene_a', 'scene_b')
LIDAR_HEIGHT_M = 2.0     # base_link on the road below the lidar (the sample's ground is 1.9-2.1 m below it)
VEHICLE_BOX_M = [-2.5, 2.7, -1.0, 1.0]   # the test car's own bonnet shows up 2.4 m ahead of the lidar
STAMP_NS = 1_605_333_546_782_735_800


def calibration_matrix(path: Path, key: str) -> np.ndarray:
    (entry,) = json.loads(path.read_text()).values()
    return np.array(entry['param'][key]['data'], float)


def real_params(scene: Path, compressed: bool = False) -> dict:
    """Perception node parameters for the sample: camera 'center' and lidar 'top' with its calibration."""
    K = calibration_matrix(scene / 'camera_intrinsic.json', 'cam_K')
    distortion = calibration_matrix(scene / 'camera_intrinsic.json', 'cam_dist').ravel()
    camera_from_lidar = calibration_matrix(scene / 'lidar_to_camera.json', 'sensor_calib')
    base_from_camera = sensor_to_base((0.0, 0.0, LIDAR_HEIGHT_M)) @ np.linalg.inv(camera_from_lidar)
    w, x, y, z = transforms3d.quaternions.mat2quat(base_from_camera[:3, :3]).tolist()
    return {
        'cameras': ['center'], 'lidars': ['top'], 'vehicle_box_m': VEHICLE_BOX_M,
        'camera': {'center': {'frame_id': 'center_camera', 'compressed': compressed,
                              'translation_m': base_from_camera[:3, 3].tolist(), 'rotation_quat_xyzw': [x, y, z, w],
                              'intrinsics': [float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])],
                              'distortion': distortion.tolist()}},
        'lidar': {'top': {'frame_id': 'top_center_lidar', 'translation_m': [0.0, 0.0, LIDAR_HEIGHT_M]}}}


def real_config(scene: Path, **options) -> dict:
    return validate(load_schema('perception_llm', 'perception_node'), real_params(scene, **options), 'perception_node')


def scene_messages(scene: Path):
    """The scene as a driver would publish it: (bgr8 Image, PointCloud2 with the file's layout)."""
    rgb = cv2.cvtColor(cv2.imread(str(scene / 'camera.png')), cv2.COLOR_BGR2RGB)
    points = np.load(scene / 'lidar.npy')
    return (rgb_to_image_msg(rgb, STAMP_NS, 'center_camera', 'bgr8'),
            array_to_cloud(points, STAMP_NS + 20_000_000, 'top_center_lidar'))


def decoded(scene: Path):
    """What the node hands to the core: RGB and finite xyz + intensity."""
    image_msg, cloud_msg = scene_messages(scene)
    return image_msg_to_rgb(image_msg), *points_xyz_intensity(cloud_to_array(cloud_msg))
