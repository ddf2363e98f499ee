"""Training frames from rosbag2 logs, through the same decoding and perception code as the live stack.

The tools' half of :mod:`planner.training.cache`: for each bag, the odometry track, the simulator's scene info
and expert plans and the route commands (when the bag has them) are read for the log's labels, and every
sensor message goes through :func:`avstack.offline.stack.decoded_inputs` and the perception half of
:class:`avstack.offline.stack.OfflineStack`, whose preprocessed :class:`FrameInputs` (what the live node would have
encoded) :func:`planner.training.cache.write_frame_cache` turns into a cache keyed by the bag's files and the
preprocessing config, so a second run (or epoch) decodes nothing.
"""

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from avstack.bag.codec import deserialize
from avstack.bag.reader import Bag, open_bag
from avstack.bag.sensor_topics import SensorTopics, resolve_sensor_topics
from avstack.offline.stack import OfflineConfig, OfflineStack, decoded_inputs
from perception_llm.pipeline import FrameInputs
from planner.model import ModelConfig
from planner.training.cache import (
    cache_directory, cache_key, log_labels, reused_count, route_indices, write_frame_cache,
)
from planner.training.frames import LogLabels
from planner.training.labels import OutcomeRules
from stack_common import topics
from stack_common.odometry import odometry_to_ego
from stack_common.trajectory import path_to_trajectory


@dataclass
class CacheResult:
    bag: Path
    cache: Path
    frames: int
    reused: bool


def find_bags(paths: list[Path]) -> list[Path]:
    """Bag directories (those holding metadata.yaml) and bare .mcap/.db3 files under ``paths``."""
    bags = []
    for path in paths:
        if path.is_dir() and not (path / 'metadata.yaml').is_file():
            found = sorted(p.parent for p in path.rglob('metadata.yaml'))
            bags += found or sorted(p for p in path.rglob('*') if p.suffix in ('.mcap', '.db3'))
        else:
            bags.append(path)
    return bags


def cache_logs(paths: list[Path], cache_root: Path, config: OfflineConfig, model_cfg: ModelConfig,
               mapping: dict) -> list[Path]:
    """The frame caches of every bag under ``paths`` (built now or reused), one line each on stdout;
    raises BagError, or ValueError when there is nothing to train on."""
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


def bag_labels(bag: Bag, odometry_topic: str, model_cfg: ModelConfig) -> LogLabels:
    """The labels of a log: its odometry track, and the simulator's scene info and expert plans where it has them."""
    track = [odometry_to_ego(deserialize(m.data, m.type_name)) for m in bag.messages([odometry_topic])]
    scene = [json.loads(deserialize(m.data, m.type_name).data) for m in bag.messages([topics.SIM_SCENE_INFO])] \
        if topics.SIM_SCENE_INFO in bag.topics else []
    plans = [path_to_trajectory(deserialize(m.data, m.type_name)) for m in bag.messages([topics.SIM_EXPERT_PLAN])] \
        if topics.SIM_EXPERT_PLAN in bag.topics else []
    return log_labels(track, scene, plans, model_cfg)


def bag_route_commands(bag: Bag) -> list[tuple[int, str]]:
    """``(log time, command)`` of the route commands the bag holds (the planner's optional input)."""
    if topics.ROUTE_COMMAND not in bag.topics:
        return []
    return [(m.log_time_ns, deserialize(m.data, m.type_name).data) for m in bag.messages([topics.ROUTE_COMMAND])]


def frame_inputs(bag: Bag, sensors: SensorTopics, stack: OfflineStack, progress: bool) -> Iterator[FrameInputs]:
    """Perception's preprocessed inputs of every synced frame of the bag, in log-time order."""
    total = sum(bag.topics[s.topic].count for s in sensors.all())
    for _, item in tqdm(decoded_inputs(bag, sensors, camera_size=stack.camera_size), total=total,
                        desc=Path(bag.path).name, unit='msg', disable=not progress, leave=False):
        yield from (step.inputs for step in stack.front(item) if step.inputs is not None)
    yield from (step.inputs for step in stack.front_finish(bag.end_ns) if step.inputs is not None)


def build_cache(bag_path: Path, cache_root: Path, config: OfflineConfig, model_cfg: ModelConfig,
                mapping: dict | None = None, progress: bool = True) -> CacheResult:
    """The cache of one bag (built now, or reused when it is complete for these settings)."""
    mapping = mapping or {}
    with open_bag(bag_path) as bag:
        sensors = resolve_sensor_topics(bag, config.perception, mapping)
        key = cache_key(bag.files, config.perception, config.critic, model_cfg, mapping)
        directory = cache_directory(cache_root, key)
        if (count := reused_count(directory, key)) is not None:
            return CacheResult(bag_path, directory, count, True)
        labels = bag_labels(bag, sensors.odometry.topic, model_cfg)
        stack = OfflineStack(config, sensors)
        reference = next(iter({**sensors.cameras, **sensors.lidars}.values())).topic
        count = write_frame_cache(directory, key, frame_inputs(bag, sensors, stack, progress),
                                  bag.topics[reference].count + 1, labels,
                                  route_indices(bag_route_commands(bag), model_cfg), stack.perception.encoder_config,
                                  len(stack.perception.cameras), model_cfg, OutcomeRules.from_critic(config.critic))
        return CacheResult(bag_path, directory, count, False)
