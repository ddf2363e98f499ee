"""The critic calibrated against good driving: what expert plans do passes, the faults each check exists for fail.

Each case is one cause of a false alarm found by driving the simulator's expert through the critic
(``avstack sim --driver expert-plans``, docs/critic.md "Calibration"), next to the true positive that must
stay caught.
"""


import math

import numpy as np
import pytest

from critic_monitor.checks import check_start_deviation, check_stopping, kinematics
from critic_monitor.collision import (
    Footprint, LidarFilter, Sweep, along_axis_velocity, first_moving_contact, sweep_poses)
from critic_monitor.geometry import PlanPath, Pose2D
from stack_common.odometry import EgoState
from stack_common.trajectory import Trajectory
from critic_drive import S, profile_plan, reasons_of, started

STOPPING = {'severity': 'warn', 'decel_mps2': 3.0, 'margin_m': 2.0, 'min_speed_mps': 0.28}
START = {'severity': 'warn', 'max_lateral_m': 1.0, 'max_heading_rad': 0.5}


def arc_plan(radius_m: float, speed_mps: float, slip_rad: float = 0.0, offset_m: float = 0.0) -> Trajectory:
    """A plan from the origin around a circle to the left; the body heading leads the course by ``slip_rad``
    (a car's slip angle in a turn), and the whole plan may lie ``offset_m`` to the left of the ego."""
    t_s = 0.5 * np.arange(1, 9)
    angle = speed_mps * t_s / radius_m
    xy = np.stack([radius_m * np.sin(angle), radius_m * (1 - np.cos(angle)) + offset_m], 1)
    return Trajectory(0, 'base_link', t_s, xy, angle + slip_rad)


def test_a_tight_turn_with_slip_starts_at_the_ego_and_lane_changes_do_too():
    # highway-env's expert entering a roundabout: 12 m radius at 6 m/s, body heading 0.35 rad off its course
    turn = arc_plan(12.0, 6.0, slip_rad=0.35)
    assert check_start_deviation(turn, Pose2D(0.3, 0.0, 0.03), 0.05, START).ok
    # the expert's own lane change at the end of merge-v0's ramp: it starts at once (2.8 m of false deviation
    # when the start was extrapolated back from the first three waypoints)
    change = Trajectory(0, 'base_link', 0.5 * np.arange(1, 9),
                        np.array([[8.54, -1.66], [16.85, -3.1], [25.38, -3.67], [34.05, -3.88], [42.7, -3.95],
                                  [51.3, -4.0], [60.0, -4.0], [68.6, -4.0]]),
                        np.array([-0.255, -0.135, -0.052, -0.01, 0.0, 0.0, 0.0, 0.0]))
    assert check_start_deviation(change, Pose2D(0.9, 0.0, 0.0), 0.05, START).ok


def test_an_ego_that_slid_off_the_plan_while_it_was_on_its_way_deviates():
    drive = started(8.0, config={'checks': {'consistency': {'trajectory_shift': {'enabled': False}}}})
    stamp = drive.now
    drive.run(0.05)                             # odometry on both sides of the plan's stamp, on the plan
    drive.lateral_m = 1.5                       # then the car slides 1.5 m sideways
    drive.run(0.1)
    transitions = drive.plan(profile_plan(0), latency_ns=drive.now - stamp)
    (reason,) = reasons_of(transitions, 'start_deviation')
    assert reason.value == pytest.approx(1.5, abs=0.05) and reason.threshold == 1.0


def test_a_plan_beside_the_ego_turns_harder_than_a_car_can_at_its_start():
    drive = started(8.0, config={'checks': {'consistency': {'trajectory_shift': {'enabled': False}}}})
    beside = profile_plan(0)
    beside.xy[:, 1] += 1.5
    transitions = drive.plan(beside)
    assert transitions and transitions[-1].requests_takeover
    assert {r.check for r in transitions[-1].reasons} & {'lateral_acceleration', 'curvature', 'relative_heading'}


def test_curvature_of_a_slow_plan_is_measured_over_metres_not_centimetres():
    # a car creeping at 1 m/s on a straight line with 5 cm of noise: no curve
    rng = np.random.default_rng(0)
    t_s = 0.5 * np.arange(1, 9)
    xy = np.stack([t_s * 1.0, rng.normal(0, 0.05, 8)], 1)
    creeping = kinematics(PlanPath.from_trajectory(Trajectory(0, 'base_link', t_s, xy, np.zeros(8))))
    assert np.nanmax(np.abs(creeping.curvature_1pm)) < 0.15
    # a real 3 m turn at the same speed is still seen
    tight = kinematics(PlanPath.from_trajectory(arc_plan(3.0, 1.2)))
    assert np.nanmax(np.abs(tight.curvature_1pm)) > 0.3


def test_creeping_up_to_a_stop_line_leaves_room_and_a_hard_stop_does_not():
    creep = profile_plan(0, speed=lambda t: max(3.0 - 1.5 * t, 0.5))   # 3 m/s down to 0.5 m/s and on
    assert check_stopping(PlanPath.from_trajectory(creep), 3.0, 0.0, STOPPING).ok
    hard = profile_plan(0, speed=lambda t: max(15.0 - 10.0 * t, 0.0))   # 15 m/s to rest in 1.5 s
    assert not check_stopping(PlanPath.from_trajectory(hard), 15.0, 0.0, STOPPING).ok


def test_a_jump_of_the_ego_forgets_the_plans_from_before_it():
    drive = started(20.0)
    drive.run(0.5, plans_hz=10)
    # the simulator starts a new episode (or localisation jumps) 300 m away, at another speed and heading
    jump = EgoState(drive.now + S // 25, 300.0, 40.0, 1.2, 30.0)
    drive.core.on_odometry(jump, drive.now + S // 25)
    drive.now += S // 25
    turned = profile_plan(0, speed=lambda t: 30.0, curvature=lambda t: 0.004)
    transitions = drive.plan(turned)
    assert not reasons_of(transitions, 'trajectory_shift') and not reasons_of(transitions, 'stopping'), \
        [t.describe() for t in transitions]
    assert drive.core.pose_jumps == 1


def test_the_lidar_filter_keeps_each_points_beam_and_radial_velocity():
    lidar = LidarFilter((0.0, 0.0, 1.8), (0.0, 0.0, 0.0), 0.3, 2.5, 100.0, Footprint(3.8, 1.0, 0.95))
    points = np.array([[10.0, 0.0, -1.0], [0.0, 20.0, -1.0], [5.0, 0.0, -1.8]], np.float32)
    xy, beams, radial = lidar(points, np.array([-3.0, 4.0, 9.0], np.float32))
    np.testing.assert_allclose(xy, [[10.0, 0.0], [0.0, 20.0]])
    np.testing.assert_allclose(beams, [[1.0, 0.0], [0.0, 1.0]], atol=1e-6)
    np.testing.assert_allclose(radial, [-3.0, 4.0])


def moving_car_drive(radial_mps: float, gap_m: float, lateral_m: float = 0.0):
    """A critic at 10 m/s behind a car's rear ``gap_m`` ahead of the front bumper (``lateral_m`` to the left),
    whose returns carry a radial velocity relative to the lidar (the lidar's other clouds are empty)."""
    drive = started(10.0)
    rear = np.array([[gap_m + 3.8, lateral_m + y, 0.8 - 1.8] for y in np.linspace(-0.9, 0.9, 7)], np.float32)
    velocities = np.full(len(rear), radial_mps, np.float32)
    transitions = []
    for _ in range(3):
        drive.run(0.1, plans_hz=10)
        transitions += drive.core.on_lidar('top', rear, drive.now, drive.now, radial_velocity=velocities)
    return drive, transitions + drive.transitions


def test_a_car_driving_ahead_at_a_short_gap_is_not_a_collision_and_a_stopped_one_is():
    # the lead drives at 10 m/s like the ego: relative radial velocity 0, 10 m/s in the world: moving
    _, following = moving_car_drive(radial_mps=0.0, gap_m=12.0)
    assert not reasons_of(following, 'collision')
    # the same car stopped: closing at 10 m/s, static in the world: a contact within 1.5 s
    _, stopped = moving_car_drive(radial_mps=-10.0, gap_m=12.0)
    assert reasons_of(stopped, 'collision')


def test_a_car_moving_with_the_ego_closer_than_the_plan_covers_in_half_a_second_moves_on_ahead():
    # merge-v0 seed 1003 of the expert's plans: a car 11 m ahead at the ego's 22 m/s; here 3 m at 10 m/s. Held
    # at its place, the plan met it within moving_horizon_s; moved on at its speed, it is never met.
    _, following = moving_car_drive(radial_mps=0.0, gap_m=3.0)
    assert not reasons_of(following, 'collision')


def test_a_slower_car_the_plan_meets_within_half_a_second_is_a_collision():
    # 4 m/s in the world, 2 m ahead of the ego at 10 m/s: closing at 6 m/s, met after about 0.3 s
    _, imminent = moving_car_drive(radial_mps=-6.0, gap_m=2.0)
    assert reasons_of(imminent, 'collision')
    assert reasons_of(imminent, 'collision')[0].value <= 0.5


def test_an_oncoming_car_in_the_next_lane_passes_without_a_collision():
    # 10 m/s towards the ego (20 m/s closing), 3 m to the left: moved along its beam instead of along the
    # road it would cut into the ego's lane within 0.4 s
    _, passing = moving_car_drive(radial_mps=-20.0, gap_m=8.0, lateral_m=3.0)
    assert not reasons_of(passing, 'collision')
    # the same car in the ego's lane is met head-on within the moving horizon
    _, head_on = moving_car_drive(radial_mps=-20.0, gap_m=8.0)
    assert reasons_of(head_on, 'collision')


def test_moving_points_ahead_move_parallel_to_the_vehicle_at_the_speed_of_their_radial_velocity():
    # ahead, ahead-left, beside, behind (closing: the follower's to brake for)
    beams = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]], np.float32)
    velocity = along_axis_velocity(beams, np.array([10.0, 8.0, 5.0, -3.0], np.float32))
    np.testing.assert_allclose(velocity, [[10.0, 0.0], [10.0, 0.0], [0.0, 0.0], [0.0, 0.0]], atol=1e-6)


def test_a_moving_contact_is_reported_where_the_point_is_at_that_time():
    sweep = sweep_poses(PlanPath.from_trajectory(profile_plan(0, speed=lambda t: 10.0)), 0.5)
    footprint = Footprint(3.8, 1.0, 0.95)
    points = np.array([[10.0, 0.0]], np.float32)
    # standing still: the front (3.8 m) meets it after 6.2 m, 0.62 s
    still = first_moving_contact(sweep, footprint, points, np.zeros((1, 2), np.float32), 2.0)
    assert still.contact and 0.6 <= still.time_s <= 0.7   # poses every 0.5 m: 0.05 s
    # receding at 6 m/s: closing at 4 m/s, met after 1.55 s; not within 1.0 s
    receding = np.array([[6.0, 0.0]], np.float32)
    assert not first_moving_contact(sweep, footprint, points, receding, 1.0).contact
    late = first_moving_contact(sweep, footprint, points, receding, 2.0)
    assert late.contact and 1.5 <= late.time_s <= 1.6
    np.testing.assert_allclose(late.point_xy, [10.0 + 6.0 * late.time_s, 0.0], atol=1e-4)


def test_a_lidar_off_the_vehicle_centre_measures_each_beam_from_where_it_sits():
    # on the front bumper, 0.5 m left of the axis: a point 0.6 m ahead of it, another 10 m to its left
    lidar = LidarFilter((3.5, 0.5, 0.8), (0.0, 0.0, 0.0), 0.3, 2.5, 100.0, Footprint(3.8, 1.0, 0.95))
    xy, beams, _ = lidar(np.array([[0.6, 0.0, 0.0], [0.0, 10.0, 0.0]], np.float32), np.zeros(2, np.float32))
    np.testing.assert_allclose(xy, [[4.1, 0.5], [3.5, 10.5]], atol=1e-6)
    np.testing.assert_allclose(beams, [[1.0, 0.0], [0.0, 1.0]], atol=1e-6)


def test_a_moving_point_exactly_60_degrees_off_the_heading_counts_as_ahead():
    beams = np.array([[0.5, math.sqrt(3) / 2], [0.49, math.sqrt(1 - 0.49 ** 2)]], np.float32)
    velocity = along_axis_velocity(beams, np.array([5.0, 5.0], np.float32))
    np.testing.assert_allclose(velocity, [[10.0, 0.0], [0.0, 0.0]], atol=1e-5)


def brute_force_moving_contact(sweep, footprint: Footprint, points, velocity, until_s: float):
    """The reference: every pose up to ``until_s`` against every moved point, with a Python loop over poses;
    (pose, the point furthest ahead in that footprint where it is then) or None."""
    for k in range(len(sweep)):
        if sweep.t_s[k] > until_s:
            return None
        c, s = math.cos(sweep.heading[k]), math.sin(sweep.heading[k])
        moved = points + velocity * sweep.t_s[k]
        dx, dy = moved[:, 0] - sweep.xy[k, 0], moved[:, 1] - sweep.xy[k, 1]
        lon, lat = c * dx + s * dy, c * dy - s * dx
        inside = (lon >= -footprint.rear_m) & (lon <= footprint.front_m) & (np.abs(lat) <= footprint.half_width_m)
        if inside.any():
            return k, moved[np.flatnonzero(inside)[np.argmax(lon[inside])]]
    return None


@pytest.mark.parametrize('seed', range(40))
def test_first_moving_contact_agrees_with_a_brute_force_check(seed):
    """Moving points on curved plans, until any time (one of the poses' own times in half the cases)."""
    rng = np.random.default_rng(seed)
    speed, curvature = rng.uniform(0.0, 20.0), rng.uniform(-0.2, 0.2)
    plan = profile_plan(0, speed=lambda t: speed, curvature=lambda t: curvature)
    sweep = sweep_poses(PlanPath.from_trajectory(plan), rng.uniform(0.3, 2.0))
    footprint = Footprint.from_config({'length_m': 4.8, 'width_m': 1.9, 'rear_overhang_m': 1.0}, 0.2)
    n = int(rng.integers(1, 300))
    points = rng.uniform([-10, -30], [90, 30], size=(n, 2)).astype(np.float32)
    velocity = rng.uniform(-25, 25, size=(n, 2)).astype(np.float32)
    until_s = float(sweep.t_s[rng.integers(0, len(sweep))]) if seed % 2 else float(rng.uniform(-0.2, 4.5))
    result = first_moving_contact(sweep, footprint, points, velocity, until_s)
    expected = brute_force_moving_contact(sweep, footprint, points.astype(float), velocity.astype(float), until_s)
    assert result.contact is (expected is not None)
    if expected is not None:
        assert result.pose_index == expected[0]
        assert (result.time_s, result.distance_m) == pytest.approx((sweep.t_s[expected[0]], sweep.s[expected[0]]))
        np.testing.assert_allclose(result.point_xy, expected[1], atol=1e-3)


def test_a_moving_contact_counts_from_the_plans_start_up_to_and_with_its_last_pose():
    sweep = sweep_poses(PlanPath.from_trajectory(profile_plan(0, speed=lambda t: 10.0)), 0.5)
    footprint, still = Footprint(3.8, 1.0, 0.95), np.zeros((1, 2), np.float32)
    at_start = first_moving_contact(sweep, footprint, np.array([[2.0, 0.0]], np.float32), still, 0.0)
    assert at_start.contact is True and at_start.pose_index == 0 and at_start.time_s == 0.0
    # the front meets a point 10 m ahead at the pose 6.2 m on: exactly at until_s, it counts
    k = int(np.argmax(sweep.s >= 6.2 - 1e-9))
    ahead = np.array([[10.0, 0.0]], np.float32)
    assert first_moving_contact(sweep, footprint, ahead, still, float(sweep.t_s[k])).pose_index == k
    assert first_moving_contact(sweep, footprint, ahead, still, float(sweep.t_s[k - 1])).contact is False
    assert first_moving_contact(sweep, footprint, ahead, still, -0.1).contact is False   # before the plan


def test_a_moving_contact_names_the_point_furthest_ahead_and_counts_the_points_near_the_plan():
    # a straight plan 5 m left of the ego's axis, from x = 0 to 10 m in 1 s
    x = 0.5 * np.arange(21)
    sweep = Sweep(x / 10.0, np.stack([x, np.full(21, 5.0)], 1), np.zeros(21), x)
    footprint, still = Footprint(4.0, 1.0, 1.0), np.zeros((4, 2), np.float32)
    # the last two enter the footprint at the same pose; beside the plan; out of reach on either side
    points = np.array([[6.2, 4.5], [6.4, 5.5], [5.0, 8.0], [5.0, 0.0]], np.float32)
    hit = first_moving_contact(sweep, footprint, points[[2, 3, 0, 1]], still, 2.0)
    assert hit.contact is True and hit.pose_index == 5 and hit.point_xy.tolist() == pytest.approx([6.4, 5.5])
    assert hit.candidates == 3
    clear = first_moving_contact(sweep, footprint, np.array([[5.0, 8.0], [5.0, 0.0], [5.0, 12.0]], np.float32),
                                 still[:3], 2.0)
    assert clear.contact is False and clear.candidates == 1
    assert first_moving_contact(sweep, footprint, np.zeros((0, 2), np.float32), still[:0], 2.0).contact is False


@pytest.mark.parametrize('point, pose', [((5.0, 0.0), 2), ((5.0, 1.0), 2), ((-1.0, 0.0), 0), ((6.0, -1.0), 4)])
def test_a_moving_point_on_the_footprint_edge_is_a_contact(point, pose):
    x = 0.5 * np.arange(21)
    sweep = Sweep(x / 10.0, np.stack([x, np.zeros(21)], 1), np.zeros(21), x)
    # still, or moving 2 m/s ahead from 0.1 m behind the edge at the pose's time (0.05 s per pose)
    for velocity in ([0.0, 0.0], [2.0, 0.0]):
        start = np.array([point], np.float32) - np.float32(velocity[0] * 0.05 * pose) * np.array([1, 0], np.float32)
        result = first_moving_contact(sweep, Footprint(4.0, 1.0, 1.0), start, np.array([velocity], np.float32), 2.0)
        assert result.contact is True and result.pose_index == pose, velocity
