"""Preprocessed training frames cached on disk as numpy memmaps.

Decoding images and building BEV grids is the expensive part of a frame; it
happens once, when a log is first read, and the result lands in a cache
directory (one ``.npy`` memmap per field plus ``index.json``). Epochs then
read slices of the memmaps, so memory stays bounded by the OS page cache
whatever the dataset size, and a second epoch decodes nothing.
"""

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from perception_llm.ego import EGO_FEATURES
from perception_llm.fusion import EncoderConfig
from perception_llm.lidar_encoder import BEV_CHANNELS
from planner.model import ModelConfig
from planner.training.labels import CANDIDATES

CACHE_VERSION = 3
MAX_OBSTACLES = 128
MAX_VEHICLES = 16          # the nearest other vehicles at each instant
MAX_LANE_POINTS = 768      # lane centre points near the ego (2 m apart; about 300-600 within 130 m)
TRAFFIC_STEPS_PER_S = 10   # the other vehicles' boxes every 0.1 s of the horizon


def field_specs(encoder_cfg: EncoderConfig, model_cfg: ModelConfig,
                cameras: int) -> dict[str, tuple[tuple[int, ...], str]]:
    """Per-frame field shapes and dtypes of a cache: the encoders' inputs and the labels."""
    bev_shape = (BEV_CHANNELS, *encoder_cfg.bev_grid.shape)
    horizon, tags = model_cfg.horizon, len(model_cfg.scene_tags)
    steps = int(round(horizon * model_cfg.dt_s * TRAFFIC_STEPS_PER_S))
    return {
        'stamp_ns': ((), 'int64'),
        'images': ((cameras, 3, encoder_cfg.input_height, encoder_cfg.input_width), 'uint8'),
        'camera_present': ((cameras,), 'bool'),
        'camera_anchors': ((cameras, encoder_cfg.camera_tokens, 3), 'float32'),
        'bev': (bev_shape, 'float16'),
        'lidar_present': ((), 'bool'),
        'ego': ((EGO_FEATURES,), 'float32'),
        'ego_present': ((), 'bool'),
        'speed_mps': ((), 'float32'),
        'route': ((), 'int64'),
        'future': ((horizon, 3), 'float32'),
        'expert_label': ((), 'bool'),
        'previous': ((horizon, 3), 'float32'),
        'previous_pose': ((3,), 'float32'),
        'previous_offset_s': ((), 'float32'),
        'previous_valid': ((), 'bool'),
        'obstacles': ((MAX_OBSTACLES, 2), 'float32'),
        'obstacle_mask': ((MAX_OBSTACLES,), 'bool'),
        'traffic': ((MAX_VEHICLES, steps, 5), 'float32'),
        'traffic_mask': ((MAX_VEHICLES, steps), 'bool'),
        'lanes': ((MAX_LANE_POINTS, 2), 'float32'),
        'lanes_mask': ((MAX_LANE_POINTS,), 'bool'),
        'tags': ((tags,), 'float32'),
        'tags_valid': ((), 'bool'),
        'lane_pose': ((2,), 'float32'),
        'lane_pose_valid': ((), 'bool'),
        'episode': ((), 'int64'),
        'candidates': ((CANDIDATES, horizon, 3), 'float32'),
        'candidate_scores': ((CANDIDATES, len(model_cfg.score_terms)), 'float32'),
        'candidate_known': ((CANDIDATES, len(model_cfg.score_terms)), 'bool'),
    }


class FrameCacheWriter:
    """Append frames (dicts of numpy values matching the specs) to a new cache directory."""

    def __init__(self, directory: Path, capacity: int, specs: dict, metadata: dict):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.specs, self.metadata, self.count = specs, metadata, 0
        self.arrays = {name: np.lib.format.open_memmap(self.directory / f'{name}.npy', mode='w+', dtype=dtype,
                                                      shape=(max(capacity, 1), *shape))
                       for name, (shape, dtype) in specs.items()}

    def append(self, frame: dict) -> None:
        if self.count >= len(self.arrays['stamp_ns']):
            raise ValueError(f'cache {self.directory} is full ({self.count} frames)')
        for name, array in self.arrays.items():
            array[self.count] = frame[name]
        self.count += 1

    def close(self) -> Path:
        for array in self.arrays.values():
            array.flush()
        index = {'version': CACHE_VERSION, 'count': self.count, 'metadata': self.metadata,
                 'fields': {name: [list(shape), dtype] for name, (shape, dtype) in self.specs.items()}}
        (self.directory / 'index.json').write_text(json.dumps(index, indent=2))
        return self.directory


def is_complete(directory: Path, metadata: dict) -> bool:
    """A cache exists for exactly this source and preprocessing."""
    index = Path(directory) / 'index.json'
    if not index.is_file():
        return False
    document = json.loads(index.read_text())
    return document.get('version') == CACHE_VERSION and document.get('metadata') == metadata


class CachedFrames(Dataset):
    """The frames of one cache directory; items are dicts of torch tensors."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        index = json.loads((self.directory / 'index.json').read_text())
        self.count, self.metadata = index['count'], index['metadata']
        self.arrays = {name: np.load(self.directory / f'{name}.npy', mmap_mode='r') for name in index['fields']}

    def __len__(self) -> int:
        return self.count

    def episodes(self) -> np.ndarray:
        """(count,) the episode key of every frame (validation holds out whole episodes)."""
        return np.asarray(self.arrays['episode'][:self.count])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.count:
            raise IndexError(index)
        return {name: torch.from_numpy(np.array(array[index])) for name, array in self.arrays.items()}
