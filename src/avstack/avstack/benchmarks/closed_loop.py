"""Closed-loop simulation speed: lockstep steps per wall-clock second with the default model, and its parts.

* ``avstack sim`` as users run it (bridge, perception, planner and critic as processes over DDS, recording
  the MCAP) on highway-v0 in lockstep: simulation steps per wall-clock second once the model is loaded
  (the issue's target: at least 5), and the stack's latency per step (frame published to plan received).
* The bridge alone with the expert driving and recording: the data-collection rate.
* The bridge's own work per step, in-process: highway-env step, camera render, lidar conversion, scene info.
"""

import tempfile
import time
from pathlib import Path

import numpy as np

from avstack.benchmarks import Measurement
from avstack.sim.run import SimOptions, SimRun
from sim_bridge.simulation import SimulationCore
from stack_common.config import load_schema, validate

TARGET_STEPS_PER_S = 5.0


def closed_loop(driver: str, duration_s: float, out: Path) -> dict:
    with open(out.with_suffix('.log'), 'w') as log:
        return SimRun(SimOptions(out=out, scenarios=['highway-v0'], driver=driver, duration_s=duration_s,
                                 seed=0), log).run().report


def bridge_step_ms(steps: int) -> dict[str, float]:
    config = validate(load_schema('sim_bridge', 'bridge_node'), {'driver': 'expert', 'duration_s': 1000.0},
                      'bridge_node')
    core = SimulationCore(config)
    core.start_next_episode()
    sense_ms, step_ms = [], []
    for _ in range(steps):
        start = time.perf_counter()
        core.sense()
        middle = time.perf_counter()
        core.step()
        sense_ms.append((middle - start) * 1e3)
        step_ms.append((time.perf_counter() - middle) * 1e3)
    core.close()
    return {'sense': float(np.median(sense_ms)), 'step': float(np.median(step_ms))}


def run(options) -> list[Measurement]:
    duration_s = 10.0 if options.quick else 30.0
    with tempfile.TemporaryDirectory(prefix='avstack_bench_sim_') as tmp:
        model = closed_loop('model', duration_s, Path(tmp) / 'model')
        expert = closed_loop('expert', duration_s, Path(tmp) / 'expert')
    parts = bridge_step_ms(50 if options.quick else 200)
    model_run, expert_run = model['run'], expert['run']
    rate = model_run['steps_per_s']
    verdict = 'met' if rate and rate >= TARGET_STEPS_PER_S else 'MISSED'
    return [
        Measurement('lockstep closed loop, default model, highway-v0', rate, 'steps/s',
                    f'target >= {TARGET_STEPS_PER_S:.0f}: {verdict}; '
                    f'{model_run["steps"]} steps, recording'),
        Measurement('stack latency per step (frame -> plan), p50', model_run['plan_wait_p50_ms'], 'ms'),
        Measurement('stack latency per step (frame -> plan), p95', model_run['plan_wait_p95_ms'], 'ms'),
        Measurement('deadline misses in the lockstep run', float(model['total']['deadline_misses']), 'count'),
        Measurement('expert data collection, highway-v0, recording', expert_run['steps_per_s'], 'steps/s'),
        Measurement('bridge sensing per step (render, lidar, scene info)', parts['sense'], 'ms', 'median'),
        Measurement('bridge highway-env step (2 physics substeps)', parts['step'], 'ms', 'median'),
    ]
