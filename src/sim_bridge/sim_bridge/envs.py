"""highway-env scenario families as the bridge drives them: continuous control, lidar, our own episode rules.

Owns: the four families (``highway-v0``, ``merge-v0``, ``roundabout-v0``, ``intersection-v0``) as subclasses
that (1) take highway-env's continuous action (acceleration, steering) for an ego that can also drive itself
(:class:`~sim_bridge.expert.SafetyDriverVehicle`), (2) observe highway-env's lidar, (3) end an episode on a
collision, on the family's own goal (end of the merge ramp, intersection exit) or after ``duration_s``, and
(4) compute no reward: highway-env's reward code assumes discrete actions, and the stack measures itself.
Does not own: rendering (:mod:`sim_bridge.camera`), message conversion, who drives (:mod:`sim_bridge.expert`).
"""

from dataclasses import dataclass

import numpy as np
from highway_env.envs.common.action import ContinuousAction
from highway_env.envs.highway_env import HighwayEnv
from highway_env.envs.intersection_env import IntersectionEnv
from highway_env.envs.merge_env import MergeEnv
from highway_env.envs.roundabout_env import RoundaboutEnv

from sim_bridge.expert import SafetyDriverVehicle
from sim_bridge.scenarios import scenario_id

class SafetyDriverAction(ContinuousAction):
    """highway-env's continuous action, for an ego that the safety driver can take over."""

    @property
    def vehicle_class(self):
        return SafetyDriverVehicle


@dataclass(frozen=True)
class EnvSettings:
    seed: int = 0
    density: float = 1.0             # traffic density multiplier (1 = the family's default)
    duration_s: float = 40.0         # episode length in sim time
    policy_hz: int = 10              # control (and sensor) rate: one bridge step
    physics_substeps: int = 2        # highway-env integration steps per bridge step
    lidar_beams: int = 720
    lidar_range_m: float = 60.0


class BridgeEnvMixin:
    """What every family shares: action and observation types, no reward, our episode end."""

    # The junction centre for the ``intersection`` scene tag, None where the family has none.
    junction_xy: tuple[float, float] | None = None
    # The stretch of road (x range, m) where traffic merges, for the ``merge`` scene tag.
    merge_zone_x_m: tuple[float, float] | None = None

    @classmethod
    def bridge_config(cls, settings: EnvSettings) -> dict:
        policy_hz = int(settings.policy_hz)
        return {
            'action': {'type': 'ContinuousAction'},
            'observation': {'type': 'LidarObservation', 'cells': settings.lidar_beams,
                            'maximum_range': settings.lidar_range_m, 'normalize': False},
            'policy_frequency': policy_hz,
            'simulation_frequency': int(policy_hz * settings.physics_substeps),
            'duration': settings.duration_s,
            'offscreen_rendering': True,
        }

    def define_spaces(self) -> None:
        super().define_spaces()
        self.action_type = SafetyDriverAction(self, **{k: v for k, v in self.config['action'].items()
                                                       if k != 'type'})
        self.action_space = self.action_type.space()

    def is_approach_lane(self, lane_index) -> bool:
        """Whether a lane ends at the entry of a junction (where the expert waits for a gap)."""
        return False

    def _reset(self) -> None:
        super()._reset()
        if self.junction_xy is not None:
            self.vehicle.is_approach_lane = self.is_approach_lane

    def _reward(self, action) -> float:
        return 0.0

    def _rewards(self, action) -> dict[str, float]:
        return {}

    def _info(self, obs, action=None) -> dict:
        return {'speed': self.vehicle.speed, 'crashed': self.vehicle.crashed}

    def _goal_reached(self) -> bool:
        return False

    def _is_terminated(self) -> bool:
        return bool(self.vehicle.crashed or self._goal_reached())

    def _is_truncated(self) -> bool:
        return self.time >= self.config['duration']


class BridgeHighwayEnv(BridgeEnvMixin, HighwayEnv):
    pass


class BridgeMergeEnv(BridgeEnvMixin, MergeEnv):
    merge_zone_x_m = (150.0, 320.0)   # converging ramp (150..230 m) and the merge lane (230..310 m)

    def _goal_reached(self) -> bool:
        return bool(self.vehicle.position[0] > 370)

    def _make_vehicles(self) -> None:
        super()._make_vehicles()
        self._add_density_vehicles()

    def _add_density_vehicles(self) -> None:
        """merge-v0 has four other vehicles; a density above 1 adds more on the main road."""
        extra = int(round(4 * (self.config['vehicles_density'] - 1.0)))
        other_type = type(self.road.vehicles[1])
        for _ in range(max(extra, 0)):
            lane = self.road.network.get_lane(('a', 'b', int(self.np_random.integers(2))))
            longitudinal = float(self.np_random.uniform(0.0, 200.0))
            position = lane.position(longitudinal, 0.0)
            if min(np.linalg.norm(v.position - position) for v in self.road.vehicles) < 15.0:
                continue
            self.road.vehicles.append(other_type(self.road, position, speed=float(self.np_random.uniform(22, 30))))


class BridgeRoundaboutEnv(BridgeEnvMixin, RoundaboutEnv):
    junction_xy = (0.0, 0.0)
    APPROACH_LANES = ('ser', 'ses', 'eer', 'ees', 'ner', 'nes', 'wer', 'wes')   # straight and curved entries

    def is_approach_lane(self, lane_index) -> bool:
        return lane_index[0] in self.APPROACH_LANES


class BridgeIntersectionEnv(BridgeEnvMixin, IntersectionEnv):
    junction_xy = (0.0, 0.0)

    def is_approach_lane(self, lane_index) -> bool:
        return lane_index[0].startswith('o')     # o<k> -> ir<k>: the incoming lanes

    def _goal_reached(self) -> bool:
        return bool(self.has_arrived(self.vehicle))


ENV_CLASSES = {
    'highway-v0': BridgeHighwayEnv,
    'merge-v0': BridgeMergeEnv,
    'roundabout-v0': BridgeRoundaboutEnv,
    'intersection-v0': BridgeIntersectionEnv,
}


def make_env(scenario: str, settings: EnvSettings):
    """A reset-ready env of one family; ``density`` scales the family's own traffic setting."""
    scenario = scenario_id(scenario)
    cls = ENV_CLASSES[scenario]
    config = cls.bridge_config(settings)
    if scenario == 'highway-v0':
        config['vehicles_density'] = settings.density
        config['vehicles_count'] = int(round(50 * settings.density))
    elif scenario == 'merge-v0':
        config['vehicles_density'] = settings.density
    elif scenario == 'intersection-v0':
        # intersection-v0 tries to spawn a car at every env step, designed for 1 step per second: at our
        # policy rate the same probability would make traffic policy_hz times denser than the family's.
        config['spawn_probability'] = float(np.clip(0.6 * settings.density / settings.policy_hz, 0.0, 1.0))
        config['initial_vehicle_count'] = max(int(round(10 * settings.density)), 1)
    return cls(config=config, render_mode='rgb_array')
