"""``avstack``: the stack's command line. Each subcommand lives in its own module in :mod:`avstack.commands`.

Building the parser imports only the command modules, which import nothing heavy at the top, so
``avstack --help`` and ``avstack COMMAND --help`` answer at once; a command imports its work in ``run``.
"""

import argparse
import importlib
import sys

from avstack.commands.options import CommandParser, run

# subcommand -> module with register(subparsers) (see avstack.commands.options.add_command)
SUBCOMMANDS = {
    'up': 'avstack.commands.up',
    'sensors': 'avstack.commands.sensors',
    'reset': 'avstack.commands.reset',
    'demo': 'avstack.commands.demo',
    'record': 'avstack.commands.record',
    'replay': 'avstack.commands.replay',
    'bag': 'avstack.commands.bag',
    'synthetic-bag': 'avstack.commands.synthetic_bag',
    'eval': 'avstack.commands.eval',
    'mine': 'avstack.commands.mine',
    'train': 'avstack.commands.train',
    'sim': 'avstack.commands.sim',
    'sim-suite': 'avstack.commands.sim_suite',
    'model-info': 'avstack.commands.model_info',
    'bench': 'avstack.commands.bench',
    'dagger': 'avstack.commands.dagger',
}

EPILOG = """exit codes: 0 success, 1 runtime failure (a node died, nothing came out), 2 bad usage, configuration
or input file (a missing or broken bag, a bad --config).
Run `avstack COMMAND --help` for the options of a command; docs/cli.md for what every command shares."""


def build_parser() -> CommandParser:
    parser = CommandParser(
        prog='avstack', description='Run, replay, evaluate, simulate and train the ROS 2 autonomy stack.',
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND', required=True,
                                       parser_class=CommandParser)
    for module_name in SUBCOMMANDS.values():
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv=None) -> int:
    """The exit code of ``avstack ARGV`` (also for --help and usage errors, which argparse exits with)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return exit_.code
    return run(args)


if __name__ == '__main__':
    sys.exit(main())
