"""Camera tokenizer: RGB images of any size -> a fixed grid of patch tokens per camera."""

import cv2
import numpy as np
import torch
from torch import nn

# ImageNet statistics: the usual normalisation for convolutional image backbones.
_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255


def prepare_image(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to the encoder's input size; ``(3, height, width) uint8`` (normalised on the encoder)."""
    if rgb.shape[:2] != (height, width):
        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


class CameraEncoder(nn.Module):
    """Convolutional patch embedding with camera-id and 2-D position embeddings.

    Input ``(B, 3, H, W) uint8`` for B cameras (batched in one forward pass);
    output ``(B, H/p * W/p, D)`` tokens in row-major grid order.
    """

    def __init__(self, dim: int, input_height: int, input_width: int, patch_px: int, max_cameras: int = 8):
        super().__init__()
        if input_height % patch_px or input_width % patch_px:
            raise ValueError(f'input {input_width}x{input_height} is not a multiple of patch_px {patch_px}')
        self.grid = (input_height // patch_px, input_width // patch_px)
        stem = max(patch_px // 4, 1)
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 32, kernel_size=stem, stride=stem),
            nn.GELU(),
            nn.Conv2d(32, dim, kernel_size=patch_px // stem, stride=patch_px // stem),
        )
        self.row_embedding = nn.Parameter(torch.randn(self.grid[0], 1, dim) * 0.02)
        self.col_embedding = nn.Parameter(torch.randn(1, self.grid[1], dim) * 0.02)
        self.camera_embedding = nn.Embedding(max_cameras, dim)
        self.register_buffer('mean', torch.from_numpy(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.from_numpy(_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def tokens_per_camera(self) -> int:
        return self.grid[0] * self.grid[1]

    def forward(self, images: torch.Tensor, camera_ids: torch.Tensor) -> torch.Tensor:
        x = (images.float() - self.mean) / self.std
        features = self.backbone(x)                                  # (B, D, gh, gw)
        tokens = features.permute(0, 2, 3, 1)                        # (B, gh, gw, D)
        tokens = tokens + self.row_embedding + self.col_embedding
        tokens = tokens.flatten(1, 2)                                # (B, gh*gw, D)
        return tokens + self.camera_embedding(camera_ids)[:, None, :]
