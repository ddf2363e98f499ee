"""``avstack sensors --synthetic``: the synthetic scene's camera, lidar and odometry on the stack's topics."""

import json

from avstack.commands.options import UsageError, add_command, add_duration, add_out, stop_on_signals
from avstack.synthetic import STAMPS_FILE


def register(subparsers) -> None:
    parser = add_command(
        subparsers, 'sensors', run, help='publish sensor data for the stack (the built-in synthetic scene)',
        description='Publish a 1280x720 bgr8 camera, a ~100k-point lidar and odometry of the built-in synthetic '
                    'road scene on the stack\'s default topics (/sensors/camera/front/image_raw, '
                    '/sensors/lidar/top/points, /vehicle/odometry), stamped at publication, until Ctrl-C or '
                    '--duration. Start the stack beside it with `avstack up`.',
        epilog='example, in two terminals:\n'
               '  avstack up\n'
               '  avstack sensors --synthetic --duration 30',
        raw=True)
    parser.add_argument('--synthetic', action='store_true', required=True,
                        help='the built-in synthetic scene (the only source so far; required)')
    parser.add_argument('--rate', type=float, default=10.0, metavar='HZ', help='frames per second (default 10)')
    add_duration(parser, 'seconds of sensor data to publish (default: until Ctrl-C)')
    parser.add_argument('--replay-frames', type=int, default=0, metavar='N',
                        help='render N frames once, then publish them again and again (almost no CPU)')
    add_out(parser, help=f'where {STAMPS_FILE} (the stamps published) goes at the end', required=False)


def run(args) -> int:
    if not args.rate > 0 or args.replay_frames < 0:
        raise UsageError('--rate must be > 0 and --replay-frames >= 0')
    from avstack.runtime.ros import RosRuntime
    from avstack.synthetic.sensor_source import SyntheticSensorSource

    stop = stop_on_signals()
    with RosRuntime() as ros:
        source = ros.add(SyntheticSensorSource(rate_hz=args.rate, replay_frames=args.replay_frames,
                                               context=ros.context))
        print(f'publishing the synthetic scene at {args.rate:g} Hz on {source.camera_pub.topic_name}, '
              f'{source.lidar_pub.topic_name}, {source.odometry_pub.topic_name}'
              + (f' for {args.duration:g} s' if args.duration else '') + '; Ctrl-C stops', flush=True)
        stop.wait(args.duration)
        stamps = source.stamps()
    print(f'published {len(stamps)} frames', flush=True)
    if args.out is not None:
        (args.out / STAMPS_FILE).write_text(json.dumps(stamps))
        print(f'stamps: {args.out / STAMPS_FILE}')
    return 0
