"""``avstack eval``: the stack over a rosbag, offline; see :mod:`avstack.offline.evaluate`."""

import json
import sys
from pathlib import Path

from avstack.commands.options import add_command, add_config, add_map, add_out, write_params


def register(subparsers) -> None:
    parser = add_command(
        subparsers, 'eval', run, help='run perception, planner and critic over a rosbag offline and report',
        description='Run the three cores in this process over BAG in stamp order, as fast as the CPU allows and '
                    'deterministically (same bag, config and checkpoint: identical output). Writes to OUT: '
                    'output.mcap (tokens, trajectories, assessments, takeover requests, and on /eval/input_bag '
                    'the input bag\'s path, sizes and hashes; --with-inputs copies the input messages in too), '
                    'report.json (frames, trajectories, distance, takeovers, km per takeover, open-loop ADE/FDE at '
                    '1/2/3 s, per-stage compute p50/p99), paths.png, takeovers.png, latency.png and params.yaml (the '
                    'configuration it ran with).',
        epilog='Topics are found by the perception config\'s names, else by message type; name them with --map '
               'when a bag has several candidates:\n'
               '  avstack eval bags/drive1 -o out/eval/drive1 --map camera/front=/cam0/image_raw/compressed '
               'lidar/top=/velodyne_points odometry=/odom\n'
               'BAG is a rosbag2 directory (humble, jazzy or kilted; mcap or sqlite3) or a bare .mcap/.db3 file.\n'
               'exit codes: 0 ok, 1 the run produced no trajectory, 2 bad usage, config, checkpoint or a bag that '
               'is missing or broken (nothing is left in OUT then).',
        raw=True)
    parser.add_argument('bag', type=Path, help='rosbag2 directory or .mcap/.db3 file')
    add_out(parser)
    add_config(parser)
    parser.add_argument('--checkpoint', type=Path, default=None,
                        help='model checkpoint directory (default: the config\'s, else the shipped one)')
    add_map(parser)
    parser.add_argument('--no-plots', action='store_true', help='skip the PNG plots')
    parser.add_argument('--with-inputs', action='store_true',
                        help='copy the input sensor messages into output.mcap as recorded (one file to open, but as '
                             'large as the input; the stack\'s outputs are the same bytes either way)')


def run(args) -> int:
    from avstack.offline.evaluate import evaluate
    from avstack.offline.stack import OfflineConfig

    config = OfflineConfig.load(write_params(args, args.out / 'params.yaml'), args.checkpoint)
    report = evaluate(args.bag, args.out, config, dict(args.map), plots=not args.no_plots,
                      progress=sys.stderr.isatty(), with_inputs=args.with_inputs)
    print(summary(report, args.out))
    return 0 if report['trajectories'] else 1


def summary(report: dict, out: Path) -> str:
    from avstack.offline.evaluate import OUTPUT_BAG, REPORT
    compute = report['compute_ms']
    ade, fde = report['ade_m'], report['fde_m']
    return '\n'.join([
        f'{report["frames"]} frames, {report["trajectories"]} trajectories over {report["duration_s"]:.1f} s '
        f'of driving (sensor stamps; recorded over {report["bag_duration_s"]:.1f} s) in {report["wall_s"]:.1f} s '
        f'({report["real_time_factor"]:.1f}x real time)',
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
