"""``avstack``: the stack's command line. Each subcommand lives in its own module."""

import argparse
import importlib
import sys

# subcommand -> module with register(subparsers) and run(args) -> exit code
SUBCOMMANDS = {
    'up': 'avstack.up',
    'demo': 'avstack.demo',
    'bench': 'avstack.bench',
    'record': 'avstack.record',
    'replay': 'avstack.replay',
    'eval': 'avstack.evaluate',
    'model-info': 'avstack.model_info',
    'train': 'avstack.train',
    'mine': 'avstack.mine',
    'sim': 'avstack.sim',
    'sim-suite': 'avstack.sim_suite',
    'dagger': 'avstack.dagger',
}

EPILOG = """exit codes: 0 success, 1 failure (a node died, a check failed), 2 bad usage or configuration.
Run `avstack COMMAND --help` for the options of a command."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='avstack', description='Run, replay, evaluate, simulate and train the ROS 2 autonomy stack.',
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for module_name in SUBCOMMANDS.values():
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == '__main__':
    sys.exit(main())
