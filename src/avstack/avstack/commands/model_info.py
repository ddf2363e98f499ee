"""``avstack model-info``: parameters per part and FLOPs per frame of the driving model's presets."""

import json
from pathlib import Path

from avstack.commands.options import add_command
from planner.presets import PRESETS


def register(subparsers) -> None:
    parser = add_command(
        subparsers, 'model-info', run, help='parameters per part and FLOPs per frame of the model presets',
        description='Print the size of the driving model: parameters of the perception encoders, the transformer '
                    'backbone and the heads, and the forward FLOPs for one frame. Counting happens on the meta '
                    'device, so the 40b preset costs no memory.')
    parser.add_argument('--preset', choices=list(PRESETS), action='append', default=None,
                        help='preset(s) to describe (default: all)')
    parser.add_argument('--checkpoint', type=Path, default=None, help='describe the model of this checkpoint')
    parser.add_argument('--cameras', type=int, default=1, help='cameras in the static input (default 1)')
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')


def run(args) -> int:
    from perception_llm.fusion import EncoderConfig
    from planner.model import ModelConfig
    from planner.presets import preset_configs
    from planner.sizing import measure
    from stack_common.checkpoint import read_config

    configs = {}
    if args.checkpoint:
        document = read_config(args.checkpoint)
        configs[str(args.checkpoint)] = (ModelConfig.from_dict(document['config']['model']),
                                         EncoderConfig.from_dict(document['config']['perception']))
    for name in args.preset or ([] if args.checkpoint else list(PRESETS)):
        configs[name] = preset_configs(name, cameras=args.cameras)
    report = {}
    for name, (cfg, encoder_cfg) in configs.items():
        size = measure(cfg, encoder_cfg, args.cameras)
        report[name] = {'d_model': cfg.d_model, 'layers': cfg.n_layers, 'heads': cfg.n_heads,
                        'token_dim': cfg.token_dim, 'token_slots': cfg.max_tokens,
                        'parameters': size.parameters, 'total_parameters': size.total_parameters,
                        'gflops_per_frame': {k: v / 1e9 for k, v in size.flops.items()},
                        'total_gflops_per_frame': size.total_flops / 1e9}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f'{"model":<10} {"d_model":>7} {"layers":>6} {"slots":>5} {"encoders":>10} {"backbone":>10} '
          f'{"heads":>10} {"total":>10} {"GFLOP/frame":>12}')
    for name, r in report.items():
        p = r['parameters']
        print(f'{name:<10} {r["d_model"]:>7} {r["layers"]:>6} {r["token_slots"]:>5} {_count(p["encoders"]):>10} '
              f'{_count(p["backbone"]):>10} {_count(p["heads"]):>10} {_count(r["total_parameters"]):>10} '
              f'{r["total_gflops_per_frame"]:>12.2f}')
    return 0


def _count(n: int) -> str:
    for unit, scale in (('B', 1e9), ('M', 1e6), ('k', 1e3)):
        if n >= scale:
            return f'{n / scale:.2f}{unit}'
    return str(n)
