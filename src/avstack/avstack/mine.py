"""``avstack mine``: the analyst role at work, cutting the moments worth learning from out of logs.

Runs the model over bags (the offline stack: same cores as live), scores every
frame by what the analyst and critic heads say about it, and writes a rosbag2
clip of a few seconds around each of the top moments, with ``index.json``
saying why each was chosen:

* **novelty**: the analyst embedding far from the training distribution
  (in standard deviations over the run's frames);
* **doubt**: a low plan score from the model's own critic head;
* **rare tags**: scene tags that are seldom active in the mined logs
  (a cut-in in an hour of cruising).

Moments closer than a clip length are merged (the best one stands for them).
"""

import json
import math
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from avstack.bag import BagError, BagWriter, open_bag, parse_map, resolve_sensor_topics
from avstack.offline import FrameResult, OfflineConfig, OfflineStack, decoded_inputs
from avstack.paths import default_config
from stack_common.checkpoint import CheckpointError
from stack_common.config import ConfigError

EXIT_USAGE = 2
TAG_THRESHOLD = 0.5


@dataclass
class Moment:
    bag: str
    stamp_ns: int
    log_time_ns: int
    novelty: float
    plan_score: float
    tags: list[str]
    score: float = 0.0
    reasons: list[str] = field(default_factory=list)


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


def assess(bag_path: Path, config: OfflineConfig, mapping: dict, progress: bool) -> list[Moment]:
    """The model's own view of every frame of a bag."""
    moments = []
    with open_bag(bag_path) as bag:
        sensors = resolve_sensor_topics(bag, config.perception, mapping)
        stack = OfflineStack(config, sensors)
        total = sum(bag.topics[s.topic].count for s in sensors.all())
        results = []
        for _, item in tqdm(decoded_inputs(bag, sensors), total=total, desc=f'mine {bag_path.name}', unit='msg',
                            disable=not progress, leave=False):
            results += stack.feed(item)
        results += stack.finish(bag.end_ns)
    for result in results:
        if isinstance(result, FrameResult) and result.plan is not None:
            assessment = result.plan.assessment
            moments.append(Moment(str(bag_path), result.stamp_ns, result.now_ns, assessment.novelty,
                                  assessment.plan_score,
                                  sorted(t for t, p in assessment.tags.items() if p >= TAG_THRESHOLD)))
    return moments


def score(moments: list[Moment]) -> list[Moment]:
    """Novelty in standard deviations + doubt + tag rarity (-log frequency), with the reasons spelled out."""
    novelty = np.array([m.novelty for m in moments])
    z = (novelty - novelty.mean()) / (novelty.std() or 1.0)
    tag_counts = Counter(t for m in moments for t in m.tags)
    for moment, novelty_z in zip(moments, z):
        doubt = 1.0 - moment.plan_score
        rarity = max((-math.log(tag_counts[t] / len(moments)) for t in moment.tags), default=0.0)
        moment.score = float(max(novelty_z, 0.0) + 2.0 * doubt + rarity)
        if novelty_z >= 1.0:
            moment.reasons.append(f'novelty {novelty_z:.1f} sd above the run')
        if moment.plan_score < 0.5:
            moment.reasons.append(f'low plan score {moment.plan_score:.2f}')
        rare = [t for t in moment.tags if tag_counts[t] / len(moments) < 0.1]
        if rare:
            moment.reasons.append(f'rare tags: {", ".join(rare)}')
        if not moment.reasons:
            moment.reasons.append(f'highest combined score {moment.score:.2f}')
    return moments


def select(moments: list[Moment], top: int, clip_ns: int) -> list[Moment]:
    """The best ``top`` moments, none within a clip length of a better one in the same bag."""
    chosen: list[Moment] = []
    for moment in sorted(moments, key=lambda m: -m.score):
        if all(c.bag != moment.bag or abs(c.log_time_ns - moment.log_time_ns) >= clip_ns for c in chosen):
            chosen.append(moment)
        if len(chosen) == top:
            break
    return chosen


def cut(bag_path: Path, out: Path, centre_ns: int, clip_ns: int) -> tuple[int, int]:
    """Write every topic of ``bag_path`` within ``clip_ns`` around ``centre_ns`` (log time) as a rosbag2 clip."""
    with open_bag(bag_path) as bag:
        start = max(centre_ns - clip_ns // 2, bag.start_ns)
        end = min(start + clip_ns, bag.end_ns + 1)
        with BagWriter(out) as writer:
            for name, info in bag.topics.items():
                writer.add_topic(name, info.type_name, info.offered_qos)
            for message in bag.messages(start_ns=start, stop_ns=end):
                writer.write(message.topic, message.log_time_ns, message.data)
    return start, end
