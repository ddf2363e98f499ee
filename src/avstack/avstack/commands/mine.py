"""``avstack mine``: cut clips around the most novel, doubtful or rare moments of bags; see :mod:`avstack.mine`."""

import json
import sys
from dataclasses import asdict
from pathlib import Path

from avstack.bag import BagError, parse_map
from avstack.mine import assess, cut, score, select
from avstack.offline import OfflineConfig
from avstack.paths import default_config
from stack_common.checkpoint import CheckpointError
from stack_common.config import ConfigError

EXIT_USAGE = 2


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'mine', help='cut clips around the most novel, doubtful or rare moments of bags',
        description='Run the model over bags and write a rosbag2 clip around each of the top N moments, ranked by '
                    'novelty (analyst embedding vs training distribution), low plan score (the model\'s own '
                    'critic) and rare scene tags, with OUT/index.json saying why each clip was chosen.')
    parser.add_argument('bags', type=Path, nargs='+', metavar='BAG')
    parser.add_argument('--out', type=Path, required=True, help='directory for the clips and index.json')
    parser.add_argument('--top', type=int, default=10, help='number of clips (default 10)')
    parser.add_argument('--clip-s', type=float, default=4.0, help='clip length in seconds (default 4)')
    parser.add_argument('--checkpoint', type=Path, default=None, help='model checkpoint (default: the shipped one)')
    parser.add_argument('--config', type=Path, default=None, help='parameter file (default: config/stack.yaml)')
    parser.add_argument('--map', action='append', default=[], metavar='ROLE:=TOPIC', help='name sensor topics')
    parser.set_defaults(run=run)


def run(args) -> int:
    try:
        config = OfflineConfig.load(args.config or default_config(), args.checkpoint)
        mapping = parse_map(args.map)
        moments = [m for bag in args.bags for m in assess(bag, config, mapping, sys.stderr.isatty())]
    except (BagError, ConfigError, CheckpointError, ValueError) as error:
        print(f'avstack mine: {error}', file=sys.stderr)
        return EXIT_USAGE
    if not moments:
        print('avstack mine: the bags hold no frame the model could plan on', file=sys.stderr)
        return 1
    chosen = select(score(moments), args.top, round(args.clip_s * 1e9))
    args.out.mkdir(parents=True, exist_ok=True)
    clips = []
    for rank, moment in enumerate(chosen, 1):
        clip = args.out / f'clip_{rank:03d}'
        start, end = cut(Path(moment.bag), clip, moment.log_time_ns, round(args.clip_s * 1e9))
        clips.append({'rank': rank, 'clip': clip.name, 'start_ns': start, 'end_ns': end, **asdict(moment)})
        print(f'{clip}: {moment.bag} at {moment.stamp_ns / 1e9:.2f} s: {"; ".join(moment.reasons)}')
    index = {'bags': [str(b) for b in args.bags], 'frames': len(moments), 'clip_s': args.clip_s, 'clips': clips}
    (args.out / 'index.json').write_text(json.dumps(index, indent=2) + '\n')
    print(f'index: {args.out / "index.json"}')
    return 0
