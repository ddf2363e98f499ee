"""Ego state: ``nav_msgs/Odometry`` <-> :class:`EgoState`.

Pose in the odometry frame (``header.frame_id``, e.g. ``odom``), twist in the
child frame ``base_link`` as REP 105 says.
"""

import math
from dataclasses import dataclass

from nav_msgs.msg import Odometry

from stack_common.timeutil import ns_to_stamp, stamp_to_ns


@dataclass
class EgoState:
    stamp_ns: int
    x: float          # m, odom frame
    y: float          # m, odom frame
    yaw: float        # rad, odom frame
    speed: float      # m/s, forward (base_link x)
    lateral_speed: float = 0.0  # m/s, base_link y
    yaw_rate: float = 0.0       # rad/s


def odometry_to_ego(msg: Odometry) -> EgoState:
    pose, twist = msg.pose.pose, msg.twist.twist
    q = pose.orientation
    return EgoState(
        stamp_ns=stamp_to_ns(msg.header.stamp),
        x=pose.position.x, y=pose.position.y,
        yaw=math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z)),
        speed=twist.linear.x, lateral_speed=twist.linear.y, yaw_rate=twist.angular.z)


def ego_to_odometry(state: EgoState, frame_id: str = 'odom', child_frame_id: str = 'base_link') -> Odometry:
    msg = Odometry()
    msg.header.stamp = ns_to_stamp(state.stamp_ns)
    msg.header.frame_id = frame_id
    msg.child_frame_id = child_frame_id
    msg.pose.pose.position.x, msg.pose.pose.position.y = float(state.x), float(state.y)
    msg.pose.pose.orientation.z = math.sin(state.yaw / 2)
    msg.pose.pose.orientation.w = math.cos(state.yaw / 2)
    msg.twist.twist.linear.x = float(state.speed)
    msg.twist.twist.linear.y = float(state.lateral_speed)
    msg.twist.twist.angular.z = float(state.yaw_rate)
    return msg
