"""``avstack train``: train the driving model (encoders + planner, jointly) on rosbag2 logs."""

import os
import sys
from pathlib import Path

from avstack.commands.options import UsageError, add_command, add_config, add_map, add_out, write_params
from planner.presets import PRESETS


def cache_directory() -> Path:
    """The per-user frame cache: $XDG_CACHE_HOME/avstack/frames (~/.cache/avstack/frames)."""
    return Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'avstack' / 'frames'


def register(subparsers) -> None:
    parser = add_command(
        subparsers, 'train', run, help='train the driving model on rosbag2 logs (camera, lidar, odometry)',
        description='Train the perception encoders and the planner jointly on logs. Labels come from the logs: '
                    'the expert\'s plan from each state where the bag has /sim/expert_plan, else the ego\'s future '
                    'odometry (driver); outcome scores of every candidate plan against the other vehicles\' '
                    'logged futures, the lanes and the critic\'s own limits (scorer); the simulator\'s scene tags '
                    'when a bag has /sim/scene_info (analyst). Frames are preprocessed once into a cache, keyed '
                    'by bag, configuration and model input. Validation holds out whole episodes (or takes '
                    '--val-data). Under `torchrun --nproc_per_node N -m avstack.cli train ...` it trains with '
                    'DistributedDataParallel.')
    parser.add_argument('--data', type=Path, nargs='+', required=True, metavar='BAG_OR_DIR',
                        help='bags, or directories searched for bags')
    parser.add_argument('--val-data', type=Path, nargs='+', default=None, metavar='BAG_OR_DIR',
                        help='validation logs (other seeds or drives than --data); default: a share of the '
                             'episodes of --data, whole episodes only')
    add_out(parser, help='the checkpoint directory (best model, metrics.jsonl, summary.json, params.yaml)')
    parser.add_argument('--preset', choices=[p for p in PRESETS if p != '40b'], default='tiny', help='model size')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--learning-rate', type=float, default=1e-3)
    parser.add_argument('--validation-fraction', type=float, default=0.1,
                        help='without --val-data: share of the episodes held out for validation')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch CPU threads (default: torch\'s choice; 1 on a loaded 2-core machine)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--max-steps', type=int, default=0, help='stop after this many steps (0: all epochs)')
    add_config(parser)
    parser.add_argument('--cache', type=Path, default=None, metavar='DIR',
                        help=f'frame cache directory (default {cache_directory()})')
    add_map(parser)
    parser.add_argument('--init', type=Path, default=None,
                        help='start from this checkpoint\'s weights (fine-tuning; same preset and perception config)')
    parser.add_argument('--device', default='cpu', help='cpu or cuda')


def run(args) -> int:
    from avstack.offline.stack import OfflineConfig
    from avstack.offline.training_logs import cache_logs, find_bags
    from perception_llm.fusion import EncoderConfig
    from planner.presets import preset_configs
    from planner.training.labels import OutcomeRules
    from planner.training.train import TrainOptions, train

    config = OfflineConfig.load(write_params(args, args.out / 'params.yaml'))   # what the model was trained with
    model_cfg, encoder_cfg = preset_configs(args.preset, EncoderConfig.from_node_config(config.perception),
                                            cameras=len(config.perception['cameras']))
    cache_root, mapping = args.cache or cache_directory(), dict(args.map)
    try:
        caches = cache_logs(args.data, cache_root, config, model_cfg, mapping)
        validation = cache_logs(args.val_data, cache_root, config, model_cfg, mapping) if args.val_data else None
    except ValueError as error:
        raise UsageError(str(error)) from None
    options = TrainOptions(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                           validation_fraction=args.validation_fraction, seed=args.seed, max_steps=args.max_steps,
                           threads=args.threads)
    rules = OutcomeRules.from_critic(config.critic)
    try:
        summary = train(caches, args.out, model_cfg, encoder_cfg, options, rules, args.device,
                        extra={'data': [str(p) for p in find_bags(args.data)],
                               'validation_data': [str(p) for p in find_bags(args.val_data or [])],
                               'preset': args.preset,
                               'init': str(args.init) if args.init else None, 'outcome_rules': rules.to_dict(),
                               'command': ' '.join(['avstack', 'train', *sys.argv[2:]])},
                        init=args.init, validation_caches=validation)
    except ValueError as error:   # a --init checkpoint of another architecture
        raise UsageError(str(error)) from None
    if summary:   # the first rank's (under torchrun the others return None)
        last = summary['validation']
        print(f'best checkpoint in {args.out} (validation ADE@3s {last.get("ade_3s", float("nan")):.2f} m vs '
              f'constant velocity {last.get("cv_ade_3s", float("nan")):.2f} m, minADE '
              f'{last.get("min_ade_3s", float("nan")):.2f} m; selection weights {summary["selection"]})')
    return 0
