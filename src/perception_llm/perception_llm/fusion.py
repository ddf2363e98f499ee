"""Fusion: camera, lidar and ego encoders with modality embeddings, as one module.

``SensorEncoders`` is the perception half of the driving model: its weights
live in the same checkpoint as the planner (prefix ``perception.``) and are
trained jointly with it. :meth:`SensorEncoders.fuse` assembles a batch of
frames into the static token layout ``[camera 0 | camera 1 | ... | BEV | ego]``
of ``EncoderConfig.max_tokens(n_cameras)`` slots with a mask that is False
for the slots of missing sensors; the live node and training both go through
it. A BEV token whose block holds no lidar return is masked too: a sparse
sweep fills a few of the 300 blocks, and attention and compute go to those.
On the wire only the real (unmasked) tokens travel (the transformer has no
slot positions, so their order does not matter).
"""

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from perception_llm.camera_encoder import CameraEncoder
from perception_llm.ego import EGO_FEATURES, EgoEncoder
from perception_llm.lidar_encoder import BevGrid, LidarEncoder
from stack_common.tokens import Modality

CHECKPOINT_PREFIX = 'perception.'
INIT_SEED = 0


@dataclass(frozen=True)
class EncoderConfig:
    """Architecture of the encoders; a checkpoint's ``perception`` config must match it."""

    token_dim: int = 64
    input_width: int = 256
    input_height: int = 128
    patch_px: int = 32
    x_range_m: tuple[float, float] = (-20.0, 60.0)
    y_range_m: tuple[float, float] = (-30.0, 30.0)
    z_range_m: tuple[float, float] = (-2.0, 4.0)
    cell_size_m: float = 0.5
    token_stride: int = 8
    max_cameras: int = 8

    @classmethod
    def from_node_config(cls, config: dict) -> 'EncoderConfig':
        camera, lidar = config['camera_encoder'], config['lidar_encoder']
        return cls(token_dim=config['token_dim'], input_width=camera['input_width'],
                   input_height=camera['input_height'], patch_px=camera['patch_px'],
                   x_range_m=tuple(lidar['x_range_m']), y_range_m=tuple(lidar['y_range_m']),
                   z_range_m=tuple(lidar['z_range_m']), cell_size_m=lidar['cell_size_m'],
                   token_stride=lidar['token_stride'])

    @classmethod
    def from_dict(cls, values: dict) -> 'EncoderConfig':
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def bev_grid(self) -> BevGrid:
        return BevGrid(self.x_range_m, self.y_range_m, self.z_range_m, self.cell_size_m)

    @property
    def camera_grid(self) -> tuple[int, int]:
        """(rows, cols) of each camera's patch tokens."""
        return self.input_height // self.patch_px, self.input_width // self.patch_px

    @property
    def camera_tokens(self) -> int:
        """Patch tokens per camera."""
        rows, cols = self.camera_grid
        return rows * cols

    @property
    def lidar_tokens(self) -> int:
        """BEV tokens per frame (all lidars share one grid)."""
        rows, cols = self.bev_grid.shape
        return (rows // self.token_stride) * (cols // self.token_stride)

    def max_tokens(self, n_cameras: int) -> int:
        """Tokens per frame with every sensor present: cameras, the BEV grid and the ego token."""
        return n_cameras * self.camera_tokens + self.lidar_tokens + 1


@dataclass
class FusedTokens:
    """A batch of frames in the static layout; ``mask`` is False where a sensor was missing."""

    embedding: torch.Tensor  # (B, N, D)
    anchors: torch.Tensor    # (B, N, 3) base_link, NaN where a token has no position
    mask: torch.Tensor       # (B, N) bool
    modality: torch.Tensor   # (N,) uint8, Modality
    source: torch.Tensor     # (N,) uint8, index of the sensor within its modality


class SensorEncoders(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.camera = CameraEncoder(config.token_dim, config.input_height, config.input_width,
                                    config.patch_px, config.max_cameras)
        self.lidar = LidarEncoder(config.token_dim, config.bev_grid.shape, config.token_stride)
        self.ego = EgoEncoder(config.token_dim)
        self.modality_embedding = nn.Embedding(len(Modality), config.token_dim)
        # Auxiliary (training): the ego's offset and heading against its lane, from the first camera's tokens
        # alone. The planner's loss alone let the camera go unused (its tokens stopped varying with the
        # image); asking the encoder to see where the lane is keeps lane markings in its tokens.
        self.lane_head = nn.Sequential(nn.Linear(config.camera_tokens * config.token_dim, 128), nn.GELU(),
                                       nn.Linear(128, 2))
        bev_anchors = config.bev_grid.token_anchors(config.token_stride)
        bev_anchors = np.concatenate([bev_anchors, np.zeros((len(bev_anchors), 1), np.float32)], axis=1)
        self.register_buffer('lidar_anchors', torch.tensor(bev_anchors), persistent=False)  # z = 0: the road

    @classmethod
    def seeded(cls, config: EncoderConfig) -> 'SensorEncoders':
        """A deterministic initialisation, the same in every process."""
        with torch.random.fork_rng():
            torch.manual_seed(INIT_SEED)
            return cls(config).eval()

    def lane_pose(self, fused: 'FusedTokens') -> torch.Tensor:
        """``(B, 2)`` the ego's lateral offset (m) and heading error (rad) against its lane, from camera 0."""
        camera = fused.embedding[:, :self.config.camera_tokens]
        return self.lane_head(camera.flatten(1)) * torch.tensor([1.0, 0.1], device=camera.device)

    def encode_cameras(self, images: torch.Tensor, camera_ids: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W) uint8``, ``(B,)`` camera indices -> ``(B, P, D)``."""
        return self.camera(images, camera_ids) + self.modality_embedding.weight[Modality.CAMERA]

    def encode_lidar(self, bev: torch.Tensor) -> torch.Tensor:
        """``(B, BEV_CHANNELS, rows, cols)`` -> ``(B, L, D)``."""
        return self.lidar(bev) + self.modality_embedding.weight[Modality.LIDAR]

    def encode_ego(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, EGO_FEATURES)`` -> ``(B, 1, D)``; the first channels stay the features (the token contract)."""
        embedding = self.modality_embedding.weight[Modality.EGO].clone()
        embedding[:EGO_FEATURES] = 0
        return self.ego(features) + embedding

    def fuse(self, images: torch.Tensor, camera_present: torch.Tensor, bev: torch.Tensor,
             lidar_present: torch.Tensor, ego: torch.Tensor, ego_present: torch.Tensor,
             camera_anchors: torch.Tensor | None = None) -> FusedTokens:
        """Encode a batch of preprocessed frames into the static token layout.

        ``images (B, C, 3, H, W) uint8``, ``camera_present (B, C) bool``,
        ``bev (B, BEV_CHANNELS, rows, cols)``, ``lidar_present (B,) bool``,
        ``ego (B, EGO_FEATURES)``, ``ego_present (B,) bool`` and optionally
        ``camera_anchors (B, C, P, 3)`` (NaN without). Inputs of missing
        sensors may hold anything (zeros); their slots are masked.
        """
        b, cameras = camera_present.shape
        device = bev.device
        per_camera = self.config.camera_tokens
        camera = (self.encode_cameras(images.flatten(0, 1), torch.arange(cameras, device=device).repeat(b))
                  .reshape(b, cameras * per_camera, -1) if cameras
                  else torch.zeros(b, 0, self.config.token_dim, device=device))
        lidar = self.encode_lidar(bev.float())
        if camera_anchors is None:
            camera_anchors = torch.full((b, cameras * per_camera, 3), float('nan'), device=device)
        anchors = torch.cat([camera_anchors.reshape(b, cameras * per_camera, 3).to(device, torch.float32),
                             self.lidar_anchors.expand(b, -1, -1), torch.zeros(b, 1, 3, device=device)], 1)
        occupied = self.lidar.occupied_blocks(bev)                                   # (B, L)
        mask = torch.cat([camera_present.bool().repeat_interleave(per_camera, 1),
                          lidar_present.bool()[:, None] & occupied, ego_present.bool()[:, None]], 1)
        modality = torch.cat([torch.full((cameras * per_camera,), Modality.CAMERA),
                              torch.full((lidar.shape[1],), Modality.LIDAR),
                              torch.tensor([Modality.EGO])]).to(torch.uint8)
        source = torch.cat([torch.arange(cameras).repeat_interleave(per_camera),
                            torch.zeros(lidar.shape[1] + 1, dtype=torch.long)]).to(torch.uint8)
        embedding = torch.cat([camera, lidar, self.encode_ego(ego.float())], 1)
        return FusedTokens(embedding, anchors, mask, modality, source)
