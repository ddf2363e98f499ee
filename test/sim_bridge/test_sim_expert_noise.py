"""Data collection with a disturbed expert (DART): the expert drifts off its lane centre and steers back."""

import numpy as np

from sim_bridge.expert import SteeringNoise
from sim_bridge.simulation import SimulationCore
from stack_common.config import load_schema, validate


def lateral_offsets(noise_rad: float, seed: int = 3) -> tuple[np.ndarray, object]:
    config = validate(load_schema('sim_bridge', 'bridge_node'),
                      {'scenarios': ['highway-v0'], 'driver': 'expert', 'duration_s': 20.0, 'seed': seed,
                       'expert_steering_noise_rad': noise_rad}, 'bridge_node')
    core = SimulationCore(config)
    core.start_next_episode()
    offsets = []
    while (result := core.step()).finished is None:
        ego = core.vehicle
        offsets.append(ego.lane.local_coordinates(ego.position)[1])
    core.close()
    return np.abs(np.array(offsets)), result.finished


def test_the_noise_is_a_slow_zero_mean_disturbance_of_the_stated_size():
    noise = SteeringNoise(0.05, 0.05, seed=1)
    samples = np.array([noise.sample() for _ in range(40_000)])
    assert abs(samples.mean()) < 0.01 and 0.04 < samples.std() < 0.06
    assert np.corrcoef(samples[:-20], samples[20:])[0, 1] > 0.3   # still correlated 1 s later


def test_a_disturbed_expert_drifts_and_recovers_without_collision():
    clean, clean_record = lateral_offsets(0.0)
    disturbed, record = lateral_offsets(0.05)
    assert record.collisions == 0 and record.end_reason == 'time_limit'
    # it leaves the lane centre further than the undisturbed expert, and comes back: not a steady offset
    assert disturbed.max() > clean.max() + 0.1
    assert np.mean(disturbed < 0.5 * disturbed.max()) > 0.3
    assert record.distance_m > 0.8 * clean_record.distance_m
