"""The collision check: lidar pre-processing, the swept footprint, and the check inside the core."""

import math

import numpy as np
import pytest

from avstack.synthetic.scene import Box, SyntheticScene
from critic_monitor.collision import Footprint, LidarFilter, Sweep, first_contact, sweep_poses
from critic_monitor.geometry import PlanPath
from critic_monitor.monitor import CriticCore
from critic_monitor.state_machine import TakeoverState
from stack_common.odometry import EgoState
from stack_common.pointcloud import points_xyz

from critic_drive import CAMERA, PLAN_LATENCY_NS, S, T0, critic_config, profile_plan, reasons_of, started

VEHICLE = {'length_m': 4.8, 'width_m': 1.9, 'rear_overhang_m': 1.0}
BODY = Footprint.from_config(VEHICLE)


def lidar_filter(translation=(0.0, 0.0, 1.8), rpy=(0.0, 0.0, 0.0)) -> LidarFilter:
    return LidarFilter(translation, rpy, 0.3, 2.5, 100.0, BODY)


def test_lidar_filter_moves_points_to_base_link_and_drops_ground_overhead_and_own_body():
    sensor = np.array([[10.0, 0.0, -1.8],    # ground below the lidar
                       [10.0, 0.0, -1.0],    # an obstacle 0.8 m high
                       [10.0, 0.0, 1.5],     # a sign 3.3 m up: the car passes under it
                       [1.0, 0.0, -1.0],     # the car's own bonnet
                       [150.0, 0.0, -1.0]],  # out of range
                      np.float32)
    kept, beams, radial = lidar_filter()(sensor)
    assert beams is None and radial is None, "no velocities without the field"
    np.testing.assert_allclose(kept, [[10.0, 0.0]], atol=1e-6)


def test_lidar_filter_applies_the_rotation_of_a_backward_facing_lidar():
    backward = lidar_filter(translation=(-1.0, 0.5, 1.0), rpy=(0.0, 0.0, math.pi))
    kept, _, _ = backward(np.array([[5.0, 1.0, 0.0]], np.float32))
    np.testing.assert_allclose(kept, [[-6.0, -0.5]], atol=1e-5)


def test_lidar_filter_keeps_the_open_height_band_and_the_closed_range_and_returns_float32():
    cut = LidarFilter((2.0, 0.0, 2.0), (0.0, 0.0, 0.0), 0.5, 3.0, 50.0, BODY)
    sensor = np.array([[10.0, 0.0, -1.5],     # exactly at the lowest height: ground, dropped
                       [10.0, 0.0, 1.0],      # exactly at the highest: overhead, dropped
                       [48.0, 0.0, 0.0],      # exactly at the range in x: kept
                       [10.0, 50.0, 0.0]])    # exactly at the range in y: kept
    kept, _, _ = cut(sensor)   # float64 in
    assert kept.dtype == np.float32
    np.testing.assert_array_equal(kept, [[50.0, 0.0], [12.0, 50.0]])


def test_footprint_from_the_vehicle_with_a_margin_and_its_corners():
    assert Footprint.from_config(VEHICLE) == Footprint(3.8, 1.0, 0.95), "no margin unless one is given"
    footprint = Footprint.from_config(VEHICLE, 0.25)
    assert (footprint.front_m, footprint.rear_m, footprint.half_width_m) == pytest.approx((4.05, 1.25, 1.2))
    np.testing.assert_allclose(footprint.corners(), [[4.05, 1.2], [-1.25, 1.2], [-1.25, -1.2], [4.05, -1.2]])


def test_sweep_footprints_are_the_corners_at_each_pose():
    footprint = Footprint(4.0, 1.0, 1.0)
    sweep = Sweep(np.array([0.0, 1.0]), np.array([[0.0, 0.0], [10.0, 2.0]]), np.array([0.0, math.pi / 2]),
                  np.array([0.0, 10.2]))
    np.testing.assert_allclose(sweep.footprints(footprint), [[[4, 1], [-1, 1], [-1, -1], [4, -1]],
                                                             [[9, 6], [9, 1], [11, 1], [11, 6]]], atol=1e-12)


def straight_sweep(poses: int = 21, interval_m: float = 0.5) -> Sweep:
    x = interval_m * np.arange(poses)
    return Sweep(x / 10.0, np.stack([x, np.zeros(poses)], 1), np.zeros(poses), x)


@pytest.mark.parametrize('point, pose', [
    ((5.0, 0.0), 2),     # exactly on the front edge at x = 1.0
    ((5.0, 1.0), 2),     # and on the side edge
    ((-1.0, 0.0), 0),    # exactly on the rear edge of the first pose
    ((-1.0, 1.0), 0),    # and on its rear corner, which lies furthest from the coarse circles
])
def test_a_point_on_the_footprint_edge_is_a_contact(point, pose):
    footprint = Footprint(4.0, 1.0, 1.0)
    assert footprint.contains(np.array([point]) - [0.5 * pose, 0.0])[0]   # in base_link at that pose
    result = first_contact(straight_sweep(), footprint, np.array([point], np.float32))
    assert result.contact is True and result.pose_index == pose
    assert result.distance_m == pytest.approx(0.5 * pose) and result.time_s == pytest.approx(0.05 * pose)


def test_the_first_contact_names_the_point_furthest_ahead_in_that_footprint():
    points = np.array([[30.0, 0.0], [6.2, -0.5], [6.4, 0.5]], np.float32)   # the last two enter at the same pose
    result = first_contact(straight_sweep(), Footprint(4.0, 1.0, 1.0), points)
    assert result.pose_index == 5 and result.point_xy.tolist() == pytest.approx([6.4, 0.5])
    assert result.candidates == 2   # the point 30 m ahead never came near the sweep


def test_no_contact_says_so_with_the_points_left_near_the_sweep():
    sweep, footprint = straight_sweep(), Footprint(4.0, 1.0, 1.0)
    near = first_contact(sweep, footprint, np.array([[5.0, 1.5], [12.0, -1.2]], np.float32))   # beside the path
    assert near.contact is False and near.candidates == 2
    boxed = first_contact(sweep, footprint, np.array([[-1.1, 2.6]], np.float32))   # in the box, far from circles
    assert boxed.contact is False and boxed.candidates == 0
    # 3 m ahead of the last footprint's centre: within its coarse circle, beyond the sweep's bounding box
    beyond = first_contact(sweep, footprint, np.array([[14.5, 0.0]], np.float32))
    assert beyond.contact is False and beyond.candidates == 0
    assert first_contact(sweep, footprint, np.zeros((0, 2), np.float32)).contact is False
    assert first_contact(Sweep(*(np.zeros(0),) * 2, np.zeros(0), np.zeros(0)), footprint,
                         np.ones((1, 2), np.float32)).contact is False


@pytest.mark.parametrize('seed', range(20))
def test_a_single_point_at_a_footprint_corner_of_any_pose_is_found(seed):
    """The corners lie furthest from the coarse circles: the pre-filters must still keep such a point."""
    rng = np.random.default_rng(seed)
    speed, curvature = rng.uniform(2.0, 20.0), rng.uniform(-0.2, 0.2)
    plan = profile_plan(0, speed=lambda t: speed, curvature=lambda t: curvature)
    sweep = sweep_poses(PlanPath.from_trajectory(plan), rng.uniform(0.3, 2.0))
    footprint = Footprint.from_config(VEHICLE, 0.2)
    k = int(rng.integers(0, len(sweep)))
    corner = sweep.footprints(footprint)[k, rng.integers(0, 4)]
    inward = sweep.xy[k] + footprint.centre_offset_m * np.array([math.cos(sweep.heading[k]),
                                                                  math.sin(sweep.heading[k])]) - corner
    point = (corner + 0.01 * inward / np.linalg.norm(inward)).astype(np.float32)[None]
    result = first_contact(sweep, footprint, point)
    assert result.contact and result.pose_index == brute_force_first_pose(sweep, footprint, point)
    assert result.pose_index <= k


def single_pose(heading: float) -> Sweep:
    return Sweep(np.zeros(1), np.zeros((1, 2)), np.array([heading]), np.zeros(1))


def test_a_point_exactly_at_a_footprint_corner_is_a_contact():
    # the corner is exactly the circle's radius from the footprint's centre: the circle filter keeps it
    result = first_contact(single_pose(0.0), Footprint(4.0, 1.0, 1.0), np.array([[4.0, 1.0]], np.float32))
    assert result.contact is True and result.pose_index == 0


@pytest.mark.parametrize('heading', [0.0, 0.3, math.pi / 2 - math.atan2(1.0, 2.5), 1.2, math.pi / 2, 2.5, -2.0])
def test_a_point_just_inside_a_corner_is_a_contact_at_any_heading(heading):
    """At some headings a corner points along an axis, as far from the centre in y (or x) as the circle reaches."""
    footprint, sweep = Footprint(4.0, 1.0, 1.0), single_pose(heading)
    centre = footprint.centre_offset_m * np.array([math.cos(heading), math.sin(heading)])
    for corner in sweep.footprints(footprint)[0]:
        point = (corner + 0.01 * (centre - corner) / np.linalg.norm(centre - corner)).astype(np.float32)[None]
        assert first_contact(sweep, footprint, point).contact is True, corner


def brute_force_first_pose(sweep, footprint: Footprint, points: np.ndarray) -> int | None:
    """The reference: every pose against every point, with a Python loop over poses."""
    for k in range(len(sweep)):
        c, s = math.cos(sweep.heading[k]), math.sin(sweep.heading[k])
        dx, dy = points[:, 0] - sweep.xy[k, 0], points[:, 1] - sweep.xy[k, 1]
        lon, lat = c * dx + s * dy, c * dy - s * dx
        if ((lon >= -footprint.rear_m) & (lon <= footprint.front_m) & (np.abs(lat) <= footprint.half_width_m)).any():
            return k
    return None


@pytest.mark.parametrize('seed', range(40))
def test_first_contact_agrees_with_a_brute_force_check(seed):
    """The bounding-box and circle pre-filters never drop a point that a footprint contains."""
    rng = np.random.default_rng(seed)
    speed = rng.uniform(0.0, 20.0)
    curvature = rng.uniform(-0.2, 0.2)
    plan = profile_plan(0, speed=lambda t: speed, curvature=lambda t: curvature)
    sweep = sweep_poses(PlanPath.from_trajectory(plan), rng.uniform(0.3, 2.0))
    footprint = Footprint.from_config(VEHICLE, 0.2)
    points = rng.uniform([-10, -30], [90, 30], size=(rng.integers(1, 3000), 2)).astype(np.float32)
    result = first_contact(sweep, footprint, points)
    expected = brute_force_first_pose(sweep, footprint, points)
    assert result.pose_index == expected
    assert result.contact == (expected is not None)
    if result.contact:
        assert result.time_s == pytest.approx(sweep.t_s[expected])
        assert brute_force_first_pose(sweep.__class__(sweep.t_s[expected:expected + 1], sweep.xy[expected:expected + 1],
                                                      sweep.heading[expected:expected + 1], sweep.s[:1]),
                                      footprint, result.point_xy[None].astype(np.float32)) == 0


def test_sweep_starts_at_the_origin_and_keeps_the_waypoints():
    plan = profile_plan(0, speed=lambda t: 10.0)
    sweep = sweep_poses(PlanPath.from_trajectory(plan), 0.5)
    np.testing.assert_allclose(sweep.xy[0], [0.0, 0.0])
    assert sweep.t_s[0] == 0.0 and sweep.t_s[-1] == pytest.approx(4.0)
    assert np.diff(sweep.s).max() <= 0.5 + 1e-9
    assert set(np.round(plan.t_s, 6)) <= set(np.round(sweep.t_s, 6))


def test_a_standing_plan_sweeps_one_footprint():
    plan = profile_plan(0, speed=lambda t: 0.0)
    sweep = sweep_poses(PlanPath.from_trajectory(plan), 0.5)
    assert len(sweep) == 1
    footprint = Footprint.from_config(VEHICLE, 0.2)
    assert first_contact(sweep, footprint, np.array([[4.5, 0.0]], np.float32)).contact is False
    assert first_contact(sweep, footprint, np.array([[3.9, 0.0]], np.float32)).pose_index == 0


def scene_core(box_y_m: float) -> tuple[CriticCore, int]:
    """A core that has seen a ~100k-point synthetic sweep with a parked car 20 m ahead at ``box_y_m`` (and
    every other input; no start-up time: the first plan is judged at once)."""
    scene = SyntheticScene(boxes=(Box(20.0, box_y_m, 4.5, 1.9, 1.5),))
    core = CriticCore(critic_config({'state_machine': {'startup_timeout_s': 0.0}}), T0)
    now = T0
    for i in range(5):
        now = T0 + i * S // 10
        ego = scene.ego(i * 0.1)
        core.on_odometry(EgoState(now, ego.x, ego.y, ego.yaw, ego.speed), now)
        core.on_input('camera', CAMERA, now)
    cloud = scene.lidar(0.4)
    assert cloud.size > 90_000
    core.on_lidar('top', points_xyz(cloud), now, now)
    return core, now


def test_a_box_in_the_path_triggers_the_collision_check_and_the_same_box_one_lane_over_does_not():
    lane_m = SyntheticScene().lane_width_m
    for box_y, expect_contact in ((0.0, True), (lane_m, False), (-lane_m, False)):
        core, now = scene_core(box_y)
        plan = profile_plan(now, speed=lambda t: 8.0)   # straight down the ego lane for 32 m
        transitions = core.on_trajectory(plan, now + S // 20)
        result = next(r for r in core.results(now) if r.check == 'collision')
        assert result.ok is not expect_contact, result.message
        if expect_contact:
            (reason,) = reasons_of(transitions, 'collision')
            assert transitions[-1].state == TakeoverState.TAKEOVER_REQUESTED
            # The car is 20 m ahead of the ego at t=0 (3.2 m nearer by now): its rear at ~14.6 m,
            # the footprint front (3.8 + 0.2 m) meets it after ~10.6 m of plan.
            assert core.contact.point_xy[0] == pytest.approx(20.0 - 3.2 - 2.25, abs=0.3)
            assert core.contact.distance_m == pytest.approx(14.55 - 4.0, abs=0.6)
            assert reason.value == pytest.approx(core.contact.time_s - 0.05, abs=1e-6)
        else:
            assert 'clear' in result.message


def test_a_curved_plan_into_the_next_lane_meets_the_box_there():
    core, now = scene_core(3.5)
    # A lane change to the left: heading up and back down over the plan.
    plan = profile_plan(now, speed=lambda t: 8.0, curvature=lambda t: 0.06 if t < 1.5 else -0.06)
    core.on_trajectory(plan, now + S // 20)
    assert core.contact is not None and core.contact.contact and core.contact.point_xy[1] > 2.0


def test_a_new_cloud_is_checked_against_the_latest_plan_at_once():
    drive = started()
    assert drive.core.on_trajectory(drive.straight(drive.now), drive.now) == []
    drive.cloud_xy = np.array([[drive.speed_mps * (drive.now - T0) / S + 10.0, 0.0, 1.0]], np.float32)
    transitions = drive.core.on_lidar('top', drive.lidar_points(), drive.now, drive.now)
    assert reasons_of(transitions, 'collision') and transitions[-1].state == TakeoverState.TAKEOVER_REQUESTED


def test_clouds_are_time_aligned_by_ego_motion():
    """A cloud taken 0.5 s before the plan's stamp, while the ego drove 4 m: the obstacle is 4 m nearer."""
    drive = started(8.0)
    plan_stamp = drive.now - PLAN_LATENCY_NS
    obstacle_world_x = drive.speed_mps * (plan_stamp - T0) / S + 30.0
    old_stamp = drive.now - S // 2
    seen_then = np.array([[obstacle_world_x - drive.speed_mps * (old_stamp - T0) / S, 0.0, -0.8]], np.float32)
    drive.core.on_lidar('top', seen_then, old_stamp, drive.now)
    drive.plan(profile_plan(drive.now, speed=lambda t: 8.0))
    np.testing.assert_allclose(drive.core.contact.point_xy, [30.0, 0.0], atol=0.05)


def test_a_plan_standing_still_is_swept_as_its_start_pose_and_one_creeping_to_its_end():
    sweep = sweep_poses(PlanPath.from_trajectory(profile_plan(0, speed=lambda t: 0.0)), 0.5)
    assert len(sweep) == 1 and sweep.t_s.tolist() == [0.0] and sweep.s.tolist() == [0.0]
    np.testing.assert_array_equal(sweep.xy, [[0.0, 0.0]])
    creeping = sweep_poses(PlanPath.from_trajectory(profile_plan(0, speed=lambda t: 0.2)), 0.5)   # 0.8 m in 4 s
    assert creeping.s[-1] == pytest.approx(0.8) and creeping.t_s[-1] == pytest.approx(4.0)
