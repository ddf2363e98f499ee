"""Soak: the full stack at 10 Hz for a long run (``make soak``: 10 minutes), watching for slow failure.

Reports resident-memory growth per node (from the end of the first minute,
so start-up allocations do not count), dropped frames, and the drift of the
end-to-end latency p99 between the first and the last minute.
"""

import contextlib
import json
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from avstack.benchmarks import Measurement
from avstack.benchmarks.stack import resident_mb, source_process
from avstack.synthetic import STAMPS_FILE
from avstack.runtime.launcher import Launcher
from avstack.runtime.observer import StackObserver
from avstack.runtime.paths import default_config
from avstack.runtime.ros import RosRuntime

RATE_HZ = 10.0
WINDOW_S = 60.0
SAMPLE_PERIOD_S = 10.0


def run(options) -> list[Measurement]:
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.randrange(100, 200)))
    duration_s = options.duration
    memory: list[tuple[float, dict]] = []
    with tempfile.TemporaryDirectory() as workdir, open(Path(workdir) / 'nodes.log', 'w') as log, \
            RosRuntime() as ros, Launcher(default_config(), output=log) as launcher:
        observer = ros.add(StackObserver(context=ros.context))
        source_out = Path(workdir) / 'source'
        source = source_process(launcher.env, RATE_HZ, duration_s, source_out)
        assert observer.wait_for(lambda o: o.trajectories, 120.0), 'the stack never planned'
        start = time.monotonic()
        while source.poll() is None:
            memory.append((time.monotonic() - start, resident_mb(launcher)))
            print(f'soak: {time.monotonic() - start:5.0f} s, {len(observer.trajectories)} trajectories, '
                  f'rss {", ".join(f"{k} {v:.0f} MiB" for k, v in memory[-1][1].items())}', flush=True)
            with contextlib.suppress(subprocess.TimeoutExpired):   # still running: sample again
                source.wait(SAMPLE_PERIOD_S)
        time.sleep(1.0)   # the last frames' trajectories are still on their way
        published = json.loads((source_out / STAMPS_FILE).read_text())
        received = {r.stamp_ns: r for r in observer.trajectories}
    measured = published[int(5 * RATE_HZ):]   # after the warm-up the stack gets before it is measured
    dropped = sum(1 for s in measured if s not in received)
    latencies = np.array([[(received[s].receipt_ns - s) / 1e6, (s - measured[0]) / 1e9] for s in measured
                          if s in received])
    first = latencies[latencies[:, 1] < WINDOW_S, 0]
    last = latencies[latencies[:, 1] >= latencies[-1, 1] - WINDOW_S, 0]
    baseline = next((m for t, m in memory if t >= WINDOW_S), memory[0][1])
    final = memory[-1][1]
    measurements = [Measurement('soak duration', duration_s, 's'),
                    Measurement('dropped frames', dropped, 'frames', f'of {len(measured)} at {RATE_HZ:g} Hz'),
                    Measurement('latency p99, first minute', float(np.percentile(first, 99)), 'ms'),
                    Measurement('latency p99, last minute', float(np.percentile(last, 99)), 'ms'),
                    Measurement('latency p99 drift', float(np.percentile(last, 99) - np.percentile(first, 99)), 'ms')]
    measurements += [Measurement(f'resident memory growth {name}', 100.0 * (final[name] / baseline[name] - 1), '%',
                                 f'{baseline[name]:.0f} -> {final[name]:.0f} MiB')
                     for name in final if name in baseline]
    return measurements
