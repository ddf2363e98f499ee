"""Default topic names of the stack (all remappable with ``--ros-args -r``)."""

FUSED_TOKENS = '/perception/fused_tokens'
PERCEPTION_STATUS = '/perception/status'
TRAJECTORY = '/planner/trajectory'
ASSESSMENT = '/planner/assessment'
ROUTE_COMMAND = '/planner/route_command'
TAKEOVER_REQUEST = '/critic/takeover_request'
TAKEOVER_ACTIVE = '/critic/takeover_active'
CRITIC_MARKERS = '/critic/markers'
ODOMETRY = '/vehicle/odometry'
DIAGNOSTICS = '/diagnostics'
CLOCK = '/clock'
SIM_SCENE_INFO = '/sim/scene_info'
SIM_STATUS = '/sim/status'
SIM_EXPERT_PLAN = '/sim/expert_plan'   # the expert's plan from each simulated state (driver label)
EVAL_INPUT_BAG = '/eval/input_bag'
# What the stack's own nodes publish (a replay beside a running stack skips them: avstack replay --exclude-outputs)
OUTPUTS = (FUSED_TOKENS, PERCEPTION_STATUS, TRAJECTORY, ASSESSMENT, TAKEOVER_REQUEST, TAKEOVER_ACTIVE,
           CRITIC_MARKERS, DIAGNOSTICS)


def camera_topic(name: str) -> str:
    return f'/sensors/camera/{name}/image_raw'


def compressed_camera_topic(name: str) -> str:
    return f'/sensors/camera/{name}/image_raw/compressed'


def lidar_topic(name: str) -> str:
    return f'/sensors/lidar/{name}/points'
