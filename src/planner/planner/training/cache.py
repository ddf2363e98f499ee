"""A log's training frames into a frame cache: the one place training data is built.

The caller decodes the log (``avstack``'s tools iterate bags through the same decoding and perception code
as the live stack) and hands over plain values: the ego track, the simulator's scene-info documents and
expert plans, the route commands, and an iterator of perception's preprocessed
:class:`perception_llm.pipeline.FrameInputs`. :func:`write_frame_cache` joins each frame with its labels
(:class:`planner.training.frames.LogLabels`) and writes those with a driver label; :func:`cache_key` says what
a cache depends on, so a complete one (:func:`reused_count`) is not built again.
"""

import bisect
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from perception_llm.fusion import EncoderConfig
from perception_llm.pipeline import FrameInputs
from planner.model import ModelConfig
from planner.training.dataset import FrameCacheWriter, field_specs, is_complete
from planner.training.frames import LABELS_VERSION, LogLabels, frame_record, parse_scene_info
from planner.training.labels import OutcomeRules
from stack_common.odometry import EgoState
from stack_common.trajectory import Trajectory


def cache_key(files: list[Path], perception: dict, critic: dict, model_cfg: ModelConfig, mapping: dict) -> dict:
    """What a cache depends on: the log's files and the preprocessing and label settings."""
    files = [{'path': str(f.resolve()), 'size': f.stat().st_size, 'mtime_ns': f.stat().st_mtime_ns} for f in files]
    perception = {k: v for k, v in perception.items() if k not in ('checkpoint', 'num_threads')}
    return {'files': files, 'perception': perception, 'labels': LABELS_VERSION,
            'horizon': model_cfg.horizon, 'dt_s': model_cfg.dt_s, 'scene_tags': list(model_cfg.scene_tags),
            'score_terms': list(model_cfg.score_terms),
            'outcome_rules': OutcomeRules.from_critic(critic).to_dict(),
            'map': mapping}


def cache_directory(cache_root: Path, key: dict) -> Path:
    return cache_root / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def reused_count(directory: Path, key: dict) -> int | None:
    """The frame count of a complete cache for ``key`` in ``directory``; None when it must be built."""
    if not is_complete(directory, key):
        return None
    return json.loads((directory / 'index.json').read_text())['count']


def log_labels(track: list[EgoState], scene_documents: Iterable[dict], expert_plans: Iterable[Trajectory],
               model_cfg: ModelConfig) -> LogLabels:
    """A log's labels from its odometry track, scene-info documents (JSON) and the expert's plans (those of the
    model's horizon and step only)."""
    scene = [parse_scene_info(document) for document in scene_documents]
    plans = {}
    for plan in expert_plans:
        if len(plan) == model_cfg.horizon and np.allclose(plan.t_s, model_cfg.dt_s * np.arange(1, len(plan) + 1)):
            plans[plan.stamp_ns] = np.concatenate([plan.xy, plan.heading[:, None]], 1)
    return LogLabels(track, scene, model_cfg, plans)


def route_indices(commands: Iterable[tuple[int, str]], model_cfg: ModelConfig) -> list[tuple[int, int]]:
    """``(log time, route index)`` of the route commands ``(log time, name)`` the model knows."""
    index = {name: i for i, name in enumerate(model_cfg.route_commands)}
    return [(t, index[name]) for t, name in commands if name in index]


def write_frame_cache(directory: Path, key: dict, frames: Iterable[FrameInputs], capacity: int,
                      labels: LogLabels, routes: list[tuple[int, int]], encoder_cfg: EncoderConfig, cameras: int,
                      model_cfg: ModelConfig, rules: OutcomeRules) -> int:
    """Write the cache of ``frames`` (at most ``capacity``) that have a driver label; returns how many."""
    writer = FrameCacheWriter(directory, capacity, field_specs(encoder_cfg, model_cfg, cameras), key)
    for inputs in frames:
        if (frame := labels.for_frame(inputs.stamp_ns)) is None:
            continue
        route = routes[bisect.bisect_right(routes, (inputs.stamp_ns, 1 << 30)) - 1][1] \
            if routes and routes[0][0] <= inputs.stamp_ns else 0
        writer.append(frame_record(inputs, frame, encoder_cfg.bev_grid, model_cfg.dt_s, rules, route))
    writer.close()
    return writer.count
