"""Training frames from rosbag2 logs, through the same decoding and perception code as the live stack.

For each bag: the odometry track and the simulator's scene info (when the bag
has it) become the log's labels; every sensor message goes through
:func:`avstack.offline.decode` and the perception half of
:class:`avstack.offline.OfflineStack`, whose preprocessed
:class:`FrameInputs` are what the live node would have encoded. Frames with a
full planning horizon of logged future are written to a memmap cache keyed by
the bag's files and the preprocessing config, so a second run (or epoch)
decodes nothing.
"""

import bisect
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from avstack.bag import Bag, deserialize, open_bag, resolve_sensor_topics
from avstack.offline import OfflineConfig, OfflineStack, decoded_inputs
from planner.model import ModelConfig
from planner.training.dataset import FrameCacheWriter, field_specs, is_complete
from planner.training.frames import LABELS_VERSION, LogLabels, frame_record, parse_scene_info
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


def cache_key(bag: Bag, config: OfflineConfig, model_cfg: ModelConfig, mapping: dict) -> dict:
    """What a cache depends on: the bag's files and the preprocessing and label settings."""
    files = [{'path': str(f.resolve()), 'size': f.stat().st_size, 'mtime_ns': f.stat().st_mtime_ns}
             for f in bag.files]
    perception = {k: v for k, v in config.perception.items() if k not in ('checkpoint', 'num_threads')}
    return {'files': files, 'perception': perception, 'labels': LABELS_VERSION,
            'horizon': model_cfg.horizon, 'dt_s': model_cfg.dt_s, 'scene_tags': list(model_cfg.scene_tags),
            'score_terms': list(model_cfg.score_terms),
            'outcome_rules': OutcomeRules.from_critic(config.critic).to_dict(),
            'map': mapping}


def log_labels(bag: Bag, odometry_topic: str, model_cfg: ModelConfig) -> LogLabels:
    track = [odometry_to_ego(deserialize(m.data, m.type_name)) for m in bag.messages([odometry_topic])]
    scene = []
    if topics.SIM_SCENE_INFO in bag.topics:
        scene = [parse_scene_info(json.loads(deserialize(m.data, m.type_name).data))
                 for m in bag.messages([topics.SIM_SCENE_INFO])]
    plans = {}
    if topics.SIM_EXPERT_PLAN in bag.topics:
        for message in bag.messages([topics.SIM_EXPERT_PLAN]):
            plan = path_to_trajectory(deserialize(message.data, message.type_name))
            if len(plan) == model_cfg.horizon and np.allclose(plan.t_s, model_cfg.dt_s * np.arange(1, len(plan) + 1)):
                plans[plan.stamp_ns] = np.concatenate([plan.xy, plan.heading[:, None]], 1)
    return LogLabels(track, scene, model_cfg, plans)


def route_commands(bag: Bag, model_cfg: ModelConfig) -> list[tuple[int, int]]:
    """``(log time, route index)`` of the route commands the bag holds (the planner's optional input)."""
    if topics.ROUTE_COMMAND not in bag.topics:
        return []
    index = {name: i for i, name in enumerate(model_cfg.route_commands)}
    commands = [(m.log_time_ns, deserialize(m.data, m.type_name).data) for m in bag.messages([topics.ROUTE_COMMAND])]
    return [(t, index[name]) for t, name in commands if name in index]


def build_cache(bag_path: Path, cache_root: Path, config: OfflineConfig, model_cfg: ModelConfig,
                mapping: dict | None = None, progress: bool = True) -> CacheResult:
    """The cache of one bag (built now, or reused when it is complete for these settings)."""
    mapping = mapping or {}
    with open_bag(bag_path) as bag:
        sensors = resolve_sensor_topics(bag, config.perception, mapping)
        key = cache_key(bag, config, model_cfg, mapping)
        directory = cache_root / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        if is_complete(directory, key):
            return CacheResult(bag_path, directory, json.loads((directory / 'index.json').read_text())['count'],
                               True)
        labels = log_labels(bag, sensors.odometry.topic, model_cfg)
        stack = OfflineStack(config, sensors)
        reference = next(iter({**sensors.cameras, **sensors.lidars}.values())).topic
        cameras = len(stack.perception.cameras)
        writer = FrameCacheWriter(directory, bag.topics[reference].count + 1,
                                  field_specs(stack.perception.encoder_config, model_cfg, cameras), key)
        routes = route_commands(bag, model_cfg)
        grid = stack.perception.encoder_config.bev_grid
        rules = OutcomeRules.from_critic(config.critic)

        def write(steps) -> None:
            for step in steps:
                if step.inputs is not None and (frame := labels.for_frame(step.inputs.stamp_ns)) is not None:
                    route = routes[bisect.bisect_right(routes, (step.inputs.stamp_ns, 1 << 30)) - 1][1] \
                        if routes and routes[0][0] <= step.inputs.stamp_ns else 0
                    writer.append(frame_record(step.inputs, frame, grid, model_cfg.dt_s, rules, route))

        total = sum(bag.topics[s.topic].count for s in sensors.all())
        for _, item in tqdm(decoded_inputs(bag, sensors, camera_size=stack.camera_size), total=total,
                            desc=bag_path.name, unit='msg', disable=not progress, leave=False):
            write(stack.front(item))
        write(stack.front_finish(bag.end_ns))
        writer.close()
        return CacheResult(bag_path, directory, writer.count, False)
