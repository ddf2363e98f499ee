"""``avstack synthetic-bag``: a bag of the synthetic scene, as a driver and ``ros2 bag record`` write them."""

from avstack.bag.files import replace_bag
from avstack.commands.options import UsageError, add_command, add_duration, add_out


def register(subparsers) -> None:
    parser = add_command(
        subparsers, 'synthetic-bag', run, help='write a rosbag2 bag of the synthetic scene (camera, lidar, odometry)',
        description='Write a rosbag2 bag of the built-in synthetic road scene to OUT: a 1280x720 camera (bgr8, or '
                    'jpeg with --compressed) and a ~100k-point lidar at 10 Hz, odometry at 50 Hz, on the stack\'s '
                    'default topics, stamped at capture and logged a few milliseconds later as a recorder would. '
                    'The same bag every time: input for `avstack eval`, `replay`, `mine` and `train`.',
        epilog='examples:\n'
               '  avstack synthetic-bag -o bags/synthetic --duration 10\n'
               '  avstack eval bags/synthetic -o out/eval/synthetic',
        raw=True)
    add_out(parser, help='the bag directory (--force replaces a bag there)')
    add_duration(parser, 'length of the bag in seconds', default=10.0)
    parser.add_argument('--storage', default='mcap', help='mcap (default) or sqlite3')
    parser.add_argument('--compressed', action='store_true', help='jpeg CompressedImage instead of raw bgr8')
    parser.add_argument('--distro', default='kilted',
                        help='on-disk layout of this ROS 2 distribution\'s rosbag2: humble, jazzy or kilted (default)')


def run(args) -> int:
    from avstack.bag.writer import STORAGES
    from avstack.synthetic.bag import DISTROS, SyntheticBagSpec, write_synthetic_bag

    if args.storage not in STORAGES or args.distro not in DISTROS:
        raise UsageError(f'--storage: one of {", ".join(STORAGES)}; --distro: one of {", ".join(DISTROS)}')
    replace_bag(args.out)
    spec = SyntheticBagSpec(duration_s=args.duration, compressed=args.compressed, storage=args.storage,
                            distro=args.distro)
    write_synthetic_bag(args.out, spec)
    print(f'wrote {args.duration:g} s of the synthetic scene ({args.storage}, {args.distro} layout) to {args.out}')
    return 0
