"""``avstack replay``: a bag's recorded bytes published with the recorded timing, as ``ros2 bag play``."""

import sys
from pathlib import Path

from avstack.commands.options import UsageError, add_command, add_remap, stop_on_signals

DEFAULT_CLOCK_HZ = 100.0


def register(subparsers) -> None:
    parser = add_command(
        subparsers, 'replay', run, help='publish a rosbag with its recorded timing (bytes as recorded)',
        description='Publish the messages of BAG as they were recorded: the same bytes, the same spacing (scaled '
                    'by --rate), each topic with its recorded QoS. With --clock, /clock carries bag time so nodes '
                    'started with use_sim_time (avstack up --use-sim-time) follow the bag; with --loop the bag '
                    'restarts at its end and time jumps back, which the stack\'s nodes treat as a reset. A topic '
                    'that a running node publishes too is named in a warning: beside a running stack, '
                    '--exclude-outputs plays the sensors only.',
        epilog='examples:\n'
               '  avstack replay bags/drive1 --clock --loop --exclude-outputs\n'
               '  avstack replay bags/drive1 --rate 0.5 --start-offset 20 --topics /vehicle/odometry\n'
               '  avstack replay bags/other_car --remap /cam0/image_raw:=/sensors/camera/front/image_raw\n'
               'exit codes: 0 played to the end (or stopped with Ctrl-C), 2 bad usage or a bag that is '
               'missing, broken (`avstack bag reindex` recovers what precedes a cut) or has nothing to publish.',
        raw=True)
    parser.add_argument('bag', type=Path, help='rosbag2 directory or .mcap/.db3 file')
    parser.add_argument('--rate', '-r', type=float, default=1.0, help='playback speed factor (default 1)')
    parser.add_argument('--loop', '-l', action='store_true', help='start over at the end, until Ctrl-C')
    parser.add_argument('--clock', nargs='?', type=float, const=DEFAULT_CLOCK_HZ, default=None, metavar='HZ',
                        help=f'publish /clock with bag time (at HZ, default {DEFAULT_CLOCK_HZ:g})')
    parser.add_argument('--start-offset', type=float, default=0.0, metavar='S', help='skip the first S seconds')
    parser.add_argument('--topics', nargs='+', default=None, metavar='TOPIC', help='play only these topics')
    parser.add_argument('--exclude-outputs', action='store_true',
                        help='do not play what the stack\'s own nodes publish (trajectories, tokens, takeover '
                             'requests, ...): the sensors for a running stack')
    add_remap(parser, help='publish topic FROM as TO (repeatable)')


def run(args) -> int:
    if args.rate <= 0 or args.start_offset < 0 or (args.clock is not None and args.clock <= 0):
        raise UsageError('--rate and --clock must be > 0, --start-offset >= 0')
    from tqdm import tqdm

    from avstack.bag.codec import BagError
    from avstack.bag.player import BagPlayer
    from avstack.runtime.ros import RosRuntime
    from stack_common import topics
    from stack_common.constants import NS_PER_S

    stop = stop_on_signals()
    with RosRuntime() as ros:
        player = BagPlayer(ros, args.bag, args.rate, args.loop, args.clock, args.start_offset, args.topics,
                           dict(args.remap), exclude_topics=topics.OUTPUTS if args.exclude_outputs else ())
        for topic, reason in player.status.skipped.items():
            print(f'avstack replay: not playing {topic}: {reason}', file=sys.stderr)
        empty = player.nothing_to_publish()
        if empty:
            player.stop()
            raise BagError(f'nothing to publish from {args.bag}: {empty}')
        print(f'playing {args.bag}: {len(player.publishers)} topics, {player.duration_s:.1f} s at {args.rate:g}x'
              + (', /clock' if args.clock else '') + (', looping' if args.loop else '') + '; Ctrl-C stops',
              flush=True)
        bar = tqdm(total=round(player.duration_s, 1), unit='s', disable=not sys.stderr.isatty(), desc='replay',
                   bar_format='{l_bar}{bar}| {n:.1f}/{total:.1f} s of bag [loop {postfix}]', postfix=0)
        warned: set[str] = set()
        player.start()
        while not stop.wait(0.2) and not player.finished:
            for topic, nodes in player.competing_publishers().items():
                if topic not in warned:
                    warned.add(topic)
                    tqdm.write(f'avstack replay: warning: {topic} is also published by {", ".join(nodes)}: its '
                               f'subscribers get both' + (' (--exclude-outputs skips the stack\'s outputs)'
                                                          if topic in topics.OUTPUTS else ''), file=sys.stderr)
            status = player.status
            bar.set_postfix_str(str(status.loops), refresh=False)
            bar.update(round(max(status.bag_time_ns - player.start_ns, 0) / NS_PER_S - bar.n, 1))
        bar.close()
        status = player.stop()
    if status.error:   # the bag broke while playing: what came before it was published
        raise BagError(status.error)
    if not status.published and not stop.is_set():
        raise BagError(f'published no message: the metadata of {args.bag} lists {player.bag.message_count}, its '
                       f'storage files gave none')
    print(f'published {sum(status.published.values())} messages on {len(status.published)} topics, '
          f'{status.loops} full pass(es)', flush=True)
    return 0
