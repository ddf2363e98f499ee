"""``avstack bag reindex``: recover what precedes a cut in a bag, as ``ros2 bag reindex`` recreates metadata."""

from pathlib import Path

from avstack.bag.files import replace_bag
from avstack.commands.options import add_command, add_out


def register(subparsers) -> None:
    parser = add_command(subparsers, 'bag', None, help='work on rosbag2 files: reindex',
                         description='Work on rosbag2 files.')
    verbs = parser.add_subparsers(dest='verb', metavar='VERB', required=True)
    reindex = add_command(
        verbs, 'reindex', run_reindex, help='recover a truncated or index-less bag into a complete new one',
        description='Read every storage file of BAG (a rosbag2 directory, or one .mcap/.db3 file) record by '
                    'record up to the first one that cannot be read (a recorder killed mid-write, a copy cut '
                    'short), and write everything before it to OUT as a complete rosbag2 bag: metadata.yaml, an '
                    'indexed MCAP (SQLite for .db3 sources), each topic\'s message definition and offered QoS '
                    'as recorded. BAG is not changed. Prints how much was recovered, per topic.',
        epilog='example:\n'
               '  avstack bag reindex bags/drive1 -o bags/drive1_recovered\n'
               '  avstack replay bags/drive1_recovered\n'
               'exit codes: 0 recovered (also when the cut lost messages: the output says how many), '
               '2 bad usage, no bag there or nothing readable in it (OUT is removed then).',
        raw=True)
    reindex.add_argument('bag', type=Path, help='rosbag2 directory or .mcap/.db3 file')
    add_out(reindex, help='the recovered bag directory')


def run_reindex(args) -> int:
    from avstack.bag.codec import BagError
    from avstack.bag.recovery import reindex

    replace_bag(args.out)
    recovery = reindex(args.bag, args.out)
    print(recovery.describe())
    if not recovery.messages:
        raise BagError(f'no message could be read from {args.bag}')
    print(f'wrote {args.out}')
    return 0
