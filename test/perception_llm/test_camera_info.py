"""camera_info: the conversion to intrinsics, and perception taking K and D from the latest one.

The node over DDS: test_perception_node.py.
"""

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo

from perception_llm.pipeline import PerceptionCore
from stack_common.camera_info import (
    CameraInfoError, Intrinsics, camera_info_to_intrinsics, intrinsics_to_camera_info,
)
from stack_common.tokens import Modality

from perception_frames import feed_frame, perception_config

STACK_INTRINSICS = Intrinsics(800.0, 800.0, 640.0, 360.0, (), (1280, 720))


@pytest.mark.parametrize('distortion', [(), (-0.1, 0.02, 0.001, -0.002, 0.0), (-0.1, 0.02, 0.001, -0.002, 0.01,
                                                                             0.0, 0.0, 0.003)])
def test_k_and_d_of_a_camera_info_are_the_intrinsics(distortion):
    intrinsics = Intrinsics(1266.4, 1265.1, 816.3, 491.5, distortion, (1600, 900))
    msg = intrinsics_to_camera_info(intrinsics, 5, 'cam')
    assert msg.distortion_model == ('rational_polynomial' if len(distortion) == 8 else 'plumb_bob')
    assert camera_info_to_intrinsics(msg) == intrinsics


def test_binning_and_a_region_of_interest_scale_and_shift_k_as_image_geometry_does():
    msg = intrinsics_to_camera_info(Intrinsics(1000.0, 1000.0, 960.0, 540.0, (), (1920, 1080)), 0, 'cam')
    msg.binning_x = msg.binning_y = 2
    msg.roi.x_offset, msg.roi.y_offset, msg.roi.width, msg.roi.height = 160, 40, 1600, 1000
    assert camera_info_to_intrinsics(msg) == Intrinsics(500.0, 500.0, 400.0, 250.0, (), (800, 500))


@pytest.mark.parametrize('edit, reason, fix', [
    (lambda m: None, 'uncalibrated', 'calibrate'),                                       # all zeros
    (lambda m: setattr(m, 'k', [500.0, 3.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]), 'skew', 'rectify'),
    (lambda m: (setattr(m, 'k', [500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]),
                setattr(m, 'distortion_model', 'equidistant'), setattr(m, 'd', [0.1, 0.01, 0.0, 0.0])),
     'distortion_model', 'rectify'),
])
def test_a_camera_info_the_stack_cannot_use_is_an_error_naming_the_fix(edit, reason, fix):
    msg = CameraInfo()
    edit(msg)
    with pytest.raises(CameraInfoError) as error:
        camera_info_to_intrinsics(msg)
    assert error.value.reason == reason and fix in str(error.value)


def camera_anchors(core: PerceptionCore, k: int):
    [synced] = feed_frame(core, k)
    frame = core.tokenize(synced)
    # 256x128 in 32 px patches
    return frame, frame.tokens.anchors[frame.tokens.modality == Modality.CAMERA].reshape(4, 8, 3)


def test_a_camera_without_intrinsics_gets_them_from_camera_info_and_says_so_until_then():
    config = perception_config()
    config['camera']['front']['intrinsics'] = []
    core = PerceptionCore(config)
    frame, anchors = camera_anchors(core, 0)
    assert frame.no_intrinsics == ['camera/front'] and np.isnan(anchors).all()
    assert core.set_intrinsics('front', STACK_INTRINSICS) is True
    assert core.set_intrinsics('front', STACK_INTRINSICS) is False, 'the same camera_info again changes nothing'
    frame, anchors = camera_anchors(core, 1)
    assert frame.no_intrinsics == []
    # as with the same intrinsics from the config: the road just ahead at the bottom centre
    _, configured = camera_anchors(PerceptionCore(perception_config()), 1)
    np.testing.assert_allclose(anchors, configured, atol=1e-4)


def test_the_latest_camera_info_replaces_the_configured_intrinsics():
    core = PerceptionCore(perception_config())
    _, before = camera_anchors(core, 0)
    zoomed = Intrinsics(1600.0, 1600.0, 640.0, 360.0, (), (1280, 720))   # twice the focal length
    core.set_intrinsics('front', zoomed)
    _, after = camera_anchors(core, 1)
    road_before, road_after = before[3, 3], after[3, 3]
    assert np.isfinite(road_before).all() and np.isfinite(road_after).all()
    assert road_after[0] > road_before[0] + 1.0, 'a longer lens sees the bottom row of the image further ahead'


def test_a_camera_info_for_another_image_size_is_flagged():
    warnings = []
    core = PerceptionCore(perception_config(), warn=warnings.append)
    core.set_intrinsics('front', Intrinsics(800.0, 800.0, 960.0, 540.0, (), (1920, 1080)))
    feed_frame(core, 0)
    assert core.flagged['camera/front/intrinsics_size'] == 1
    assert '1920x1080' in warnings[0] and '1280x720' in warnings[0]


def test_intrinsics_for_an_unconfigured_camera_are_refused():
    with pytest.raises(KeyError, match='rear'):
        PerceptionCore(perception_config()).set_intrinsics('rear', STACK_INTRINSICS)
