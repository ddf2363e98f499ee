"""The frame policy, one rule for every consumer: a cloud in base_link is used as it is, one in the sensor frame
gets the configured extrinsic, any other frame the extrinsic and a warning naming both frames.

Held to it here: the policy itself, perception's core (what eval and training share) and the critic's core.
The same over DDS: test_critic_node.py and test_perception_node.py.
"""

import numpy as np
import pytest

from critic_monitor.monitor import CriticCore
from critic_monitor.state_machine import TakeoverState
from perception_llm.calibration import sensor_to_base, transform_points
from perception_llm.pipeline import PerceptionCore
from stack_common.config import load_node_config, merge_documents, read_params_file
from stack_common.frames import FramePolicy

from support import REPO, STACK_CONFIG
from critic_drive import Drive, box_points, profile_plan, reasons_of

LIDAR_TRANSLATION, LIDAR_RPY = (1.2, -0.4, 1.9), (0.03, -0.04, 0.6)
MS = 1_000_000


def test_the_base_frame_is_used_as_it_is_the_sensor_frame_gets_the_extrinsic_any_other_a_warning():
    policy = FramePolicy('lidar/top', 'lidar_top')
    assert policy.resolve('base_link').extrinsic is False and policy.resolve('base_link').warning is None
    assert policy.resolve('lidar_top').extrinsic is True and policy.resolve('lidar_top').warning is None
    for unexpected in ('velodyne', ''):
        choice = policy.resolve(unexpected)
        assert choice.extrinsic is True
        assert f"header.frame_id {unexpected!r}" in choice.warning and "'lidar_top'" in choice.warning
        assert "'base_link'" in choice.warning and choice.warning.startswith('lidar/top: ')


def test_an_image_has_no_base_frame_to_be_used_in_as_it_is():
    policy = FramePolicy('camera/front', 'camera_front_optical', base_frame=None)
    assert policy.resolve('camera_front_optical').warning is None
    choice = policy.resolve('base_link')
    assert choice.extrinsic and "'base_link'" in choice.warning and "'camera_front_optical'" in choice.warning


# --- perception (live, eval and training share its core) ----------------------------------------

def perception(**lidar) -> PerceptionCore:
    config = load_node_config('perception_llm', 'perception_node')
    config['cameras'], config['camera'], config['lidars'] = [], {}, ['roof']
    config['lidar'] = {'roof': {'frame_id': 'roof_lidar', 'translation_m': list(LIDAR_TRANSLATION),
                                'rotation_rpy_rad': list(LIDAR_RPY), 'rotation_quat_xyzw': [], **lidar}}
    warnings = []
    core = PerceptionCore(config, warn=warnings.append)
    core.warnings = warnings
    return core


def swept_points(core: PerceptionCore, points, frame_id, stamp_ns=1_000 * MS) -> np.ndarray:
    [synced] = core.add_lidar('roof', stamp_ns, points, None, stamp_ns, frame_id)
    return np.asarray(synced.members['lidar/roof'][1].points_base)


def test_perception_places_a_cloud_by_its_header_frame():
    rng = np.random.default_rng(0)
    base = np.column_stack([rng.uniform(0, 40, 500), rng.uniform(-15, 15, 500), rng.uniform(0, 2, 500)])
    sensor = transform_points(np.linalg.inv(sensor_to_base(LIDAR_TRANSLATION, LIDAR_RPY)), base)
    core = perception()
    in_base = swept_points(core, base, 'base_link', 1_000 * MS)
    np.testing.assert_allclose(in_base, base, atol=1e-5)
    from_sensor = swept_points(core, sensor, 'roof_lidar', 1_100 * MS)
    np.testing.assert_allclose(from_sensor, base, atol=1e-4)
    assert not core.warnings and not core.flagged
    unexpected = swept_points(core, sensor, 'velodyne', 1_200 * MS)
    np.testing.assert_allclose(unexpected, base, atol=1e-4)   # the configured extrinsic, with a warning
    assert core.flagged['lidar/roof/frame_mismatch'] == 1
    (warning,) = core.warnings
    assert "'velodyne'" in warning and "'roof_lidar'" in warning


def test_perception_warns_about_an_image_in_an_unexpected_frame_and_uses_it():
    config = load_node_config('perception_llm', 'perception_node', STACK_CONFIG)
    warnings = []
    core = PerceptionCore(config, warn=warnings.append)
    rgb = np.zeros((72, 128, 3), np.uint8)
    core.add_camera('front', 1_000 * MS, rgb, 1_000 * MS, 'camera_front_optical')
    assert not warnings
    core.add_camera('front', 1_100 * MS, rgb, 1_100 * MS, 'base_link')
    assert core.flagged['camera/front/frame_mismatch'] == 1 and "'base_link'" in warnings[0]


# --- the critic: the held-out case of issue 13 -------------------------------------------------

def flat_ground(z_m: float, spacing_m: float = 0.25) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(-10, 40, spacing_m), np.arange(-8, 8, spacing_m))
    return np.column_stack([xs.ravel(), ys.ravel(), np.full(xs.size, z_m)]).astype(np.float32)


class FramedDrive(Drive):
    """The critic's test drive with its cloud delivered in ``frame_id`` (the roof lidar is 1.8 m up)."""

    def __init__(self, frame_id: str, cloud_base: np.ndarray, **kwargs):
        super().__init__(**kwargs)
        self.frame_id, self.cloud_base, self.warnings = frame_id, cloud_base, []
        self.core = CriticCore(self.config, self.now, warn=self.warnings.append)
        lidar = self.config['lidar']['top']
        self.sensor_from_base = np.linalg.inv(sensor_to_base(lidar['translation_m'], lidar['rotation_rpy_rad']))

    def run(self, seconds: float, plans_hz: float = 0.0, plan=None) -> list:
        out = []
        end = self.now + int(seconds * 1e9)
        while self.now < end:
            out += super().run(0.1, plans_hz, plan)
            points = self.cloud_base if self.frame_id == 'base_link' else transform_points(
                self.sensor_from_base, self.cloud_base)
            out += self.core.on_lidar('top', points, self.now, self.now, self.frame_id)
        self.transitions += out
        return out


@pytest.mark.parametrize('frame_id', ['base_link', 'lidar_top'])
def test_flat_ground_at_2_cm_gives_no_takeover_in_either_frame_at_a_critic_with_a_roof_lidar(frame_id):
    drive = FramedDrive(frame_id, flat_ground(0.02), lidar=False, config={
        'checks': {'consistency': {'trajectory_shift': {'enabled': False}}}})
    assert drive.config['lidar']['top']['translation_m'][2] == 1.8
    drive.run(2.0, plans_hz=10)
    assert drive.core.state == TakeoverState.NOMINAL, [t.describe() for t in drive.transitions]
    assert drive.result('collision').ok and not drive.warnings


def test_ground_in_base_link_read_as_sensor_frame_would_be_a_takeover():
    """What the issue saw: a base_link cloud moved again by the extrinsic lifts the ground into the band."""
    drive = FramedDrive('lidar_top', flat_ground(0.02), lidar=False)
    drive.sensor_from_base = np.eye(4)   # the base_link points handed over as if in the lidar frame
    drive.run(1.5, plans_hz=10)
    assert not drive.result('collision').ok and 'footprint meets a point' in drive.result('collision').message


@pytest.mark.parametrize('frame_id', ['base_link', 'lidar_top'])
def test_a_box_in_the_path_still_requests_a_takeover_in_either_frame(frame_id):
    ground = flat_ground(0.02)
    drive = FramedDrive(frame_id, ground, lidar=False)
    drive.run(1.5, plans_hz=10)
    assert drive.core.state == TakeoverState.NOMINAL
    ahead_x = 15.0
    drive.cloud_base = np.concatenate([ground, box_points(ahead_x, 0.0)])
    transitions = drive.run(0.1)
    (reason,) = reasons_of(transitions, 'collision')
    assert transitions[0].state == TakeoverState.TAKEOVER_REQUESTED and reason.value < reason.threshold


def test_a_cloud_in_an_unexpected_frame_gets_the_extrinsic_and_a_warning_naming_both_frames():
    drive = FramedDrive('velodyne', flat_ground(0.02), lidar=False)
    drive.sensor_from_base = np.linalg.inv(sensor_to_base((0.0, 0.0, 1.8)))
    drive.run(1.5, plans_hz=10)
    assert drive.core.state == TakeoverState.NOMINAL and drive.result('collision').ok
    assert drive.warnings and "'velodyne'" in drive.warnings[0] and "'lidar_top'" in drive.warnings[0]


def test_lateral_acceleration_of_20_mps2_still_requests_a_takeover():
    drive = FramedDrive('base_link', flat_ground(0.02), lidar=False, speed_mps=20.0)
    drive.run(1.5, plans_hz=10)
    transitions = drive.plan(profile_plan(drive.now, speed=lambda t: 20.0, curvature=lambda t: 0.05))
    (reason,) = reasons_of(transitions, 'lateral_acceleration')
    assert reason.value == pytest.approx(20.0, rel=0.05) and transitions[-1].state == TakeoverState.TAKEOVER_REQUESTED


def test_the_autoware_overlay_works_without_zeroing_the_extrinsics():
    """Autoware's concatenated cloud is in base_link: the overlay names the topic, nothing else."""
    document = merge_documents(read_params_file(STACK_CONFIG),
                               read_params_file(REPO / 'config' / 'remaps' / 'autoware.yaml'))
    for node in ('perception_node', 'critic_node'):
        lidar = document[node]['ros__parameters']['lidar']['top']
        assert lidar['translation_m'] == [0.0, 0.0, 1.8], f'{node}: the overlay changes the lidar extrinsic'
    drive = FramedDrive('base_link', flat_ground(0.02), lidar=False, config=document['critic_node']['ros__parameters'])
    drive.run(1.5, plans_hz=10)
    assert drive.core.state == TakeoverState.NOMINAL and drive.result('collision').ok, drive.result('collision')
