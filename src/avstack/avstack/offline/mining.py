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

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from avstack.bag.reader import open_bag
from avstack.bag.sensor_topics import resolve_sensor_topics
from avstack.bag.writer import BagWriter
from avstack.offline.stack import FrameResult, OfflineConfig, OfflineStack, decoded_inputs

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
    bag_start_ns: int = 0     # log time of the bag's first message

    @property
    def offset_s(self) -> float:
        """Seconds from the start of its bag."""
        return (self.log_time_ns - self.bag_start_ns) / 1e9


def assess(bag_path: Path, config: OfflineConfig, mapping: dict, progress: bool) -> list[Moment]:
    """The model's own view of every frame of a bag."""
    moments = []
    with open_bag(bag_path) as bag:
        sensors = resolve_sensor_topics(bag, config.perception, mapping)
        stack = OfflineStack(config, sensors)
        total = sum(bag.topics[s.topic].count for s in sensors.all())
        results = []
        for _, item in tqdm(decoded_inputs(bag, sensors, camera_size=stack.camera_size), total=total,
                            desc=f'mine {bag_path.name}', unit='msg', disable=not progress, leave=False):
            results += stack.feed(item)
        results += stack.finish(bag.end_ns)
    for result in results:
        if isinstance(result, FrameResult) and result.plan is not None:
            assessment = result.plan.assessment
            moments.append(Moment(str(bag_path), result.stamp_ns, result.now_ns, assessment.novelty,
                                  assessment.plan_score,
                                  sorted(t for t, p in assessment.tags.items() if p >= TAG_THRESHOLD),
                                  bag_start_ns=bag.start_ns))
    return moments


def score(moments: list[Moment]) -> list[Moment]:
    """Novelty in standard deviations + doubt + tag rarity (-log frequency), with the reasons spelled out."""
    novelty = np.array([m.novelty for m in moments])
    z = (novelty - novelty.mean()) / (novelty.std() or 1.0)
    tag_counts = Counter(t for m in moments for t in m.tags)
    for moment, novelty_z in zip(moments, z, strict=True):
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
