"""``avstack record``: live topics into a rosbag2 directory, as ``ros2 bag record``."""

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

from avstack.bag import STORAGES, BagError
from avstack.record import Recorder
from avstack.ros_runtime import RosRuntime

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def stop_on_signals() -> threading.Event:
    """An event set by Ctrl-C or SIGTERM, so a tool can finish its files instead of dying mid-write."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'record', help='record live topics into a rosbag2 directory (mcap or sqlite3)',
        description='Record topics into a new rosbag2 directory with metadata.yaml, keeping each topic\'s '
                    'offered QoS. Topics are picked up as their publishers appear. Ctrl-C (or SIGTERM) '
                    'closes the bag cleanly: what was received is written, then the index and metadata.',
        epilog='examples:\n'
               '  avstack record --out bags/drive1 --all\n'
               '  avstack record --out bags/cam --storage sqlite3 /sensors/camera/front/image_raw /vehicle/odometry\n'
               'The bag opens with `ros2 bag info`, `ros2 bag play`, Foxglove and the rosbags library.',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('topics', nargs='*', metavar='TOPIC', help='topics to record')
    parser.add_argument('--all', action='store_true', help='record every topic with a publisher')
    parser.add_argument('--out', '-o', type=Path, required=True, help='output directory (must not exist)')
    parser.add_argument('--storage', '-s', choices=STORAGES, default='mcap', help='storage format (default mcap)')
    parser.add_argument('--duration', type=float, default=None, metavar='S', help='stop after S seconds')
    parser.add_argument('--use-sim-time', action='store_true', help='stamp receipt with /clock time')
    parser.set_defaults(run=run)


def run(args) -> int:
    if bool(args.topics) == args.all:
        print('avstack record: give TOPIC... or --all (not both)', file=sys.stderr)
        return EXIT_USAGE
    if args.out.exists():
        print(f'avstack record: {args.out} already exists; choose a new output directory', file=sys.stderr)
        return EXIT_USAGE
    stop = stop_on_signals()
    with RosRuntime() as ros:
        recorder = Recorder(ros, args.out, None if args.all else list(args.topics), args.storage,
                            use_sim_time=args.use_sim_time)
        try:
            recorder.start()
        except BagError as error:
            print(f'avstack record: {error}', file=sys.stderr)
            return EXIT_USAGE
        print(f'recording {"all topics" if args.all else ", ".join(args.topics)} to {args.out} '
              f'({args.storage}); Ctrl-C stops', flush=True)
        interactive = sys.stdout.isatty()
        start = time.monotonic()
        while not stop.wait(0.5):
            if args.duration is not None and time.monotonic() - start >= args.duration:
                break
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
    return EXIT_OK
