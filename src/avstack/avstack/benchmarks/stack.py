"""End-to-end latency over DDS for both layouts, per-stage compute in-process, the overhead ratio, CPU per frame
per process, the highest input rate sustained without a dropped frame, and resident memory per process.

The stack runs as it does live (default config), in both layouts of
``avstack up``: ``split`` (perception_node, planner_node, critic_node, one
process each) and ``composed`` (perception and planner in one driving
process, critic_node beside it). The machine is shared, so the layouts take
turns in the same run, A B A B at 10 Hz, and each one's figures pool its two
rounds: a load that comes and goes falls on both. The synthetic sensor source
is a separate process replaying pre-rendered 1280x720 bgr8 images and
~100k-point clouds, so it costs the stack little CPU. Latency is the time from
the sensor stamp to the trajectory's receipt in this process; a frame is
dropped when no trajectory of its stamp came back; CPU time is divided by the frames that were planned. The
overhead ratio divides
the end-to-end p50 by the sum of the in-process stage p50s
(:mod:`avstack.benchmarks.stage_timing`, measured as the nodes work: their thread counts,
the copy of each raw take included).
"""

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import psutil

from avstack.benchmarks import Measurement
from avstack.synthetic import STAMPS_FILE
from avstack.runtime.launcher import LAYOUTS, Launcher
from avstack.runtime.observer import StackObserver
from avstack.runtime.paths import default_config
from avstack.runtime.ros import RosRuntime
from avstack.benchmarks.stage_timing import stage_times_ms

NOMINAL_HZ = 10.0
HIGHER_RATES_HZ = (15.0, 20.0, 30.0)
ROUNDS = ('split', 'composed', 'split', 'composed')   # A B A B
WARMUP_S = 5.0
STARTUP_TIMEOUT_S = 180.0
SETTLE_S = 1.0   # trajectories of the last frames are still on their way


def source_process(env: dict, rate_hz: float, out: Path) -> subprocess.Popen:
    """``avstack sensors --synthetic`` as its own process until SIGINT; its stamps go to ``out/stamps.json``."""
    return subprocess.Popen([sys.executable, '-m', 'avstack.cli', 'sensors', '--synthetic', '--rate', str(rate_hz),
                             '--replay-frames', '20', '--out', str(out)], env=env, stdout=subprocess.DEVNULL)


def cpu_s(launcher: Launcher) -> dict[str, float]:
    """CPU seconds (user + system, all threads) each process of the stack has used so far."""
    times = {}
    for name, entry in launcher.running.items():
        cpu = psutil.Process(entry.process.pid).cpu_times()
        times[name] = cpu.user + cpu.system
    return times


def drive(launcher: Launcher, observer: StackObserver, rate_hz: float, duration_s: float, out: Path) -> dict:
    """Feed the stack at ``rate_hz`` until it plans, then warm-up + ``duration_s``; figures of the measured part."""
    observer.trajectories.clear()
    process = source_process(launcher.env, rate_hz, out)
    try:
        if not observer.wait_for(lambda o: o.trajectories, STARTUP_TIMEOUT_S):
            raise RuntimeError(f'no trajectory within {STARTUP_TIMEOUT_S:.0f} s at {rate_hz:g} Hz (see nodes.log)')
        time.sleep(WARMUP_S)
        start_ns, cpu_before = time.time_ns(), cpu_s(launcher)
        time.sleep(duration_s)
        end_ns, cpu_after = time.time_ns(), cpu_s(launcher)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    time.sleep(SETTLE_S)
    measured = [s for s in json.loads((out / STAMPS_FILE).read_text()) if start_ns <= s < end_ns]
    wanted = set(measured)
    returned = observer.returned_stamps()
    latencies = [(r.receipt_ns - r.stamp_ns) / 1e6 for r in list(observer.trajectories) if r.stamp_ns in wanted]
    return {'published': len(measured), 'dropped': len(wanted - returned), 'latencies_ms': latencies,
            'cpu_s': {name: cpu_after[name] - cpu_before[name] for name in cpu_after}}


def resident_mb(launcher: Launcher) -> dict[str, float]:
    return {name: psutil.Process(entry.process.pid).memory_info().rss / 2 ** 20
            for name, entry in launcher.running.items() if entry.process.poll() is None}


def run(options) -> list[Measurement]:
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.randrange(100, 200)))
    load_before = os.getloadavg()[0]
    frames = 20 if options.quick else 100
    stages = stage_times_ms(frames)
    stage_sum_ms = sum(float(np.percentile(t, 50)) for t in stages.values())
    measurements = [Measurement(f'stage {name} p{q}', float(np.percentile(times, q)), 'ms', 'in-process')
                    for name, times in stages.items() for q in (50, 99)]
    round_s = 8.0 if options.quick else 15.0
    pooled = {layout: defaultdict(list) for layout in LAYOUTS}
    memory, sustained = {}, {layout: [] for layout in LAYOUTS}
    with tempfile.TemporaryDirectory() as workdir, open(Path(workdir) / 'nodes.log', 'w') as log, \
            RosRuntime() as ros:
        observer = ros.add(StackObserver(context=ros.context))
        for index, layout in enumerate(ROUNDS):
            with Launcher(default_config(), LAYOUTS[layout], output=log) as launcher:
                result = drive(launcher, observer, NOMINAL_HZ, round_s, Path(workdir) / f'round{index}')
                memory.setdefault(layout, resident_mb(launcher))
                rates = () if options.quick or index < len(LAYOUTS) else HIGHER_RATES_HZ
                for rate_hz in rates:   # after its last nominal round: how fast can this layout go
                    faster = drive(launcher, observer, rate_hz, round_s, Path(workdir) / f'round{index}_{rate_hz:g}')
                    if faster['dropped']:
                        break
                    sustained[layout].append(rate_hz)
            for key in ('published', 'dropped'):
                pooled[layout][key].append(result[key])
            pooled[layout]['latencies_ms'] += result['latencies_ms']
            for name, seconds in result['cpu_s'].items():
                pooled[layout][f'cpu/{name}'].append(seconds)
    measurements.append(Measurement('load average (1 min) before / after', load_before, '',
                                    f'after: {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores, shared machine'))
    for layout in LAYOUTS:
        figures = pooled[layout]
        published, dropped, latencies = sum(figures['published']), sum(figures['dropped']), figures['latencies_ms']
        rounds = f'{layout}, {ROUNDS.count(layout)} rounds of {round_s:.0f} s at {NOMINAL_HZ:g} Hz'
        if latencies:
            e2e_p50 = float(np.percentile(latencies, 50))
            measurements += [
                Measurement(f'{layout}: end-to-end latency p50 (DDS)', e2e_p50, 'ms', rounds),
                Measurement(f'{layout}: end-to-end latency p99 (DDS)', float(np.percentile(latencies, 99)), 'ms'),
                Measurement(f'{layout}: overhead ratio (e2e p50 / sum of stage p50)', e2e_p50 / stage_sum_ms, '',
                            f'stages sum to {stage_sum_ms:.1f} ms')]
        measurements.append(Measurement(f'{layout}: dropped frames at {NOMINAL_HZ:g} Hz', dropped, 'frames',
                                        f'of {published}'))
        planned = published - dropped   # frames whose trajectory came back: what the CPU time bought
        measurements += [Measurement(f'{layout}: CPU per planned frame {key[4:]}', 1e3 * sum(seconds) / max(planned, 1),
                                     'ms', f'user + system, all threads; {planned} frames planned')
                         for key, seconds in figures.items() if key.startswith('cpu/')]
        if not options.quick:
            best = max([NOMINAL_HZ] + sustained[layout]) if not dropped else None
            measurements.append(Measurement(f'{layout}: highest rate without a dropped frame ({round_s:.0f} s)',
                                            best, 'Hz', f'tried {NOMINAL_HZ:g}'
                                            + ''.join(f', {r:g}' for r in HIGHER_RATES_HZ[:len(sustained[layout]) + 1])
                                            + ' Hz'))
        measurements += [Measurement(f'{layout}: resident memory {name}', mb, 'MiB')
                         for name, mb in memory.get(layout, {}).items()]
    return measurements
