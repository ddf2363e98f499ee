"""Fused tokens, trajectories, assessments, takeover requests and odometry round-trip through their messages."""

import math

import numpy as np
import pytest

from stack_common.assessment import Assessment, assessment_to_msg, msg_to_assessment
from stack_common.odometry import EgoState, ego_to_odometry, odometry_to_ego
from stack_common.takeover import TakeoverReason, msg_to_takeover, takeover_to_msg
from stack_common.tokens import EMBEDDING_OFFSET, Modality, TokenDecodeError, TokenSet, cloud_to_tokens, tokens_to_cloud
from stack_common.pointcloud import array_to_cloud
from stack_common.trajectory import Trajectory, path_to_trajectory, trajectory_to_path


def make_tokens(count=5, dim=16, stamp_ns=1_700_000_000_123_456_789) -> TokenSet:
    rng = np.random.default_rng(1)
    anchors = rng.normal(size=(count, 3)).astype(np.float32)
    anchors[0] = np.nan
    return TokenSet(stamp_ns, anchors, rng.integers(0, 3, count).astype(np.uint8),
                    rng.integers(0, 4, count).astype(np.uint8), rng.normal(size=(count, dim)).astype(np.float32))


def test_tokens_wire_layout_is_the_documented_one():
    msg = tokens_to_cloud(make_tokens(dim=16))
    layout = [(f.name, f.offset, f.datatype, f.count) for f in msg.fields]
    assert layout == [('x', 0, 7, 1), ('y', 4, 7, 1), ('z', 8, 7, 1), ('modality', 12, 2, 1), ('source', 13, 2, 1),
                      ('embedding', EMBEDDING_OFFSET, 7, 16)]
    assert msg.point_step == 16 + 4 * 16 and msg.height == 1 and msg.width == 5
    assert msg.header.frame_id == 'base_link'


def test_tokens_round_trip_exactly():
    tokens = make_tokens()
    back = cloud_to_tokens(tokens_to_cloud(tokens))
    assert back.stamp_ns == tokens.stamp_ns
    np.testing.assert_array_equal(back.anchors, tokens.anchors)  # NaN anchors included
    np.testing.assert_array_equal(back.modality, tokens.modality)
    np.testing.assert_array_equal(back.source, tokens.source)
    np.testing.assert_array_equal(back.embedding, tokens.embedding)
    assert back.count(Modality(tokens.modality[0])) == tokens.count(Modality(tokens.modality[0]))


def test_a_plain_cloud_is_not_a_token_set():
    points = np.zeros(3, [('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('modality', 'u1')])
    with pytest.raises(TokenDecodeError, match=r"lacks fields \['embedding', 'source'\]") as error:
        cloud_to_tokens(array_to_cloud(points, 0, 'base_link'))
    assert error.value.reason == 'missing_field'


def test_a_token_field_with_count_2_is_rejected():
    points = np.zeros(3, [('x', '<f4', (2,)), ('y', '<f4'), ('z', '<f4'), ('modality', 'u1'), ('source', 'u1'),
                          ('embedding', '<f4', (4,))])
    with pytest.raises(TokenDecodeError, match=r"fields \['x'\] have count > 1, expected 1") as error:
        cloud_to_tokens(array_to_cloud(points, 0, 'base_link'))
    assert error.value.reason == 'bad_field'


def test_tokens_from_another_layout_decode_to_the_contract_types():
    """float64 anchors and embedding, uint16 modality and source, an embedding of one value (count 1)."""
    points = np.zeros(2, [('x', '<f8'), ('y', '<f8'), ('z', '<f8'), ('modality', '<u2'), ('source', '<u2'),
                          ('embedding', '<f8')])
    points['x'], points['modality'], points['source'], points['embedding'] = [1.5, 2.5], [1, 2], [0, 3], [0.25, -1]
    tokens = cloud_to_tokens(array_to_cloud(points, 0, 'base_link'))
    assert (tokens.anchors.dtype, tokens.modality.dtype, tokens.source.dtype) == (np.float32, np.uint8, np.uint8)
    assert tokens.embedding.dtype == np.float32 and tokens.embedding.shape == (2, 1)
    assert tokens.embedding.flags['C_CONTIGUOUS']
    np.testing.assert_array_equal(tokens.anchors[:, 0], [1.5, 2.5])
    np.testing.assert_array_equal(tokens.embedding[:, 0], [0.25, -1])
    assert (tokens.count(Modality.CAMERA), tokens.count(Modality.LIDAR), tokens.count(Modality.EGO)) == (1, 1, 0)


def test_trajectory_round_trips_through_path():
    t_s = np.arange(1, 9) * 0.5
    trajectory = Trajectory(1_700_000_000_000_000_001, 'base_link', t_s,
                            np.stack([t_s * 10, np.sin(t_s)], 1), np.linspace(-3.0, 3.0, 8))
    msg = trajectory_to_path(trajectory)
    assert msg.poses[0].header.stamp.nanosec == 500_000_001
    back = path_to_trajectory(msg)
    assert back.stamp_ns == trajectory.stamp_ns and back.frame_id == 'base_link'
    np.testing.assert_allclose(back.t_s, t_s, atol=1e-9)
    np.testing.assert_allclose(back.xy, trajectory.xy)
    np.testing.assert_allclose(back.heading, trajectory.heading, atol=1e-9)
    assert {pose.header.frame_id for pose in msg.poses} == {'base_link'}


def test_a_path_from_another_planner_with_roll_and_pitch_gives_its_yaw():
    roll, pitch, yaw = 0.3, -0.2, 0.5   # ZYX Euler angles to a quaternion
    cr, sr, cp, sp, cy, sy = (f(a / 2) for a in (roll, pitch, yaw) for f in (math.cos, math.sin))
    msg = trajectory_to_path(Trajectory(0, 'base_link', np.array([0.5]), np.zeros((1, 2)), np.zeros(1)))
    q = msg.poses[0].pose.orientation
    q.w, q.x = cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy
    q.y, q.z = cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy
    assert path_to_trajectory(msg).heading[0] == pytest.approx(yaw)


def test_assessment_round_trip():
    assessment = Assessment(42, 3, 0.75, 0.6, 0.1, 0.8, 0.9, 1.5, {'cut_in': 0.9, 'merge': 0.05})
    msg = assessment_to_msg(assessment)
    assert 'cut_in' in msg.status[0].message
    assert msg_to_assessment(msg) == assessment


def test_takeover_request_carries_value_against_threshold():
    reasons = [TakeoverReason('watchdog', 'planner silent', 0.42, 0.3), TakeoverReason('validity', 'NaN in plan')]
    msg = takeover_to_msg(7, 'TAKEOVER_REQUESTED', reasons)
    assert [s.level for s in msg.status] == [b'\x02', b'\x02']
    assert msg_to_takeover(msg) == (7, reasons)
    assert msg_to_takeover(takeover_to_msg(8, 'NOMINAL', [])) == (8, [])


def test_odometry_round_trip():
    state = EgoState(5, 10.0, -2.0, 2.5, 7.0, 0.3, -0.2)
    back = odometry_to_ego(ego_to_odometry(state))
    assert back.stamp_ns == 5 and math.isclose(back.yaw, 2.5)
    assert (back.x, back.y, back.speed, back.lateral_speed, back.yaw_rate) == (10.0, -2.0, 7.0, 0.3, -0.2)
