"""launch/stack.launch.py is a real ROS 2 launch file starting the three nodes with the shared config, and it
reacts to a node's death as `avstack up` does (test_avstack_up.py): only the critic's exit ends the launch."""

import ast
import importlib.util

import pytest

from avstack.launcher import MONITOR

from conftest import REPO

LAUNCH_FILE = REPO / 'launch' / 'stack.launch.py'
EXPECTED = {('perception_llm', 'perception_node'), ('planner', 'planner_node'), ('critic_monitor', 'critic_node')}


def assignment(tree: ast.AST, name: str) -> ast.Assign:
    return next(n for n in ast.walk(tree) if isinstance(n, ast.Assign) and getattr(n.targets[0], 'id', '') == name)


def test_launch_file_declares_the_three_nodes_and_arguments():
    tree = ast.parse(LAUNCH_FILE.read_text())
    imports = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {'launch', 'launch_ros.actions'} <= imports
    assert set(ast.literal_eval(assignment(tree, 'NODES').value)) == EXPECTED
    arguments = {n.args[0].value for n in ast.walk(tree) if isinstance(n, ast.Call)
                 and getattr(n.func, 'id', '') == 'DeclareLaunchArgument'}
    assert {'config', 'use_sim_time', 'respawn'} <= arguments
    assert 'stack_common.transport' in imports and 'SetEnvironmentVariable(PROFILE_VARIABLE, str(PROFILE_FILE))' \
        in LAUNCH_FILE.read_text()


def test_only_the_monitors_exit_shuts_the_launch_down_and_not_when_it_respawns():
    tree = ast.parse(LAUNCH_FILE.read_text())
    monitor = assignment(tree, 'MONITOR')
    assert ast.literal_eval(monitor.value) == MONITOR == 'critic_node'
    node_call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, 'id', '') == 'Node')
    assert 'on_exit' in {k.arg for k in node_call.keywords}
    # on_exit is a Shutdown, unless respawn, for the monitor only; launch's default (keep running) for the others
    on_exit = assignment(tree, 'on_exit')
    shutdown = next(n for n in ast.walk(on_exit.value) if isinstance(n, ast.Call)
                    and getattr(n.func, 'id', '') == 'Shutdown')
    condition = next(k.value for k in shutdown.keywords if k.arg == 'condition')
    assert condition.func.id == 'UnlessCondition' and condition.args[0].id == 'respawn'
    assert ast.unparse(on_exit.value.test) == 'executable == MONITOR' and ast.unparse(on_exit.value.orelse) == 'None'


def test_launch_file_loads_with_launch_ros():
    if importlib.util.find_spec('launch_ros') is None:
        pytest.skip('launch_ros is not installed (pip-only machine); `avstack up` is the launcher here')
    spec = importlib.util.spec_from_file_location('stack_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from launch_ros.actions import Node
    description = module.generate_launch_description()
    nodes = [e for e in description.entities if isinstance(e, Node)]
    assert {(n.node_package, n.node_executable) for n in nodes} == EXPECTED
