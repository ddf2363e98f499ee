"""Launch the autonomy stack: the driving process (perception_node + planner_node) and critic_node.

    ros2 launch avstack stack.launch.py
    ros2 launch avstack stack.launch.py config:=/path/to/my_stack.yaml use_sim_time:=true
    ros2 launch avstack stack.launch.py layout:=split

Layouts: ``composed`` (the default) runs perception_node and planner_node in one
process (``planner driving_process``: the token sets go to the planner in
memory and are still published on /perception/fused_tokens) next to
critic_node; ``split`` runs each node in its own process, for debugging one or
spreading them over machines. Every node reads the same parameter file
(config/stack.yaml by default); `avstack up` starts the same processes from
the same file on machines without the launch packages, and both behave the
same when a process dies: the monitor outlives what it monitors. A dead
driving process (or perception_node or planner_node) leaves the others running
(launch's default), so the critic's watchdog requests the takeover and it
stands. A dead critic_node (without respawn) shuts the whole launch down:
nothing would monitor the stack; a vehicle interface sees the critic's
takeover_active heartbeat fall silent.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable, Shutdown
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import EqualsSubstitution, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from stack_common.transport import PROFILE_FILE, PROFILE_VARIABLE

# The watched processes of each layout, (package, executable); the nodes name themselves (a name given here would
# rename both nodes of the driving process).
LAYOUTS = {
    'composed': (('planner', 'driving_process'),),
    'split': (('perception_llm', 'perception_node'), ('planner', 'planner_node')),
}
MONITOR = ('critic_monitor', 'critic_node')


def generate_launch_description() -> LaunchDescription:
    config = LaunchConfiguration('config')
    use_sim_time = LaunchConfiguration('use_sim_time')
    respawn = LaunchConfiguration('respawn')
    layout = LaunchConfiguration('layout')
    actions = [
        DeclareLaunchArgument(
            'config', default_value=PathJoinSubstitution([FindPackageShare('avstack'), 'config', 'stack.yaml']),
            description='parameter file for every node (/**: ros__parameters: layout)'),
        DeclareLaunchArgument('use_sim_time', default_value='false', description='follow /clock'),
        DeclareLaunchArgument('respawn', default_value='false', description='restart a node that exits'),
        DeclareLaunchArgument('output', default_value='screen', description='node output: screen or log'),
        DeclareLaunchArgument('layout', default_value='composed', choices=list(LAYOUTS),
                              description='composed: perception and planner in one process; split: one per node'),
        # Sensor-sized messages need the stack's Fast DDS transport profile; users' drivers must load it too.
        SetEnvironmentVariable(PROFILE_VARIABLE, str(PROFILE_FILE)),
        SetEnvironmentVariable('OMP_NUM_THREADS', '1'),
    ]
    common = {'output': LaunchConfiguration('output'), 'respawn': ParameterValue(respawn, value_type=bool),
              'respawn_delay': 1.0,
              'parameters': [config, {'use_sim_time': ParameterValue(use_sim_time, value_type=bool)}]}
    for name, processes in LAYOUTS.items():
        for package, executable in processes:
            # Any exit but the monitor's leaves the rest running.
            actions.append(Node(package=package, executable=executable,
                                condition=IfCondition(EqualsSubstitution(layout, name)), **common))
    # Without respawn, the monitor's exit ends the launch.
    on_exit = [Shutdown(reason=f'{MONITOR[1]} exited: nothing monitors the stack any more',
                        condition=UnlessCondition(respawn))]
    actions.append(Node(package=MONITOR[0], executable=MONITOR[1], on_exit=on_exit, **common))
    return LaunchDescription(actions)
