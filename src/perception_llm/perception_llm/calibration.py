"""Sensor calibration: extrinsics to ``base_link`` and the pinhole camera model with lens distortion.

Extrinsics are 4x4 transforms mapping points in a sensor frame to
``base_link`` (REP 103: x forward, y left, z up), built from a translation and
roll/pitch/yaw or a quaternion with transforms3d. Camera frames are optical
frames (z forward, x right, y down). :class:`CameraModel` projects
``base_link`` points to pixels with OpenCV's distortion model (k1, k2, p1, p2
[, k3 [, k4, k5, k6]]), written here in numpy so the stack does not depend on
how a library version handles edge cases; the tests hold it to OpenCV's
``projectPoints``. Point arrays are ``(N, 3)``; everything is vectorised.
"""

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np
import transforms3d

DISTORTION_LENGTHS = (0, 4, 5, 8)


def sensor_to_base(translation_m, rotation_rpy_rad=(0.0, 0.0, 0.0), rotation_quat_xyzw=()) -> np.ndarray:
    """Homogeneous transform mapping points in the sensor frame to ``base_link``.

    Orientation from a quaternion (x, y, z, w, as in ROS messages) when given,
    else from roll, pitch, yaw about the fixed axes x, y, z (the URDF
    convention, ``static_transform_publisher``'s ``--roll --pitch --yaw``).
    """
    if len(rotation_quat_xyzw):
        x, y, z, w = rotation_quat_xyzw
        norm = float(np.linalg.norm([w, x, y, z]))
        if not norm > 1e-9:
            raise ValueError(f'quaternion {list(rotation_quat_xyzw)} has zero length')
        rotation = transforms3d.quaternions.quat2mat(np.array([w, x, y, z]) / norm)
    else:
        rotation = transforms3d.euler.euler2mat(*rotation_rpy_rad, axes='sxyz')
    return transforms3d.affines.compose(np.asarray(translation_m, float), rotation, np.ones(3))


def transform_points(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to ``(N, 3)`` points; ``(N, 3) float32``.

    Computed per output axis into column-major storage (the result is a
    transposed view, so ``out[:, i]`` is contiguous): for a lidar sweep this
    is several times faster than a BLAS matmul with a 3-wide inner dimension,
    stays on one core, and speeds up every per-axis operation after it.
    """
    points = np.asarray(points)
    rotation, translation = transform[:3, :3].astype(np.float32), transform[:3, 3].astype(np.float32)
    x, y, z = (points[:, i].astype(np.float32, copy=False) for i in range(3))
    out = np.empty((3, len(points)), np.float32)
    for axis in range(3):
        r = rotation[axis]
        np.multiply(x, r[0], out=out[axis])
        out[axis] += r[1] * y
        out[axis] += r[2] * z
        out[axis] += translation[axis]
    return out.T


def select_points(points: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``points[keep]`` for ``(N, 3)`` points, as a column-major ``(M, 3)`` view like :func:`transform_points`."""
    out = np.empty((3, int(np.count_nonzero(keep))), np.float32)
    for axis in range(3):
        out[axis] = points[:, axis][keep]
    return out.T


@dataclass(frozen=True)
class CameraModel:
    """A calibrated camera: intrinsics of the published image, distortion and pose in ``base_link``."""

    fx: float
    fy: float
    cx: float
    cy: float
    distortion: tuple[float, ...]     # OpenCV order, 0, 4, 5 or 8 coefficients
    base_from_camera: np.ndarray      # 4x4, camera optical frame -> base_link

    def __post_init__(self):
        if len(self.distortion) not in DISTORTION_LENGTHS:
            raise ValueError(f'distortion needs 0, 4, 5 or 8 coefficients, got {len(self.distortion)}')
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f'focal lengths must be positive, got fx={self.fx}, fy={self.fy}')

    @cached_property
    def camera_from_base(self) -> np.ndarray:
        return np.linalg.inv(self.base_from_camera)

    def depth(self, points_base: np.ndarray) -> np.ndarray:
        """``(N,) float32`` distance of ``base_link`` points along the optical axis (negative: behind)."""
        r, t = self.camera_from_base[2, :3].astype(np.float32), np.float32(self.camera_from_base[2, 3])
        return r[0] * points_base[:, 0] + r[1] * points_base[:, 1] + r[2] * points_base[:, 2] + t

    @property
    def matrix(self) -> np.ndarray:
        """The 3x3 intrinsic matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def project(self, points_base: np.ndarray, min_depth_m: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
        """Pixels ``(N, 2) float64`` (u right, v down) and ``in_front (N,) bool`` (depth above ``min_depth_m``).

        Pixels of points behind the camera are meaningless; callers keep
        ``in_front`` and check the image bounds themselves.
        """
        return self.project_camera_frame(transform_points(self.camera_from_base, points_base), min_depth_m)

    def project_camera_frame(self, points_camera: np.ndarray,
                             min_depth_m: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`project`, for points already in the camera's optical frame."""
        x, y, z = (np.asarray(points_camera[:, i], np.float64) for i in range(3))
        in_front = z > min_depth_m
        with np.errstate(divide='ignore', invalid='ignore'):
            a, b = x / z, y / z
        xd, yd = self._distort(a, b)
        return np.stack([self.fx * xd + self.cx, self.fy * yd + self.cy], axis=1), in_front

    def _distort(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """OpenCV's radial-tangential model on normalised coordinates."""
        if not self.distortion:
            return a, b
        k = np.zeros(8)
        k[:len(self.distortion)] = self.distortion
        k1, k2, p1, p2, k3, k4, k5, k6 = k
        r2 = a * a + b * b
        radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
        ab = a * b
        return (a * radial + 2 * p1 * ab + p2 * (r2 + 2 * a * a),
                b * radial + p1 * (r2 + 2 * b * b) + 2 * p2 * ab)

    def pixel_rays_base(self, pixels: np.ndarray) -> np.ndarray:
        """Unit ray directions in ``base_link`` through ``(M, 2)`` pixels (distortion removed)."""
        normalised = cv2.undistortPoints(np.asarray(pixels, np.float64).reshape(-1, 1, 2), self.matrix,
                                         np.asarray(self.distortion, np.float64) if self.distortion else None)
        rays = np.concatenate([normalised.reshape(-1, 2), np.ones((len(pixels), 1))], axis=1)
        rays = rays @ self.base_from_camera[:3, :3].T
        return rays / np.linalg.norm(rays, axis=1, keepdims=True)

    @property
    def origin_base(self) -> np.ndarray:
        return self.base_from_camera[:3, 3].copy()
