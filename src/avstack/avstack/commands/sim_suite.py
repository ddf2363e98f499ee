"""``avstack sim-suite``: all four scenario families with fixed seeds, compared with a baseline, seesaw check.

Drives ``--checkpoint`` through highway, merge, roundabout and intersection (same seeds every time), then
the baseline checkpoint (or, when there is none, the expert's own plans through the same critic:
``--driver expert-plans``, the fair reference for km per takeover) through the same episodes, and prints one
table per family with both runs' km per takeover and per-km rates and their deltas, and the takeovers per
check of each run. A family whose takeovers or collisions per km rose by more than the tolerance regressed;
one whose rates fell improved. A regression in one family while another improved is a seesaw. With
``--gate`` a seesaw or any regression exits 1: a model change must not trade one kind of road for another.
"""

import json
from pathlib import Path

from avstack.commands.options import UsageError, add_command, add_out, add_sim_arguments, sim_options
from avstack.sim.report import Tolerance
from sim_bridge.scenarios import SCENARIOS
from stack_common.constants import EXIT_FAILURE, EXIT_OK

SUITE_SEED = 1000
SUITE_EPISODES = 2
SUITE_DURATION_S = 30.0


def register(subparsers) -> None:
    parser = add_command(
        subparsers, 'sim-suite', run, help='all four scenario families, deltas against a baseline, seesaw gate',
        description=__doc__.split('\n\n', 1)[1].replace('\n', ' '),
        epilog='examples:\n'
               '  avstack sim-suite --checkpoint out/train/new --baseline out/train/old --gate -o out/suite\n'
               '  avstack sim-suite --checkpoint out/train/new -o out/suite        (compared with the expert)\n'
               'Writes OUT/current/, OUT/baseline/ (or OUT/expert/) with a report each, and OUT/suite.json.\n'
               'exit codes: 0 no seesaw or regression (or no --gate), 1 seesaw/regression with --gate or a failed '
               'run, 2 usage',
        raw=True)
    parser.add_argument('--checkpoint', type=Path, default=None,
                        help='the model to evaluate (default: the shipped one, as the nodes load it)')
    parser.add_argument('--baseline', type=Path, default=None,
                        help='the model to compare with (default: the expert, see --reference)')
    parser.add_argument('--reference', choices=('expert-plans', 'expert'), default='expert-plans',
                        help='without --baseline: expert-plans (the expert\'s plans tracked and watched by the '
                             'same critic: its takeovers are the critic\'s false alarms) or expert (the expert '
                             'drives the simulator itself, no stack, no critic)')
    parser.add_argument('--reference-only', action='store_true',
                        help='drive only the reference (e.g. the critic\'s false-alarm rate on expert plans)')
    parser.add_argument('--gate', action='store_true', help='exit 1 on a seesaw or any regression')
    parser.add_argument('--tolerance', type=float, default=Tolerance.relative,
                        help=f'relative change of a per-km rate that counts (default {Tolerance.relative})')
    parser.add_argument('--tolerance-per-km', type=float, default=Tolerance.per_km,
                        help=f'absolute change per km that counts as well (default {Tolerance.per_km})')
    add_out(parser, help='where OUT/current/, OUT/baseline/ (or OUT/expert/) and OUT/suite.json go')
    add_sim_arguments(parser)
    parser.set_defaults(seed=SUITE_SEED, episodes=SUITE_EPISODES, duration=SUITE_DURATION_S)


def run(args) -> int:
    if args.episodes < 1 or args.tolerance < 0 or args.tolerance_per_km < 0:
        raise UsageError('--episodes must be >= 1 and tolerances >= 0')
    from avstack.sim.console import execute
    from avstack.sim.report import checks_table, compare, comparison_table, takeovers_per_check

    reference_name = 'baseline' if args.baseline else args.reference
    plan = [] if args.reference_only else [('current', 'model', args.checkpoint)]
    plan.append((reference_name, 'model' if args.baseline else args.reference, args.baseline))
    runs = {}
    for name, driver, checkpoint in plan:
        code, report = execute(sim_options(args, list(SCENARIOS), driver, args.out / name, checkpoint),
                               command='sim-suite')
        if code != EXIT_OK:
            return code
        runs[name] = report
    print()
    print(checks_table(runs))
    suite = {'checkpoint': str(args.checkpoint or 'default'),
             reference_name: str(args.baseline) if args.baseline else args.reference,
             'seed': args.seed, 'episodes': args.episodes,
             'takeovers_per_check': {name: takeovers_per_check(report) for name, report in runs.items()},
             'reports': {name: str(args.out / name / 'report.json') for name in runs}}
    comparison = None
    if 'current' in runs:
        comparison = compare(runs['current']['scenarios'], runs[reference_name]['scenarios'],
                             Tolerance(args.tolerance, args.tolerance_per_km))
        print()
        print(comparison_table(comparison, 'current', reference_name))
        suite['comparison'] = comparison
    (args.out / 'suite.json').write_text(json.dumps(suite, indent=2) + '\n')
    print(f'suite: {args.out / "suite.json"}')
    return gate_exit_code(comparison, args.gate) if comparison is not None else EXIT_OK


def gate_exit_code(comparison: dict, gate: bool) -> int:
    """With the gate on, a seesaw or any regressed family fails the suite."""
    failed = comparison['seesaw'] or bool(comparison['regressed'])
    return EXIT_FAILURE if gate and failed else EXIT_OK
