"""``avstack bench``: measure the stack on this machine and print a table (numbers only, no pass/fail)."""

import importlib
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

# name -> module with run(options) -> list[Measurement]
BENCHMARKS = {
    'critic': 'avstack.benchmarks.critic',
    'stack': 'avstack.benchmarks.stack',
    'model': 'avstack.benchmarks.model',
    'perception': 'avstack.benchmarks.perception',
    'sim': 'avstack.benchmarks.sim',
    'eval': 'avstack.benchmarks.eval',
}
SOAK = 'avstack.benchmarks.soak'   # not in the table: `make soak` runs it alone


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'bench', help='measure latency, throughput and compute time on this machine',
        description='Run the benchmarks and print a table; results also go to --out as JSON. '
                    'Benchmarks: ' + ', '.join(BENCHMARKS))
    parser.add_argument('--only', nargs='+', choices=list(BENCHMARKS), default=None, help='run only these')
    parser.add_argument('--out', type=Path, default=Path('bench/results.json'), help='JSON results file')
    parser.add_argument('--quick', action='store_true', help='shorter runs (for smoke tests), less precise numbers')
    parser.add_argument('--soak', action='store_true',
                        help='instead: run the full stack at 10 Hz for --duration-s and report memory growth, '
                             'dropped frames and latency drift (make soak)')
    parser.add_argument('--duration-s', type=float, default=600.0, help='soak duration (default 600)')
    parser.set_defaults(run=run)


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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + '\n')
    print(f'results written to {args.out}')
    return 0
