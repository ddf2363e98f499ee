"""The bridge's sensors, scene info and safety driver on the real simulator (pure cores, no DDS).

A vehicle placed ahead of the ego must appear ahead in base_link in the lidar points and in the camera image,
whatever the ego's heading; the scene tags must follow the simulator state; the safety driver must hand the
wheel to the expert on a takeover request and back after the hand-back time.
"""

import math

import numpy as np
import pytest
from highway_env.vehicle.behavior import IDMVehicle

from sim_bridge.expert import EXPERT, STACK, SafetyDriver
from sim_bridge.lidar import POINT_DTYPE, lidar_points
from sim_bridge.simulation import SimulationCore
from stack_common.config import load_node_config, validate, load_schema

MOUNT_HEIGHT_M = 1.8


def bridge_config(**overrides) -> dict:
    return validate(load_schema('sim_bridge', 'bridge_node'),
                    {'scenarios': ['highway-v0'], 'driver': 'expert', **overrides}, 'bridge_node')


def place_vehicle_ahead(core: SimulationCore, distance_m: float, heading: float) -> IDMVehicle:
    """Clear the road, turn the ego to ``heading`` and put one vehicle ``distance_m`` ahead of it."""
    env, ego = core.env, core.vehicle
    ego.heading = heading
    direction = np.array([math.cos(heading), math.sin(heading)])
    other = IDMVehicle(env.road, ego.position + distance_m * direction, heading=heading, speed=ego.speed)
    env.road.vehicles = [ego, other]
    core._observation = env.observation_type.observe()
    return other


@pytest.fixture
def core():
    simulation = SimulationCore(bridge_config())
    assert simulation.start_next_episode()
    yield simulation
    simulation.close()


@pytest.mark.parametrize('heading', [0.0, 1.2, -2.5])
def test_lidar_points_of_a_vehicle_ahead_appear_ahead_in_base_link(core, heading):
    place_vehicle_ahead(core, 20.0, heading)
    frame = core.sense()
    points = frame.lidar
    assert points.dtype == POINT_DTYPE and len(points) > 0
    x, y, z = points['x'], points['y'], points['z'] + MOUNT_HEIGHT_M   # lidar frame -> base_link
    # The near face of a 5 m long car whose centre is 20 m ahead is 17.5 m ahead.
    assert np.all((x > 16.5) & (x < 20.5)), f'returns at x={sorted(set(np.round(x, 1)))}'
    assert np.all(np.abs(y) < 1.5)
    assert sorted(set(np.round(z, 2))) == [0.5, 1.0, 1.5]
    assert set(points['ring']) == {0, 1, 2}


def test_each_return_carries_the_hit_objects_radial_velocity():
    observation = np.full((8, 2), 60.0)
    observation[0] = (20.0, -7.5)     # beam 0 ahead: an object closing at 7.5 m/s
    observation[4] = (30.0, 3.0)      # beam 4 behind: one falling back
    points = lidar_points(observation, ego_heading=0.0, max_range_m=60.0, layer_heights_m=(0.5, 1.5),
                          mount_height_m=MOUNT_HEIGHT_M)
    ahead, behind = points['x'] > 0, points['x'] < 0
    assert points['radial_velocity'][ahead].tolist() == [-7.5, -7.5]
    assert points['radial_velocity'][behind].tolist() == [3.0, 3.0]


def test_free_beams_return_no_points():
    observation = np.full((8, 2), 60.0)
    observation[2] = (10.0, 0.0)      # beam 2 of 8 points at +90 deg in the world
    points = lidar_points(observation, ego_heading=0.0, max_range_m=60.0, layer_heights_m=(1.0,),
                          mount_height_m=MOUNT_HEIGHT_M)
    assert len(points) == 1
    assert points['x'][0] == pytest.approx(0.0, abs=1e-5) and points['y'][0] == pytest.approx(10.0)
    assert points['z'][0] == pytest.approx(1.0 - MOUNT_HEIGHT_M)


@pytest.mark.parametrize('heading', [0.0, 1.2])
def test_a_vehicle_ahead_is_drawn_ahead_of_the_ego_in_the_camera_image(core, heading):
    other = place_vehicle_ahead(core, 20.0, heading)
    other.color = (255, 0, 255)
    rgb = core.sense().rgb
    assert rgb.shape == (256, 512, 3) and rgb.dtype == np.uint8
    rows, cols = np.nonzero(np.all(rgb == (255, 0, 255), axis=2))
    u, v = core.camera.base_link_to_pixel(20.0, 0.0)
    assert len(rows) > 50
    assert abs(np.mean(cols) - u) < 6 and abs(np.mean(rows) - v) < 6


def test_the_camera_is_not_mirrored_a_vehicle_to_the_left_is_drawn_above(core):
    ego = core.vehicle
    place_vehicle_ahead(core, 20.0, 0.0)
    left = IDMVehicle(core.env.road, ego.position + np.array([0.0, 8.0]), heading=0.0, speed=ego.speed)
    left.color = (255, 0, 255)
    core.env.road.vehicles.append(left)
    rows, cols = np.nonzero(np.all(core.sense().rgb == (255, 0, 255), axis=2))
    u, v = core.camera.base_link_to_pixel(0.0, 8.0)      # +y in base_link is left
    assert np.mean(rows) < core.camera.height_px / 2
    assert abs(np.mean(cols) - u) < 6 and abs(np.mean(rows) - v) < 6


def test_frames_share_one_stamp_and_the_odometry_follows_the_simulator(core):
    frame = core.sense()
    assert frame.stamp_ns == frame.ego.stamp_ns == frame.scene['stamp_ns'] == core.stamp_ns
    assert (frame.ego.x, frame.ego.y) == pytest.approx(tuple(core.vehicle.position))
    assert frame.ego.speed == pytest.approx(core.vehicle.speed)
    before = frame.stamp_ns
    core.step()
    assert core.sense().stamp_ns == before + 100_000_000


def test_scene_info_lists_other_vehicles_in_the_odom_frame_and_flags_a_braking_lead(core):
    other = place_vehicle_ahead(core, 25.0, 0.0)
    other.action['acceleration'] = -4.0
    scene = core.sense().scene
    assert scene['scenario'] == 'highway-v0'
    assert scene['vehicles'] == [pytest.approx([*other.position, 0.0, other.speed, 5.0, 2.0])]
    assert scene['tags']['lead_vehicle_braking'] is True
    assert scene['tags']['intersection'] is False
    other.action['acceleration'] = 0.5
    assert core.sense().scene['tags']['lead_vehicle_braking'] is False


def test_scene_info_labels_exactly_the_tags_the_model_predicts(core):
    from planner.model import SCENE_TAGS
    assert list(core.sense().scene['tags']) == list(SCENE_TAGS)


def test_intersection_tag_near_the_junction_only():
    core = SimulationCore(bridge_config(scenarios=['intersection-v0']))
    core.start_next_episode()
    ego = core.vehicle
    ego.position = np.array([0.0, 10.0])
    assert core.sense().scene['tags']['intersection'] is True
    ego.position = np.array([0.0, 90.0])
    assert core.sense().scene['tags']['intersection'] is False
    core.close()


def test_safety_driver_takes_over_on_request_and_hands_back_after_the_hand_back_time():
    driver = SafetyDriver(hand_back_s=2.0)
    second = 1_000_000_000
    assert driver.update(0, False, [], 0.0, 0.0) == STACK
    assert driver.update(1 * second, True, ['critic:validity'], 5.0, 1.0) == EXPERT
    assert driver.update(2 * second, False, [], 0.0, 0.0) == EXPERT          # still within the hand-back time
    assert driver.update(3 * second, False, [], 0.0, 0.0) == STACK           # 2 s after the takeover
    assert [(t.stamp_ns, t.x_m, t.reasons) for t in driver.takeovers] == [(second, 5.0, ['critic:validity'])]
    # A request still active when the hand-back time is over is a new takeover.
    assert driver.update(4 * second, True, ['critic:curvature'], 0.0, 0.0) == EXPERT
    assert driver.update(6 * second, True, ['critic:curvature'], 0.0, 0.0) == EXPERT
    assert len(driver.takeovers) == 3


def test_expert_mode_never_hands_over_and_counts_no_takeovers():
    driver = SafetyDriver(hand_back_s=0.0, always_expert=True)
    assert driver.update(0, True, ['critic:validity'], 0.0, 0.0) == EXPERT
    assert driver.takeovers == []


def test_the_expert_drives_highway_without_collision_and_the_record_adds_up():
    core = SimulationCore(bridge_config(duration_s=6.0, seed=3))
    core.start_next_episode()
    start = core.vehicle.position.copy()
    while (result := core.step()).finished is None:
        pass
    record = result.finished
    assert record.end_reason == 'time_limit' and record.collisions == 0
    assert record.steps == len(record.trace_x_m) >= 60
    # The distance is the path through the start and every traced position (rounded to 1 mm): 146.060 m against
    # 146.059 m measured, 0.3 mm apart. (Without the start, the first step's 2.5 m is missing.)
    path_x, path_y = [start[0], *record.trace_x_m], [start[1], *record.trace_y_m]
    assert record.distance_m == pytest.approx(np.hypot(np.diff(path_x), np.diff(path_y)).sum(), abs=0.005)
    assert record.distance_m > 100.0 and record.stack_distance_m == 0.0
    core.close()


def test_a_stack_that_leaves_the_road_is_taken_over_by_the_safety_driver():
    core = SimulationCore(bridge_config(driver='model', off_road_margin_m=1.0))
    core.start_next_episode()
    ego = core.vehicle
    ego.position = ego.position + np.array([0.0, 30.0])     # far beside every lane
    result = core.step()
    assert result.driver == EXPERT
    assert core.safety_driver.takeovers[0].reasons == ['safety_driver:off_road']
    core.close()


def test_the_shipped_sim_config_is_valid():
    from support import REPO
    config = load_node_config('sim_bridge', 'bridge_node', REPO / 'config' / 'sim.yaml')
    assert config['lockstep'] is True and config['driver'] == 'model'


def test_the_expert_waits_at_the_junction_entry_for_crossing_traffic():
    core = SimulationCore(bridge_config(scenarios=['intersection-v0']))
    core.start_next_episode()
    env, ego = core.env, core.vehicle
    approach = env.road.network.get_lane(ego.lane_index)
    assert env.is_approach_lane(ego.lane_index)
    ego.position = approach.position(approach.length - 5.0, 0.0)    # 5 m before the junction
    env.road.vehicles = [ego]
    assert ego.junction_clear()
    # A car on the crossing road, 2 s from the junction at 10 m/s, going straight across the ego's path.
    crossing_index = ('o1', 'ir1', 0)
    crossing_lane = env.road.network.get_lane(crossing_index)
    crossing = IDMVehicle.make_on_lane(env.road, crossing_index, crossing_lane.length - 20.0, speed=10.0)
    crossing.plan_route_to('o3')
    env.road.vehicles.append(crossing)
    assert not ego.junction_clear()
    crossing.position = crossing_lane.position(0.0, 0.0)              # 100 m away: a gap
    crossing.on_state_update()
    assert ego.junction_clear()
    # Standing at the line, the ego needs about 6 s to clear the junction: a car 60 m off at 10 m/s would be
    # there before it is out (a gap of its next 4 s of road alone let the expert pull out into it).
    ego.speed = 0.0
    crossing.position = crossing_lane.position(crossing_lane.length - 60.0, 0.0)
    crossing.on_state_update()
    assert not ego.junction_clear()
    ego.speed = 8.0                                                      # rolling through: out in about 4 s
    crossing.position = crossing_lane.position(crossing_lane.length - 80.0, 0.0)
    crossing.on_state_update()
    assert ego.junction_clear()
    core.close()
