"""``avstack train``: train the driving model (encoders + planner, jointly) on rosbag2 logs."""

import os
import sys
from pathlib import Path

from avstack.commands.options import (
    Failure, UsageError, add_command, add_config, add_map, add_out, write_params,
)
from planner.presets import PRESETS


def cache_directory() -> Path:
    """The per-user frame cache: $XDG_CACHE_HOME/avstack/frames (~/.cache/avstack/frames)."""
    return Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'avstack' / 'frames'


def register(subparsers) -> None:
    parser = add_command(
        subparsers, 'train', run, help='train the driving model on rosbag2 logs (camera, lidar, odometry)',
        description='Train the perception encoders and the planner jointly on logs. Labels come from the logs: '
                    'the ego\'s future odometry (driver), rule-based scores of each predicted mode against the '
                    'logged lidar and future traffic (critic), and the simulator\'s scene tags when a bag has '
                    '/sim/scene_info (analyst). Frames are preprocessed once into a cache, keyed by bag, '
                    'configuration and model input. Under `torchrun --nproc_per_node N -m avstack.cli train ...` '
                    'it trains with DistributedDataParallel.')
    parser.add_argument('--data', type=Path, nargs='+', required=True, metavar='BAG_OR_DIR',
                        help='bags, or directories searched for bags')
    add_out(parser, help='the checkpoint directory (best model, metrics.jsonl, params.yaml)')
    parser.add_argument('--preset', choices=[p for p in PRESETS if p != '40b'], default='tiny', help='model size')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--learning-rate', type=float, default=5e-4)
    parser.add_argument('--validation-fraction', type=float, default=0.15,
                        help='share of each log held out for validation, in whole time blocks')
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
    from avstack.offline import OfflineConfig
    from avstack.training_data import build_cache, find_bags
    from perception_llm.fusion import EncoderConfig
    from planner.presets import preset_configs
    from planner.training.train import TrainOptions, train

    bags = find_bags(args.data)
    if not bags:
        raise UsageError(f'no bags found in {", ".join(map(str, args.data))}')
    config = OfflineConfig.load(write_params(args, args.out / 'params.yaml'))   # what the model was trained with
    model_cfg, encoder_cfg = preset_configs(args.preset, EncoderConfig.from_node_config(config.perception),
                                            cameras=len(config.perception['cameras']))
    caches = []
    for bag in bags:
        result = build_cache(bag, args.cache or cache_directory(), config, model_cfg, dict(args.map),
                             progress=sys.stderr.isatty())
        print(f'{bag}: {result.frames} frames ({"cached" if result.reused else "preprocessed"} in {result.cache})',
              flush=True)
        if result.frames:
            caches.append(result.cache)
    if not caches:
        raise Failure('the logs hold no frame with a full planning horizon of odometry')
    options = TrainOptions(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                           validation_fraction=args.validation_fraction, seed=args.seed, max_steps=args.max_steps)
    try:
        summary = train(caches, args.out, model_cfg, encoder_cfg, options, args.device,
                        extra={'data': [str(b) for b in bags], 'preset': args.preset,
                               'init': str(args.init) if args.init else None}, init=args.init)
    except ValueError as error:   # a --init checkpoint of another architecture
        raise UsageError(str(error)) from None
    if summary:
        last = summary['history'][-1]['validation']
        print(f'best checkpoint in {args.out} (validation loss {summary["best_validation_loss"]:.4f}; last epoch '
              f'ADE@3s {last.get("ade_3s", float("nan")):.2f} m vs constant velocity '
              f'{last.get("cv_ade_3s", float("nan")):.2f} m)')
    return 0
