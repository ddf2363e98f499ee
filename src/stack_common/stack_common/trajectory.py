"""Trajectories: the planner's output as ``nav_msgs/Path``.

Frame ``base_link`` at ``header.stamp`` (= the stamp of the tokens it was
planned from); pose ``i`` is the planned pose at ``header.stamp + t_s[i]``,
its stamp says so, and its yaw is the planned heading.
"""

from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Path

from stack_common.constants import NS_PER_S
from stack_common.timeutil import ns_to_stamp, stamp_to_ns


@dataclass
class Trajectory:
    stamp_ns: int
    frame_id: str
    t_s: np.ndarray      # (T,) seconds after stamp, strictly increasing for a valid plan
    xy: np.ndarray       # (T, 2) metres in frame_id
    heading: np.ndarray  # (T,) radians in frame_id

    def __len__(self) -> int:
        return len(self.t_s)


def trajectory_to_path(trajectory: Trajectory) -> Path:
    msg = Path()
    msg.header.stamp = ns_to_stamp(trajectory.stamp_ns)
    msg.header.frame_id = trajectory.frame_id
    for t, (x, y), yaw in zip(trajectory.t_s, trajectory.xy, trajectory.heading, strict=True):
        pose = PoseStamped()
        pose.header.frame_id = trajectory.frame_id
        pose.header.stamp = ns_to_stamp(trajectory.stamp_ns + round(float(t) * NS_PER_S))
        pose.pose.position.x, pose.pose.position.y = float(x), float(y)
        pose.pose.orientation.z, pose.pose.orientation.w = float(np.sin(yaw / 2)), float(np.cos(yaw / 2))
        msg.poses.append(pose)
    return msg


def path_to_trajectory(msg: Path) -> Trajectory:
    stamp_ns = stamp_to_ns(msg.header.stamp)
    count = len(msg.poses)
    t_s, xy, heading = np.empty(count), np.empty((count, 2)), np.empty(count)
    for i, pose in enumerate(msg.poses):
        t_s[i] = (stamp_to_ns(pose.header.stamp) - stamp_ns) / NS_PER_S
        xy[i] = pose.pose.position.x, pose.pose.position.y
        q = pose.pose.orientation
        heading[i] = np.arctan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))
    return Trajectory(stamp_ns, msg.header.frame_id, t_s, xy, heading)
