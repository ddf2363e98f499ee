"""The simulated lidar: highway-env's lidar observation as points in the lidar frame.

Owns: turning the observation (one ``(distance, relative speed)`` row per beam, beam ``i`` pointing at
``i * 2 pi / beams`` in the world frame, from the ego's centre) into a structured point array of one point per
return and per z layer, in the lidar frame, so it looks like a scan of a multi-layer lidar. A beam that hits
nothing (distance at the maximum range) gives no point.

Each return carries its ``radial_velocity`` (m/s, float32): the hit object's velocity relative to the ego
along the beam, positive when it moves away, as FMCW lidars (and radars) measure it. Closing speed is then
visible in a single sweep; perception uses the field when a cloud has it (``stack_common.pointcloud``).
Does not own: the PointCloud2 message (stack_common.pointcloud).
"""

import numpy as np

POINT_DTYPE = np.dtype([('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('intensity', '<f4'), ('ring', '<u2'),
                        ('radial_velocity', '<f4')])
RETURN_INTENSITY = 100.0


def beam_angles_base_link(beams: int, ego_heading: float) -> np.ndarray:
    """The direction of every beam in base_link (radians, x forward, y left)."""
    return np.arange(beams) * (2 * np.pi / beams) - ego_heading


def lidar_points(observation: np.ndarray, ego_heading: float, max_range_m: float,
                 layer_heights_m: tuple[float, ...], mount_height_m: float) -> np.ndarray:
    """Points of ``POINT_DTYPE`` in the lidar frame (at ``mount_height_m`` above base_link, not rotated).

    ``observation`` is highway-env's un-normalised ``(beams, 2)`` lidar observation; ``layer_heights_m`` are
    heights above the ground (= base_link z) at which each return is reported, one ring per height.
    """
    observation = np.asarray(observation, dtype=np.float64)
    distances = observation[:, 0]
    angles = beam_angles_base_link(len(distances), ego_heading)
    hit = distances < max_range_m - 1e-3
    d, a, v = distances[hit], angles[hit], observation[hit, 1]
    count = len(d)
    points = np.empty(count * len(layer_heights_m), POINT_DTYPE)
    for ring, height in enumerate(layer_heights_m):
        layer = points[ring * count:(ring + 1) * count]
        layer['x'] = d * np.cos(a)
        layer['y'] = d * np.sin(a)
        layer['z'] = height - mount_height_m
        layer['intensity'] = RETURN_INTENSITY
        layer['ring'] = ring
        layer['radial_velocity'] = v
    return points
