"""``avstack up``: start the stack's nodes with one YAML, without ``ros2 launch``."""

import signal
import sys
import tempfile
import threading
from pathlib import Path

import yaml

from avstack.launcher import STACK_NODES, Launcher, check_config
from avstack.paths import default_config
from stack_common.config import ConfigError, merge_documents, read_params_file

EXIT_USAGE = 2


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'up', help='start perception, planner and critic as separate processes',
        description='Start the stack the way `ros2 launch avstack stack.launch.py` does, for machines without '
                    'the launch packages: one process per node with --params-file, output prefixed per node, '
                    'Ctrl-C stops everything. Exits non-zero when a node dies (unless --respawn).')
    parser.add_argument('--config', type=Path, action='append', default=None,
                        help='parameter file (default: config/stack.yaml); repeat to lay override files over it, '
                             'later ones winning, e.g. --config config/stack.yaml '
                             '--config config/remaps/carla_ros_bridge.yaml')
    parser.add_argument('--use-sim-time', action='store_true', help='every node follows /clock')
    parser.add_argument('--respawn', action='store_true', help='restart a node that exits instead of stopping')
    parser.add_argument('--remap', action='append', default=[], metavar='FROM:=TO',
                        help='topic remap passed to every node (repeatable)')
    parser.add_argument('--nodes', nargs='+', choices=[n.name for n in STACK_NODES], default=None,
                        help='start only these nodes')
    parser.set_defaults(run=run)


def resolve_config(paths: list[Path] | None) -> Path:
    """The one parameter file the nodes read: the given one, or several merged (as stacked --params-file)."""
    if not paths:
        return default_config()
    if len(paths) == 1:
        return paths[0]
    merged = Path(tempfile.mkdtemp(prefix='avstack_up_')) / 'params.yaml'
    merged.write_text(yaml.safe_dump(merge_documents(*(read_params_file(p) for p in paths)), sort_keys=False))
    return merged


def run(args) -> int:
    nodes = [n for n in STACK_NODES if args.nodes is None or n.name in args.nodes]
    try:
        config = resolve_config(args.config)
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
