"""The expert's intended plan: where the safety driver would take the car from here, by rolling out a copy.

Owns: :func:`expert_plan`, which copies the env, lets the simulator's expert (IDM + MOBIL, the env's route
and our gap acceptance at junctions) drive the copy's ego from the current state for the planning horizon,
undisturbed (no steering noise, no speed cap), and returns the ego's poses at the plan's times in
``base_link`` at the current state. The other vehicles move in the copy as they would, reacting to the
expert.

One computation, three uses: DAgger relabels every state the model visits with it (``/sim/expert_plan``),
expert-quality plans drive the real critic in ``--driver expert-plans`` (the critic's false-alarm rate), and
the expert's data carries clean labels even when its executed drive was disturbed (DART).

Only traffic within ``radius_m`` of the ego is copied into the rollout: highway-v0's 50 cars cost 1.1 s
per 4 s rollout, those within 120 m about a tenth of it, and a car farther away cannot reach the ego's
4 s path.
Does not own: who drives the real env (:mod:`sim_bridge.expert`), the Path message.
"""

import copy
import math

import numpy as np

ROLLOUT_RADIUS_M = 120.0


def _local(x: np.ndarray, y: np.ndarray, yaw: np.ndarray, x0: float, y0: float, yaw0: float) -> np.ndarray:
    """(T, 3) poses of the odom frame in base_link at (x0, y0, yaw0)."""
    c, s = math.cos(yaw0), math.sin(yaw0)
    dx, dy = x - x0, y - y0
    heading = np.arctan2(np.sin(yaw - yaw0), np.cos(yaw - yaw0))
    return np.stack([c * dx + s * dy, -s * dx + c * dy, heading], axis=1)


def expert_plan(env, t_s: np.ndarray, radius_m: float = ROLLOUT_RADIUS_M) -> np.ndarray:
    """``(T, 3)`` x, y, heading in ``base_link`` of the expert's rollout at times ``t_s`` (s, increasing, > 0).

    ``env`` is a reset bridge env (:func:`sim_bridge.envs.make_env`); it is not modified.
    """
    t_s = np.asarray(t_s, dtype=float)
    ego = env.vehicle
    x0, y0, yaw0 = float(ego.position[0]), float(ego.position[1]), float(ego.heading)
    # Copy only the road (network, nearby vehicles, objects): env.__deepcopy__ would copy the observation,
    # the action and the renderer's state too. The env itself stays shared (the ego's junction rules are
    # methods of it and read nothing that the rollout changes).
    everyone = env.road.vehicles
    env.road.vehicles = [v for v in everyone if v is ego or float(np.hypot(*(v.position - ego.position))) <= radius_m]
    memo: dict = {id(env): env}
    try:
        road = copy.deepcopy(env.road, memo)
    finally:
        env.road.vehicles = everyone
    twin = memo[id(ego)]
    twin.steering_noise = None
    twin.speed_disturbance = None
    twin.engage_expert()   # where the stack left the car; an expert already driving keeps its lane change
    dt = 1.0 / env.config['simulation_frequency']
    steps = int(round(t_s[-1] / dt))
    times, xs, ys, yaws = [0.0], [x0], [y0], [yaw0]
    for step in range(1, steps + 1):
        road.act()
        road.step(dt)
        times.append(step * dt)
        xs.append(float(twin.position[0]))
        ys.append(float(twin.position[1]))
        yaws.append(float(twin.heading))
    yaw = np.unwrap(np.asarray(yaws))
    at = [np.interp(t_s, times, values) for values in (xs, ys, yaw)]
    return _local(*at, x0, y0, yaw0)
