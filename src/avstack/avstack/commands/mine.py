"""``avstack mine``: cut clips around the most novel, doubtful or rare moments of bags.

See :mod:`avstack.offline.mining`.
"""

import json
import sys
from dataclasses import asdict
from pathlib import Path

from avstack.bag.files import replace_bag
from avstack.commands.options import (
    Failure, UsageError, add_command, add_config, add_duration, add_map, add_out, write_params,
)

INDEX = 'index.json'


def register(subparsers) -> None:
    parser = add_command(
        subparsers, 'mine', run, help='cut clips around the most novel, doubtful or rare moments of bags',
        description='Run the model over bags and write a rosbag2 clip around each of the top N moments, ranked by '
                    'novelty (analyst embedding vs training distribution), low plan score (the model\'s own '
                    f'critic) and rare scene tags, with OUT/{INDEX} saying why each clip was chosen. Times are '
                    'seconds from the start of their bag.')
    parser.add_argument('bags', type=Path, nargs='+', metavar='BAG')
    add_out(parser, help=f'where the clips (OUT/clip_001, ...), {INDEX} and params.yaml go')
    parser.add_argument('--top', type=int, default=10, help='number of clips (default 10)')
    add_duration(parser, 'length of each clip', default=4.0)
    parser.add_argument('--checkpoint', type=Path, default=None, help='model checkpoint (default: the shipped one)')
    add_config(parser)
    add_map(parser)


def run(args) -> int:
    if args.top < 1:
        raise UsageError('--top must be at least 1')
    from avstack.offline.mining import assess, cut, score, select
    from avstack.offline.stack import OfflineConfig

    config = OfflineConfig.load(write_params(args, args.out / 'params.yaml'), args.checkpoint)
    moments = [m for bag in args.bags for m in assess(bag, config, dict(args.map), sys.stderr.isatty())]
    if not moments:
        raise Failure('the bags hold no frame the model could plan on')
    clip_ns = round(args.duration * 1e9)
    chosen = select(score(moments), args.top, clip_ns)
    for old in args.out.glob('clip_*'):   # an earlier run's clips (--force)
        replace_bag(old)
    clips = []
    for rank, moment in enumerate(chosen, 1):
        clip = args.out / f'clip_{rank:03d}'
        start, end = cut(Path(moment.bag), clip, moment.log_time_ns, clip_ns)
        clips.append({'rank': rank, 'clip': clip.name, 'start_ns': start, 'end_ns': end,
                      'offset_s': round(moment.offset_s, 3), **asdict(moment)})
        print(f'{clip}: {moment.bag} at {moment.offset_s:.2f} s: {"; ".join(moment.reasons)}')
    index = {'bags': [str(b) for b in args.bags], 'frames': len(moments), 'clip_s': args.duration, 'clips': clips}
    (args.out / INDEX).write_text(json.dumps(index, indent=2) + '\n')
    print(f'index: {args.out / INDEX}')
    return 0
