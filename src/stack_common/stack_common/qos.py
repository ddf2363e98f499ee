"""QoS profiles of the stack's topics, one per role (see docs/architecture.md)."""

from rclpy.duration import Duration
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

# Cameras and lidars: best effort, keep last 2 (newest frame wins). A node that stalls finds at most one old
# frame per sensor waiting when it resumes, not the backlog of five that REP 2003's sensor-data profile keeps,
# and one frame may still arrive while the previous one is being handled without being lost.
SENSOR_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=2,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)

# Odometry: small messages at up to 100 Hz, each one a sample of the ego history: the REP 2003 sensor-data
# profile (best effort, keep last 5).
ODOMETRY_QOS = qos_profile_sensor_data

# Fused tokens: only the newest set matters to the planner.
TOKENS_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)

# Trajectories and assessments: every one is checked by the critic.
PLAN_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

# Takeover state: a late joiner (HMI, vehicle interface, recorder) gets the current state.
LATCHED_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

# /critic/takeover_active: latched as above, and republished every HEARTBEAT_PERIOD_S (a heartbeat) whatever the
# state. Its offered deadline is the promise a vehicle interface holds the critic to: a subscriber that requests
# HEARTBEAT_DEADLINE_S and hears nothing for that long must treat the silence as a takeover.
HEARTBEAT_PERIOD_S = 0.1
HEARTBEAT_DEADLINE_S = 0.3
TAKEOVER_ACTIVE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
    deadline=Duration(seconds=HEARTBEAT_DEADLINE_S),
)

# /diagnostics and other status topics: the ROS default.
STATUS_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
