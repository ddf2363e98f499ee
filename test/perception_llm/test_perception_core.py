"""The perception core: fused token layout, masked missing sensors, ego token, time jumps, batching."""

import numpy as np
import pytest
import torch

from perception_llm.ego import EGO_FEATURE_SCALE, EgoHistory
from perception_llm.pipeline import PerceptionCore
from stack_common.config import ConfigError
from stack_common.odometry import EgoState
from stack_common.pointcloud import points_xyz_intensity
from stack_common.tokens import Modality
from perception_frames import MS, PERIOD, SCENE, feed_frame, perception_config



@pytest.fixture(scope='module')
def full_frame():
    core = PerceptionCore(perception_config())
    [synced] = feed_frame(core, 0)
    return core, core.tokenize(synced)


def test_a_full_frame_has_every_token_with_the_camera_stamp(full_frame):
    core, frame = full_frame
    tokens = frame.tokens
    assert frame.missing == [] and tokens.stamp_ns == 10_000 * MS, 'the stamp is the camera (reference) stamp'
    assert core.encoder_config.max_tokens(1) == 32 + 300 + 1
    assert tokens.count(Modality.CAMERA) == 32 and tokens.count(Modality.EGO) == 1 and tokens.dim == 64
    assert np.isfinite(tokens.embedding).all()
    # one BEV token per 4 m block that holds a return, none for empty blocks
    inputs = core.preprocess(feed_frame(PerceptionCore(perception_config()), 0)[0])
    occupied = inputs.bev[0].reshape(20, 8, 15, 8).max(axis=(1, 3)).ravel() > 0
    assert 0 < tokens.count(Modality.LIDAR) == occupied.sum() < 300
    lidar = tokens.modality == Modality.LIDAR
    expected = core.bev_grid.token_anchors(8)[occupied]
    assert np.array_equal(tokens.anchors[lidar, :2], expected) and not tokens.anchors[lidar, 2].any()
    np.testing.assert_allclose(tokens.embedding[tokens.modality == Modality.EGO][0, :3],
                               [SCENE.speed_mps / 10, 0.0, 0.0], atol=1e-6)   # the ego state itself
    assert frame.tokenize_ms == pytest.approx(sum(frame.stages_ms.values()))
    assert set(frame.stages_ms) == {'camera_resize', 'lidar_to_base_link', 'bev_grid', 'camera_anchors', 'encoders'}


def test_camera_tokens_are_anchored_on_the_lidar_returns_they_see(full_frame):
    _, frame = full_frame
    camera = frame.tokens.anchors[frame.tokens.modality == Modality.CAMERA].reshape(4, 8, 3)
    assert np.isnan(camera[0]).all(), 'the sky has no position'
    road = camera[3, 2:6]                 # bottom row, centre: the road just ahead
    assert np.isfinite(road).all() and np.all((road[:, 0] > 3) & (road[:, 0] < 10)) and np.all(abs(road[:, 2]) < 0.2)
    # the fences stand 6.25 m either side: the image edges anchor beyond the road, left +y, right -y
    assert camera[2, 0, 1] == pytest.approx(7.5, abs=0.8) and camera[2, 7, 1] == pytest.approx(-7.5, abs=0.8)
    # the 3 m post of the scene (x 52, y 6.5) is the only return above the horizon
    assert camera[1, 3] == pytest.approx([52.0, 6.5, 2.0], abs=0.6)


def test_a_silent_lidar_gives_camera_and_ego_tokens_with_the_lidar_reported_missing(full_frame):
    core = PerceptionCore(perception_config())
    assert feed_frame(core, 0, lidar=False) == []
    stamp = 10_000 * MS
    assert core.poll(stamp + 5 * MS + 149 * MS) == []
    [synced] = core.poll(stamp + 5 * MS + 150 * MS)
    frame = core.tokenize(synced)
    assert frame.missing == ['lidar/top']
    assert frame.tokens.count(Modality.LIDAR) == 0 and frame.tokens.count(Modality.CAMERA) == 32
    full = full_frame[1].tokens
    camera = full.modality == Modality.CAMERA
    assert np.array_equal(frame.tokens.embedding[:32], full.embedding[camera]), 'camera tokens do not depend on it'
    assert core.counters()['partial_sets'] == 1


def test_without_recent_odometry_there_is_no_ego_token_and_odometry_is_missing():
    core = PerceptionCore(perception_config())
    [synced] = feed_frame(core, 0, odometry=False)
    frame = core.tokenize(synced)
    assert frame.missing == ['odometry'] and frame.tokens.count(Modality.EGO) == 0
    core.add_odometry(EgoState(10_000 * MS, 0, 0, 0, 5.0))
    [synced] = feed_frame(core, 8, odometry=False)            # 0.8 s later: older than odometry_max_age_s
    assert core.tokenize(synced).missing == ['odometry']


def test_the_ego_token_reads_speed_yaw_rate_and_acceleration():
    history = EgoHistory()
    for k in range(20):                                       # 2 m/s^2 from 4 m/s, turning at 0.1 rad/s
        history.add(EgoState(k * 50 * MS, 0, 0, 0, 4.0 + 2.0 * k * 0.05, yaw_rate=0.1))
    features = history.features(19 * 50 * MS) / EGO_FEATURE_SCALE
    assert features == pytest.approx([4.0 + 2.0 * 0.95, 0.1, 2.0], abs=1e-4)
    assert history.add(EgoState(10 * 50 * MS, 0, 0, 0, 1.0)) == 'out_of_order'
    assert history.add(EgoState(19 * 50 * MS, 0, 0, 0, 1.0)) == 'duplicate_stamp'
    assert history.add(EgoState(20 * 50 * MS, 0, 0, 0, float('nan'))) == 'non_finite'
    assert history.features(19 * 50 * MS + 600 * MS) is None, 'older than max_age'


def test_time_going_back_clears_queues_and_history_and_never_raises():
    core = PerceptionCore(perception_config())
    for k in range(5):
        feed_frame(core, k)
    feed_frame(core, 5, lidar=False)                          # a camera frame left waiting
    # the bag loops: stamps start 10 s earlier, odometry of the old epoch must not be used
    ready = feed_frame(core, 0, odometry=False, base_ns=0)
    assert core.time_resets == 1 and len(ready) == 1
    frame = core.tokenize(ready[0])
    assert frame.tokens.stamp_ns == 0 and frame.missing == ['odometry']
    assert sum(core.sync.pending().values()) == 0 and len(core.ego) == 0
    [synced] = feed_frame(core, 1, base_ns=0)
    assert core.tokenize(synced).missing == []


def test_two_cameras_and_two_lidars_fill_the_static_layout_and_merge_the_lidars():
    config = perception_config()
    config['cameras'], config['lidars'] = ['front', 'rear'], ['top', 'bumper']
    config['camera']['rear'] = dict(config['camera']['front'], topic='', rotation_rpy_rad=[-1.5707963, 0.0, 1.5707963])
    config['lidar']['bumper'] = dict(config['lidar']['top'], topic='', translation_m=[3.5, 0.0, 0.5])
    core = PerceptionCore(config)
    stamp, rgb = 5 * PERIOD, SCENE.camera(0.0)
    top_points, intensity = points_xyz_intensity(SCENE.lidar(0.0))
    core.add_odometry(EgoState(stamp, 0, 0, 0, 8.0))
    core.add_camera('front', stamp, rgb, stamp)
    core.add_camera('rear', stamp + 10 * MS, rgb, stamp)
    core.add_lidar('top', stamp + 20 * MS, top_points, intensity, stamp)
    bumper_only = np.array([[20.0, -10.0, 0.5 + 0.1 * i] for i in range(10)], np.float32)  # 20 m ahead of the bumper
    [synced] = core.add_lidar('bumper', stamp + 30 * MS, bumper_only, None, stamp)
    inputs = core.preprocess(synced)
    frame = core.tokenize(synced)
    assert core.encoder_config.max_tokens(2) == 2 * 32 + 300 + 1
    cameras = frame.tokens.modality == Modality.CAMERA
    assert frame.tokens.source[cameras].tolist() == [0] * 32 + [1] * 32
    row, col = int((23.5 + 20) / 0.5), int((-10 + 30) / 0.5)
    assert inputs.bev[0, row, col] == pytest.approx(np.log(11.0)), 'the bumper lidar shows up in the shared grid'
    assert inputs.bev[3, row, col] == 0.0, 'one lidar without intensity: the channel is 0'


def test_fuse_is_batchable_over_frames_and_equals_the_live_tokens():
    core = PerceptionCore(perception_config())
    frames = [core.preprocess(feed_frame(core, k)[0]) for k in range(3)]
    frames[1].camera_present[:] = False                        # as if the camera was missing in frame 1
    batch = {key: torch.cat([f.batch()[key] for f in frames]) for key in frames[0].batch()}
    with torch.inference_mode():
        fused = core.encoders.fuse(**batch)
    assert fused.embedding.shape == (3, core.encoder_config.max_tokens(1), 64)
    assert fused.mask[1, :32].sum() == 0 and fused.mask[0, :32].all() and fused.mask[:, -1].all()
    for i, inputs in enumerate(frames):
        live = core.encode(inputs)
        mask = fused.mask[i]
        assert torch.allclose(fused.embedding[i][mask], torch.from_numpy(live.embedding), atol=1e-5)
        assert np.array_equal(fused.anchors[i][mask].numpy(), live.anchors, equal_nan=True)


def test_sensor_configuration_errors_name_the_key():
    config = perception_config()
    config['camera']['side'] = dict(config['camera']['front'])
    with pytest.raises(ConfigError, match=r'camera\.side .* not in cameras'):
        PerceptionCore(config)
    config = perception_config()
    config['lidar']['top']['rotation_quat_xyzw'] = [0.0, 0.0, 0.0, 0.0]
    with pytest.raises(ConfigError, match=r'lidar\.top: quaternion'):
        PerceptionCore(config)


def test_an_unconfigured_sensor_name_is_a_clear_error():
    core = PerceptionCore(perception_config())
    with pytest.raises(KeyError, match="camera 'rear' is not configured"):
        core.add_camera('rear', 0, np.zeros((10, 10, 3), np.uint8), 0)
