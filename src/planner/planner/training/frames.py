"""From a log to training frames: labels from the whole log, cache records from perception's inputs.

A log gives, besides its sensor frames, the ego's odometry track, and from the simulator the expert's plan
from every state (``/sim/expert_plan``) and a privileged scene-info stream (other vehicles, lane centre lines,
scene tags, the episode's seed). :class:`LogLabels` holds all of it for a log; :func:`frame_record` joins
one frame's labels with its encoder inputs (:class:`perception_llm.pipeline.FrameInputs`) into a cache
record.

The driver's label is the expert's plan where the log has one (a clean label even when the recorded drive
was disturbed or driven by the model: DAgger), else the logged future. The scorer's context is what really
happened around the ego: the other vehicles every 0.1 s of the horizon, the lanes, the previous frame's
label (what a perfect imitation would have planned a moment ago).
"""

import bisect
import math
import zlib
from dataclasses import dataclass

import numpy as np

from perception_llm.lidar_encoder import BevGrid
from perception_llm.pipeline import FrameInputs
from planner.model import ModelConfig
from planner.training.dataset import MAX_LANE_POINTS, MAX_OBSTACLES, MAX_VEHICLES
from planner.training.labels import OutcomeRules, future_poses, score_candidates
from stack_common.constants import NS_PER_S
from stack_common.odometry import EgoState

LABELS_VERSION = 5   # part of every cache key: caches built with other label rules are rebuilt
# A log's odometry track is cut where it jumps (a simulator episode ends, localisation resets) or stops:
# a frame's future must lie in one continuous stretch.
TRACK_GAP_S = 0.5
TRACK_JUMP_M = 2.0
OBSTACLE_MIN_HEIGHT_M = 0.5      # BEV cells whose highest point is above this are obstacles (not road)
SCENE_INFO_MAX_GAP_S = 0.06      # a scene-info document describes instants at most this far from its stamp
PREVIOUS_MAX_GAP_S = 0.25        # the previous label must be this recent to count as the previous plan
TRAFFIC_DT_S = 0.1               # the other vehicles' future boxes, every 0.1 s of the horizon


@dataclass
class SceneInfo:
    stamp_ns: int
    tags: dict[str, bool]
    vehicles: np.ndarray   # (V, 6) x, y, heading, speed, length, width in the odom frame
    lanes: np.ndarray      # (L, 2) lane centre points in the odom frame
    episode: str           # scenario and seed: frames of one episode share it


def parse_scene_info(document: dict) -> SceneInfo:
    vehicles = np.asarray(document.get('vehicles', []), np.float64).reshape(-1, 6)
    lanes = np.asarray(document.get('lanes', []), np.float64).reshape(-1, 2)
    episode = f'{document.get("scenario", "")}/{document.get("seed", "")}'
    return SceneInfo(int(document['stamp_ns']), dict(document.get('tags', {})), vehicles, lanes, episode)


class LogLabels:
    """Labels available anywhere in one log: the ego track, the expert's plans, the scene-info stream."""

    def __init__(self, track: list[EgoState], scene_infos: list[SceneInfo], cfg: ModelConfig,
                 expert_plans: dict[int, np.ndarray] | None = None):
        track = sorted(track, key=lambda s: s.stamp_ns)
        self.t_s = np.array([s.stamp_ns / NS_PER_S for s in track])
        self.xy = np.array([[s.x, s.y] for s in track]).reshape(-1, 2)
        self.yaw = np.unwrap(np.array([s.yaw for s in track])) if track else np.zeros(0)
        self.speed = np.array([s.speed for s in track])
        self.segment = continuous_segments(self.t_s, self.xy, self.speed)
        self.scene = sorted(scene_infos, key=lambda s: s.stamp_ns)
        self.scene_stamps = [s.stamp_ns for s in self.scene]
        self.plans = dict(expert_plans or {})
        self.plan_stamps = sorted(self.plans)
        self.cfg = cfg
        self.horizon_s = cfg.dt_s * np.arange(1, cfg.horizon + 1)
        self.traffic_t_s = TRAFFIC_DT_S * np.arange(1, int(round(self.horizon_s[-1] / TRAFFIC_DT_S)) + 1)

    def for_frame(self, stamp_ns: int) -> dict | None:
        """Driver, scorer and analyst labels of the frame at ``stamp_ns``; None without a driver label."""
        if len(self.t_s) < 2:
            return None
        stamp_s = stamp_ns / NS_PER_S
        future = self.label(stamp_ns)
        pose = self.pose(stamp_s)
        if future is None or pose is None:
            return None
        x0, y0, yaw0 = pose
        previous, previous_pose, offset_s = self.previous_label(stamp_ns, pose)
        traffic = np.zeros((MAX_VEHICLES, len(self.traffic_t_s), 5), np.float32)
        traffic_mask = np.zeros((MAX_VEHICLES, len(self.traffic_t_s)), bool)
        for k, t in enumerate(self.traffic_t_s):
            info = self._scene_at(stamp_ns + round(t * NS_PER_S))
            if info is None or not len(info.vehicles):
                continue
            local = to_base_link(info.vehicles[:, :3], x0, y0, yaw0)
            nearest = np.argsort(np.linalg.norm(local[:, :2], axis=1))[:MAX_VEHICLES]
            traffic[:len(nearest), k, :3] = local[nearest]
            traffic[:len(nearest), k, 3:] = info.vehicles[nearest, 4:6]
            traffic_mask[:len(nearest), k] = True
        current = self._scene_at(stamp_ns)
        lanes = np.zeros((MAX_LANE_POINTS, 2), np.float32)
        lanes_mask = np.zeros(MAX_LANE_POINTS, bool)
        if current is not None and len(current.lanes):
            local = to_base_link(np.concatenate([current.lanes, np.zeros((len(current.lanes), 1))], 1), x0, y0, yaw0)
            nearest = np.argsort(np.linalg.norm(local[:, :2], axis=1))[:MAX_LANE_POINTS]
            lanes[:len(nearest)], lanes_mask[:len(nearest)] = local[nearest, :2], True
        lane_pose = lane_relative_pose(lanes[lanes_mask])
        tags = np.array([float(current.tags.get(name, False)) for name in self.cfg.scene_tags], np.float32) \
            if current is not None else np.zeros(len(self.cfg.scene_tags), np.float32)
        before = max(np.searchsorted(self.t_s, stamp_s, side='right') - 1, 0)
        episode = current.episode if current is not None else f'segment/{self.segment[before]}'
        return {'future': future.astype(np.float32), 'speed_mps': float(np.interp(stamp_s, self.t_s, self.speed)),
                'previous': previous.astype(np.float32), 'previous_pose': previous_pose.astype(np.float32),
                'previous_offset_s': offset_s,
                'previous_valid': offset_s > 0, 'traffic': traffic, 'traffic_mask': traffic_mask,
                'lanes': lanes, 'lanes_mask': lanes_mask, 'tags': tags, 'tags_valid': current is not None,
                'lane_pose': np.zeros(2, np.float32) if lane_pose is None else lane_pose,
                'lane_pose_valid': lane_pose is not None,
                'episode': zlib.crc32(episode.encode()), 'expert_label': stamp_ns in self.plans}

    def label(self, stamp_ns: int) -> np.ndarray | None:
        """(T, 3) the driver's label at a frame: the expert's plan from it, else the logged future."""
        if stamp_ns in self.plans:
            return self.plans[stamp_ns]
        stamp_s = stamp_ns / NS_PER_S
        before = np.searchsorted(self.t_s, stamp_s, side='right') - 1        # the sample at or before the frame
        after = np.searchsorted(self.t_s, stamp_s + self.horizon_s[-1])     # the first one at or past its horizon
        if before < 0 or after >= len(self.t_s) or self.segment[before] != self.segment[after]:
            return None   # the future leaves the log or crosses a jump in the track
        return future_poses(self.t_s, self.xy, self.yaw, stamp_s, self.horizon_s)

    def pose(self, stamp_s: float) -> tuple[float, float, float] | None:
        """The ego's odometry pose at ``stamp_s`` (interpolated inside one continuous stretch)."""
        if not self.t_s[0] <= stamp_s <= self.t_s[-1]:
            return None
        return (float(np.interp(stamp_s, self.t_s, self.xy[:, 0])), float(np.interp(stamp_s, self.t_s, self.xy[:, 1])),
                float(np.interp(stamp_s, self.t_s, self.yaw)))

    def previous_label(self, stamp_ns: int, pose: tuple[float, float, float]
                       ) -> tuple[np.ndarray, np.ndarray, float]:
        """The label of the frame before (an expert plan, or the logged future 0.1 s earlier) in its own
        base_link, that base_link's pose (x, y, yaw) in this frame's, and how long before this frame it was
        made (0: none): what the critic compares a plan with."""
        horizon = self.cfg.horizon
        none = np.zeros((horizon, 3)), np.zeros(3), 0.0
        if self.plans:
            i = bisect.bisect_left(self.plan_stamps, stamp_ns) - 1
            if i < 0 or stamp_ns - self.plan_stamps[i] > PREVIOUS_MAX_GAP_S * NS_PER_S:
                return none
            previous_ns = self.plan_stamps[i]
            plan = self.plans[previous_ns]
        else:
            previous_ns = stamp_ns - round(TRAFFIC_DT_S * NS_PER_S)
            plan = self.label(previous_ns)
            if plan is None:
                return none
        then = self.pose(previous_ns / NS_PER_S)
        before = np.searchsorted(self.t_s, previous_ns / NS_PER_S, side='right') - 1
        now = np.searchsorted(self.t_s, stamp_ns / NS_PER_S, side='right') - 1
        if then is None or before < 0 or self.segment[before] != self.segment[now]:
            return none
        return plan, to_base_link(np.array([then]), *pose)[0], (stamp_ns - previous_ns) / NS_PER_S

    def _scene_at(self, stamp_ns: int) -> SceneInfo | None:
        if not self.scene:
            return None
        i = bisect.bisect_left(self.scene_stamps, stamp_ns)
        candidates = [c for c in (i - 1, i) if 0 <= c < len(self.scene)]
        best = min(candidates, key=lambda c: abs(self.scene_stamps[c] - stamp_ns))
        if abs(self.scene_stamps[best] - stamp_ns) > SCENE_INFO_MAX_GAP_S * NS_PER_S:
            return None
        return self.scene[best]


def lane_relative_pose(lane_points: np.ndarray, reach_m: float = 3.0) -> np.ndarray | None:
    """``(2,)`` the ego against the centre line of the lane it is on: lateral offset (m, left of the centre
    positive) and heading error (rad, pointing left of the lane positive), from lane centre points in
    base_link (2 m apart); None without a lane point within a lane width.

    The lane's direction is the principal axis of its points within ``reach_m`` of the nearest one (the next
    lane's points are 4 m away).
    """
    if len(lane_points) < 2:
        return None
    distance = np.linalg.norm(lane_points, axis=1)
    nearest = lane_points[int(np.argmin(distance))]
    if distance.min() > 4.0:
        return None
    local = lane_points[np.linalg.norm(lane_points - nearest, axis=1) <= reach_m]
    if len(local) < 2:
        return None
    centred = local - local.mean(0)
    direction = np.linalg.svd(centred, full_matrices=False)[2][0]
    if direction[0] < 0:
        direction = -direction
    heading_error = -float(np.arctan2(direction[1], direction[0]))
    # signed distance of the origin from the line through the lane points: left of the line positive
    offset = float(direction[0] * (0.0 - local.mean(0)[1]) - direction[1] * (0.0 - local.mean(0)[0]))
    return np.array([offset, heading_error], np.float32)


def continuous_segments(t_s: np.ndarray, xy: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """A segment id per track sample; a new segment starts after a time gap or a jump in position."""
    if len(t_s) < 2:
        return np.zeros(len(t_s), int)
    dt = np.diff(t_s)
    step = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    expected = np.maximum(np.abs(speed[1:]), np.abs(speed[:-1])) * dt
    breaks = (dt > TRACK_GAP_S) | (step > expected + TRACK_JUMP_M)
    return np.concatenate([[0], np.cumsum(breaks)])


def to_base_link(poses_odom: np.ndarray, x0: float, y0: float, yaw0: float) -> np.ndarray:
    """(N, 3) x, y, heading of odom-frame poses in base_link at (x0, y0, yaw0)."""
    cos, sin = math.cos(yaw0), math.sin(yaw0)
    dx, dy = poses_odom[:, 0] - x0, poses_odom[:, 1] - y0
    heading = np.arctan2(np.sin(poses_odom[:, 2] - yaw0), np.cos(poses_odom[:, 2] - yaw0))
    return np.stack([cos * dx + sin * dy, -sin * dx + cos * dy, heading], 1).astype(np.float32)


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


def frame_record(inputs: FrameInputs, labels: dict, grid: BevGrid, dt_s: float, rules: OutcomeRules,
                 route: int = 0) -> dict:
    """One cache record (see :func:`planner.training.dataset.field_specs`), its candidates scored."""
    obstacles, obstacle_mask = obstacle_points(inputs.bev, grid)
    labels = {**labels, 'obstacles': obstacles, 'obstacle_mask': obstacle_mask}
    return {'stamp_ns': inputs.stamp_ns, 'images': inputs.images, 'camera_present': inputs.camera_present,
            'camera_anchors': inputs.camera_anchors, 'bev': inputs.bev, 'lidar_present': inputs.lidar_present,
            'ego': inputs.ego, 'ego_present': inputs.ego_present, 'route': route, **labels,
            **score_candidates(labels, dt_s, rules)}
