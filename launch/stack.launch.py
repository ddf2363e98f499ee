"""Launch the autonomy stack: perception_node, planner_node and critic_node.

    ros2 launch avstack stack.launch.py
    ros2 launch avstack stack.launch.py config:=/path/to/my_stack.yaml use_sim_time:=true

All three nodes read the same parameter file (config/stack.yaml by default);
`avstack up` starts the same nodes from the same file on machines without the
launch packages.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
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
        actions.append(Node(
            package=package, executable=executable, name=executable, output=LaunchConfiguration('output'),
            parameters=[config, {'use_sim_time': ParameterValue(use_sim_time, value_type=bool)}],
            respawn=ParameterValue(respawn, value_type=bool), respawn_delay=1.0))
    return LaunchDescription(actions)
