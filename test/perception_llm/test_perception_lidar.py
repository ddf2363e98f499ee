"""Lidar tokenizer: BEV features per cell, obstacles land in the right token through a real extrinsic."""

import numpy as np
import pytest
import torch

from perception_llm.calibration import sensor_to_base, transform_points
from perception_llm.lidar_encoder import (
    BEV_CHANNELS, COUNT, INTENSITY, MIN_HEIGHT, RADIAL_VELOCITY, RADIAL_VELOCITY_CLIP, RADIAL_VELOCITY_SCALE_MPS,
    BevGrid, LidarEncoder)
from perception_llm.pipeline import PerceptionCore
from stack_common.config import load_node_config

GRID = BevGrid((-20.0, 60.0), (-30.0, 30.0), (-2.0, 4.0), 0.5)
# lidar 1.2 m ahead, 0.4 m right, 1.9 m up, yawed 34 degrees left and slightly tilted
LIDAR_TRANSLATION, LIDAR_RPY = (1.2, -0.4, 1.9), (0.03, -0.04, 0.6)
MS = 1_000_000


def lidar_config(**lidar_encoder) -> dict:
    config = load_node_config('perception_llm', 'perception_node')
    config['cameras'], config['camera'], config['lidars'] = [], {}, ['roof']
    config['lidar'] = {'roof': {'translation_m': list(LIDAR_TRANSLATION), 'rotation_rpy_rad': list(LIDAR_RPY),
                                'rotation_quat_xyzw': [], 'max_intensity': 255.0}}
    config['lidar_encoder'] |= lidar_encoder
    return config


def ground_m(x_range, y_range, spacing=0.25) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(*x_range, spacing), np.arange(*y_range, spacing))
    return np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], 1)


def pole_m(x, y, height=1.5, width=0.3) -> np.ndarray:
    xs, ys, zs = np.meshgrid(np.linspace(x - width / 2, x + width / 2, 5), np.linspace(y - width / 2, y + width / 2, 5),
                             np.linspace(0.1, height, 10))
    return np.stack([xs.ravel(), ys.ravel(), zs.ravel()], 1)


def lidar_tokens(core: PerceptionCore, points_base: np.ndarray, stamp_ns: int):
    """Tokens of a sweep given in base_link, handed to the core in the lidar's own frame."""
    sensor_from_base = np.linalg.inv(sensor_to_base(LIDAR_TRANSLATION, LIDAR_RPY))
    points_sensor = transform_points(sensor_from_base, points_base)
    [synced] = core.add_lidar('roof', stamp_ns, points_sensor, np.full(len(points_sensor), 100.0), stamp_ns)
    return core.tokenize(synced).tokens


@pytest.mark.parametrize('stride, cell_m, tolerance', [(8, 0.5, 'token'), (1, 0.5, 'cell')])
def test_an_obstacle_lands_in_the_token_anchored_within_one_cell_of_it(stride, cell_m, tolerance):
    config = lidar_config(token_stride=stride, cell_size_m=cell_m,
                          **({} if stride > 1 else {'x_range_m': [0.0, 40.0], 'y_range_m': [-20.0, 20.0]}))
    core = PerceptionCore(config)
    true_xy = np.array([23.3, 7.9])
    road = ground_m((0, 40), (-15, 15))
    empty = lidar_tokens(core, road, 1_000 * MS)
    with_pole = lidar_tokens(core, np.concatenate([road, pole_m(*true_xy)]), 1_100 * MS)
    change = np.linalg.norm(with_pole.embedding - empty.embedding, axis=1)
    token = int(np.argmax(change))
    anchor = with_pole.anchors[token]
    token_m = stride * cell_m
    limit = token_m / 2 if tolerance == 'token' else cell_m
    assert np.all(np.abs(anchor[:2] - true_xy) <= limit), f'anchor {anchor} vs true {true_xy}'
    assert anchor[2] == 0.0 and with_pole.modality[token] == 2
    changed = with_pole.anchors[change > 0, :2]
    assert np.all(np.abs(changed - true_xy) <= 1.5 * token_m + 0.15), 'only the tokens at and next to it change'


def test_the_extrinsic_is_applied_an_unrotated_mounting_would_misplace_the_obstacle():
    core = PerceptionCore(lidar_config())
    true_xy = np.array([23.3, 7.9])
    sensor_points = transform_points(np.linalg.inv(sensor_to_base(LIDAR_TRANSLATION, LIDAR_RPY)), pole_m(*true_xy))
    grid = BevGrid((-20.0, 60.0), (-30.0, 30.0), (-2.0, 4.0), 0.5)
    naive = grid.features(sensor_points)            # pretending the lidar frame were base_link
    [synced] = core.add_lidar('roof', 1, sensor_points, None, 1)
    calibrated = core.preprocess(synced).bev
    cell_of = lambda bev: np.unravel_index(np.argmax(bev[COUNT]), bev[COUNT].shape)  # noqa: E731
    row, col = cell_of(calibrated)
    assert abs(-20.0 + (row + 0.5) * 0.5 - true_xy[0]) <= 0.5 and abs(-30.0 + (col + 0.5) * 0.5 - true_xy[1]) <= 0.5
    assert cell_of(naive) != (row, col)


def test_cell_features_are_count_max_and_min_height_and_mean_intensity():
    points = np.array([[10.1, 0.2, 0.0], [10.2, 0.3, 1.0], [10.3, 0.1, 2.5],   # one cell, three returns
                       [-5.0, -5.0, -1.0]], np.float32)
    bev = GRID.features(points, np.array([0.2, 0.4, 0.6, 1.0], np.float32))
    row, col = int((10.1 + 20) / 0.5), int((0.2 + 30) / 0.5)
    cell = bev[:, row, col]
    assert cell[COUNT] == pytest.approx(np.log(4.0))
    assert GRID.height_above_m(bev)[row, col] == pytest.approx(2.5, abs=1e-5)
    assert GRID.height_above_m(bev, MIN_HEIGHT)[row, col] == pytest.approx(0.0, abs=1e-5)
    assert cell[INTENSITY] == pytest.approx(0.4)
    assert np.count_nonzero(bev[COUNT]) == 2
    assert bev.shape == (BEV_CHANNELS, 160, 120) and bev.dtype == np.float32


def test_points_outside_the_box_or_not_finite_are_ignored_and_no_intensity_is_zero():
    points = np.array([[70.0, 0, 0], [0, 31.0, 0], [0, 0, 4.5], [0, 0, -2.5], [np.nan, 0, 0],
                       [np.inf, 1, 1], [1.0, 1.0, np.nan], [5.0, 5.0, 1.0]], np.float32)
    bev = GRID.features(points, None)
    assert np.count_nonzero(bev[COUNT]) == 1 and bev[COUNT].sum() == pytest.approx(np.log(2.0))
    assert not bev[INTENSITY].any() and np.isfinite(bev).all()


def test_radial_velocity_is_the_mean_per_cell_scaled_and_clipped_and_zero_without_it():
    points = np.array([[10.1, 0.2, 0.5], [10.2, 0.3, 1.0], [30.0, 5.0, 1.0], [40.0, -5.0, 1.0]], np.float32)
    bev = GRID.features(points, None, np.array([-6.0, -4.0, 12.0, -80.0], np.float32))

    def cell(x, y):
        return int((x + 20) / 0.5), int((y + 30) / 0.5)
    assert bev[RADIAL_VELOCITY][cell(10.1, 0.2)] == pytest.approx(-5.0 / RADIAL_VELOCITY_SCALE_MPS)   # closing
    assert bev[RADIAL_VELOCITY][cell(30.0, 5.0)] == pytest.approx(1.2)                                  # receding
    assert bev[RADIAL_VELOCITY][cell(40.0, -5.0)] == pytest.approx(-RADIAL_VELOCITY_CLIP)
    assert not GRID.features(points, None, None)[RADIAL_VELOCITY].any()


def test_only_blocks_that_hold_a_return_make_bev_tokens():
    encoder = LidarEncoder(64, GRID.shape, 8)
    bev = torch.from_numpy(GRID.features(np.array([[10.1, 0.2, 0.5], [50.0, -20.0, 1.0]], np.float32)))[None]
    occupied = encoder.occupied_blocks(bev)[0]
    anchors = GRID.token_anchors(8)[occupied.numpy()]
    assert occupied.sum() == 2 and anchors.tolist() == [[10.0, 0.0], [50.0, -20.0]]   # 4 m blocks around them


def test_an_empty_sweep_gives_an_empty_grid():
    bev = GRID.features(np.zeros((0, 3), np.float32), np.zeros(0, np.float32))
    assert bev.shape == (BEV_CHANNELS, 160, 120) and not bev.any()


def test_anchors_are_the_centres_of_the_token_blocks_in_row_major_order():
    anchors = GRID.token_anchors(8)
    assert anchors.shape == (20 * 15, 2)
    assert anchors[0].tolist() == [-18.0, -28.0] and anchors[1].tolist() == [-18.0, -24.0]
    assert anchors[15].tolist() == [-14.0, -28.0] and anchors[-1].tolist() == [58.0, 28.0]


def test_vehicle_box_removes_the_cars_own_returns():
    config = lidar_config()
    config['vehicle_box_m'] = [-1.0, 3.0, -1.0, 1.0]
    core = PerceptionCore(config)
    body = pole_m(2.0, 0.0, height=1.2, width=1.5)
    sensor_points = transform_points(np.linalg.inv(sensor_to_base(LIDAR_TRANSLATION, LIDAR_RPY)), body)
    [synced] = core.add_lidar('roof', 1, sensor_points, None, 1)
    assert not core.preprocess(synced).bev.any()


@pytest.mark.parametrize('stride', [1, 2, 4, 8, 16])
def test_the_encoder_gives_one_token_per_block_for_any_power_of_two_stride(stride):
    encoder = LidarEncoder(32, (32, 48), stride).eval()
    with torch.inference_mode():
        tokens = encoder(torch.zeros(2, BEV_CHANNELS, 32, 48))
    assert tokens.shape == (2, (32 // stride) * (48 // stride), 32)


def test_a_stride_that_is_no_power_of_two_is_refused():
    with pytest.raises(ValueError, match='power of two'):
        LidarEncoder(32, (36, 48), 6)
