"""launch/stack.launch.py is a real ROS 2 launch file starting the stack's processes with the shared config, in
the same layouts as `avstack up` (the composed driving process by default), and it reacts to a process's death
as `avstack up` does (test_avstack_up.py): only the critic's exit ends the launch."""

import ast
import importlib.util

import pytest

from avstack.runtime.launcher import DEFAULT_LAYOUT, LAYOUTS, MONITOR

from support import REPO

LAUNCH_FILE = REPO / 'launch' / 'stack.launch.py'


def assignment(tree: ast.AST, name: str) -> ast.Assign:
    return next(n for n in ast.walk(tree) if isinstance(n, ast.Assign) and getattr(n.targets[0], 'id', '') == name)


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, 'id', '') == name]


def test_launch_file_declares_the_layouts_of_avstack_up_and_its_arguments():
    tree = ast.parse(LAUNCH_FILE.read_text())
    imports = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {'launch', 'launch_ros.actions'} <= imports
    layouts = ast.literal_eval(assignment(tree, 'LAYOUTS').value)
    monitor = ast.literal_eval(assignment(tree, 'MONITOR').value)
    # the same processes (by module) as the launcher's layouts, the monitor in every one
    for name, processes in LAYOUTS.items():
        assert {f'{p}.{e}' for p, e in layouts[name]} | {'.'.join(monitor)} == {s.module for s in processes}, name
    arguments = {n.args[0].value: n for n in calls(tree, 'DeclareLaunchArgument')}
    assert {'config', 'use_sim_time', 'respawn', 'layout'} <= set(arguments)
    default = next(k.value.value for k in arguments['layout'].keywords if k.arg == 'default_value')
    assert default == DEFAULT_LAYOUT == 'composed'
    assert 'stack_common.transport' in imports and 'SetEnvironmentVariable(PROFILE_VARIABLE, str(PROFILE_FILE))' \
        in LAUNCH_FILE.read_text()


def test_only_the_monitors_exit_shuts_the_launch_down_and_not_when_it_respawns():
    tree = ast.parse(LAUNCH_FILE.read_text())
    assert ast.literal_eval(assignment(tree, 'MONITOR').value)[1] == MONITOR == 'critic_node'
    nodes = calls(tree, 'Node')
    with_exit = [n for n in nodes if 'on_exit' in {k.arg for k in n.keywords}]
    assert len(with_exit) == 1 and ast.unparse(with_exit[0].keywords[0].value) == 'MONITOR[0]'
    # on_exit is a Shutdown, unless respawn, for the monitor only; launch's default (keep running) for the others
    shutdown = calls(assignment(tree, 'on_exit').value, 'Shutdown')[0]
    condition = next(k.value for k in shutdown.keywords if k.arg == 'condition')
    assert condition.func.id == 'UnlessCondition' and condition.args[0].id == 'respawn'


def test_launch_file_loads_with_launch_ros():
    if importlib.util.find_spec('launch_ros') is None:
        pytest.skip('launch_ros is not installed (pip-only machine); `avstack up` is the launcher here')
    spec = importlib.util.spec_from_file_location('stack_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from launch_ros.actions import Node
    description = module.generate_launch_description()
    nodes = [e for e in description.entities if isinstance(e, Node)]
    assert {(n.node_package, n.node_executable) for n in nodes} == {
        pair for processes in module.LAYOUTS.values() for pair in processes} | {module.MONITOR}
