"""``avstack dagger``: dataset aggregation (DAgger): the model drives, the expert labels where it went.

Round 0 records the expert (with steering and cruise-speed disturbances, so the data shows recoveries) and
trains from scratch, unless ``--init`` gives a model to start from. Every later round drives the simulator
with the newest model through the real stack (``avstack sim --driver model --relabel``) on seeds no earlier
round used; the bridge relabels every state the car visits with the expert's plan from a copy of the env,
and the model is fine-tuned from where it was on the union of every round's data. The drive of round r is
also the closed-loop check of model r-1 on fresh seeds: its km per takeover and collisions go into
``OUT/dagger.json`` beside the open-loop figures on the validation logs (within a round, the epoch kept is
the one closest to the expert on those logs). The final model is the last round's.

Everything a round does is recorded in ``OUT/dagger.json`` (seeds, commands, data, metrics, wall time per
phase), so a checkpoint can be reproduced; ``OUT/final`` is the chosen model.
"""

import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from avstack.commands.options import (
    UsageError, add_command, add_config, add_duration, add_out, config_files,
)
from stack_common.constants import EXIT_OK

ROUND_SEED_STRIDE = 100      # model round r drives env seeds round_seed + (r - 1) * stride ...

EPILOG = """examples:
  avstack dagger --out out/dagger --val-data data/expert_val --rounds 3
  avstack dagger --out out/dagger2 --init out/dagger/final --rounds 2 --val-data data/expert_val

OUT/round_<r>/ holds each round's drive (report, plots, video, MCAP) and checkpoint; OUT/cache the frame caches;
OUT/dagger.json the record of every round; OUT/final the chosen checkpoint.
exit codes: 0 done, 1 a drive or training failed, 2 bad usage or configuration"""


def register(subparsers) -> None:
    parser = add_command(
        subparsers, 'dagger', run,
        help='DAgger: the model drives, the expert relabels every state, retrain; several rounds',
        description=__doc__.split('\n\n', 1)[1].replace('\n', ' '), epilog=EPILOG, raw=True)
    add_out(parser, help='where each round\'s drive and checkpoint, dagger.json and final/ go')
    parser.add_argument('--rounds', type=int, default=3, help='rounds after round 0 in which the model drives')
    parser.add_argument('--init', type=Path, default=None,
                        help='start from this checkpoint instead of recording the expert and training round 0')
    parser.add_argument('--data', type=Path, nargs='*', default=[],
                        help='bags to train on besides the rounds\' own (e.g. earlier expert drives)')
    parser.add_argument('--val-data', type=Path, nargs='+', required=True,
                        help='validation logs: expert drives on seeds no round uses (open-loop figures, '
                             'checkpoint choice within each training)')
    parser.add_argument('--scenario', nargs='+', default=None, help='scenario families (default: all four)')
    parser.add_argument('--seed', type=int, default=0, help='env seed of round 0, the expert\'s (default 0)')
    parser.add_argument('--round-seed', type=int, default=300,
                        help='env seed of round 1; round r drives round-seed + 100 (r - 1) (default 300: seeds '
                             '200-299 are the validation drives\', 1000 and up the evaluation\'s)')
    parser.add_argument('--episodes', type=int, default=4, help='episodes per family and round')
    add_duration(parser, 'sim seconds per episode', default=40.0)
    parser.add_argument('--expert-episodes', type=int, default=10, help='episodes per family of round 0')
    parser.add_argument('--expert-noise', type=float, default=0.05, metavar='RAD',
                        help='round 0: std of the slow steering disturbance of the expert (DART)')
    parser.add_argument('--expert-speed-noise', type=float, default=0.1, metavar='HZ',
                        help='round 0: rate of the expert\'s cruise-speed disturbances')
    parser.add_argument('--epochs', type=int, default=12, help='training epochs of round 0')
    parser.add_argument('--finetune-epochs', type=int, default=4, help='training epochs of each later round')
    parser.add_argument('--learning-rate', type=float, default=1e-3)
    parser.add_argument('--finetune-learning-rate', type=float, default=5e-4)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads of training')
    parser.add_argument('--cache', type=Path, default=None, help='frame cache directory (default OUT/cache)')
    add_config(parser)
    parser.add_argument('--sim-config', type=Path, default=None, help='sim overrides (default config/sim.yaml)')


@dataclass
class Round:
    index: int
    driver: str
    seed: int
    checkpoint_driving: str | None
    bag: str = ''
    checkpoint: str = ''
    drive: dict = field(default_factory=dict)        # closed-loop figures of the drive (the previous model's)
    validation: dict = field(default_factory=dict)   # open-loop figures of this round's model
    seconds: dict = field(default_factory=dict)      # wall time per phase


def closed_loop(report: dict) -> dict:
    total = report['total']
    return {'km': total['distance_km'], 'stack_km': total['stack_distance_km'],
            'takeovers': total['takeovers']['count'], 'collisions': total['collisions'],
            'km_per_takeover': total['km_per_takeover'], 'reasons': total['takeovers']['reasons'],
            'per_scenario': {name: {'km_per_takeover': s['km_per_takeover'], 'takeovers': s['takeovers']['count'],
                                    'collisions': s['collisions'], 'mean_speed_mps': s['mean_speed_mps']}
                             for name, s in report['scenarios'].items()}}


def run(args) -> int:
    # heavy imports here: `avstack --help` must not load torch or rclpy
    from avstack.offline.stack import OfflineConfig
    from avstack.sim.console import execute
    from avstack.sim.run import SimOptions, run_parameters
    from avstack.offline.training_logs import cache_logs
    from perception_llm.fusion import EncoderConfig
    from planner.presets import preset_configs
    from planner.training.labels import OutcomeRules
    from planner.training.train import TrainOptions, train
    from sim_bridge.scenarios import SCENARIOS
    import yaml

    if args.rounds < 0 or args.episodes < 1 or args.expert_episodes < 1:
        raise UsageError('--rounds must be >= 0, --episodes and --expert-episodes >= 1')
    out = args.out.resolve()
    config_paths = config_files(args)
    scenarios = list(args.scenario or SCENARIOS)
    params = out / 'params.yaml'
    document = run_parameters(SimOptions(out=out, config=config_paths, sim_config=args.sim_config))
    document.pop('bridge_node', None)
    params.write_text(yaml.safe_dump(document, sort_keys=False))
    config = OfflineConfig.load(params)
    model_cfg, encoder_cfg = preset_configs('tiny', EncoderConfig.from_node_config(config.perception),
                                            cameras=len(config.perception['cameras']))
    rules = OutcomeRules.from_critic(config.critic)
    cache_root = args.cache or out / 'cache'
    record = {'command': ' '.join(['avstack', *sys.argv[1:]]), 'scenarios': scenarios,
              'validation_data': [str(p) for p in args.val_data], 'rounds': []}
    manifest = out / 'dagger.json'
    validation = cache_logs(args.val_data, cache_root, config, model_cfg, {})
    extra_caches = cache_logs(args.data, cache_root, config, model_cfg, {}) if args.data else []
    caches = list(extra_caches)
    checkpoint = args.init
    first = 0 if args.init is None else 1
    for index in range(first, args.rounds + 1):
        expert = index == 0
        seed = args.seed if expert else args.round_seed + (index - 1) * ROUND_SEED_STRIDE
        this = Round(index, 'expert' if expert else 'model', seed, None if expert else str(checkpoint))
        directory = out / f'round_{index}'
        started = time.monotonic()
        options = SimOptions(out=directory / 'drive', scenarios=scenarios,
                             episodes=args.expert_episodes if expert else args.episodes, seed=seed,
                             driver='expert' if expert else 'model', duration_s=args.duration,
                             checkpoint=None if expert else checkpoint, relabel=True,
                             expert_noise_rad=args.expert_noise if expert else None,
                             expert_speed_noise_hz=args.expert_speed_noise if expert else None,
                             config=config_paths, sim_config=args.sim_config)
        code, report = execute(options, command='dagger')
        if code != EXIT_OK:
            return code
        this.bag, this.drive = str(options.out / 'run_mcap'), closed_loop(report)
        this.seconds['drive'] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        caches += cache_logs([options.out / 'run_mcap'], cache_root, config, model_cfg, {})
        this.seconds['cache'] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        train_options = TrainOptions(epochs=args.epochs if expert else args.finetune_epochs,
                                     batch_size=args.batch_size,
                                     learning_rate=args.learning_rate if expert else args.finetune_learning_rate,
                                     seed=index, threads=args.threads, warmup_steps=100 if expert else 20)
        summary = train(caches, directory / 'ckpt', model_cfg, encoder_cfg, train_options, rules,
                        extra={'dagger_round': index, 'data': [str(c) for c in caches], 'seed': seed},
                        init=None if expert else checkpoint, validation_caches=validation)
        checkpoint = directory / 'ckpt'
        this.checkpoint, this.validation = str(checkpoint), summary['validation']
        this.seconds['train'] = round(time.monotonic() - started, 1)
        record['rounds'].append(asdict(this))
        manifest.write_text(json.dumps(record, indent=2) + '\n')
        print(f'[dagger] round {index}: drive {this.drive["km"]:.2f} km, {this.drive["takeovers"]} takeovers, '
              f'{this.drive["collisions"]} collisions; validation ADE@3s {this.validation.get("ade_3s", 0):.2f} m '
              f'(constant velocity {this.validation.get("cv_ade_3s", 0):.2f} m); {this.seconds}', flush=True)
    chosen = record['rounds'][-1]['index']
    final = out / 'final'
    if final.exists():
        shutil.rmtree(final)
    shutil.copytree(out / f'round_{chosen}' / 'ckpt', final)
    record['final'] = {'round': chosen, 'checkpoint': str(final)}
    manifest.write_text(json.dumps(record, indent=2) + '\n')
    print(f'[dagger] final model: round {chosen} -> {final}\n[dagger] record: {manifest}')
    return EXIT_OK
