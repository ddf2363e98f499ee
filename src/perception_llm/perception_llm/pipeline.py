"""The perception core: decoded sensor data in, fused token sets out.

No ROS here: the node, offline evaluation and training feed it the same way.
Cameras arrive as RGB arrays, lidars as points in their own frame; the core
moves points to ``base_link``, synchronises the sensors, encodes each modality
and assembles a :class:`~stack_common.tokens.TokenSet` with the missing
sensors reported.
"""

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch

from perception_llm.camera_encoder import prepare_image
from perception_llm.ego import EgoHistory
from perception_llm.extrinsics import sensor_to_base, transform_points
from perception_llm.fusion import EncoderConfig, SensorEncoders
from perception_llm.sync import ApproximateTimeSync, SyncedSet
from stack_common.odometry import EgoState
from stack_common.tokens import Modality, TokenSet

NS_PER_S = 1_000_000_000


def camera_key(name: str) -> str:
    return f'camera/{name}'


def lidar_key(name: str) -> str:
    return f'lidar/{name}'


@dataclass
class FusedFrame:
    tokens: TokenSet
    missing: list[str] = field(default_factory=list)
    tokenize_ms: float = 0.0


@dataclass
class LidarSweep:
    points_base: np.ndarray          # (N, 3) float32 in base_link
    intensity: np.ndarray | None     # (N,) float32


class PerceptionCore:
    def __init__(self, config: dict, encoders: SensorEncoders | None = None):
        self.config = config
        self.encoder_config = EncoderConfig.from_node_config(config)
        self.encoders = encoders or SensorEncoders.seeded(self.encoder_config)
        self.cameras = list(config['cameras'])
        self.lidars = list(config['lidars'])
        self.extrinsics = {}
        for kind, names in (('camera', self.cameras), ('lidar', self.lidars)):
            for name in names:
                section = config[kind].get(name, {})
                key = f'{kind}/{name}'
                self.extrinsics[key] = sensor_to_base(
                    section.get('translation_m', (0.0, 0.0, 0.0)),
                    section.get('rotation_rpy_rad', (0.0, 0.0, 0.0)),
                    section.get('rotation_quat_xyzw', ()))
        sync = config['sync']
        self.sync = ApproximateTimeSync(
            [camera_key(n) for n in self.cameras] + [lidar_key(n) for n in self.lidars],
            slop_ns=int(sync['slop_s'] * NS_PER_S), max_wait_ns=int(sync['max_wait_s'] * NS_PER_S),
            queue_size=sync['queue_size'])
        self.ego = EgoHistory()
        self.received: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.published = 0
        self._anchors_lidar = self.encoder_config.bev_grid.token_anchors(self.encoder_config.token_stride)

    def reset(self) -> None:
        """Forget queued data and history (time jumped back: bag loop, simulator reset)."""
        self.sync.reset()
        self.ego.reset()

    def add_camera(self, name: str, stamp_ns: int, rgb: np.ndarray, now_ns: int) -> list[SyncedSet]:
        self.received[camera_key(name)] += 1
        image = prepare_image(rgb, self.encoder_config.input_width, self.encoder_config.input_height)
        return self.sync.add(camera_key(name), stamp_ns, image, now_ns)

    def add_lidar(self, name: str, stamp_ns: int, points: np.ndarray, intensity: np.ndarray | None,
                  now_ns: int) -> list[SyncedSet]:
        self.received[lidar_key(name)] += 1
        points_base = transform_points(self.extrinsics[lidar_key(name)], points)
        return self.sync.add(lidar_key(name), stamp_ns, LidarSweep(points_base, intensity), now_ns)

    def add_odometry(self, state: EgoState) -> None:
        self.received['odometry'] += 1
        self.ego.add(state)

    def poll(self, now_ns: int) -> list[SyncedSet]:
        return self.sync.poll(now_ns)

    @torch.inference_mode()
    def tokenize(self, synced: SyncedSet) -> FusedFrame:
        start = time.perf_counter()
        cfg = self.encoder_config
        parts, anchors, modality, source = [], [], [], []
        cameras = [(i, synced.members[camera_key(n)][1]) for i, n in enumerate(self.cameras)
                   if camera_key(n) in synced.members]
        if cameras:
            images = torch.from_numpy(np.stack([image for _, image in cameras]))
            ids = torch.tensor([i for i, _ in cameras])
            camera_tokens = self.encoders.encode_cameras(images, ids)       # (C, P, D)
            per_camera = camera_tokens.shape[1]
            parts.append(camera_tokens.reshape(-1, cfg.token_dim))
            anchors.append(np.full((len(cameras) * per_camera, 3), np.nan, np.float32))
            modality.append(np.full(len(cameras) * per_camera, Modality.CAMERA, np.uint8))
            source.append(np.repeat(ids.numpy().astype(np.uint8), per_camera))
        sweeps = [synced.members[lidar_key(n)][1] for n in self.lidars if lidar_key(n) in synced.members]
        if sweeps:
            points = np.concatenate([s.points_base for s in sweeps])
            intensity = (np.concatenate([s.intensity for s in sweeps])
                         if all(s.intensity is not None for s in sweeps) else None)
            bev = cfg.bev_grid.features(points, intensity)
            lidar_tokens = self.encoders.encode_lidar(torch.from_numpy(bev)[None])[0]
            parts.append(lidar_tokens)
            count = len(self._anchors_lidar)
            anchors.append(np.concatenate([self._anchors_lidar, np.zeros((count, 1), np.float32)], axis=1))
            modality.append(np.full(count, Modality.LIDAR, np.uint8))
            source.append(np.zeros(count, np.uint8))
        ego = self.ego.features(synced.stamp_ns)
        missing = list(synced.missing)
        if ego is None:
            missing.append('odometry')
        else:
            parts.append(self.encoders.encode_ego(torch.from_numpy(ego)[None])[0])
            anchors.append(np.zeros((1, 3), np.float32))
            modality.append(np.array([Modality.EGO], np.uint8))
            source.append(np.zeros(1, np.uint8))
        tokens = TokenSet(
            stamp_ns=synced.stamp_ns,
            anchors=np.concatenate(anchors),
            modality=np.concatenate(modality),
            source=np.concatenate(source),
            embedding=torch.cat(parts).numpy().astype(np.float32, copy=False))
        self.published += 1
        return FusedFrame(tokens, missing, (time.perf_counter() - start) * 1e3)
