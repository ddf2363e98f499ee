"""Camera tokenizer: RGB images of any size -> a fixed grid of patch tokens per camera.

Two halves, so training can cache the first:

- numpy preprocessing: :func:`camera_rgb` turns a camera message into the
  encoder's input, :func:`prepare_image` resizes any resolution to the
  encoder's input size (area filter, no aliasing), and :func:`patch_anchors`
  places each patch in ``base_link``: the centroid of the lidar returns that
  project into the patch (calibrated fusion: camera tokens get lidar depth),
  else where the patch's centre ray meets the ground, else NaN (sky).
- :class:`CameraEncoder` (torch): normalisation, a convolutional backbone of
  total stride ``patch_px`` (so ``input / patch_px`` tokens, 4 x 8 by
  default), 2-D position and camera-id embeddings, batched over cameras and
  frames in one forward pass.
"""

import cv2
import numpy as np
import torch
from torch import nn

from perception_llm.calibration import CameraModel, select_points
from stack_common.intake import RawCompressedImage, RawImage

# ImageNet statistics: the usual normalisation for convolutional image backbones.
_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255
MIN_PATCH_RETURNS = 3        # lidar returns a patch needs before their centroid is its anchor
MIN_DEPTH_M = 0.1            # closer to the lens than this, a return is not projected


def prepare_image(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an ``(H, W, 3) uint8`` RGB image to the encoder's input size; ``(3, height, width) uint8``."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'expected an (H, W, 3) RGB image, got shape {rgb.shape}')
    return np.ascontiguousarray(resize_image(rgb, width, height).transpose(2, 0, 1))


def resize_image(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize ``(H, W[, C])`` pixels of any channel order to ``width`` x ``height`` (channels are independent).

    Shrinking uses the area filter (no aliasing). A large reduction goes in
    two steps, first by the largest whole factor (OpenCV's fast path for
    area averaging), then the rest: a 1280x720 frame costs about 1 ms instead
    of 3, for a result on average 1.5 grey levels from the one-step filter
    (more on sharp edges). Each channel is filtered on its own, so resizing
    before the conversion to RGB (fewer pixels to convert) gives the same
    result as after it. A single channel comes back as ``(height, width)``.
    """
    if pixels.shape[:2] != (height, width):
        factor = min(pixels.shape[1] // width, pixels.shape[0] // height)
        if factor >= 2:
            pixels = cv2.resize(pixels, (pixels.shape[1] // factor, pixels.shape[0] // factor),
                                interpolation=cv2.INTER_AREA)
        shrinking = pixels.shape[0] >= height and pixels.shape[1] >= width
        pixels = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return pixels


def camera_rgb(message: RawImage | RawCompressedImage, width: int, height: int) -> tuple[np.ndarray, tuple[int, int]]:
    """A camera message as ``(height, width, 3) uint8`` RGB for the encoder, and its (width, height) as received.

    The one way a camera message becomes the encoder's input, live and
    offline: a raw image is resized in its wire channel order before the
    conversion to RGB (a 256x128 conversion instead of a 1280x720 one); a
    JPEG at least twice as large as needed is decoded reduced by libjpeg
    (1/2, 1/4 or 1/8), then resized the rest of the way.
    """
    if isinstance(message, RawImage):
        return message.rgb(lambda pixels: resize_image(pixels, width, height)), message.size
    rgb = message.rgb(at_least=(width, height))
    return resize_image(rgb, width, height), message.size or (rgb.shape[1], rgb.shape[0])


def patch_grid(input_height: int, input_width: int, patch_px: int) -> tuple[int, int]:
    """(rows, cols) of the token grid."""
    return input_height // patch_px, input_width // patch_px


def patch_centres(image_size: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """``(rows * cols, 2)`` pixel centres (u, v) of the patches in an image of ``(width, height)``, row-major."""
    (width, height), (rows, cols) = image_size, grid
    us = (np.arange(cols) + 0.5) * width / cols
    vs = (np.arange(rows) + 0.5) * height / rows
    gv, gu = np.meshgrid(vs, us, indexing='ij')
    return np.stack([gu.ravel(), gv.ravel()], axis=1)


def ground_anchors(camera: CameraModel, image_size: tuple[int, int], grid: tuple[int, int],
                   max_range_m: float) -> np.ndarray:
    """``(P, 3) float32``: where each patch's centre ray meets the ground (z = 0), NaN above the horizon."""
    rays = camera.pixel_rays_base(patch_centres(image_size, grid))
    origin = camera.origin_base
    with np.errstate(divide='ignore', invalid='ignore'):
        distance = -origin[2] / rays[:, 2]
    points = origin + rays * distance[:, None]
    valid = (rays[:, 2] < -1e-6) & (distance > 0) & (np.linalg.norm(points[:, :2] - origin[:2], axis=1) <= max_range_m)
    return np.where(valid[:, None], points, np.nan).astype(np.float32)


def patch_anchors(camera: CameraModel, image_size: tuple[int, int], grid: tuple[int, int],
                  points_base: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """``(P, 3) float32``: centroid of the lidar returns seen in each patch, ``fallback`` where too few."""
    (width, height), (rows, cols) = image_size, grid
    ahead = select_points(points_base, camera.depth(points_base) > MIN_DEPTH_M)  # most of a sweep is not in view
    pixels, _ = camera.project(ahead, MIN_DEPTH_M)
    u, v = pixels[:, 0], pixels[:, 1]
    seen = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    patch = (np.minimum((v[seen] * (rows / height)).astype(np.int64), rows - 1) * cols
             + np.minimum((u[seen] * (cols / width)).astype(np.int64), cols - 1))
    count = np.bincount(patch, minlength=rows * cols)
    centroid = np.stack([np.bincount(patch, weights=ahead[:, axis][seen], minlength=rows * cols)
                         for axis in range(3)], axis=1) / np.maximum(count, 1)[:, None]
    return np.where((count >= MIN_PATCH_RETURNS)[:, None], centroid, fallback).astype(np.float32)


class CameraEncoder(nn.Module):
    """``(B, 3, H, W) uint8`` images of B cameras -> ``(B, H/p * W/p, D)`` tokens, row-major.

    Backbone: a 4 x 4 stride-4 patchify stem, then ``log2(p / 4)`` 3x3 stride-2
    convolutions doubling the channels (each token sees its neighbours'
    pixels), a LayerNorm, then row, column and camera-id embeddings.
    """

    def __init__(self, dim: int, input_height: int, input_width: int, patch_px: int, max_cameras: int = 8):
        super().__init__()
        stages = (patch_px // 4).bit_length() - 1
        if patch_px < 4 or patch_px != 4 << stages:
            raise ValueError(f'patch_px must be 4 times a power of two, got {patch_px}')
        if input_height % patch_px or input_width % patch_px:
            raise ValueError(f'input {input_width}x{input_height} is not a multiple of patch_px {patch_px}')
        self.grid = patch_grid(input_height, input_width, patch_px)
        self.input_size = (input_height, input_width)
        widths = [min(16 * 2 ** i, dim) for i in range(stages)] + [dim]
        layers: list[nn.Module] = [nn.Conv2d(3, widths[0], kernel_size=4, stride=4)]
        for i in range(stages):
            layers += [nn.GELU(), nn.Conv2d(widths[i], widths[i + 1], kernel_size=3, stride=2, padding=1)]
        self.backbone = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dim)
        self.row_embedding = nn.Parameter(torch.randn(self.grid[0], 1, dim) * 0.02)
        self.col_embedding = nn.Parameter(torch.randn(1, self.grid[1], dim) * 0.02)
        self.camera_embedding = nn.Embedding(max_cameras, dim)
        self.register_buffer('mean', torch.from_numpy(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.from_numpy(_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def tokens_per_camera(self) -> int:
        return self.grid[0] * self.grid[1]

    def forward(self, images: torch.Tensor, camera_ids: torch.Tensor) -> torch.Tensor:
        if tuple(images.shape[-2:]) != self.input_size:
            raise ValueError(f'images are {tuple(images.shape[-2:])}, the encoder takes {self.input_size} '
                             '(resize with prepare_image)')
        x = (images.float() - self.mean) / self.std
        features = self.backbone(x)                                  # (B, D, gh, gw)
        tokens = self.norm(features.permute(0, 2, 3, 1))             # (B, gh, gw, D)
        tokens = tokens + self.row_embedding + self.col_embedding
        tokens = tokens.flatten(1, 2)                                # (B, gh*gw, D)
        return tokens + self.camera_embedding(camera_ids)[:, None, :]
