"""The safety driver: the simulator's own expert (IDM + MOBIL) and when it holds the wheel.

Owns: the ego vehicle class that either follows external (acceleration, steering) commands or, when the
safety driver is engaged, drives itself exactly like highway-env's other traffic (IDM for speed, MOBIL for
lane changes, the env's route to its destination through junctions); and :class:`SafetyDriver`, the
hand-over rules: an active takeover request hands the wheel to the expert and counts one takeover, and
control returns to the stack after ``hand_back_s`` of sim time.
Does not own: the critic's decision to request a takeover (critic_monitor), the metrics (sim_bridge.metrics).
"""

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle

STACK, EXPERT = 'stack', 'expert'
ROUTE_LANE_TOLERANCE_M = 4.0   # a car this far from a route lane's centre line (or ends) is not on it
EGO_COLOR = (50, 200, 0)


def path_ahead(road, lane_index, start_m: float, length_m: float, route) -> np.ndarray:
    """Points every metre along the lanes ahead (the current one from ``start_m``, then the route's next)."""
    network, points, remaining = road.network, [], length_m
    while remaining > 0:
        lane = network.get_lane(lane_index)
        end_m = min(lane.length, start_m + remaining)
        points += [lane.position(s, 0.0) for s in np.arange(start_m, end_m, 1.0)]
        remaining -= max(end_m - start_m, 0.0)
        following = [r for r in (route or []) if r[0] == lane_index[1]]
        successors = list(network.graph.get(lane_index[1], {}))
        if remaining <= 0 or not (following or successors):
            break
        _from, _to, _id = following[0] if following else (lane_index[1], successors[0], None)
        lane_index, start_m = (_from, _to, _id if _id is not None else 0), 0.0
    return np.array(points).reshape(-1, 2)


class SteeringNoise:
    """An Ornstein-Uhlenbeck disturbance: zero-mean, stationary std ``std_rad``, correlation time ``tau_s``."""

    def __init__(self, std_rad: float, dt_s: float, seed: int, tau_s: float = 1.0):
        self.std_rad, self.dt_s, self.tau_s = std_rad, dt_s, tau_s
        self.rng = np.random.default_rng(seed)
        self.value = 0.0

    def sample(self) -> float:
        decay = self.dt_s / self.tau_s
        self.value += -self.value * decay + self.std_rad * np.sqrt(2 * decay) * self.rng.standard_normal()
        return self.value


class SpeedDisturbance:
    """Now and then, the expert cruises at another speed for a while (data collection only).

    Events start at ``rate_hz`` (a Poisson process); each holds the expert's target speed at a factor of its
    cruise speed drawn from ``factor_range`` for a duration drawn from ``duration_range_s``, then lets go.
    The recorded drive then shows the car off its cruise speed and recovering to it, while the labels (the
    expert's plan, rolled out undisturbed) show how to get back.
    """

    def __init__(self, rate_hz: float, dt_s: float, seed: int, factor_range: tuple[float, float] = (0.3, 1.2),
                 duration_range_s: tuple[float, float] = (1.5, 4.0)):
        self.rate_hz, self.dt_s = rate_hz, dt_s
        self.factor_range, self.duration_range_s = factor_range, duration_range_s
        self.rng = np.random.default_rng(seed)
        self.factor, self._remaining_s = 1.0, 0.0

    def sample(self) -> float:
        """The factor on the cruise speed for this step."""
        if self._remaining_s > 0:
            self._remaining_s -= self.dt_s
        elif self.rng.random() < self.rate_hz * self.dt_s:
            self.factor = float(self.rng.uniform(*self.factor_range))
            self._remaining_s = float(self.rng.uniform(*self.duration_range_s))
        else:
            self.factor = 1.0
        return self.factor


class LeadBraking:
    """Now and then, a car ahead of the ego brakes hard, or cuts into its lane and brakes (data collection only).

    Events start at ``rate_hz`` (a Poisson process). The car is the one ahead in the ego's lane when it is
    within ``max_gap_m``, else one ahead in a neighbouring lane within ``cut_in_gap_m``, which is steered into
    the ego's lane (highway-env's cruising traffic keeps its distance and seldom shows either). Its target
    speed drops to a factor of its speed drawn from ``factor_range`` (IDM then brakes at up to 6 m/s^2) for a
    duration drawn from ``duration_range_s``; then it resumes. The recorded drive shows the expert's answer.
    """

    def __init__(self, rate_hz: float, dt_s: float, seed: int, factor_range: tuple[float, float] = (0.0, 0.5),
                 duration_range_s: tuple[float, float] = (2.0, 5.0), max_gap_m: float = 60.0,
                 cut_in_gap_m: tuple[float, float] = (8.0, 40.0)):
        self.rate_hz, self.dt_s, self.max_gap_m, self.cut_in_gap_m = rate_hz, dt_s, max_gap_m, cut_in_gap_m
        self.factor_range, self.duration_range_s = factor_range, duration_range_s
        self.rng = np.random.default_rng(seed)
        self.car, self._saved, self._remaining_s = None, (0.0, True), 0.0
        self.events = 0

    def step(self, road, ego) -> None:
        """Advance one period of ``dt_s``: end a running event, or maybe start one."""
        if self.car is not None:
            self._remaining_s -= self.dt_s
            if self._remaining_s <= 0:
                self.car.target_speed, self.car.enable_lane_change = self._saved
                self.car = None
            return
        if self.rng.random() >= self.rate_hz * self.dt_s:
            return
        car = self._pick(road, ego)
        if car is None:
            return
        self.car, self._saved = car, (car.target_speed, car.enable_lane_change)
        car.target_lane_index, car.enable_lane_change = ego.lane_index, False
        car.target_speed = float(car.speed * self.rng.uniform(*self.factor_range))
        self._remaining_s = float(self.rng.uniform(*self.duration_range_s))
        self.events += 1

    def _pick(self, road, ego):
        def gap(car) -> float:
            return float(np.dot(car.position - ego.position, ego.direction)) if car is not None else -1.0

        front, _ = road.neighbour_vehicles(ego, ego.lane_index)
        if hasattr(front, 'target_speed') and 0.0 < gap(front) <= self.max_gap_m:
            return front
        for lane_index in road.network.side_lanes(ego.lane_index):
            car, _ = road.neighbour_vehicles(ego, lane_index)
            if hasattr(car, 'target_speed') and self.cut_in_gap_m[0] <= gap(car) <= self.cut_in_gap_m[1]:
                return car
        return None


class SafetyDriverVehicle(IDMVehicle):
    """The ego: commanded from outside, or the IDM/MOBIL expert while ``expert_engaged``.

    At a junction the expert adds what highway-env's traffic lacks, gap acceptance: within
    ``ENTRY_ZONE_M`` of the end of an approach lane it waits while another car would be within
    ``CONFLICT_DISTANCE_M`` of a point of its own path through the junction less than ``TIME_GAP_S`` before
    or after the ego is there (the ego pulling away at ``PULL_AWAY_MPS2``, the other car at its speed), and
    once in the junction it does not stop for the env's priority rules (stopping there is what gets it hit).
    """

    ENTRY_ZONE_M = 15.0
    JUNCTION_PATH_M = 30.0
    CONFLICT_DISTANCE_M = 3.5
    TIME_GAP_S = 2.0
    PULL_AWAY_MPS2 = 2.0     # below IDM's comfortable 3 m/s^2: the ego's times are not optimistic
    CROSSING_RAD = np.radians(60)   # a car heading this far off the ego's heading crosses its path

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.expert_engaged = False
        self.destination_node: str | None = None
        self.cruise_speed_mps = float(self.target_speed)
        # Data collection only: disturbances of the expert's steering and cruise speed.
        self.steering_noise: SteeringNoise | None = None
        self.speed_disturbance: SpeedDisturbance | None = None
        # Set by the env where it has junctions: whether a lane leads into one.
        self.is_approach_lane: Callable[[tuple], bool] | None = None

    # highway-env's junction rules recolour (and un-colour) cars that yield; the ego stays green in the camera.
    color = property(lambda self: EGO_COLOR, lambda self, value: None, lambda self: None)

    def plan_route_to(self, destination: str) -> 'SafetyDriverVehicle':
        self.destination_node = destination
        return super().plan_route_to(destination)

    def engage_expert(self) -> None:
        """Take the wheel where the stack left the car: on the lane of its route it is on (the route it was
        given at the start, which the stack's driving did not consume), else the lane nearest to it and a
        route re-planned from there. Inside a junction the nearest lane is often a connector crossing the
        car's own: taking it would turn the car into another road."""
        if self.expert_engaged:
            return
        self.expert_engaged = True
        on_route = self.nearest_route_lane()
        if on_route is not None:
            index, lane_index = on_route
            self.route = [lane_index] + list(self.route[index + 1:])
            self.target_lane_index = lane_index
            return
        self.target_lane_index = self.lane_index
        if self.destination_node is not None:
            super().plan_route_to(self.destination_node)

    def nearest_route_lane(self) -> tuple[int, tuple] | None:
        """(index in the route, lane index) of the route's lane the car is on (within a lane width of its
        centre line, between its ends; any lane of a route's road, the nearest), None without a route or off
        it."""
        best, best_lateral = None, ROUTE_LANE_TOLERANCE_M
        network = self.road.network
        for index, (start, end, _) in enumerate(self.route or []):
            for candidate in range(len(network.graph.get(start, {}).get(end, []))):
                lane = network.get_lane((start, end, candidate))
                longitudinal, lateral = lane.local_coordinates(self.position)
                if -ROUTE_LANE_TOLERANCE_M <= longitudinal <= lane.length + ROUTE_LANE_TOLERANCE_M \
                        and abs(lateral) < best_lateral:
                    best, best_lateral = (index, (start, end, candidate)), abs(lateral)
        return best

    def release_expert(self) -> None:
        self.expert_engaged = False

    def act(self, action: dict | str | None = None) -> None:
        if self.expert_engaged:
            waiting = self.is_approach_lane is not None and not self.junction_clear()
            self.target_speed = 0.0 if waiting else self.cruise_speed_mps
            if self.speed_disturbance is not None:
                self.target_speed *= self.speed_disturbance.sample()
            IDMVehicle.act(self)    # the commands of the stack are ignored while the expert drives
            if self.steering_noise is not None:
                self.action['steering'] += self.steering_noise.sample()
        else:
            Vehicle.act(self, action)

    def step(self, dt: float) -> None:
        # IDM braking for a target speed of 0 overshoots into reversing within one step: stop at 0 instead.
        if self.expert_engaged and self.speed + self.action['acceleration'] * dt < 0.0:
            self.action['acceleration'] = -max(self.speed, 0.0) / dt
        super().step(dt)

    def acceleration(self, ego_vehicle, front_vehicle=None, rear_vehicle=None) -> float:
        """IDM, except that past its approach lane the expert does not brake for a car crossing its path.

        highway-env takes any car within a lane's width of the ego's lane as the car ahead: in a junction that
        is crossing traffic still on its own approach. Braking for it leaves the ego standing in the junction
        for that car to run into (the crashes of ``--driver expert-plans`` in intersection-v0); the gap it
        accepted at its own approach is what keeps it clear.
        """
        if (ego_vehicle is self and front_vehicle is not None and self.is_approach_lane is not None
                and not self.is_approach_lane(self.lane_index)
                and abs(np.arctan2(np.sin(front_vehicle.heading - self.heading),
                                   np.cos(front_vehicle.heading - self.heading))) > self.CROSSING_RAD):
            front_vehicle = None
        return super().acceleration(ego_vehicle, front_vehicle, rear_vehicle)

    def junction_clear(self) -> bool:
        """False while waiting at the entry of a junction for a gap; True everywhere else."""
        lane_index, lane = self.lane_index, self.lane
        if not self.is_approach_lane(lane_index):
            return True
        to_entry_m = lane.length - lane.local_coordinates(self.position)[0]
        if to_entry_m > self.ENTRY_ZONE_M:
            return True
        mine = path_ahead(self.road, lane_index, lane.length, self.JUNCTION_PATH_M, self.route)
        if not len(mine):
            return True
        my_times = self.arrival_times(to_entry_m + np.arange(len(mine)))
        horizon_s = float(my_times[-1]) + self.TIME_GAP_S
        for other in self.road.vehicles:
            if other is self or other.crashed or other.lane_index == lane_index:
                continue    # a car behind or ahead in the same lane is IDM's to follow
            speed = max(other.speed, 2.0)
            theirs = path_ahead(self.road, other.lane_index, other.lane.local_coordinates(other.position)[0],
                                speed * horizon_s + 3.0, getattr(other, 'route', None))
            if not len(theirs):
                continue
            close = np.linalg.norm(mine[:, None] - theirs[None], axis=2) < self.CONFLICT_DISTANCE_M
            mine_at, theirs_at = np.nonzero(close)
            if len(mine_at) and np.any(np.abs(my_times[mine_at] - theirs_at / speed) < self.TIME_GAP_S):
                return False
        return True

    def arrival_times(self, distances_m: np.ndarray) -> np.ndarray:
        """When the ego, pulling away from its speed at ``PULL_AWAY_MPS2`` up to its cruise speed, has driven
        each of ``distances_m``."""
        v0, cruise, a = max(self.speed, 0.0), max(self.cruise_speed_mps, self.speed, 1.0), self.PULL_AWAY_MPS2
        ramp_s = (cruise - v0) / a
        ramp_m = v0 * ramp_s + 0.5 * a * ramp_s ** 2
        on_ramp = (-v0 + np.sqrt(v0 ** 2 + 2 * a * np.minimum(distances_m, ramp_m))) / a
        return np.where(distances_m <= ramp_m, on_ramp, ramp_s + (distances_m - ramp_m) / cruise)


@dataclass
class Takeover:
    stamp_ns: int
    x_m: float
    y_m: float
    reasons: list[str] = field(default_factory=list)


class SafetyDriver:
    """Who drives. ``always_expert`` is expert mode (data collection): no hand-over at all."""

    def __init__(self, hand_back_s: float, always_expert: bool = False):
        self.hand_back_ns = int(hand_back_s * 1e9)
        self.always_expert = always_expert
        self.reset()

    def reset(self) -> None:
        """A new episode: the stack drives (unless expert mode), nothing counted yet."""
        self.driver = EXPERT if self.always_expert else STACK
        self.takeovers: list[Takeover] = []
        self._engaged_ns = 0

    def update(self, now_ns: int, request_active: bool, reasons: list[str], x_m: float, y_m: float) -> str:
        """Feed the current takeover request state; returns who drives this step (``'stack'`` or ``'expert'``).

        After ``hand_back_s`` the stack gets the wheel back; a request that is still (or again) active then
        is a new takeover, so a stack the critic keeps rejecting collects one takeover per hand-back period.
        """
        if self.always_expert:
            return self.driver
        if self.driver == EXPERT and now_ns - self._engaged_ns >= self.hand_back_ns:
            self.driver = STACK
        if self.driver == STACK and request_active:
            self.driver = EXPERT
            self._engaged_ns = now_ns
            self.takeovers.append(Takeover(now_ns, x_m, y_m, list(reasons) or ['unspecified']))
        return self.driver
