"""``avstack train``: train the driving model (encoders + planner, jointly) on rosbag2 logs."""

import sys
from pathlib import Path

import yaml

from avstack.bag import BagError, parse_map
from avstack.offline import OfflineConfig
from avstack.paths import default_config
from avstack.training_data import build_cache, find_bags
from planner.presets import PRESETS, preset_configs
from planner.training.labels import OutcomeRules
from planner.training.train import TrainOptions, train
from perception_llm.fusion import EncoderConfig
from stack_common.checkpoint import CheckpointError
from stack_common.config import ConfigError, merge_documents, read_params_file

EXIT_USAGE = 2


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'train', help='train the driving model on rosbag2 logs (camera, lidar, odometry)',
        description='Train the perception encoders and the planner jointly on logs. Labels come from the logs: '
                    'the expert\'s plan from each state where the bag has /sim/expert_plan, else the ego\'s future '
                    'odometry (driver); outcome scores of every candidate plan against the other vehicles\' '
                    'logged futures, the lanes and the critic\'s own limits (scorer); the simulator\'s scene tags '
                    'when a bag has /sim/scene_info (analyst). Frames are preprocessed once into a cache. '
                    'Validation holds out whole episodes (or takes --val-data). Under '
                    '`torchrun --nproc_per_node N -m avstack.cli train ...` it trains with DistributedDataParallel.')
    parser.add_argument('--data', type=Path, nargs='+', required=True, metavar='BAG_OR_DIR',
                        help='bags, or directories searched for bags')
    parser.add_argument('--val-data', type=Path, nargs='+', default=None, metavar='BAG_OR_DIR',
                        help='validation logs (other seeds or drives than --data); default: a share of the '
                             'episodes of --data, whole episodes only')
    parser.add_argument('--out', type=Path, required=True, help='checkpoint directory (best model, metrics.jsonl)')
    parser.add_argument('--preset', choices=[p for p in PRESETS if p != '40b'], default='tiny', help='model size')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--batch-size', type=int, default=TrainOptions.batch_size)
    parser.add_argument('--learning-rate', type=float, default=TrainOptions.learning_rate)
    parser.add_argument('--validation-fraction', type=float, default=TrainOptions.validation_fraction,
                        help='without --val-data: share of the episodes held out for validation')
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (default: torch\'s choice)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--max-steps', type=int, default=0, help='stop after this many steps (0: all epochs)')
    parser.add_argument('--config', type=Path, action='append', default=None,
                        help='parameter file; repeat to lay files over each other as ros2 does with several '
                             '--params-file (default: config/stack.yaml; for simulator logs also pass '
                             'config/sim.yaml)')
    parser.add_argument('--cache', type=Path, default=None, help='frame cache directory (default: OUT/../cache)')
    parser.add_argument('--map', action='append', default=[], metavar='ROLE:=TOPIC',
                        help='name a sensor topic when names differ (e.g. camera/front:=/cam0/image)')
    parser.add_argument('--init', type=Path, default=None,
                        help='start from this checkpoint\'s weights (fine-tuning; same preset and perception config)')
    parser.add_argument('--device', default='cpu', help='cpu or cuda')
    parser.set_defaults(run=run)


def cache_logs(paths: list[Path], cache_root: Path, config: OfflineConfig, model_cfg, mapping: dict) -> list[Path]:
    """The frame caches of every bag under ``paths`` (built now or reused); raises BagError, ValueError."""
    bags = find_bags(paths)
    if not bags:
        raise ValueError(f'no bags found in {", ".join(map(str, paths))}')
    caches = []
    for bag in bags:
        result = build_cache(bag, cache_root, config, model_cfg, mapping, progress=sys.stderr.isatty())
        print(f'{bag}: {result.frames} frames ({"cached" if result.reused else "preprocessed"} in {result.cache})',
              flush=True)
        if result.frames:
            caches.append(result.cache)
    if not caches:
        raise ValueError(f'the logs in {", ".join(map(str, paths))} hold no frame with a driver label '
                         '(an expert plan or a full planning horizon of odometry)')
    return caches


def run(args) -> int:
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        params = args.out / 'params.yaml'   # what the model was trained with, merged into one file
        params.write_text(yaml.safe_dump(merge_documents(*(read_params_file(p)
                                                          for p in args.config or [default_config()]))))
        config = OfflineConfig.load(params)
        mapping = parse_map(args.map)
    except (ConfigError, ValueError) as error:
        print(f'avstack train: {error}', file=sys.stderr)
        return EXIT_USAGE
    model_cfg, encoder_cfg = preset_configs(args.preset, EncoderConfig.from_node_config(config.perception),
                                            cameras=len(config.perception['cameras']))
    cache_root = args.cache or args.out.parent / 'cache'
    try:
        caches = cache_logs(args.data, cache_root, config, model_cfg, mapping)
        validation = cache_logs(args.val_data, cache_root, config, model_cfg, mapping) if args.val_data else None
    except (BagError, ValueError) as error:
        print(f'avstack train: {error}', file=sys.stderr)
        return EXIT_USAGE
    options = TrainOptions(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                           validation_fraction=args.validation_fraction, seed=args.seed, max_steps=args.max_steps,
                           threads=args.threads)
    rules = OutcomeRules.from_critic(config.critic)
    try:
        summary = train(caches, args.out, model_cfg, encoder_cfg, options, rules, args.device,
                        extra={'data': [str(p) for p in args.data],
                               'validation_data': [str(p) for p in args.val_data or []], 'preset': args.preset,
                               'init': str(args.init) if args.init else None, 'outcome_rules': rules.to_dict(),
                               'command': ' '.join(['avstack', 'train', *sys.argv[2:]])},
                        init=args.init, validation_caches=validation)
    except (CheckpointError, ValueError) as error:
        print(f'avstack train: {error}', file=sys.stderr)
        return EXIT_USAGE
    if summary:
        last = summary['validation']
        print(f'best checkpoint in {args.out} (validation ADE@3s {last.get("ade_3s", float("nan")):.2f} m vs '
              f'constant velocity {last.get("cv_ade_3s", float("nan")):.2f} m, minADE '
              f'{last.get("min_ade_3s", float("nan")):.2f} m; selection weights {summary["selection"]})')
    return 0
