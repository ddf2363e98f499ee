"""``avstack up``: start the stack's nodes with one YAML, without ``ros2 launch``."""

import signal
import sys
import threading
from pathlib import Path

from avstack.launcher import STACK_NODES, Launcher, check_config
from avstack.paths import default_config
from stack_common.config import ConfigError

EXIT_USAGE = 2


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'up', help='start perception, planner and critic as separate processes',
        description='Start the stack the way `ros2 launch avstack stack.launch.py` does, for machines without '
                    'the launch packages: one process per node with --params-file, output prefixed per node, '
                    'Ctrl-C stops everything. Exits non-zero when a node dies (unless --respawn).')
    parser.add_argument('--config', type=Path, default=None, help='parameter file (default: config/stack.yaml)')
    parser.add_argument('--use-sim-time', action='store_true', help='every node follows /clock')
    parser.add_argument('--respawn', action='store_true', help='restart a node that exits instead of stopping')
    parser.add_argument('--remap', action='append', default=[], metavar='FROM:=TO',
                        help='topic remap passed to every node (repeatable)')
    parser.add_argument('--nodes', nargs='+', choices=[n.name for n in STACK_NODES], default=None,
                        help='start only these nodes')
    parser.set_defaults(run=run)


def run(args) -> int:
    config = args.config or default_config()
    nodes = [n for n in STACK_NODES if args.nodes is None or n.name in args.nodes]
    try:
        check_config(config, nodes)
    except ConfigError as error:
        print(f'avstack up: {error}', file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    launcher = Launcher(config, nodes, args.use_sim_time, args.respawn, tuple(args.remap))
    print(f'[avstack] starting {", ".join(n.name for n in nodes)} with {config}', flush=True)
    launcher.start()
    code = launcher.watch(until=stop)
    launcher.stop()
    return code
