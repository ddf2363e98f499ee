"""``avstack bench``: measure the stack on this machine and print a table (numbers only, no pass/fail)."""

import importlib
import json
import platform
import sys
import time
from dataclasses import asdict

from avstack.commands.options import add_command, add_duration, add_out

# name -> module with run(options) -> list[Measurement]
BENCHMARKS = {
    'critic': 'avstack.benchmarks.critic',
    'stack': 'avstack.benchmarks.stack',
    'model': 'avstack.benchmarks.model_forward',
    'perception': 'avstack.benchmarks.perception',
    'sim': 'avstack.benchmarks.closed_loop',
    'eval': 'avstack.benchmarks.offline_eval',
}
SOAK = 'avstack.benchmarks.soak'   # not in the table: `make soak` runs it alone


def register(subparsers) -> None:
    parser = add_command(
        subparsers, 'bench', run, help='measure latency, throughput and compute time on this machine',
        description='Run the benchmarks and print a table; with --out the results also go to OUT/results.json '
                    '(OUT/soak.json with --soak). Benchmarks: ' + ', '.join(BENCHMARKS))
    parser.add_argument('--only', nargs='+', choices=list(BENCHMARKS), default=None, help='run only these')
    add_out(parser, help='where the JSON results go', required=False)
    parser.add_argument('--quick', action='store_true', help='shorter runs (for smoke tests), less precise numbers')
    parser.add_argument('--soak', action='store_true',
                        help='instead: run the full stack at 10 Hz for --duration and report memory growth, '
                             'dropped frames and latency drift (make soak)')
    add_duration(parser, 'seconds of the soak', default=600.0)


def run(args) -> int:
    results = {'machine': {'platform': platform.platform(), 'processor': platform.processor(),
                           'python': sys.version.split()[0]}, 'benchmarks': {}}
    print(f'{"benchmark":<12} {"measurement":<52} {"value":>12} unit')
    for name in ['soak'] if args.soak else args.only or BENCHMARKS:
        start = time.monotonic()
        measurements = importlib.import_module(SOAK if args.soak else BENCHMARKS[name]).run(args)
        results['benchmarks'][name] = {'seconds': round(time.monotonic() - start, 1),
                                       'measurements': [asdict(m) for m in measurements]}
        for m in measurements:
            value = '-' if m.value is None else f'{m.value:12.3f}'
            print(f'{name:<12} {m.name:<52} {value:>12} {m.unit}' + (f'  ({m.note})' if m.note else ''), flush=True)
    if args.out is not None:
        path = args.out / ('soak.json' if args.soak else 'results.json')
        path.write_text(json.dumps(results, indent=2) + '\n')
        print(f'results written to {path}')
    return 0
