"""The shipped model sees the scene and drives: held-out simulator frames through the real perception and planner.

Each case fails for a model whose plan does not depend on what its sensors show (an input-blind model, or
one that only rolls the ego's own state forward): the plan must follow the expert's over a drive it never
trained on, accelerate on a free road below cruise speed, and brake for a slow car ahead.
The frames come from the simulator in-process (its camera, lidar and odometry, with the expert's plan from
every state as the reference) and go through PerceptionCore and PlannerCore, the cores of the live nodes.
"""

import numpy as np
import pytest

from avstack.offline.stack import OfflineConfig
from avstack.runtime.paths import default_config
from perception_llm.pipeline import PerceptionCore
from perception_llm.weights import load_encoders
from planner.loading import load_planner
from sim_bridge.simulation import SimulationCore
from stack_common.config import load_schema, merge_documents, read_params_file, validate
from stack_common.pointcloud import LIDAR_CHANNELS, point_channels
from stack_common.checkpoint import DEFAULT_CHECKPOINT

HELD_OUT_SEED = 900          # no training run uses seeds >= 900 (TRAINING.md)
PERIOD_NS = 100_000_000

pytestmark = pytest.mark.skipif(not (DEFAULT_CHECKPOINT / 'config.json').exists(), reason='no shipped checkpoint')


class Driver:
    """The perception and planner cores of the shipped model, fed simulator frames."""

    def __init__(self, tmp_path):
        params = tmp_path / 'params.yaml'
        sim_yaml = default_config().parent / 'sim.yaml'
        import yaml
        params.write_text(yaml.safe_dump(merge_documents(read_params_file(default_config()),
                                                         read_params_file(sim_yaml))))
        config = OfflineConfig.load(params)
        self.perception = PerceptionCore(config.perception, load_encoders(config.perception)[0])
        self.planner = load_planner(config.planner)[0]
        self.bridge = validate(load_schema('sim_bridge', 'bridge_node'),
                               read_params_file(sim_yaml)['bridge_node']['ros__parameters'], 'bridge_node')

    def simulation(self, scenario: str, driver: str = 'expert', duration_s: float = 20.0) -> SimulationCore:
        core = SimulationCore(dict(self.bridge, scenarios=[scenario], driver=driver, seed=HELD_OUT_SEED,
                                   duration_s=duration_s, relabel=True))
        core.start_next_episode()
        return core

    def plan(self, frame, route: str = 'follow'):
        """The plan for one frame (the odometry history builds up over consecutive calls)."""
        perception = self.perception
        perception.add_odometry(frame.ego)
        points, channels = point_channels(frame.lidar, LIDAR_CHANNELS)
        synced = perception.add_lidar('top', frame.stamp_ns, points, channels['intensity'], frame.stamp_ns,
                                      radial_velocity=channels['radial_velocity'])
        synced += perception.add_camera('front', frame.stamp_ns, frame.rgb, frame.stamp_ns)
        assert synced and synced[-1].stamp_ns == frame.stamp_ns, 'the frame did not make a synced set'
        return self.planner.plan(perception.tokenize(synced[-1]).tokens, route)


def planned_speeds(plan) -> np.ndarray:
    """Speed over each interval of the chosen plan (m/s), from its waypoints."""
    xy = np.vstack([[0.0, 0.0], plan.trajectory.xy])
    return np.linalg.norm(np.diff(xy, axis=0), axis=1) / np.diff(np.concatenate([[0.0], plan.trajectory.t_s]))


def hold_scene(driver: Driver, core: SimulationCore, frames: int, arrange) -> object:
    """Plan ``frames`` consecutive frames of a scene that ``arrange(core)`` sets before each one; the last plan."""
    plan = None
    for _ in range(frames):
        arrange(core)
        plan = driver.plan(core.sense())
        core.hold(PERIOD_NS)
    return plan


# Known failures of the shipped model (issue 11 stays open on them; strict: a model that passes makes them fail
# until the mark goes): on highway-v0 seed 900 its 3 s point is 2.2 m from the expert's where rolling the speed
# forward is 0.94 m (it changes lanes when the expert does not), and it does not brake for a slow car close ahead.
KNOWN_FAILURE = pytest.mark.xfail(strict=True,
                                  reason='the shipped model misses it (docs/model.md, "What it cannot do")')


@pytest.mark.parametrize('scenario', [pytest.param('highway-v0', marks=KNOWN_FAILURE), 'roundabout-v0'])
def test_the_plan_follows_the_expert_over_a_held_out_drive(tmp_path, scenario):
    driver = Driver(tmp_path)
    core = driver.simulation(scenario)
    chosen, expert, speeds = [], [], []
    while core.step().finished is None and len(chosen) < 150:
        frame = core.sense()
        plan = driver.plan(frame, core.route_command)
        chosen.append(plan.trajectory.xy[5])      # 3 s ahead
        expert.append(frame.expert_plan.xy[5])
        speeds.append(frame.ego.speed)
    core.close()
    chosen, expert, speeds = np.array(chosen), np.array(expert), np.array(speeds)
    # What the plan adds to rolling the current speed forward must follow what the expert does.

    def beyond_inertia(xy):
        return np.concatenate([xy[:, 0] - 3.0 * speeds, xy[:, 1]])
    correlation = np.corrcoef(beyond_inertia(chosen), beyond_inertia(expert))[0, 1]
    model_error = np.linalg.norm(chosen - expert, axis=1).mean()
    inertia_error = np.linalg.norm(np.stack([3.0 * speeds, 0 * speeds], 1) - expert, axis=1).mean()
    assert correlation > 0.5, correlation
    assert model_error < inertia_error, (model_error, inertia_error)


def test_a_car_below_cruise_speed_on_a_free_road_plans_to_speed_up(tmp_path):
    driver = Driver(tmp_path)
    core = driver.simulation('highway-v0', driver='model')

    def free_road_at_10_mps(core):
        core.env.road.vehicles = [core.vehicle]
        core.vehicle.speed = 10.0

    plan = hold_scene(driver, core, 8, free_road_at_10_mps)
    core.close()
    speeds = planned_speeds(plan)
    assert speeds[-1] > 12.0 and speeds[-1] > speeds[0] + 1.5, speeds.round(2)


@KNOWN_FAILURE
def test_a_slow_car_ahead_in_the_lane_plans_to_brake(tmp_path):
    driver = Driver(tmp_path)
    core = driver.simulation('highway-v0', driver='model')
    ego, road = core.vehicle, core.env.road
    car = type(next(v for v in road.vehicles if v is not ego))
    start, end, lane_id = ego.lane_index
    s = ego.lane.local_coordinates(ego.position)[0]
    lead = car(road, ego.lane.position(s + 25.0, 0.0), heading=ego.lane.heading_at(s), speed=8.0)
    # cars beside the ego in the neighbouring lanes: braking is the only way out
    beside = [car(road, road.network.get_lane((start, end, i)).position(s, 0.0), heading=ego.lane.heading_at(s),
                  speed=20.0) for i in (lane_id - 1, lane_id + 1) if 0 <= i < len(road.network.graph[start][end])]

    def slow_car_25_m_ahead(core):
        core.env.road.vehicles = [core.vehicle, lead, *beside]
        core.vehicle.speed = 20.0

    plan = hold_scene(driver, core, 8, slow_car_25_m_ahead)
    core.close()
    speeds = planned_speeds(plan)
    assert speeds[-1] < 14.0 and plan.trajectory.xy[-1, 0] < 20.0 * 4.0 - 15.0, speeds.round(2)
