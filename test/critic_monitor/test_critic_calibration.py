"""The critic calibrated against good driving: what expert plans do passes, the faults each check exists for fail.

Each case is one cause of a false alarm found by driving the simulator's expert through the critic
(``avstack sim --driver expert-plans``, docs/critic.md "Calibration"), next to the true positive that must
stay caught.
"""


import numpy as np
import pytest

from critic_monitor.checks import check_start_deviation, check_stopping, kinematics
from critic_monitor.collision import Footprint, LidarFilter, along_axis_velocity, first_moving_contact, sweep_poses
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
