"""The collision check: the vehicle footprint swept along a plan against the latest lidar points.

Two stages, both vectorised (no Python loop over points):

* :class:`LidarFilter`, once per cloud: sensor frame -> ``base_link``, keep
  the height band between the ground and the top of the vehicle (flat-ground
  removal), crop to range, drop the vehicle's own body (self-returns). A
  100k-point cloud becomes the few thousand points that can be hit.
* :func:`first_contact`, once per plan (and again per cloud against the
  latest plan): the plan is resampled every ``resample_interval_m``, the
  points are pre-filtered by the swept area's bounding box and by distance to
  a coarse chain of circles, and only the survivors are tested against every
  footprint, in blocks of poses that stop at the first block with a hit.

Lidars that measure each return's radial velocity (FMCW lidars; the simulated
one) tell moving objects from static ones: a point whose velocity along its
beam, in the world, exceeds ``moving_speed_mps`` is moving. The critic does no
tracking, so it cannot know where a moving thing goes. Moving along its beam
alone would send a car crossing ahead, or one passing in the next lane, at the
lidar. Instead, as an ACC radar does, a moving point ahead (beam within 60
degrees of the vehicle's heading) is taken to move parallel to the vehicle, at
the speed that gives its radial velocity (:func:`along_axis_velocity`): a car
followed at a short gap moves on ahead, an oncoming one stays in its lane. A
moving point beside or behind keeps its place (a car closing from behind is its
own driver's to brake for, not the plan's to avoid). Contacts with moving points count
only within ``moving_horizon_s`` (imminent: a constant velocity holds that
long), contacts with static points over the whole ``horizon_s``. Without the
field every point is static, as before: a car followed at a short gap then
"collides" with the plan where it is now.
"""

import math
from dataclasses import dataclass

import numpy as np

from critic_monitor.geometry import PlanPath, rotation_from_rpy

MAX_POSES = 400          # a plan hundreds of metres long is checked coarser, not slower
AHEAD_MIN_COS = 0.5      # a beam within 60 degrees of the vehicle's heading tells a speed along it
COARSE_CIRCLES = 16      # circles of the first distance filter
POSE_BLOCK = 16          # poses tested together before looking for a hit


@dataclass(frozen=True)
class Footprint:
    """A rectangle around ``base_link``: ``front_m`` ahead, ``rear_m`` behind, ``half_width_m`` each side."""
    front_m: float
    rear_m: float
    half_width_m: float

    @classmethod
    def from_config(cls, vehicle: dict, margin_m: float = 0.0) -> 'Footprint':
        return cls(vehicle['length_m'] - vehicle['rear_overhang_m'] + margin_m,
                   vehicle['rear_overhang_m'] + margin_m, vehicle['width_m'] / 2 + margin_m)

    @property
    def centre_offset_m(self) -> float:
        """Forward offset of the rectangle's centre from ``base_link``."""
        return (self.front_m - self.rear_m) / 2

    @property
    def radius_m(self) -> float:
        """Radius of the circle around the centre that contains the rectangle."""
        return math.hypot((self.front_m + self.rear_m) / 2, self.half_width_m)

    def contains(self, xy: np.ndarray) -> np.ndarray:
        """Which points (given in ``base_link``) lie inside."""
        return ((xy[:, 0] >= -self.rear_m) & (xy[:, 0] <= self.front_m)
                & (np.abs(xy[:, 1]) <= self.half_width_m))

    def corners(self) -> np.ndarray:
        f, r, w = self.front_m, self.rear_m, self.half_width_m
        return np.array([[f, w], [-r, w], [-r, -w], [f, -w]])


class LidarFilter:
    """One lidar's points made ready for the collision check, in ``base_link`` (x, y only)."""

    def __init__(self, translation_m, rotation_rpy_rad, min_height_m: float, max_height_m: float,
                 max_range_m: float, body: Footprint):
        rotation = rotation_from_rpy(rotation_rpy_rad)
        self.rotation = rotation.astype(np.float32)
        self.translation = np.asarray(translation_m, np.float32)
        self.min_height_m, self.max_height_m = min_height_m, max_height_m
        self.max_range_m = max_range_m
        self.body = body

    def __call__(self, xyz: np.ndarray, radial_velocity: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """``(N, 3)`` float32 points in the sensor frame (and their radial velocities, m/s away from the
        lidar) -> ``(M, 2)`` float32 obstacle points in base_link, their ``(M, 2)`` unit beam directions in
        base_link and ``(M,)`` radial velocities (both None without velocities)."""
        xyz = np.asarray(xyz, np.float32)
        # Height first: it removes the ground (most of a cloud) before anything else is computed.
        z = xyz @ self.rotation[2] + self.translation[2]
        keep = (z > self.min_height_m) & (z < self.max_height_m)
        xy = np.compress(keep, xyz, axis=0) @ self.rotation[:2].T + self.translation[:2]
        near = ((np.abs(xy[:, 0]) <= self.max_range_m) & (np.abs(xy[:, 1]) <= self.max_range_m)
                & ~self.body.contains(xy))
        points = np.compress(near, xy, axis=0)
        if radial_velocity is None:
            return points, None, None
        radial = np.compress(near, np.compress(keep, np.asarray(radial_velocity, np.float32)))
        beam = points - self.translation[:2]
        beam /= np.maximum(np.hypot(beam[:, 0], beam[:, 1]), np.float32(1e-3))[:, None]
        return points, beam, radial


@dataclass
class Sweep:
    """Poses along a plan from its start, every ``interval_m`` at most: plan time, position, heading."""
    t_s: np.ndarray
    xy: np.ndarray
    heading: np.ndarray
    s: np.ndarray

    def __len__(self) -> int:
        return len(self.t_s)

    def footprints(self, footprint: Footprint) -> np.ndarray:
        """Corners ``(K, 4, 2)`` of the footprint at every pose."""
        c, s = np.cos(self.heading), np.sin(self.heading)
        corners = footprint.corners()
        x = self.xy[:, None, 0] + c[:, None] * corners[None, :, 0] - s[:, None] * corners[None, :, 1]
        y = self.xy[:, None, 1] + s[:, None] * corners[None, :, 0] + c[:, None] * corners[None, :, 1]
        return np.stack([x, y], axis=-1)


def sweep_poses(path: PlanPath, interval_m: float) -> Sweep:
    """Resample a plan by arc length (its waypoints stay in, so no corner is cut)."""
    length = path.length_m
    interval = max(interval_m, length / MAX_POSES)
    s = np.union1d(np.arange(0.0, length, interval), path.s) if length > 0 else path.s[:1]
    # Arc length is flat while the plan stands still: sample by time there so the times stay right.
    t = np.interp(s, path.s, path.t_s) if length > 0 else path.t_s[:1]
    xy, heading = path.at_time(t)
    return Sweep(t, xy, heading, s)


@dataclass
class CollisionResult:
    contact: bool
    time_s: float | None = None          # plan time of the first pose that touches a point
    distance_m: float | None = None      # arc length to that pose
    point_xy: np.ndarray | None = None   # the first offending point (plan frame)
    pose_index: int | None = None
    candidates: int = 0                  # points left after the pre-filters


def first_contact(sweep: Sweep, footprint: Footprint, points_xy: np.ndarray) -> CollisionResult:
    """The first pose of ``sweep`` whose footprint contains one of ``points_xy`` (both in the plan frame)."""
    if len(points_xy) == 0 or len(sweep) == 0:
        return CollisionResult(False)
    points = np.asarray(points_xy, np.float32)
    c, s = np.cos(sweep.heading), np.sin(sweep.heading)
    offset = footprint.centre_offset_m
    centres = sweep.xy + offset * np.stack([c, s], axis=-1)
    radius = footprint.radius_m

    low, high = centres.min(axis=0) - radius, centres.max(axis=0) + radius
    inside_box = ((points[:, 0] >= low[0]) & (points[:, 0] <= high[0])
                  & (points[:, 1] >= low[1]) & (points[:, 1] <= high[1]))
    points = np.compress(inside_box, points, axis=0)
    if len(points) == 0:
        return CollisionResult(False)

    # Coarse circles at every stride-th centre and the last one: each covers the centres up to
    # stride/2 steps away, so a point outside all of them cannot be in any footprint.
    stride = max(1, math.ceil(len(centres) / COARSE_CIRCLES))
    step = float(np.hypot(*np.diff(centres, axis=0).T).max()) if len(centres) > 1 else 0.0
    coarse = centres[np.unique(np.r_[np.arange(stride // 2, len(centres), stride), len(centres) - 1])]
    reach = radius + step * stride / 2
    dx = points[None, :, 0] - coarse[:, None, 0].astype(np.float32)
    dy = points[None, :, 1] - coarse[:, None, 1].astype(np.float32)
    near = ((dx * dx + dy * dy) <= np.float32(reach * reach)).any(axis=0)
    points = np.compress(near, points, axis=0)
    if len(points) == 0:
        return CollisionResult(False)

    px, py = points[:, 0], points[:, 1]
    for start in range(0, len(sweep), POSE_BLOCK):
        block = slice(start, start + POSE_BLOCK)
        bc, bs = c[block, None].astype(np.float32), s[block, None].astype(np.float32)
        dx = px[None, :] - sweep.xy[block, 0, None].astype(np.float32)
        dy = py[None, :] - sweep.xy[block, 1, None].astype(np.float32)
        hit = _first_hit(dx, dy, bc, bs, footprint)
        if hit is not None:
            k, first = hit
            index = start + k
            return CollisionResult(True, float(sweep.t_s[index]), float(sweep.s[index]), points[first].astype(float),
                                   index, len(points))
    return CollisionResult(False, candidates=len(points))


def _first_hit(dx: np.ndarray, dy: np.ndarray, c: np.ndarray, s: np.ndarray, footprint: Footprint
               ) -> tuple[int, int] | None:
    """For a block of poses (rows) and points (columns) given as offsets ``dx``, ``dy`` from each pose, with the
    poses' ``(K, 1)`` heading cosines and sines: the first pose whose footprint holds a point and that point,
    the one furthest ahead (the front of the vehicle meets it first); None when no footprint holds one."""
    lon = c * dx + s * dy
    lat = c * dy - s * dx
    inside = (lon >= -footprint.rear_m) & (lon <= footprint.front_m) & (np.abs(lat) <= footprint.half_width_m)
    hits = inside.any(axis=1)
    if not hits.any():
        return None
    k = int(np.argmax(hits))
    candidates = np.flatnonzero(inside[k])
    return k, int(candidates[int(np.argmax(lon[k, candidates]))])


def along_axis_velocity(beam_xy: np.ndarray, world_radial_mps: np.ndarray) -> np.ndarray:
    """``(M, 2)`` velocities (base_link axes, m/s) of moving points ahead, taken to move parallel to the
    vehicle's axis at the speed whose component along each point's beam is its radial velocity in the world;
    zero for a point whose beam is more than 60 degrees off the heading (beside the vehicle its speed cannot
    be told; behind it, it is the other driver's to brake for)."""
    beam_x = beam_xy[:, 0]
    ahead = beam_x >= AHEAD_MIN_COS
    velocity = np.zeros((len(beam_x), 2), np.float32)
    velocity[ahead, 0] = world_radial_mps[ahead] / beam_x[ahead]
    return velocity


def first_moving_contact(sweep: Sweep, footprint: Footprint, points_xy: np.ndarray, velocity_xy: np.ndarray,
                         until_s: float) -> CollisionResult:
    """The first pose of ``sweep`` up to plan time ``until_s`` whose footprint contains one of ``points_xy``
    (where they are at the plan's stamp), each moved at its ``velocity_xy`` (plan frame, m/s) for the pose's
    plan time. The contact's point is where the point is then."""
    poses = int(np.searchsorted(sweep.t_s, until_s, side='right'))
    if len(points_xy) == 0 or poses == 0:
        return CollisionResult(False)
    t_s, xy, heading = sweep.t_s[:poses], sweep.xy[:poses], sweep.heading[:poses]
    points, velocity = np.asarray(points_xy, np.float32), np.asarray(velocity_xy, np.float32)
    # Each point's path over the poses' times against the box around the footprints.
    first, last = points + velocity * np.float32(t_s[0]), points + velocity * np.float32(t_s[-1])
    reach = footprint.radius_m + abs(footprint.centre_offset_m)
    low, high = xy.min(axis=0) - reach, xy.max(axis=0) + reach
    near = ((np.maximum(first, last) >= low) & (np.minimum(first, last) <= high)).all(axis=1)
    points, velocity = np.compress(near, points, axis=0), np.compress(near, velocity, axis=0)
    if len(points) == 0:
        return CollisionResult(False)
    c, s = np.cos(heading).astype(np.float32), np.sin(heading).astype(np.float32)
    for start in range(0, poses, POSE_BLOCK):
        block = slice(start, start + POSE_BLOCK)
        elapsed = t_s[block, None].astype(np.float32)
        px = points[None, :, 0] + velocity[None, :, 0] * elapsed
        py = points[None, :, 1] + velocity[None, :, 1] * elapsed
        dx, dy = px - xy[block, 0, None].astype(np.float32), py - xy[block, 1, None].astype(np.float32)
        hit = _first_hit(dx, dy, c[block, None], s[block, None], footprint)
        if hit is not None:
            k, first_hit = hit
            index = start + k
            return CollisionResult(True, float(t_s[index]), float(sweep.s[index]),
                                   np.array([px[k, first_hit], py[k, first_hit]], float), index, len(points))
    return CollisionResult(False, candidates=len(points))
