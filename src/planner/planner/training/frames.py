"""From a log to training frames: labels from the whole log, cache records from perception's inputs.

A log gives, besides its sensor frames, the ego's odometry track (the
driver's label: where the ego actually went) and, from the simulator, a
privileged scene-info stream (other vehicles and scene tags: the analyst's
labels and the critic's future traffic). :class:`LogLabels` holds both for a
log; :func:`frame_record` joins them with one frame's encoder inputs
(:class:`perception_llm.pipeline.FrameInputs`) into a cache record.
"""

import bisect
import math
from dataclasses import dataclass

import numpy as np

from perception_llm.lidar_encoder import BevGrid
from perception_llm.pipeline import FrameInputs
from planner.model import ModelConfig
from planner.training.dataset import MAX_OBSTACLES, MAX_VEHICLES
from planner.training.labels import future_poses
from stack_common.odometry import EgoState

NS_PER_S = 1_000_000_000
LABELS_VERSION = 2   # part of every cache key: caches built with other label rules are rebuilt
# A log's odometry track is cut where it jumps (a simulator episode ends, localisation resets) or stops:
# a frame's future must lie in one continuous stretch.
TRACK_GAP_S = 0.5
TRACK_JUMP_M = 2.0
OBSTACLE_MIN_HEIGHT_M = 0.5      # BEV cells whose highest point is above this are obstacles (not road)
SCENE_INFO_MAX_GAP_S = 0.15      # a frame's tags come from scene info at most this far from its stamp


@dataclass
class SceneInfo:
    stamp_ns: int
    tags: dict[str, bool]
    vehicles: np.ndarray   # (V, 6) x, y, heading, speed, length, width in the odom frame


def parse_scene_info(document: dict) -> SceneInfo:
    vehicles = np.asarray(document.get('vehicles', []), np.float64).reshape(-1, 6)
    return SceneInfo(int(document['stamp_ns']), dict(document.get('tags', {})), vehicles)


class LogLabels:
    """Labels available anywhere in one log: the ego track and the scene-info stream."""

    def __init__(self, track: list[EgoState], scene_infos: list[SceneInfo], cfg: ModelConfig):
        track = sorted(track, key=lambda s: s.stamp_ns)
        self.t_s = np.array([s.stamp_ns / NS_PER_S for s in track])
        self.segment = continuous_segments(self.t_s, np.array([[s.x, s.y] for s in track]).reshape(-1, 2),
                                           np.array([s.speed for s in track]))
        self.xy = np.array([[s.x, s.y] for s in track]).reshape(-1, 2)
        self.yaw = np.array([s.yaw for s in track])
        self.speed = np.array([s.speed for s in track])
        self.scene = sorted(scene_infos, key=lambda s: s.stamp_ns)
        self.scene_stamps = [s.stamp_ns for s in self.scene]
        self.cfg = cfg
        self.horizon_s = cfg.dt_s * np.arange(1, cfg.horizon + 1)

    def for_frame(self, stamp_ns: int) -> dict | None:
        """Driver, critic and analyst labels of the frame at ``stamp_ns``; None when the log ends too soon."""
        if len(self.t_s) < 2:
            return None
        stamp_s = stamp_ns / NS_PER_S
        before = np.searchsorted(self.t_s, stamp_s, side='right') - 1        # the sample at or before the frame
        after = np.searchsorted(self.t_s, stamp_s + self.horizon_s[-1])     # the first one at or past its horizon
        if before < 0 or after >= len(self.t_s) or self.segment[before] != self.segment[after]:
            return None   # the future leaves the log or crosses a jump in the track
        future = future_poses(self.t_s, self.xy, self.yaw, stamp_s, self.horizon_s)
        if future is None:
            return None
        x0, y0 = np.interp(stamp_s, self.t_s, self.xy[:, 0]), np.interp(stamp_s, self.t_s, self.xy[:, 1])
        yaw0 = float(np.interp(stamp_s, self.t_s, np.unwrap(self.yaw)))
        traffic = np.zeros((MAX_VEHICLES, self.cfg.horizon, 2), np.float32)
        traffic_mask = np.zeros((MAX_VEHICLES, self.cfg.horizon), bool)
        for k, t in enumerate(self.horizon_s):
            info = self._scene_at(stamp_ns + round(t * NS_PER_S))
            if info is None or not len(info.vehicles):
                continue
            local = _to_base_link(info.vehicles[:, :2], x0, y0, yaw0)
            nearest = np.argsort(np.linalg.norm(local, axis=1))[:MAX_VEHICLES]
            traffic[:len(nearest), k] = local[nearest]
            traffic_mask[:len(nearest), k] = True
        current = self._scene_at(stamp_ns)
        tags = np.array([float(current.tags.get(name, False)) for name in self.cfg.scene_tags], np.float32) \
            if current is not None else np.zeros(len(self.cfg.scene_tags), np.float32)
        return {'future': future.astype(np.float32), 'speed_mps': float(np.interp(stamp_s, self.t_s, self.speed)),
                'traffic': traffic, 'traffic_mask': traffic_mask, 'tags': tags, 'tags_valid': current is not None}

    def _scene_at(self, stamp_ns: int) -> SceneInfo | None:
        if not self.scene:
            return None
        i = bisect.bisect_left(self.scene_stamps, stamp_ns)
        candidates = [c for c in (i - 1, i) if 0 <= c < len(self.scene)]
        best = min(candidates, key=lambda c: abs(self.scene_stamps[c] - stamp_ns))
        if abs(self.scene_stamps[best] - stamp_ns) > SCENE_INFO_MAX_GAP_S * NS_PER_S:
            return None
        return self.scene[best]


def continuous_segments(t_s: np.ndarray, xy: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """A segment id per track sample; a new segment starts after a time gap or a jump in position."""
    if len(t_s) < 2:
        return np.zeros(len(t_s), int)
    dt = np.diff(t_s)
    step = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    expected = np.maximum(np.abs(speed[1:]), np.abs(speed[:-1])) * dt
    breaks = (dt > TRACK_GAP_S) | (step > expected + TRACK_JUMP_M)
    return np.concatenate([[0], np.cumsum(breaks)])


def _to_base_link(points_odom: np.ndarray, x0: float, y0: float, yaw0: float) -> np.ndarray:
    cos, sin = math.cos(yaw0), math.sin(yaw0)
    dx, dy = points_odom[:, 0] - x0, points_odom[:, 1] - y0
    return np.stack([cos * dx + sin * dy, -sin * dx + cos * dy], 1).astype(np.float32)


def obstacle_points(bev: np.ndarray, grid: BevGrid) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the BEV cells holding something taller than the road, nearest first, padded with a mask."""
    heights = grid.height_above_m(bev).ravel()
    centres = grid.token_anchors(1)
    tall = np.flatnonzero(np.nan_to_num(heights, nan=-np.inf) > OBSTACLE_MIN_HEIGHT_M)
    tall = tall[np.argsort(np.linalg.norm(centres[tall], axis=1))][:MAX_OBSTACLES]
    points = np.zeros((MAX_OBSTACLES, 2), np.float32)
    mask = np.zeros(MAX_OBSTACLES, bool)
    points[:len(tall)], mask[:len(tall)] = centres[tall], True
    return points, mask


def frame_record(inputs: FrameInputs, labels: dict, grid: BevGrid, route: int = 0) -> dict:
    """One cache record (see :func:`planner.training.dataset.field_specs`)."""
    obstacles, obstacle_mask = obstacle_points(inputs.bev, grid)
    return {'stamp_ns': inputs.stamp_ns, 'images': inputs.images, 'camera_present': inputs.camera_present,
            'camera_anchors': inputs.camera_anchors, 'bev': inputs.bev, 'lidar_present': inputs.lidar_present,
            'ego': inputs.ego, 'ego_present': inputs.ego_present, 'route': route,
            'obstacles': obstacles, 'obstacle_mask': obstacle_mask, **labels}
