"""The safety driver: the simulator's own expert (IDM + MOBIL) and when it holds the wheel.

Owns: the ego vehicle class that either follows external (acceleration, steering) commands or, when the
safety driver is engaged, drives itself exactly like highway-env's other traffic (IDM for speed, MOBIL for
lane changes, the env's route to its destination through junctions); and :class:`SafetyDriver`, the
hand-over rules: an active takeover request hands the wheel to the expert and counts one takeover, and
control returns to the stack after ``hand_back_s`` of sim time.
Does not own: the critic's decision to request a takeover (critic_monitor), the metrics (sim_bridge.metrics).
"""

from dataclasses import dataclass, field

from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle

STACK, EXPERT = 'stack', 'expert'
EGO_COLOR = (50, 200, 0)


class SafetyDriverVehicle(IDMVehicle):
    """The ego: commanded from outside, or the IDM/MOBIL expert while ``expert_engaged``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.expert_engaged = False
        self.destination_node: str | None = None

    # highway-env's junction rules recolour (and un-colour) cars that yield; the ego stays green in the camera.
    color = property(lambda self: EGO_COLOR, lambda self, value: None, lambda self: None)

    def plan_route_to(self, destination: str) -> 'SafetyDriverVehicle':
        self.destination_node = destination
        return super().plan_route_to(destination)

    def engage_expert(self) -> None:
        """Take the wheel where the stack left the car: follow the current lane, re-plan the route from it."""
        if self.expert_engaged:
            return
        self.expert_engaged = True
        self.target_lane_index = self.lane_index
        if self.destination_node is not None:
            super().plan_route_to(self.destination_node)

    def release_expert(self) -> None:
        self.expert_engaged = False

    def act(self, action: dict | str | None = None) -> None:
        if self.expert_engaged:
            IDMVehicle.act(self)    # the commands of the stack are ignored while the expert drives
            if self.speed <= 0.0:   # IDM stopping for a target speed of 0 would otherwise creep backwards
                self.action['acceleration'] = max(self.action['acceleration'], 0.0)
        else:
            Vehicle.act(self, action)


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
