"""A synthetic driving scene: the built-in sensor source of ``avstack demo`` and the tests.

A straight three-lane road with fences at its edges and parked cars and cones
beside the ego lane, seen by a ray-cast spinning lidar (rings x azimuths,
ground, fences and boxes; no return where a beam is free) and a pinhole
camera drawn with OpenCV, while the ego drives down the road at constant
speed. Everything is a pure function of time, so a frame is reproducible.
"""

from dataclasses import dataclass, field

import cv2
import numpy as np

from stack_common.odometry import EgoState

# A realistic driver layout: x, y, z, 4 padding bytes, intensity, ring, padding to 32 bytes.
LIDAR_DTYPE = np.dtype({'names': ['x', 'y', 'z', 'intensity', 'ring'],
                        'formats': ['<f4', '<f4', '<f4', '<f4', '<u2'],
                        'offsets': [0, 4, 8, 16, 20], 'itemsize': 32})


@dataclass(frozen=True)
class Box:
    x_m: float       # centre in the world (odom) frame, repeated every `period_m` along the road
    y_m: float
    length_m: float
    width_m: float
    height_m: float
    intensity: float = 120.0


@dataclass
class SyntheticScene:
    speed_mps: float = 8.0
    lane_width_m: float = 3.5
    lanes: int = 3
    fence_height_m: float = 1.2
    period_m: float = 60.0
    boxes: tuple[Box, ...] = (Box(20.0, 4.4, 4.5, 1.9, 1.5), Box(45.0, -4.4, 4.5, 1.9, 1.6),
                              Box(32.0, 3.0, 0.4, 0.4, 0.8, 200.0), Box(52.0, 6.5, 0.3, 0.3, 3.0, 60.0))
    lidar_height_m: float = 1.8
    rings: int = 40
    azimuths: int = 3100
    max_range_m: float = 100.0
    image_width: int = 1280
    image_height: int = 720
    camera_height_m: float = 1.5
    camera_x_m: float = 1.5
    focal_px: float = 800.0
    _rays: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        elevation = np.deg2rad(np.linspace(-28.0, 4.0, self.rings))
        azimuth = np.linspace(-np.pi, np.pi, self.azimuths, endpoint=False)
        el, az = np.meshgrid(elevation, azimuth, indexing='ij')
        self._rays = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1).reshape(-1, 3)
        self._azimuth = az.reshape(-1)
        self._ring = np.repeat(np.arange(self.rings, dtype=np.uint16), self.azimuths)
        # The ego drives straight along the road, so ground and fences look the same in every sweep.
        h = self.lidar_height_m
        distance, intensity = np.full(len(self._rays), np.inf), np.zeros(len(self._rays))
        with np.errstate(divide='ignore', invalid='ignore'):
            ground = np.where(self._rays[:, 2] < 0, -h / self._rays[:, 2], np.inf)
            distance, intensity = _nearer(distance, intensity, ground, 12.0)
            for side in (-1.0, 1.0):
                t = side * (self.road_half_width_m + 1.0) / self._rays[:, 1]
                z = h + t * self._rays[:, 2]
                wall = np.where((t > 0) & (z >= 0) & (z <= self.fence_height_m), t, np.inf)
                distance, intensity = _nearer(distance, intensity, wall, 80.0)
        self._static = (distance, intensity)

    @property
    def road_half_width_m(self) -> float:
        return self.lanes * self.lane_width_m / 2

    def ego(self, t_s: float) -> EgoState:
        return EgoState(stamp_ns=int(round(t_s * 1e9)), x=self.speed_mps * t_s, y=0.0, yaw=0.0,
                        speed=self.speed_mps)

    def boxes_near(self, ego_x_m: float) -> list[Box]:
        """Boxes within range of the ego, in ego-relative x (the pattern repeats every period_m)."""
        near = []
        base = np.floor((ego_x_m - self.max_range_m) / self.period_m) * self.period_m
        for k in range(int(2 * self.max_range_m / self.period_m) + 2):
            for box in self.boxes:
                x = base + k * self.period_m + box.x_m - ego_x_m
                if -self.max_range_m < x < self.max_range_m:
                    near.append(Box(x, box.y_m, box.length_m, box.width_m, box.height_m, box.intensity))
        return near

    def lidar(self, t_s: float) -> np.ndarray:
        """One sweep in the lidar frame (base_link raised by lidar_height_m), structured LIDAR_DTYPE."""
        distance, intensity = (a.copy() for a in self._static)
        h = self.lidar_height_m
        for box in self.boxes_near(self.ego(t_s).x):
            low = np.array([box.x_m - box.length_m / 2, box.y_m - box.width_m / 2, -h])
            high = np.array([box.x_m + box.length_m / 2, box.y_m + box.width_m / 2, box.height_m - h])
            corners = np.arctan2([low[1], low[1], high[1], high[1]], [low[0], high[0], low[0], high[0]])
            if np.ptp(corners) > np.pi:  # the box straddles the rear (azimuth +-pi)
                rays_in = (self._azimuth >= corners[corners > 0].min()) | (self._azimuth <= corners[corners < 0].max())
            else:
                rays_in = (self._azimuth >= corners.min()) & (self._azimuth <= corners.max())
            index = np.flatnonzero(rays_in)
            with np.errstate(divide='ignore', invalid='ignore'):
                t1, t2 = low / self._rays[index], high / self._rays[index]
                near = np.nanmax(np.minimum(t1, t2), axis=1)
                far = np.nanmin(np.maximum(t1, t2), axis=1)
            hit = (near <= far) & (far > 0) & (near < distance[index])
            distance[index[hit]] = np.maximum(near[hit], 0)
            intensity[index[hit]] = box.intensity
        keep = distance < self.max_range_m
        points = np.zeros(int(keep.sum()), LIDAR_DTYPE)
        xyz = self._rays[keep] * distance[keep, None]
        points['x'], points['y'], points['z'] = xyz.T
        points['intensity'] = intensity[keep]
        points['ring'] = self._ring[keep]
        return points

    def camera_intrinsics(self) -> tuple[float, float, float, float]:
        return self.focal_px, self.focal_px, self.image_width / 2, self.image_height / 2

    def camera(self, t_s: float) -> np.ndarray:
        """The forward camera's RGB view (camera at camera_x_m, camera_height_m, looking along x)."""
        w, h = self.image_width, self.image_height
        image = np.empty((h, w, 3), np.uint8)
        horizon = int(h / 2)
        image[:horizon] = (150, 190, 235)
        image[horizon:] = (90, 140, 70)
        ego_x = self.ego(t_s).x
        half = self.road_half_width_m
        self._fill(image, [(2, -half, 0), (200, -half, 0), (200, half, 0), (2, half, 0)], (70, 70, 75))
        for lane in range(1, self.lanes):
            y = -half + lane * self.lane_width_m
            start = 3.0 - (ego_x % 6.0)
            for x in np.arange(start, 120.0, 6.0):
                if x > 2:
                    self._fill(image, [(x, y - 0.07, 0), (x + 3, y - 0.07, 0), (x + 3, y + 0.07, 0),
                                       (x, y + 0.07, 0)], (235, 235, 235))
        for side in (-1, 1):
            y = side * (half + 1.0)
            self._fill(image, [(2, y, 0), (150, y, 0), (150, y, self.fence_height_m), (2, y, self.fence_height_m)],
                       (160, 150, 130))
        for box in sorted(self.boxes_near(ego_x), key=lambda b: -b.x_m):
            x0 = box.x_m - box.length_m / 2 - self.camera_x_m
            if x0 <= 1.0:
                continue
            y0, y1 = box.y_m - box.width_m / 2, box.y_m + box.width_m / 2
            shade = int(min(255, box.intensity))
            self._fill(image, [(x0 + self.camera_x_m, y0, 0), (x0 + self.camera_x_m, y1, 0),
                               (x0 + self.camera_x_m, y1, box.height_m), (x0 + self.camera_x_m, y0, box.height_m)],
                       (shade, 40, 255 - shade))
        return image

    def _fill(self, image: np.ndarray, corners_base: list, color) -> None:
        """Fill a planar polygon given in base_link (clipped to the part in front of the camera)."""
        fx, fy, cx, cy = self.camera_intrinsics()
        pixels = []
        for x, y, z in corners_base:
            depth = max(x - self.camera_x_m, 0.5)
            pixels.append((cx - fx * y / depth, cy - fy * (z - self.camera_height_m) / depth))
        cv2.fillPoly(image, [np.round(np.array(pixels) * 16).astype(np.int32)], color, lineType=cv2.LINE_AA,
                     shift=4)


def _nearer(distance, intensity, candidate, value):
    closer = candidate < distance
    return np.where(closer, candidate, distance), np.where(closer, value, intensity)
