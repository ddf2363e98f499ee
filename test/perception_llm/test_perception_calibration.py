"""Extrinsics and the camera model: the same rotation from rpy or quaternion, OpenCV's projection, rays back."""

import cv2
import numpy as np
import pytest
import transforms3d

from perception_llm.calibration import CameraModel, select_points, sensor_to_base, transform_points
from perception_llm.camera_encoder import ground_anchors, patch_anchors

# the default front camera of config/stack.yaml: optical frame 1.5 m ahead, 1.5 m up, looking along x
OPTICAL_RPY = (-np.pi / 2, 0.0, -np.pi / 2)
FRONT = CameraModel(800.0, 800.0, 640.0, 360.0, (), sensor_to_base((1.5, 0.0, 1.5), OPTICAL_RPY))
DISTORTIONS = [(), (-0.108, 0.139, -0.0038, -0.0048), (-0.103, -0.041, 0.00058, -0.0042, 0.43),
               (0.2, -0.1, 0.001, 0.002, 0.05, 0.1, -0.05, 0.02)]


def test_rpy_and_quaternion_give_the_same_extrinsic():
    rpy = (0.05, -0.1, 2.4)
    w, x, y, z = transforms3d.euler.euler2quat(*rpy, axes='sxyz')
    assert np.allclose(sensor_to_base((1, 2, 3), rpy), sensor_to_base((1, 2, 3), rotation_quat_xyzw=(x, y, z, w)))
    # a yaw of +90 degrees turns the sensor's x axis into base_link's y (REP 103, counter-clockwise)
    assert np.allclose(transform_points(sensor_to_base((0, 0, 0), (0, 0, np.pi / 2)), np.array([[1.0, 0, 0]])),
                       [[0, 1, 0]], atol=1e-6)


def test_an_unnormalised_quaternion_is_normalised_and_a_zero_one_refused():
    assert np.allclose(sensor_to_base((0, 0, 0), rotation_quat_xyzw=(0, 0, 0, 2.0)), np.eye(4))
    with pytest.raises(ValueError, match='zero length'):
        sensor_to_base((0, 0, 0), rotation_quat_xyzw=(0, 0, 0, 0))


def test_transform_points_matches_the_matrix_product_with_contiguous_columns():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(1000, 3)) * 20
    transform = sensor_to_base((1.0, -2.0, 0.5), (0.1, 0.2, 0.3))
    out = transform_points(transform, points)
    assert out.dtype == np.float32 and out[:, 2].flags['C_CONTIGUOUS']
    assert np.allclose(out, points @ transform[:3, :3].T + transform[:3, 3], atol=1e-4)
    keep = out[:, 0] > 0
    assert np.array_equal(select_points(out, keep), out[keep])


@pytest.mark.parametrize('distortion', DISTORTIONS, ids=lambda d: f'{len(d)} coefficients')
def test_projection_matches_opencv_project_points(distortion):
    rng = np.random.default_rng(len(distortion))
    camera = CameraModel(1000.0, 980.0, 950.0, 600.0, distortion,
                         sensor_to_base((1.2, 0.3, 1.6), (-np.pi / 2 + 0.02, 0.01, -np.pi / 2 - 0.05)))
    # points in front of the camera, within about the field of view of a 1900x1200 image
    points_camera = np.stack([rng.uniform(-0.9, 0.9, 2000), rng.uniform(-0.6, 0.6, 2000), np.ones(2000)], 1)
    points_camera *= rng.uniform(2.0, 80.0, (2000, 1))
    points_base = points_camera @ camera.base_from_camera[:3, :3].T + camera.base_from_camera[:3, 3]
    pixels, in_front = camera.project(points_base.astype(np.float32))
    expected, _ = cv2.projectPoints(points_camera, np.zeros(3), np.zeros(3), camera.matrix,
                                    np.array(distortion) if distortion else None)
    assert in_front.all()
    assert np.abs(pixels - expected.reshape(-1, 2)).max() < 0.05


def test_points_behind_the_camera_are_not_in_front():
    _, in_front = FRONT.project(np.array([[10.0, 0, 1.5], [0.0, 0, 1.5], [-5.0, 1, 1]], np.float32))
    assert in_front.tolist() == [True, False, False]


def test_pixel_rays_point_back_at_the_projected_points():
    camera = CameraModel(1000.0, 980.0, 950.0, 600.0, DISTORTIONS[2], FRONT.base_from_camera)
    points = np.array([[20.0, 3.0, 0.0], [8.0, -2.0, 1.0], [40.0, 5.0, 4.0]])
    pixels, _ = camera.project(points.astype(np.float32))
    rays = camera.pixel_rays_base(pixels)
    expected = points - camera.origin_base
    assert np.allclose(rays, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-4)


def test_ground_anchors_follow_pinhole_geometry():
    grid = (8, 16)
    anchors = ground_anchors(FRONT, (1280, 720), grid, max_range_m=60.0).reshape(*grid, 3)
    assert np.isnan(anchors[:4]).all(), 'patches above the horizon (the top half) have no ground point'
    # bottom row, centre: v = 675, so the ray meets the road at fy * height / (v - cy) ahead of the lens
    expected_x = 1.5 + 800.0 * 1.5 / (675.0 - 360.0)
    bottom = anchors[7, 7:9]
    assert np.allclose(bottom[:, 0], expected_x, atol=0.01) and np.allclose(bottom[:, 2], 0.0, atol=1e-4)
    assert bottom[0, 1] > 0 > bottom[1, 1], 'left image half is +y (left of the car)'


def test_patch_anchor_is_the_centroid_of_the_returns_seen_in_the_patch():
    grid = (8, 16)
    fallback = ground_anchors(FRONT, (1280, 720), grid, 60.0)
    # a wall 12 m ahead across the whole view, from the road to 3 m up
    ys, zs = np.meshgrid(np.linspace(-10, 10, 200), np.linspace(0.0, 3.0, 60))
    wall = np.stack([np.full(ys.size, 12.0), ys.ravel(), zs.ravel()], 1).astype(np.float32)
    anchors = patch_anchors(FRONT, (1280, 720), grid, wall, fallback).reshape(*grid, 3)
    seen = np.isfinite(anchors[..., 0]) & np.isclose(anchors[..., 0], 12.0)
    assert seen[3:6].all(), 'the rows looking at the wall anchor on it'
    row = anchors[4]
    assert np.all(np.diff(row[:, 1]) < 0), 'anchors move right (-y) from the left to the right of the image'
    assert np.allclose(anchors[0], fallback.reshape(*grid, 3)[0], equal_nan=True), 'sky keeps the fallback'
