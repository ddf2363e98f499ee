"""The import direction of docs/architecture.md: nodes -> cores -> stack_common, tools -> everything, nothing -> tools.

Read from the source with ``ast`` (every import, also those inside functions), so a wrong import fails here
whether or not a test runs the code that holds it.
"""

import ast

import pytest

from support import REPO

SRC = REPO / 'src'
# package -> the stack's packages it may import (besides itself)
ALLOWED = {
    'stack_common': set(),
    'perception_llm': {'stack_common'},
    'planner': {'stack_common', 'perception_llm'},
    'critic_monitor': {'stack_common'},
    'sim_bridge': {'stack_common'},
    'avstack': {'stack_common', 'perception_llm', 'planner', 'critic_monitor', 'sim_bridge'},
}
# planner.training's labels are the critic's own verdicts (its check functions, numpy); the live planner
# (everything outside planner.training) does not import the critic
TRAINING_ONLY = {'planner': ('training', {'critic_monitor'})}
# the thin ROS adapters: only they (and the tools) may import rclpy in a node package
NODE_MODULES = {'perception_node', 'planner_node', 'driving_process', 'critic_node', 'bridge_node'}


def imports(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def modules(package: str):
    return sorted((SRC / package / package).rglob('*.py'))


def allowed(package: str, path) -> set[str]:
    folder, extra = TRAINING_ONLY.get(package, ('', set()))
    inside = folder and folder in path.relative_to(SRC / package / package).parts
    return ALLOWED[package] | {package} | (extra if inside else set())


@pytest.mark.parametrize('package', sorted(ALLOWED))
def test_a_package_imports_only_the_packages_below_it(package):
    wrong = {f'{path.relative_to(SRC)}: {name}' for path in modules(package) for name in imports(path)
             if name.split('.')[0] in ALLOWED and name.split('.')[0] not in allowed(package, path)}
    assert not wrong, sorted(wrong)


@pytest.mark.parametrize('package', ['perception_llm', 'planner', 'critic_monitor', 'sim_bridge'])
def test_cores_import_no_node_and_no_rclpy(package):
    wrong = {f'{path.relative_to(SRC)}: {name}' for path in modules(package) if path.stem not in NODE_MODULES
             for name in imports(path)
             if name.split('.')[0] == 'rclpy' or name.split('.')[-1] in NODE_MODULES}
    assert not wrong, sorted(wrong)


def test_the_critic_imports_neither_torch_nor_the_planner():
    wrong = {f'{path.relative_to(SRC)}: {name}' for path in modules('critic_monitor') for name in imports(path)
             if name.split('.')[0] in ('torch', 'planner', 'perception_llm')}
    assert not wrong, sorted(wrong)


def test_nothing_outside_the_tools_imports_them():
    wrong = {f'{path.relative_to(REPO)}: {name}' for package in ALLOWED if package != 'avstack'
             for path in modules(package) for name in imports(path) if name.split('.')[0] == 'avstack'}
    assert not wrong, sorted(wrong)
