"""A simulation run on the console: a live status line, the summary table, the exit code.

What ``avstack sim``, ``sim-suite``, ``dagger`` and ``demo`` share around :class:`avstack.sim.run.SimRun`.
"""

import signal
import sys
import time

from avstack.bag.files import replace_bag
from stack_common.constants import EXIT_FAILURE, EXIT_OK


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
