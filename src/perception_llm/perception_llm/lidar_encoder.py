"""Lidar tokenizer: points in ``base_link`` -> a bird's-eye-view grid -> BEV tokens.

The grid covers a configurable box around the vehicle; each cell gets its
maximum height, its point count (log scale) and its mean intensity. A small
conv net turns ``stride x stride`` cells into one token whose anchor is the
centre of the area it covers. All of it vectorised: no Python loop over points.
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

BEV_CHANNELS = 4  # occupied, max height, log(1 + count), mean intensity


@dataclass(frozen=True)
class BevGrid:
    x_range_m: tuple[float, float]
    y_range_m: tuple[float, float]
    z_range_m: tuple[float, float]
    cell_size_m: float

    @property
    def shape(self) -> tuple[int, int]:
        """(rows along x, columns along y)."""
        return (round((self.x_range_m[1] - self.x_range_m[0]) / self.cell_size_m),
                round((self.y_range_m[1] - self.y_range_m[0]) / self.cell_size_m))

    def features(self, points_base: np.ndarray, intensity: np.ndarray | None) -> np.ndarray:
        """``(BEV_CHANNELS, rows, cols) float32`` from ``(N, 3)`` points in ``base_link``."""
        rows, cols = self.shape
        x, y, z = points_base[:, 0], points_base[:, 1], points_base[:, 2]
        keep = ((x >= self.x_range_m[0]) & (x < self.x_range_m[1]) & (y >= self.y_range_m[0])
                & (y < self.y_range_m[1]) & (z >= self.z_range_m[0]) & (z < self.z_range_m[1]))
        row = ((x[keep] - self.x_range_m[0]) / self.cell_size_m).astype(np.int64)
        col = ((y[keep] - self.y_range_m[0]) / self.cell_size_m).astype(np.int64)
        cell = torch.from_numpy(np.minimum(row, rows - 1) * cols + np.minimum(col, cols - 1))
        count = torch.bincount(cell, minlength=rows * cols).float()
        height = torch.full((rows * cols,), self.z_range_m[0], dtype=torch.float32)
        height.scatter_reduce_(0, cell, torch.from_numpy(np.ascontiguousarray(z[keep])), 'amax')
        grid = torch.zeros(BEV_CHANNELS, rows * cols)
        grid[0] = (count > 0).float()
        grid[1] = (height - self.z_range_m[0]) * grid[0]
        grid[2] = torch.log1p(count)
        if intensity is not None:
            total = torch.zeros(rows * cols).index_add_(0, cell, torch.from_numpy(
                np.ascontiguousarray(intensity[keep], dtype=np.float32)))
            grid[3] = total / count.clamp(min=1) / 255.0
        return grid.view(BEV_CHANNELS, rows, cols).numpy()

    def token_anchors(self, stride: int) -> np.ndarray:
        """``(rows/stride * cols/stride, 2)`` x, y centres in ``base_link`` of the tokens' areas."""
        rows, cols = self.shape
        size = self.cell_size_m * stride
        xs = self.x_range_m[0] + size * (np.arange(rows // stride) + 0.5)
        ys = self.y_range_m[0] + size * (np.arange(cols // stride) + 0.5)
        gx, gy = np.meshgrid(xs, ys, indexing='ij')
        return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)


class LidarEncoder(nn.Module):
    """``(B, BEV_CHANNELS, rows, cols)`` grids -> ``(B, rows/stride * cols/stride, D)`` tokens (row-major)."""

    def __init__(self, dim: int, grid_shape: tuple[int, int], stride: int):
        super().__init__()
        if grid_shape[0] % stride or grid_shape[1] % stride:
            raise ValueError(f'BEV grid {grid_shape} is not a multiple of token_stride {stride}')
        self.backbone = nn.Sequential(
            nn.Conv2d(BEV_CHANNELS, 32, kernel_size=3, padding=1),
            nn.GELU(),
            nn.Conv2d(32, dim, kernel_size=stride, stride=stride),
        )
        token_grid = (grid_shape[0] // stride, grid_shape[1] // stride)
        self.position_embedding = nn.Parameter(torch.randn(token_grid[0] * token_grid[1], dim) * 0.02)

    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        tokens = self.backbone(bev).flatten(2).transpose(1, 2)
        return tokens + self.position_embedding
