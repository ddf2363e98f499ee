"""Fusion: camera, lidar and ego encoders with modality embeddings, as one module.

``SensorEncoders`` is the perception half of the driving model: its weights
live in the same checkpoint as the planner (prefix ``perception.``) and are
trained jointly with it. Its output is the token set published on
``/perception/fused_tokens``.
"""

from dataclasses import asdict, dataclass

import torch
from torch import nn

from perception_llm.camera_encoder import CameraEncoder
from perception_llm.ego import EgoEncoder
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
    patch_px: int = 16
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
    def camera_tokens(self) -> int:
        """Patch tokens per camera."""
        return (self.input_height // self.patch_px) * (self.input_width // self.patch_px)

    @property
    def lidar_tokens(self) -> int:
        """BEV tokens per frame (all lidars share one grid)."""
        rows, cols = self.bev_grid.shape
        return (rows // self.token_stride) * (cols // self.token_stride)

    def max_tokens(self, n_cameras: int) -> int:
        """Tokens per frame with every sensor present: cameras, the BEV grid and the ego token."""
        return n_cameras * self.camera_tokens + self.lidar_tokens + 1


class SensorEncoders(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.camera = CameraEncoder(config.token_dim, config.input_height, config.input_width,
                                    config.patch_px, config.max_cameras)
        self.lidar = LidarEncoder(config.token_dim, config.bev_grid.shape, config.token_stride)
        self.ego = EgoEncoder(config.token_dim)
        self.modality_embedding = nn.Embedding(len(Modality), config.token_dim)

    @classmethod
    def seeded(cls, config: EncoderConfig) -> 'SensorEncoders':
        """A deterministic initialisation, the same in every process."""
        with torch.random.fork_rng():
            torch.manual_seed(INIT_SEED)
            return cls(config).eval()

    def encode_cameras(self, images: torch.Tensor, camera_ids: torch.Tensor) -> torch.Tensor:
        return self.camera(images, camera_ids) + self.modality_embedding.weight[Modality.CAMERA]

    def encode_lidar(self, bev: torch.Tensor) -> torch.Tensor:
        return self.lidar(bev) + self.modality_embedding.weight[Modality.LIDAR]

    def encode_ego(self, features: torch.Tensor) -> torch.Tensor:
        return self.ego(features) + self.modality_embedding.weight[Modality.EGO]
