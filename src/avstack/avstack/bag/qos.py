"""QoS of bags: rclpy profiles as rosbag2 stores them (``offered_qos_profiles``) and back, and the profile a
replay publishes a recorded topic with."""

from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, LivelinessPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

DEFAULT_DEPTH = 10
# A burst waits in a queue this deep while a slow peer catches up (rosbag2 loses it with 10): the recorder's
# subscriptions and a replay's reliable publishers.
BURST_DEPTH = 100


def _duration(qos_time) -> Duration:
    return Duration(seconds=int(qos_time.sec), nanoseconds=int(qos_time.nsec))


def _qos_time(duration: Duration):
    sec, nsec = divmod(int(duration.nanoseconds), 1_000_000_000)
    return QosTime(sec, nsec)


def to_bag_qos(profile: QoSProfile):
    """An rclpy QoS profile as rosbags stores it in ``offered_qos_profiles`` (the enums share rmw values)."""
    return Qos(QosHistory(int(profile.history)), int(profile.depth), QosReliability(int(profile.reliability)),
               QosDurability(int(profile.durability)), _qos_time(profile.deadline), _qos_time(profile.lifespan),
               QosLiveliness(int(profile.liveliness)), _qos_time(profile.liveliness_lease_duration),
               bool(profile.avoid_ros_namespace_conventions))


def from_bag_qos(qos) -> QoSProfile:
    """The publishing profile for a recorded one: history, depth, reliability and durability as recorded."""
    def policy(enum, value, default):
        try:
            member = enum(value.value)
        except ValueError:
            return default
        return default if member.name in ('UNKNOWN', 'SYSTEM_DEFAULT', 'BEST_AVAILABLE') else member
    history = policy(HistoryPolicy, qos.history, HistoryPolicy.KEEP_LAST)
    # DDS discovery does not carry history and depth: recorders store UNKNOWN and 0 for them.
    return QoSProfile(history=history, depth=int(qos.depth) or DEFAULT_DEPTH,
                      reliability=policy(ReliabilityPolicy, qos.reliability, ReliabilityPolicy.RELIABLE),
                      durability=policy(DurabilityPolicy, qos.durability, DurabilityPolicy.VOLATILE),
                      liveliness=policy(LivelinessPolicy, qos.liveliness, LivelinessPolicy.AUTOMATIC))


def publishing_qos(offered: list) -> QoSProfile:
    """One profile that every subscriber of the recorded publishers could match (as ``ros2 bag play``).

    A reliable topic keeps at least ``BURST_DEPTH`` messages: a replay publishes a log's bursts as
    fast as they were logged, and a reliable writer drops a message a slow subscriber has not acknowledged
    once ``depth`` newer ones are queued (the depth takes no part in QoS matching).
    """
    if not offered:
        return QoSProfile(depth=BURST_DEPTH)
    profiles = [from_bag_qos(q) for q in offered]
    reliable = all(p.reliability == ReliabilityPolicy.RELIABLE for p in profiles)
    latched = all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in profiles)
    depth = max(p.depth for p in profiles)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(depth, BURST_DEPTH) if reliable else depth,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
