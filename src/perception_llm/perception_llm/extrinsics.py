"""Sensor extrinsics: the pose of a sensor frame in ``base_link`` as a 4x4 transform."""

import numpy as np
import transforms3d


def sensor_to_base(translation_m, rotation_rpy_rad=(0.0, 0.0, 0.0), rotation_quat_xyzw=()) -> np.ndarray:
    """Homogeneous transform mapping points in the sensor frame to ``base_link``.

    Orientation from a quaternion (x, y, z, w) when given, else from roll, pitch,
    yaw applied about the fixed axes x, y, z (the ROS/URDF convention).
    """
    if len(rotation_quat_xyzw):
        x, y, z, w = rotation_quat_xyzw
        rotation = transforms3d.quaternions.quat2mat((w, x, y, z))
    else:
        rotation = transforms3d.euler.euler2mat(*rotation_rpy_rad, axes='sxyz')
    return transforms3d.affines.compose(np.asarray(translation_m, float), rotation, np.ones(3))


def transform_points(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to ``(N, 3)`` points, keeping their dtype."""
    rotation = transform[:3, :3].astype(points.dtype)
    return points @ rotation.T + transform[:3, 3].astype(points.dtype)
