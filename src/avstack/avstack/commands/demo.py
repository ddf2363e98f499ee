"""``avstack demo`` (``make demo``): the default model drives highway-env in closed loop, with a live status line.

By default the bridge and perception, planner and critic run as processes over DDS, in lockstep, for
about 60 s of sim time on highway-v0 (``avstack sim`` with demo defaults): the status line shows sim time,
speed, distance, takeovers and the stack's latency per step; at the end the summary and the paths of the
report, the plots and the MCAP. ``--synthetic`` is the first demo: the synthetic scene's camera, lidar and
odometry at 10 Hz from this process, showing trajectories per second, latency and the takeover state.
"""

import sys
import time
from pathlib import Path

from avstack.commands.options import (
    Failure, add_command, add_config, add_duration, add_out, config_files, params_file,
)
from sim_bridge.scenarios import SCENARIOS, scenario_id
from stack_common.state import STATISTICS_FILE

STATUS_PERIOD_S = 0.5
SIM_DURATION_S = 60.0
SYNTHETIC_DURATION_S = 20.0


def register(subparsers) -> None:
    parser = add_command(
        subparsers, 'demo', run, help='the default model drives highway-env in closed loop (or --synthetic sensors)',
        description='Closed-loop drive: the bridge and the three nodes as processes over DDS, the default model '
                    'driving highway-v0 for ~60 s of sim time with a live status line (sim time, speed, km, '
                    'takeovers, latency), then the summary and the paths of report, plots and MCAP in OUT. '
                    'With --synthetic: the three nodes on the built-in synthetic scene (1280x720 camera, '
                    '~100k-point lidar, odometry at 10 Hz), showing trajectories per second, latency and '
                    'takeover state; OUT holds the node output (nodes.log), params.yaml and the critic\'s '
                    'takeover statistics.')
    parser.add_argument('--synthetic', action='store_true', help='synthetic sensors instead of the simulator')
    add_duration(parser, f'seconds of the drive: sim time (default {SIM_DURATION_S:.0f}); with --synthetic the '
                         f'scene runs in real time (default {SYNTHETIC_DURATION_S:.0f})')
    parser.add_argument('--scenario', type=scenario_id, default='highway-v0', metavar='SCENARIO',
                        help=f'scenario family to drive: {", ".join(SCENARIOS)}, the version optional')
    parser.add_argument('--checkpoint', type=Path, default=None, help='model checkpoint (default: the shipped one)')
    parser.add_argument('--realtime', action='store_true', help='drive at wall-clock rate instead of lockstep')
    add_out(parser, help='where the run\'s files go', required=False, state='demo')
    add_config(parser)


def status_line(observer, elapsed_s: float) -> str:
    """The live line of the synthetic demo, from an avstack.runtime.observer.StackObserver."""
    import numpy as np
    now = time.monotonic()
    recent = observer.latencies_ms(since_monotonic_s=now - 2.0)
    rate = len(recent) / 2.0 if elapsed_s >= 2.0 else float('nan')
    latency = f'{np.percentile(recent, 50):5.0f} ms' if len(recent) else '    - ms'
    return (f't={elapsed_s:5.1f}s  trajectories/s={rate:4.1f}  latency p50={latency}  '
            f'takeover={"ACTIVE" if observer.takeover_active else "no"} ({observer.critic_state})')


def run(args) -> int:
    if args.synthetic:
        return run_synthetic(args)
    from avstack.sim.console import execute
    from avstack.sim.run import SimOptions

    options = SimOptions(out=args.out, scenarios=[args.scenario], duration_s=args.duration or SIM_DURATION_S,
                         checkpoint=args.checkpoint, config=config_files(args), realtime=args.realtime)
    return execute(options, command='demo')[0]


def run_synthetic(args) -> int:
    import numpy as np

    from avstack.runtime.launcher import Launcher, check_config
    from avstack.runtime.observer import StackObserver
    from avstack.runtime.ros import RosRuntime
    from avstack.synthetic.sensor_source import SyntheticSensorSource

    duration_s = args.duration or SYNTHETIC_DURATION_S
    config = params_file(args, args.out)
    check_config(config)
    log_path = args.out / 'nodes.log'
    interactive = sys.stdout.isatty()
    print(f'starting the driving process (perception_node, planner_node) and critic_node (output in {log_path}) '
          '...', flush=True)
    with open(log_path, 'w') as log, RosRuntime() as ros, Launcher(config, output=log) as launcher:
        observer = ros.add(StackObserver(context=ros.context))
        ros.add(SyntheticSensorSource(context=ros.context))
        start = time.monotonic()
        last_print = 0.0
        while (elapsed := time.monotonic() - start) < duration_s:
            if any(entry.process.poll() is not None for entry in launcher.running.values()):
                raise Failure(f'a node exited early; see {log_path}')
            if interactive:
                print('\r' + status_line(observer, elapsed), end='', flush=True)
            elif elapsed - last_print >= 2.0:
                print(status_line(observer, elapsed), flush=True)
                last_print = elapsed
            time.sleep(STATUS_PERIOD_S)
        latencies = observer.latencies_ms()
        takeovers = list(observer.takeovers)
    print()
    print(f'summary: {len(latencies)} trajectories in {duration_s:.0f} s '
          f'({len(latencies) / duration_s:.1f}/s)')
    if len(latencies):
        print(f'         latency sensor stamp -> trajectory: p50 {np.percentile(latencies, 50):.0f} ms, '
              f'p99 {np.percentile(latencies, 99):.0f} ms')
    print(f'         takeover requests: {len(takeovers)}'
          + ''.join(f'\n           - {r.check}: {r.message}' for t in takeovers for r in t.reasons))
    print(f'         node output: {log_path}')
    print(f'         parameters: {config}; takeover statistics: {args.out / STATISTICS_FILE}')
    return 0 if len(latencies) else 1
