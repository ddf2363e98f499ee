"""End-to-end latency over DDS, per-stage compute in-process, the ROS overhead ratio, the highest input rate
sustained without a dropped frame, and resident memory per node.

The stack runs as it does live (three node processes, default config); the
synthetic sensor source is a fourth process replaying pre-rendered 1280x720
images and ~100k-point clouds, so it costs the stack little CPU. Latency is
the time from the sensor stamp to the trajectory's receipt in this process.
"""

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from avstack.benchmarks import Measurement
from avstack.launcher import Launcher
from avstack.observer import StackObserver
from avstack.commands.sensors import STAMPS_FILE
from avstack.paths import default_config
from avstack.ros_runtime import RosRuntime
from avstack.stage_timing import stage_times_ms

RATES_HZ = (10.0, 15.0, 20.0, 30.0)
WARMUP_S = 5.0


def source_process(env: dict, rate_hz: float, duration_s: float, out: Path) -> subprocess.Popen:
    """``avstack sensors --synthetic`` as its own process; the stamps it published go to ``out/stamps.json``."""
    return subprocess.Popen([sys.executable, '-m', 'avstack.cli', 'sensors', '--synthetic', '--rate', str(rate_hz),
                             '--duration', str(duration_s), '--replay-frames', '20', '--out', str(out)],
                            env=env, stdout=subprocess.DEVNULL)


def drive(launcher: Launcher, observer: StackObserver, rate_hz: float, duration_s: float, workdir: Path) -> dict:
    """Feed the running stack at ``rate_hz`` for warm-up + ``duration_s``; stats of the measured part."""
    source_out = workdir / f'source_{rate_hz:g}'
    process = source_process(launcher.env, rate_hz, WARMUP_S + duration_s, source_out)
    try:
        process.wait(timeout=WARMUP_S + duration_s + 60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise RuntimeError(f'the sensor source did not finish at {rate_hz:g} Hz (machine overloaded?)') from None
    time.sleep(1.0)   # trajectories of the last frames are still on their way
    published = json.loads((source_out / STAMPS_FILE).read_text())
    measured = published[int(WARMUP_S * rate_hz):]
    returned = observer.returned_stamps()
    latencies = [(r.receipt_ns - r.stamp_ns) / 1e6 for r in observer.trajectories if r.stamp_ns in set(measured)]
    return {'published': len(measured), 'dropped': sum(1 for s in measured if s not in returned),
            'latencies_ms': np.array(latencies)}


def resident_mb(launcher: Launcher) -> dict[str, float]:
    return {name: psutil.Process(entry.process.pid).memory_info().rss / 2 ** 20
            for name, entry in launcher.running.items() if entry.process.poll() is None}


def run(options) -> list[Measurement]:
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.randrange(100, 200)))
    frames = 20 if options.quick else 100
    stages = stage_times_ms(frames)
    measurements = [Measurement(f'stage {name} p{q}', float(np.percentile(times, q)), 'ms', 'in-process')
                    for name, times in stages.items() for q in (50, 99)]
    duration_s = 8.0 if options.quick else 30.0
    with tempfile.TemporaryDirectory() as workdir, open(Path(workdir) / 'nodes.log', 'w') as log, \
            RosRuntime() as ros, Launcher(default_config(), output=log) as launcher:
        observer = ros.add(StackObserver(context=ros.context))
        results = {}
        for rate_hz in RATES_HZ[:2] if options.quick else RATES_HZ:
            observer.trajectories.clear()
            results[rate_hz] = drive(launcher, observer, rate_hz, duration_s, Path(workdir))
            if rate_hz == RATES_HZ[0]:
                memory = resident_mb(launcher)
            if results[rate_hz]['dropped']:
                break
    nominal = results[RATES_HZ[0]]
    latencies = nominal['latencies_ms']
    if len(latencies):
        e2e_p50 = float(np.percentile(latencies, 50))
        measurements += [Measurement('end-to-end latency p50 (10 Hz, DDS)', e2e_p50, 'ms'),
                         Measurement('end-to-end latency p99 (10 Hz, DDS)', float(np.percentile(latencies, 99)), 'ms'),
                         Measurement('overhead ratio (e2e p50 / sum of stage p50)',
                                     e2e_p50 / sum(float(np.percentile(t, 50)) for t in stages.values()), '')]
    measurements.append(Measurement('dropped frames at 10 Hz', nominal['dropped'], 'frames',
                                    f'of {nominal["published"]} in {duration_s:.0f} s'))
    sustained = [rate for rate, result in results.items() if not result['dropped']]
    measurements.append(Measurement(f'highest rate without a dropped frame ({duration_s:.0f} s)',
                                    max(sustained) if sustained else None, 'Hz',
                                    f'tried {", ".join(f"{r:g}" for r in results)} Hz'))
    measurements += [Measurement(f'resident memory {name}', mb, 'MiB') for name, mb in memory.items()]
    return measurements
