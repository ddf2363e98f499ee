"""``avstack sim``: drive highway-env in closed loop with the stack (or the expert) and report per scenario.

Starts the bridge and, with ``--driver model``, perception, planner and critic as processes over real DDS;
lockstep by default (one sim step per trajectory, so results do not depend on CPU speed). Writes
``DIR/report.json``, one plot per scenario, ``DIR/params.yaml`` and an MCAP of the run (``DIR/run_mcap``).
"""

import signal
import sys
import time
from pathlib import Path

from avstack.commands.options import (
    UsageError, add_command, add_config, add_duration, add_out, config_files, replace_bag,
)
from sim_bridge.scenarios import SCENARIOS, scenario_id
from stack_common.constants import EXIT_FAILURE, EXIT_OK

EPILOG = """examples:
  avstack sim --scenario highway-v0 --episodes 3 --seed 1 -o out/sim/highway
  avstack sim --scenario highway-v0 merge-v0 roundabout-v0 intersection-v0 --driver expert -o bags/expert
  avstack sim --scenario roundabout-v0 --checkpoint out/train/ckpt --realtime -o out/sim/demo

report.json per scenario: distance_km, stack_distance_km, duration_s, takeovers {count, reasons: how many
takeovers named each reason (one takeover can name several)}, km_per_takeover (stack km / takeovers; null
when none), collisions, collisions_per_km, mean_speed_mps, deadline_misses. --driver expert records training
data: camera, lidar, odometry (the label), /sim/scene_info."""


def add_run_arguments(parser) -> None:
    """Options shared by ``sim``, ``sim-suite`` and ``demo``."""
    parser.add_argument('--episodes', type=int, default=1, help='episodes per scenario (default 1)')
    parser.add_argument('--seed', type=int, default=0, help='env seed of episode 0; episode k uses seed + k')
    add_duration(parser, 'sim seconds per episode (default: config/sim.yaml, 40)')
    parser.add_argument('--density', type=float, default=None, help='traffic density multiplier (default 1)')
    add_config(parser)
    parser.add_argument('--sim-config', type=Path, default=None,
                        help='bridge parameters and stack overrides laid over the --config files '
                             '(default config/sim.yaml)')
    parser.add_argument('--no-record', action='store_true', help='do not write the MCAP of the run')


def register(subparsers) -> None:
    parser = add_command(
        subparsers, 'sim', run,
        help='closed-loop drive in highway-env: km per takeover, collisions per km, per scenario',
        description='Run the bridge and the stack (or the expert alone) as real processes over DDS for N '
                    'seeded episodes per scenario and write OUT/report.json, plots and an MCAP of the run.',
        epilog=EPILOG, raw=True)
    parser.add_argument('--scenario', nargs='+', type=scenario_id, default=['highway-v0'], metavar='SCENARIO',
                        help=f'scenario families, in order: {", ".join(SCENARIOS)}, the version optional '
                             f'(default highway-v0)')
    parser.add_argument('--driver', choices=('model', 'expert', 'expert-plans'), default='model',
                        help='model: the stack drives, the safety driver takes over on request; '
                             'expert: IDM/MOBIL drives everything (data collection, no stack nodes); '
                             'expert-plans: the expert\'s own 4 s plan is published as the planner\'s, tracked '
                             'and watched by the real critic (the critic\'s false alarms on good driving)')
    parser.add_argument('--checkpoint', type=Path, default=None, help='model checkpoint (default: the shipped one)')
    add_out(parser, help='where report.json, the plots, params.yaml, nodes.log and the MCAP (run_mcap) go')
    parser.add_argument('--realtime', action='store_true',
                        help='step at wall-clock rate with the newest trajectory (demos) instead of lockstep')
    parser.add_argument('--expert-noise', type=float, default=None, metavar='RAD',
                        help='with --driver expert: std of a slow steering disturbance on the expert, so the '
                             'recorded data shows recoveries from drift (e.g. 0.03)')
    parser.add_argument('--expert-speed-noise', type=float, default=None, metavar='HZ',
                        help='with --driver expert: rate of events in which the expert cruises at 0.3-1.2x its '
                             'cruise speed for 1.5-4 s, so the data shows recoveries to cruise (e.g. 0.1)')
    parser.add_argument('--lead-brake', type=float, default=None, metavar='HZ',
                        help='rate of events in which a car ahead of the ego (or one cutting in) brakes hard for '
                             '2-5 s, so the recorded data shows the answer to a braking lead car (e.g. 0.2)')
    parser.add_argument('--relabel', action='store_true',
                        help='record the expert\'s plan from every state on /sim/expert_plan (the driver label '
                             'of DAgger and of disturbed expert data; training prefers it to the logged future)')
    add_run_arguments(parser)


def options_from(args, scenarios: list[str], driver: str, out: Path, checkpoint: Path | None,
                 realtime: bool = False):
    from avstack.sim.run import SimOptions
    return SimOptions(out=out, scenarios=scenarios, episodes=args.episodes, seed=args.seed, driver=driver,
                      realtime=realtime, duration_s=args.duration, density=args.density, checkpoint=checkpoint,
                      expert_noise_rad=getattr(args, 'expert_noise', None),
                      expert_speed_noise_hz=getattr(args, 'expert_speed_noise', None),
                      lead_brake_hz=getattr(args, 'lead_brake', None),
                      relabel=getattr(args, 'relabel', False),
                      config=config_files(args), sim_config=args.sim_config, record=not args.no_record)


def status_line(status: dict | None) -> str:
    if status is None or 'speed_mps' not in status:
        return 'waiting for the stack (nodes starting, model loading) ...'
    return (f'{status["scenario"]} ep {status["episode"]}  t={status["stamp_ns"] / 1e9:7.1f}s  '
            f'v={status["speed_mps"]:5.1f} m/s  {status["distance_m"] / 1000:6.3f} km  '
            f'takeovers={status["takeovers"]}  collisions={status["collisions"]}  '
            f'driver={status["driver"]:<6}  latency={status.get("plan_wait_ms", 0):5.0f} ms')


class StatusPrinter:
    """A live status line on a terminal; a line every few seconds otherwise (logs, CI)."""

    def __init__(self, stream=None, period_s: float = 5.0):
        self.stream = stream or sys.stdout   # looked up now: sys.stdout may have been replaced since import
        self.interactive, self.period_s = self.stream.isatty(), period_s
        self._last = None

    def __call__(self, status: dict | None) -> None:
        line = status_line(status)
        if self.interactive:
            self.stream.write('\r' + line.ljust(120)[:160])
            self.stream.flush()
        elif self._last is None or time.monotonic() - self._last >= self.period_s:
            self._last = time.monotonic()
            print(line, file=self.stream, flush=True)

    def finish(self) -> None:
        if self.interactive:
            self.stream.write('\n')


def print_summary(report: dict, stream=None) -> None:   # None: the current sys.stdout
    print(f'{"scenario":<16} {"km":>7} {"takeovers":>9} {"km/takeover":>12} {"collisions":>10} '
          f'{"coll/km":>8} {"v mean":>7} {"misses":>6}', file=stream)
    for scenario, s in list(report['scenarios'].items()) + [('total', report['total'])]:
        kpt = '-' if s['km_per_takeover'] is None else f'{s["km_per_takeover"]:.3f}'
        cpk = '-' if s['collisions_per_km'] is None else f'{s["collisions_per_km"]:.2f}'
        speed = '-' if s['mean_speed_mps'] is None else f'{s["mean_speed_mps"]:.1f}'
        print(f'{scenario:<16} {s["distance_km"]:7.3f} {s["takeovers"]["count"]:9d} {kpt:>12} '
              f'{s["collisions"]:10d} {cpk:>8} {speed:>7} {s["deadline_misses"]:6d}', file=stream)
    takeovers = report['total']['takeovers']
    if takeovers['reasons']:
        print(f'takeover reasons (of {takeovers["count"]} takeovers, how many named each; one can name several): '
              + ', '.join(f'{k} {v}' for k, v in takeovers['reasons'].items()), file=stream)
    run = report['run']
    rate = '-' if run['steps_per_s'] is None else f'{run["steps_per_s"]:.1f}'
    print(f'{"lockstep" if report["lockstep"] else "realtime"}: {rate} sim steps per wall-clock second'
          + (f', stack latency per step p50 {run["plan_wait_p50_ms"]:.0f} ms'
             if run['plan_wait_p50_ms'] is not None else ''), file=stream)


def execute(options, command: str = 'sim') -> tuple[int, dict | None]:
    """Run ``options`` (a SimOptions) with a status line and a summary; returns (exit code, report)."""
    from avstack.sim.run import BAG_NAME, RESULTS_NAME, SimRun, SimRunError
    from stack_common.checkpoint import CheckpointError
    from stack_common.config import ConfigError

    options.out.mkdir(parents=True, exist_ok=True)
    replace_bag(options.out / BAG_NAME)   # an earlier run's, with --force
    log_path = options.out / 'nodes.log'
    printer = StatusPrinter()
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)   # stop the nodes on SIGTERM too
    try:
        with open(log_path, 'w') as log:
            print(f'[{command}] {options.driver} driving {", ".join(options.scenarios)} x{options.episodes} '
                  f'(seed {options.seed}, {"realtime" if options.realtime else "lockstep"}); '
                  f'node output: {log_path}', flush=True)
            result = SimRun(options, log).run(on_status=printer)
    except (ConfigError, CheckpointError):
        printer.finish()
        raise
    except SimRunError as error:
        printer.finish()
        print(f'avstack {command}: {error}; see {log_path}', file=sys.stderr)
        return EXIT_FAILURE, None
    except KeyboardInterrupt:
        printer.finish()
        print(f'avstack {command}: interrupted; the episodes finished so far are in '
              f'{options.out / RESULTS_NAME}', file=sys.stderr)
        return EXIT_FAILURE, None
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    printer.finish()
    print_summary(result.report)
    print(f'report: {result.report_path}')
    print('plots:  ' + ', '.join(str(p) for p in result.plots))
    if result.videos:
        print('videos: ' + ', '.join(str(p) for p in result.videos))
    if result.bag is not None:
        print(f'mcap:   {result.bag}')
    print(f'ran on ROS_DOMAIN_ID={result.report["ros_domain_id"]} (set ROS_DOMAIN_ID yourself to watch a run live)')
    return EXIT_OK, result.report


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def run(args) -> int:
    if args.episodes < 1:
        raise UsageError('--episodes must be at least 1')
    options = options_from(args, list(args.scenario), args.driver, args.out, args.checkpoint, args.realtime)
    return execute(options)[0]
