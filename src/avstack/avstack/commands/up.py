"""``avstack up``: start the stack's nodes with one YAML, without ``ros2 launch``."""

import tempfile
from pathlib import Path

from avstack.commands.options import (
    UsageError, add_command, add_config, add_out, add_remap, params_file, stop_on_signals,
)
from stack_common.state import STATISTICS_FILE


def register(subparsers) -> None:
    parser = add_command(
        subparsers, 'up', run, help='start the stack: the driving process (perception + planner) and the critic',
        description='Start the stack the way `ros2 launch avstack stack.launch.py` does, for machines without '
                    'the launch packages, with --params-file, output prefixed per process, Ctrl-C stopping '
                    'everything (the critic last; its last act is a takeover request). Layouts: composed (the '
                    'default) runs perception_node and planner_node in one driving process, the token sets handed '
                    'over in memory, and critic_node in its own; split runs each node in its own process (to debug '
                    'one, or to spread them over machines). The monitor '
                    'outlives what it monitors: when perception or the planner dies (and --respawn is not given), '
                    'the other nodes keep running, so the critic\'s takeover request stands, and `avstack up` exits '
                    'non-zero once stopped. When the critic dies, nothing monitors the stack: everything stops, exit '
                    'non-zero. Without sensors of your own, `avstack sensors --synthetic` feeds it.',
        epilog='exit codes: 0 stopped by Ctrl-C with every node alive, 1 (or the node\'s own code) a node died '
               'without --respawn, 2 bad usage or configuration.\n\n'
               'examples:\n'
               '  avstack up\n'
               '  avstack up --layout split --nodes perception_node critic_node\n'
               '  avstack up --config config/remaps/carla_ros_bridge.yaml --use-sim-time\n'
               '  avstack up -o runs/today      (OUT/params.yaml and the critic\'s OUT/takeover_statistics.json)',
        raw=True)
    add_config(parser)
    add_out(parser, help='where the run\'s parameter file and the critic\'s takeover statistics go',
            required=False)
    parser.add_argument('--use-sim-time', action='store_true', help='every node follows /clock')
    parser.add_argument('--respawn', action='store_true', help='restart a node that exits instead of stopping')
    add_remap(parser, help='topic remap passed to every node (repeatable)')
    parser.add_argument('--layout', choices=('composed', 'split'), default='composed',
                        help='composed (default): perception and planner in one driving process; split: one '
                             'process per node')
    parser.add_argument('--nodes', nargs='+', default=None, metavar='PROCESS',
                        help='start only these processes: driving_process, critic_node (composed); '
                             'perception_node, planner_node, critic_node (split)')


def run(args) -> int:
    from avstack.runtime.launcher import LAYOUTS, Launcher, check_config

    layout = LAYOUTS[args.layout]
    unknown = sorted(set(args.nodes or ()) - {n.name for n in layout})
    if unknown:
        raise UsageError(f'--nodes: no process {", ".join(unknown)} in the {args.layout} layout '
                         f'(processes: {", ".join(n.name for n in layout)})')
    nodes = [n for n in layout if args.nodes is None or n.name in args.nodes]
    with tempfile.TemporaryDirectory(prefix='avstack_up_') as scratch:
        config = params_file(args, args.out or Path(scratch))
        check_config(config, nodes)
        stop = stop_on_signals()
        launcher = Launcher(config, nodes, args.use_sim_time, args.respawn,
                            tuple(f'{a}:={b}' for a, b in args.remap))
        print(f'[avstack] starting {", ".join(n.name for n in nodes)} with {config}', flush=True)
        launcher.start()
        code = launcher.watch(until=stop)
        launcher.stop()
    if args.out is not None:
        print(f'[avstack] parameters: {config}; takeover statistics: {args.out / STATISTICS_FILE}', flush=True)
    return code
