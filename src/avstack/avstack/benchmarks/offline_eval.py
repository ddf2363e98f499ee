"""Offline evaluation speed: ``avstack eval``'s real-time factor on a generated 60 s bag.

The bag is the synthetic scene as a driver would log it (10 Hz 1280x720
bgr8 camera, 10 Hz ~100k-point lidar, 50 Hz odometry; mcap, ~3.6 GB) in a
temporary directory; eval runs over it with the default config and model,
writing output.mcap (the outputs and a reference to the input: the default),
report.json and the plots as a user's run would, then once more with
``--with-inputs`` (the inputs copied into output.mcap too).
Real-time factor = bag duration / wall time of the run (reading, decoding,
the three cores, writing; not the model loading or the plots). The CPU time
per bag second says what the run costs whatever else the machine is doing:
with N idle cores the factor cannot exceed N / (CPU s per bag s).
"""

import os
import sys
import tempfile
import time
from pathlib import Path

from avstack.benchmarks import Measurement
from avstack.offline.evaluate import evaluate
from avstack.offline.stack import OfflineConfig
from avstack.runtime.paths import default_config
from avstack.synthetic.bag import SyntheticBagSpec, write_synthetic_bag

TARGET_REAL_TIME_FACTOR = 8.0


def run(options) -> list[Measurement]:
    duration_s = 10.0 if options.quick else 60.0
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix='avstack_bench_eval_') as tmp:
        bag = write_synthetic_bag(Path(tmp) / 'bag', SyntheticBagSpec(duration_s=duration_s))
        bag_gb = sum(f.stat().st_size for f in bag.iterdir()) / 1e9
        config = OfflineConfig.load(default_config())
        wall_start = time.perf_counter()
        report = evaluate(bag, Path(tmp) / 'out', config, plots=True, progress=sys.stderr.isatty())
        total_wall_s = time.perf_counter() - wall_start
        with_inputs = evaluate(bag, Path(tmp) / 'out_with_inputs', config, plots=False,
                               progress=sys.stderr.isatty(), with_inputs=True)
    rig = f'{duration_s:.0f} s bag ({bag_gb:.1f} GB): 1280x720 camera + ~100k-point lidar at 10 Hz, odometry 50 Hz'
    measurements = [
        Measurement('load average (1 min) before / after', load_before, '',
                    f'after: {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores'),
        Measurement('eval real-time factor', report['real_time_factor'], 'x',
                    f'{rig}; default model; target >= {TARGET_REAL_TIME_FACTOR:g}x'),
        Measurement('eval wall time, whole run (model load, plots included)', total_wall_s, 's'),
        Measurement('eval real-time factor --with-inputs', with_inputs['real_time_factor'], 'x',
                    'the input messages copied into output.mcap too'),
        Measurement('eval CPU time per bag second (all threads)', report['cpu_s_per_bag_s'], 's/s',
                    f'factor <= {os.cpu_count()} cores / this on an idle machine'),
        Measurement('frames / trajectories', report['frames'], 'frames', f'{report["trajectories"]} trajectories'),
    ]
    for stage, summary in report['compute_ms'].items():
        measurements.append(Measurement(f'{stage} p50 (per {"message" if stage == "decode" else "frame"})',
                                        summary['p50_ms'], 'ms'))
        measurements.append(Measurement(f'{stage} p99', summary['p99_ms'], 'ms'))
    return measurements
