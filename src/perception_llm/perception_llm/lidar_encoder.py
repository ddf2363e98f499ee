"""Lidar tokenizer: points in ``base_link`` -> a bird's-eye-view grid -> BEV tokens.

Two halves, so training can cache the first:

- :class:`BevGrid` (numpy, no torch): crops points to a box around the vehicle
  and computes per-cell features in ``base_link``; the grid's rows run along
  x (forward), its columns along y (left).
- :class:`LidarEncoder` (torch): a small conv net that turns each
  ``stride x stride`` block of cells into one token. A token's receptive field
  is its own block plus, through one residual 3x3 context layer, its eight
  neighbours; its anchor is the centre of its block.

Everything is vectorised: no Python loop over points.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# per cell: log(1 + point count), highest and lowest point (0..1 over z_range_m, 0 when empty),
# mean intensity (0..1, 0 when the cloud has none), mean radial velocity (m/s / RADIAL_VELOCITY_SCALE_MPS,
# clipped to +-RADIAL_VELOCITY_CLIP; negative = closing; 0 when the lidar does not measure it)
BEV_CHANNELS = 5
COUNT, MAX_HEIGHT, MIN_HEIGHT, INTENSITY, RADIAL_VELOCITY = range(BEV_CHANNELS)
RADIAL_VELOCITY_SCALE_MPS = 10.0
RADIAL_VELOCITY_CLIP = 3.0


@dataclass(frozen=True)
class BevGrid:
    x_range_m: tuple[float, float]
    y_range_m: tuple[float, float]
    z_range_m: tuple[float, float]
    cell_size_m: float

    def __post_init__(self):
        for name in ('x_range_m', 'y_range_m', 'z_range_m'):
            low, high = getattr(self, name)
            if not low < high:
                raise ValueError(f'BEV {name} must be increasing, got {[low, high]}')
        if not self.cell_size_m > 0:
            raise ValueError(f'cell_size_m must be positive, got {self.cell_size_m}')

    @property
    def shape(self) -> tuple[int, int]:
        """(rows along x, columns along y)."""
        return (round((self.x_range_m[1] - self.x_range_m[0]) / self.cell_size_m),
                round((self.y_range_m[1] - self.y_range_m[0]) / self.cell_size_m))

    def crop(self, points_base: np.ndarray) -> np.ndarray:
        """``(N,) bool``: the points inside the grid's box (x, y and z ranges); NaN points are outside."""
        x, y, z = points_base[:, 0], points_base[:, 1], points_base[:, 2]
        (x0, x1), (y0, y1), (z0, z1) = self.x_range_m, self.y_range_m, self.z_range_m
        return (x >= x0) & (x < x1) & (y >= y0) & (y < y1) & (z >= z0) & (z < z1)

    def cell_index(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Flat cell index (row * cols + col) of points already inside the box."""
        rows, cols = self.shape
        row = ((x - self.x_range_m[0]) / self.cell_size_m).astype(np.int64)
        col = ((y - self.y_range_m[0]) / self.cell_size_m).astype(np.int64)
        # float rounding can put a point just below the far edge into the next cell
        return np.minimum(row, rows - 1) * cols + np.minimum(col, cols - 1)

    def features(self, points_base: np.ndarray, intensity: np.ndarray | None = None,
                 radial_velocity: np.ndarray | None = None) -> np.ndarray:
        """``(BEV_CHANNELS, rows, cols) float32`` from ``(N, 3)`` points in ``base_link``.

        ``intensity`` is ``(N,)`` already scaled to 0..1 (see the lidar's
        ``max_intensity``), or None when the cloud has none; ``radial_velocity``
        ``(N,)`` m/s (away positive) or None. Points outside the box and
        non-finite ones are ignored.
        """
        rows, cols = self.shape
        size = rows * cols
        points_base = np.asarray(points_base, np.float32).reshape(-1, 3)
        keep = self.crop(points_base)
        x, y, z = (points_base[:, axis][keep] for axis in range(3))
        cell = self.cell_index(x, y)
        z0, z1 = self.z_range_m
        height = (z - np.float32(z0)) * np.float32(1.0 / (z1 - z0))
        count = np.bincount(cell, minlength=size)
        top = np.zeros(size, np.float32)
        np.maximum.at(top, cell, height)
        bottom = np.full(size, np.inf, np.float32)
        np.minimum.at(bottom, cell, height)
        grid = np.zeros((BEV_CHANNELS, size), np.float32)
        grid[COUNT] = np.log1p(count)
        grid[MAX_HEIGHT] = top
        grid[MIN_HEIGHT] = np.where(count > 0, bottom, 0.0)
        if intensity is not None and len(cell):
            values = np.clip(np.nan_to_num(np.asarray(intensity, np.float32).reshape(-1)[keep], nan=0.0), 0.0, 1.0)
            grid[INTENSITY] = np.bincount(cell, weights=values, minlength=size) / np.maximum(count, 1)
        if radial_velocity is not None and len(cell):
            values = np.nan_to_num(np.asarray(radial_velocity, np.float32).reshape(-1)[keep], nan=0.0)
            mean = np.bincount(cell, weights=values / RADIAL_VELOCITY_SCALE_MPS, minlength=size) / np.maximum(count, 1)
            grid[RADIAL_VELOCITY] = np.clip(mean, -RADIAL_VELOCITY_CLIP, RADIAL_VELOCITY_CLIP)
        return grid.reshape(BEV_CHANNELS, rows, cols)

    def height_above_m(self, bev: np.ndarray, channel: int = MAX_HEIGHT) -> np.ndarray:
        """A height channel of :meth:`features` back in metres of ``base_link`` z (NaN for empty cells)."""
        z0, z1 = self.z_range_m
        return np.where(bev[COUNT] > 0, z0 + bev[channel] * (z1 - z0), np.nan)

    def token_anchors(self, stride: int) -> np.ndarray:
        """``(rows/stride * cols/stride, 2)`` x, y centres in ``base_link`` of the tokens' blocks, row-major."""
        rows, cols = self.shape
        size = self.cell_size_m * stride
        xs = self.x_range_m[0] + size * (np.arange(rows // stride) + 0.5)
        ys = self.y_range_m[0] + size * (np.arange(cols // stride) + 0.5)
        gx, gy = np.meshgrid(xs, ys, indexing='ij')
        return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)


class LidarEncoder(nn.Module):
    """``(B, BEV_CHANNELS, rows, cols)`` grids -> ``(B, rows/stride * cols/stride, D)`` tokens, row-major.

    Non-overlapping 2x2 stride-2 convolutions halve the grid ``log2(stride)``
    times (a pillar-style patch hierarchy: cheap, and a token's content comes
    from its own block), then one residual 3x3 layer adds the neighbours'
    context, and a learned embedding marks each token's grid position.
    """

    def __init__(self, dim: int, grid_shape: tuple[int, int], stride: int):
        super().__init__()
        if stride < 1 or stride & (stride - 1):
            raise ValueError(f'token_stride must be a power of two, got {stride}')
        if grid_shape[0] % stride or grid_shape[1] % stride:
            raise ValueError(f'BEV grid {grid_shape} is not a multiple of token_stride {stride}')
        stages = stride.bit_length() - 1
        widths = [BEV_CHANNELS] + [min(dim, 16 * 2 ** i) for i in range(stages - 1)] + [dim]
        layers: list[nn.Module] = [] if stages else [nn.Conv2d(BEV_CHANNELS, dim, kernel_size=1)]
        for i in range(stages):
            layers.append(nn.Conv2d(widths[i], widths[i + 1], kernel_size=2, stride=2))
            if i < stages - 1:
                layers.append(nn.GELU())
        self.downsample = nn.Sequential(*layers)
        self.context = nn.Sequential(nn.GELU(), nn.Conv2d(dim, dim, kernel_size=3, padding=1))
        self.norm = nn.LayerNorm(dim)
        self.token_grid = (grid_shape[0] // stride, grid_shape[1] // stride)
        self.position_embedding = nn.Parameter(torch.randn(self.token_grid[0] * self.token_grid[1], dim) * 0.02)

    @property
    def tokens_per_frame(self) -> int:
        return self.token_grid[0] * self.token_grid[1]

    def occupied_blocks(self, bev: torch.Tensor) -> torch.Tensor:
        """``(B, tokens)`` bool, row-major like :meth:`forward`: whether each token's block holds a return."""
        stride = bev.shape[-2] // self.token_grid[0]
        return F.max_pool2d(bev[:, COUNT:COUNT + 1].float(), stride).flatten(1) > 0

    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        x = self.downsample(bev)
        x = x + self.context(x)
        tokens = x.flatten(2).transpose(1, 2)                      # (B, gx*gy, D) row-major
        return self.norm(tokens) + self.position_embedding
