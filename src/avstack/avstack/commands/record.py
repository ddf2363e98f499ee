"""``avstack record``: live topics into a rosbag2 directory, as ``ros2 bag record``."""

import sys

from avstack.bag.files import replace_bag
from avstack.commands.options import (
    UsageError, add_command, add_duration, add_out, stop_on_signals,
)


def register(subparsers) -> None:
    parser = add_command(
        subparsers, 'record', run, help='record live topics into a rosbag2 directory (mcap or sqlite3)',
        description='Record topics into a new rosbag2 directory OUT with metadata.yaml, keeping each topic\'s '
                    'offered QoS. Topics are picked up as their publishers appear. Ctrl-C (or SIGTERM) '
                    'closes the bag cleanly: what was received is written, then the index and metadata.',
        epilog='examples:\n'
               '  avstack record -o bags/drive1 --all\n'
               '  avstack record -o bags/cam --storage sqlite3 /sensors/camera/front/image_raw /vehicle/odometry\n'
               '  avstack record -o bags/short --all --duration 10      (a bag 10 s long)\n'
               'The bag opens with `ros2 bag info`, `ros2 bag play`, Foxglove and the rosbags library.',
        raw=True)
    parser.add_argument('topics', nargs='*', metavar='TOPIC', help='topics to record')
    parser.add_argument('--all', action='store_true', help='record every topic with a publisher')
    add_out(parser, help='the bag directory (--force replaces a bag there)')
    parser.add_argument('--storage', '-s', default='mcap', help='storage format: mcap (default) or sqlite3')
    add_duration(parser, 'length of the bag: stop once S seconds after its first message (default: until Ctrl-C)')
    parser.add_argument('--use-sim-time', action='store_true', help='stamp receipt with /clock time')


def run(args) -> int:
    if bool(args.topics) == args.all:
        raise UsageError('give TOPIC... or --all (not both)')
    from avstack.bag.writer import STORAGES
    from avstack.bag.recorder import Recorder
    from avstack.runtime.ros import RosRuntime

    if args.storage not in STORAGES:
        raise UsageError(f'--storage {args.storage}: expected one of {", ".join(STORAGES)}')

    replace_bag(args.out)
    stop = stop_on_signals()
    with RosRuntime() as ros:
        recorder = Recorder(ros, args.out, None if args.all else list(args.topics), args.storage,
                            use_sim_time=args.use_sim_time, duration_s=args.duration).start()
        print(f'recording {"all topics" if args.all else ", ".join(args.topics)} to {args.out} '
              f'({args.storage}); Ctrl-C stops', flush=True)
        interactive = sys.stdout.isatty()
        while not stop.wait(0.2) and not recorder.node.span_reached.is_set():
            if interactive:
                counts = recorder.counts
                print(f'\r{sum(counts.values())} messages on {len(counts)} topics', end='', flush=True)
        counts = recorder.stop()
    if interactive:
        print()
    missing = [] if args.all else [t for t in args.topics if t not in counts]
    print(f'wrote {sum(counts.values())} messages on {len(counts)} topics to {args.out}', flush=True)
    for topic, count in sorted(counts.items()):
        print(f'  {topic}: {count}')
    if missing:
        print(f'no publisher was seen for: {", ".join(missing)}', file=sys.stderr)
    return 0
