"""``avstack eval``: the stack over a rosbag, offline; see :mod:`avstack.evaluate`."""

import argparse
import json
import sys
from pathlib import Path

from avstack.bag import BagError, parse_map
from avstack.evaluate import OUTPUT_BAG, PLOTS, REPORT, evaluate
from avstack.offline import OfflineConfig
from avstack.paths import default_config
from stack_common.checkpoint import CheckpointError
from stack_common.config import ConfigError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'eval', help='run perception, planner and critic over a rosbag offline and report',
        description='Run the three cores in this process over BAG in stamp order, as fast as the CPU allows and '
                    'deterministically (same bag, config and checkpoint: identical output). Writes '
                    f'{OUTPUT_BAG} (inputs + tokens, trajectories, assessments, takeover requests), {REPORT} '
                    '(frames, trajectories, distance, takeovers, km per takeover, open-loop ADE/FDE at 1/2/3 s, '
                    f'per-stage compute p50/p99) and {", ".join(PLOTS)} to --out.',
        epilog='Topics are found by the perception config\'s names, else by message type; name them with --map '
               'when a bag has several candidates:\n'
               '  avstack eval bags/drive1 --out out/eval/drive1 --map camera/front=/cam0/image_raw/compressed '
               'lidar/top=/velodyne_points odometry=/odom\n'
               'BAG is a rosbag2 directory (humble, jazzy or kilted; mcap or sqlite3) or a bare .mcap/.db3 file.\n'
               'exit codes: 0 ok, 1 the bag is unusable or the run produced no trajectory, 2 bad usage, '
               'config or checkpoint.',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('bag', type=Path, help='rosbag2 directory or .mcap/.db3 file')
    parser.add_argument('--out', '-o', type=Path, required=True, help='output directory (created; files replaced)')
    parser.add_argument('--config', type=Path, default=None, help='parameter file (default: config/stack.yaml)')
    parser.add_argument('--checkpoint', type=Path, default=None,
                        help='model checkpoint directory (default: the config\'s, else the shipped one)')
    parser.add_argument('--map', nargs='+', default=[], metavar='ROLE=TOPIC',
                        help='bag topic of a sensor: camera/<name>, lidar/<name> or odometry '
                             '(camera= and lidar= name the first one)')
    parser.add_argument('--no-plots', action='store_true', help='skip the PNG plots')
    parser.set_defaults(run=run)


def run(args) -> int:
    try:
        mapping = parse_map(args.map)
        config = OfflineConfig.load(args.config or default_config(), args.checkpoint)
    except (ValueError, ConfigError) as error:
        print(f'avstack eval: {error}', file=sys.stderr)
        return EXIT_USAGE
    try:
        report = evaluate(args.bag, args.out, config, mapping, plots=not args.no_plots,
                          progress=sys.stderr.isatty())
    except BagError as error:
        print(f'avstack eval: {error}', file=sys.stderr)
        return EXIT_FAILURE
    except (ConfigError, CheckpointError) as error:
        print(f'avstack eval: {error}', file=sys.stderr)
        return EXIT_USAGE
    print(summary(report, args.out))
    return EXIT_OK if report['trajectories'] else EXIT_FAILURE


def summary(report: dict, out: Path) -> str:
    compute = report['compute_ms']
    ade, fde = report['ade_m'], report['fde_m']
    return '\n'.join([
        f'{report["frames"]} frames, {report["trajectories"]} trajectories over {report["duration_s"]:.1f} s '
        f'of bag in {report["wall_s"]:.1f} s ({report["real_time_factor"]:.1f}x real time)',
        f'distance {_km(report["distance_km"])}, {len(report["takeovers"])} takeover request(s), km per takeover '
        f'{report["km_per_takeover"] if report["km_per_takeover"] is not None else "-"}',
        'open loop ' + ', '.join(f'{h}: ADE {_m(ade[h])} FDE {_m(fde[h])}' for h in ade),
        'constant-velocity baseline ' + ', '.join(f'{h}: ADE {_m(report["constant_velocity_ade_m"][h])}'
                                                  for h in report['constant_velocity_ade_m']),
        'compute p50/p99 ms: ' + ', '.join(f'{s} {_ms(compute[s]["p50_ms"])}/{_ms(compute[s]["p99_ms"])}'
                                             for s in compute),
        f'decode errors: {report["decode_errors"]}' + (' ' + json.dumps(report['decode_errors_by_topic'])
                                                       if report['decode_errors'] else ''),
        f'wrote {out / OUTPUT_BAG}, {out / REPORT}' + ('' if not report['plots'] else ', ' + ', '.join(
            str(out / p) for p in report['plots']))])


def _km(value) -> str:
    return '- (no odometry)' if value is None else f'{value:.3f} km'


def _m(value) -> str:
    return '-' if value is None else f'{value:.2f} m'


def _ms(value) -> str:
    return '-' if value is None else f'{value:.1f}'
