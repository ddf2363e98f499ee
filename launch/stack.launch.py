"""Launch the autonomy stack: perception_node, planner_node and critic_node.

    ros2 launch avstack stack.launch.py
    ros2 launch avstack stack.launch.py config:=/path/to/my_stack.yaml use_sim_time:=true

All three nodes read the same parameter file (config/stack.yaml by default);
`avstack up` starts the same nodes from the same file on machines without the
launch packages, and both behave the same when a node dies: the monitor
outlives what it monitors. A dead perception_node or planner_node leaves the
others running (launch's default), so the critic's watchdog requests the
takeover and it stands. A dead critic_node (without respawn) shuts the whole
launch down: nothing would monitor the stack; a vehicle interface sees the
critic's takeover_active heartbeat fall silent.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable, Shutdown
from launch.conditions import UnlessCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from stack_common.transport import PROFILE_FILE, PROFILE_VARIABLE

NODES = (
    ('perception_llm', 'perception_node'),
    ('planner', 'planner_node'),
    ('critic_monitor', 'critic_node'),
)
MONITOR = 'critic_node'


def generate_launch_description() -> LaunchDescription:
    config = LaunchConfiguration('config')
    use_sim_time = LaunchConfiguration('use_sim_time')
    respawn = LaunchConfiguration('respawn')
    actions = [
        DeclareLaunchArgument(
            'config', default_value=PathJoinSubstitution([FindPackageShare('avstack'), 'config', 'stack.yaml']),
            description='parameter file for every node (/**: ros__parameters: layout)'),
        DeclareLaunchArgument('use_sim_time', default_value='false', description='follow /clock'),
        DeclareLaunchArgument('respawn', default_value='false', description='restart a node that exits'),
        DeclareLaunchArgument('output', default_value='screen', description='node output: screen or log'),
        # Sensor-sized messages need the stack's Fast DDS transport profile; users' drivers must load it too.
        SetEnvironmentVariable(PROFILE_VARIABLE, str(PROFILE_FILE)),
        SetEnvironmentVariable('OMP_NUM_THREADS', '1'),
    ]
    for package, executable in NODES:
        # Without respawn, the monitor's exit ends the launch; any other node's exit leaves the rest running.
        on_exit = [Shutdown(reason=f'{MONITOR} exited: nothing monitors the stack any more',
                            condition=UnlessCondition(respawn))] if executable == MONITOR else None
        actions.append(Node(
            package=package, executable=executable, name=executable, output=LaunchConfiguration('output'),
            parameters=[config, {'use_sim_time': ParameterValue(use_sim_time, value_type=bool)}],
            respawn=ParameterValue(respawn, value_type=bool), respawn_delay=1.0, on_exit=on_exit))
    return LaunchDescription(actions)
