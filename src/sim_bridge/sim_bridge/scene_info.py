"""Privileged scene information: what the simulator knows that the stack must infer (labels for training).

Owns: the ``/sim/scene_info`` document (``std_msgs/String`` JSON, see docs/simulation.md):
``{"stamp_ns", "scenario", "seed", "route_command", "tags": {name: bool}, "vehicles": [[x, y, heading, speed,
length, width], ...], "lanes": [[x, y], ...]}`` with every other vehicle and the lane centre lines near the ego
(points every ``LANE_STEP_M`` within ``LANE_RADIUS_M``) in the odom frame (= the simulator's world frame), and
the rules that derive the tags from the simulator's state:

* ``lead_vehicle_braking``: a vehicle ahead in the ego's lane, within ``lead_distance_m``, commanding a
  deceleration stronger than ``braking_decel_mps2``;
* ``cut_in``: a vehicle ahead within ``cut_in_distance_m`` changing lanes into the ego's lane;
* ``merge``: the ego inside the family's merge zone (merge-v0: the converging ramp and the merge lane);
* ``dense_traffic``: more than ``dense_count`` vehicles within ``dense_radius_m``;
* ``intersection``: the ego within ``junction_radius_m`` of the junction centre (intersection, roundabout).

Does not own: the message (the node wraps the JSON in ``std_msgs/String``), the env.
"""

import math
from dataclasses import dataclass

import numpy as np

LANE_STEP_M = 2.0
LANE_RADIUS_M = 130.0   # a 4 s plan at 30 m/s reaches 120 m


@dataclass(frozen=True)
class TagRules:
    lead_distance_m: float = 40.0
    braking_decel_mps2: float = 1.5
    cut_in_distance_m: float = 30.0
    dense_radius_m: float = 50.0
    dense_count: int = 8
    junction_radius_m: float = 40.0

    @classmethod
    def from_params(cls, params: dict) -> 'TagRules':
        return cls(**{k: (int(v) if k == 'dense_count' else float(v)) for k, v in params.items()})


def _same_road(a, b) -> bool:
    return a is not None and b is not None and tuple(a[:2]) == tuple(b[:2])


def _longitudinal_gap(ego, other) -> float:
    """How far ``other`` is ahead of the ego along the ego's lane (negative: behind)."""
    lane = ego.lane
    return float(lane.local_coordinates(other.position)[0] - lane.local_coordinates(ego.position)[0])


def scene_tags(env, rules: TagRules) -> dict[str, bool]:
    ego = env.vehicle
    others = [v for v in env.road.vehicles if v is not ego]
    lane_index = ego.lane_index
    lead_braking = cut_in = False
    for other in others:
        if not _same_road(other.lane_index, lane_index):
            continue
        gap = _longitudinal_gap(ego, other)
        if other.lane_index == lane_index and 0.0 < gap <= rules.lead_distance_m \
                and float(other.action.get('acceleration', 0.0)) <= -rules.braking_decel_mps2:
            lead_braking = True
        target = getattr(other, 'target_lane_index', None)
        if other.lane_index != lane_index and target == lane_index and 0.0 < gap <= rules.cut_in_distance_m:
            cut_in = True
    near = sum(1 for other in others if np.linalg.norm(other.position - ego.position) <= rules.dense_radius_m)
    zone = env.merge_zone_x_m
    junction = env.junction_xy
    return {
        'lead_vehicle_braking': lead_braking,
        'cut_in': cut_in,
        'merge': zone is not None and zone[0] <= float(ego.position[0]) <= zone[1],
        'dense_traffic': near > rules.dense_count,
        'intersection': junction is not None
        and math.hypot(ego.position[0] - junction[0], ego.position[1] - junction[1]) <= rules.junction_radius_m,
    }


def route_command(env) -> str:
    """The planner's route command for the ego's route: the turn between its first and last lane.

    Computed from geometry in the odom frame (counter-clockwise = left), not from highway-env's lane names,
    whose left and right are those of its y-down screen.
    """
    ego = env.vehicle
    route = getattr(ego, 'route', None)
    if env.junction_xy is None or not route:
        return 'follow'
    network = env.road.network
    first = network.get_lane(ego.lane_index)
    last_index = route[-1] if route[-1][2] is not None else (*route[-1][:2], 0)
    last = network.get_lane(last_index)
    turn = math.atan2(math.sin(last.heading_at(last.length) - first.heading_at(0.0)),
                      math.cos(last.heading_at(last.length) - first.heading_at(0.0)))
    if turn > math.radians(45):
        return 'left'
    if turn < -math.radians(45):
        return 'right'
    return 'straight'


def lane_points(env, radius_m: float = LANE_RADIUS_M, step_m: float = LANE_STEP_M) -> np.ndarray:
    """``(N, 2)`` points on the centre lines of every lane within ``radius_m`` of the ego (odom frame)."""
    ego_xy = np.asarray(env.vehicle.position, dtype=float)
    points = []
    for lanes in (lanes for targets in env.road.network.graph.values() for lanes in targets.values()):
        for lane in lanes:
            s0 = float(lane.local_coordinates(ego_xy)[0])
            start, end = max(0.0, s0 - radius_m), min(lane.length, s0 + radius_m)
            if end <= start:
                continue
            sampled = np.array([lane.position(s, 0.0) for s in np.arange(start, end + 1e-9, step_m)])
            points.append(sampled[np.linalg.norm(sampled - ego_xy, axis=1) <= radius_m])
    return np.concatenate(points) if points else np.zeros((0, 2))


def scene_info(env, scenario: str, stamp_ns: int, rules: TagRules, command: str, seed: int = 0) -> dict:
    ego = env.vehicle
    vehicles = [[float(v.position[0]), float(v.position[1]), float(v.heading), float(v.speed),
                 float(v.LENGTH), float(v.WIDTH)] for v in env.road.vehicles if v is not ego]
    lanes = np.round(lane_points(env), 2).tolist()
    return {'stamp_ns': int(stamp_ns), 'scenario': scenario, 'seed': int(seed), 'route_command': command,
            'tags': scene_tags(env, rules), 'vehicles': vehicles, 'lanes': lanes}
