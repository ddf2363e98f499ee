"""The simulated camera: highway-env's top-down rendering, turned to look ahead of the ego.

Owns: drawing the road, road objects and traffic with highway-env's own graphics onto an off-screen
pygame surface, then one affine warp that puts the ego at ``ego_position`` of the image with its heading
pointing right and its left (+y of ``base_link``) up, as a camera looking down from above sees it. The
result does not depend on the ego's heading, so a roundabout looks the same to the planner as a highway.
Does not own: the image message (stack_common.image).

highway-env draws world +y downwards; the warp flips it, so the image is not mirrored against base_link.
highway-env's own viewer draws nothing when ``SDL_VIDEODRIVER=dummy`` (it disables itself), which is why
the surface is drawn here with its graphics classes directly.
"""

import math
import os
from dataclasses import dataclass

import cv2
import numpy as np

os.environ.setdefault('SDL_VIDEODRIVER', 'dummy')
os.environ.setdefault('PYGAME_HIDE_SUPPORT_PROMPT', '1')


@dataclass
class TopDownView:
    """Where base_link lies in the camera's image: the geometry alone (overlays use it without a simulator)."""

    width_px: int = 512
    height_px: int = 256
    pixels_per_m: float = 5.0
    ego_position: tuple[float, float] = (0.25, 0.5)

    @classmethod
    def from_params(cls, camera: dict) -> 'TopDownView':
        return cls(int(camera['width_px']), int(camera['height_px']), float(camera['pixels_per_m']),
                   tuple(camera['ego_position']))

    @property
    def ego_u(self) -> float:
        return self.ego_position[0] * self.width_px

    @property
    def ego_v(self) -> float:
        return self.ego_position[1] * self.height_px

    def base_link_to_pixel(self, x_m, y_m):
        """Where points of base_link appear in the image (scalars or arrays)."""
        return self.ego_u + self.pixels_per_m * x_m, self.ego_v - self.pixels_per_m * y_m


class TopDownCamera(TopDownView):
    def __init__(self, width_px: int = 512, height_px: int = 256, pixels_per_m: float = 5.0,
                 ego_position: tuple[float, float] = (0.25, 0.5)):
        super().__init__(width_px, height_px, pixels_per_m, tuple(ego_position))
        import pygame  # SDL reads the video driver (set above) when the display is initialised
        from highway_env.road.graphics import WorldSurface
        # The drawn square must hold every pixel of the output at any heading: its half side is the
        # farthest output corner from the ego.
        reach = max(math.hypot(u - self.ego_u, v - self.ego_v) for u in (0, width_px) for v in (0, height_px))
        self.source_px = int(math.ceil(2 * reach)) + 2
        pygame.display.init()
        size = (self.source_px, self.source_px)
        self.surface = WorldSurface(size, 0, pygame.Surface(size))
        self.surface.scaling = pixels_per_m
        self.surface.centering_position = [0.5, 0.5]

    def render(self, road, ego_xy: np.ndarray, ego_heading: float) -> np.ndarray:
        """An ``(H, W, 3) uint8`` RGB view around the ego; ``road`` is the env's highway_env Road."""
        import pygame
        from highway_env.road.graphics import RoadGraphics
        surface = self.surface
        surface.move_display_window_to(np.asarray(ego_xy, dtype=float))
        RoadGraphics.display(road, surface)
        RoadGraphics.display_road_objects(road, surface, offscreen=True)
        RoadGraphics.display_traffic(road, surface, offscreen=True)
        source = pygame.surfarray.pixels3d(surface)       # (W, H, 3) view: x first
        rgb = np.ascontiguousarray(source.transpose(1, 0, 2))
        del source                                          # releases the surface lock
        return cv2.warpAffine(rgb, self.warp_matrix(ego_xy, ego_heading, surface.origin),
                              (self.width_px, self.height_px), flags=cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(100, 100, 100))

    def warp_matrix(self, ego_xy, ego_heading: float, origin) -> np.ndarray:
        """The 2x3 map from drawn pixels (world-aligned, y down) to output pixels (ego-aligned, left up)."""
        c, s, k = math.cos(ego_heading), math.sin(ego_heading), self.pixels_per_m
        ox, oy = origin[0] - ego_xy[0], origin[1] - ego_xy[1]
        # A drawn pixel (U, V) is the world point origin + (U, V) / k; the output pixel of a base_link point
        # (bx, by) is (ego_u + k bx, ego_v - k by).
        return np.array([[c, s, self.ego_u + k * (c * ox + s * oy)],
                         [s, -c, self.ego_v + k * (s * ox - c * oy)]], dtype=np.float64)
