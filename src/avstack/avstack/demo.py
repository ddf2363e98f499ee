"""``avstack demo``: the stack on the built-in synthetic scene, with a live status line.

Starts perception, planner and critic as processes (as ``avstack up`` does),
publishes the synthetic camera, lidar and odometry at 10 Hz from this process,
and watches what comes back: trajectories per second, sensor-to-trajectory
latency and the critic's takeover state.
"""

import sys
import time
from pathlib import Path

import numpy as np

from avstack.launcher import Launcher, check_config
from avstack.observer import StackObserver
from avstack.paths import default_config
from avstack.ros_runtime import RosRuntime
from avstack.sensor_source import SyntheticSensorSource
from stack_common.config import ConfigError

EXIT_USAGE = 2
STATUS_PERIOD_S = 0.5


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'demo', help='run the stack on the built-in synthetic scene with a live status line',
        description='Start the three nodes, feed them a synthetic road scene (1280x720 camera, ~100k-point lidar, '
                    'odometry at 10 Hz) and show trajectories per second, latency and takeover state.')
    parser.add_argument('--duration', type=float, default=20.0, help='seconds to run (default 20)')
    parser.add_argument('--config', type=Path, default=None, help='parameter file (default: config/stack.yaml)')
    parser.add_argument('--log', type=Path, default=Path('out/demo/nodes.log'), help='where node output goes')
    parser.set_defaults(run=run)


def status_line(observer: StackObserver, elapsed_s: float) -> str:
    now = time.monotonic()
    recent = observer.latencies_ms(since_monotonic_s=now - 2.0)
    rate = len(recent) / 2.0 if elapsed_s >= 2.0 else float('nan')
    latency = f'{np.percentile(recent, 50):5.0f} ms' if len(recent) else '    - ms'
    return (f't={elapsed_s:5.1f}s  trajectories/s={rate:4.1f}  latency p50={latency}  '
            f'takeover={"ACTIVE" if observer.takeover_active else "no"} ({observer.critic_state})')


def run(args) -> int:
    config = args.config or default_config()
    try:
        check_config(config)
    except ConfigError as error:
        print(f'avstack demo: {error}', file=sys.stderr)
        return EXIT_USAGE
    args.log.parent.mkdir(parents=True, exist_ok=True)
    interactive = sys.stdout.isatty()
    print(f'starting perception_node, planner_node, critic_node (output in {args.log}) ...', flush=True)
    with open(args.log, 'w') as log, Launcher(config, output=log) as launcher, RosRuntime() as ros:
        observer = ros.add(StackObserver(context=ros.context))
        ros.add(SyntheticSensorSource(context=ros.context))
        start = time.monotonic()
        last_print = 0.0
        while (elapsed := time.monotonic() - start) < args.duration:
            if any(entry.process.poll() is not None for entry in launcher.running.values()):
                print(f'\na node exited early; see {args.log}', file=sys.stderr)
                return 1
            if interactive:
                print('\r' + status_line(observer, elapsed), end='', flush=True)
            elif elapsed - last_print >= 2.0:
                print(status_line(observer, elapsed), flush=True)
                last_print = elapsed
            time.sleep(STATUS_PERIOD_S)
        latencies = observer.latencies_ms()
        takeovers = list(observer.takeovers)
    print()
    print(f'summary: {len(latencies)} trajectories in {args.duration:.0f} s '
          f'({len(latencies) / args.duration:.1f}/s)')
    if len(latencies):
        print(f'         latency sensor stamp -> trajectory: p50 {np.percentile(latencies, 50):.0f} ms, '
              f'p99 {np.percentile(latencies, 99):.0f} ms')
    print(f'         takeover requests: {len(takeovers)}'
          + ''.join(f'\n           - {r.check}: {r.message}' for t in takeovers for r in t.reasons))
    print(f'         node output: {args.log}')
    return 0 if len(latencies) else 1
