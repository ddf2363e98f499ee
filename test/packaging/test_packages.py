"""Every package under src/ is a real ament_python package that declares what its code imports."""

import ast
import configparser
import sys
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

from support import REPO

PACKAGES = sorted(p.parent for p in (REPO / 'src').glob('*/package.xml'))
NODE_EXECUTABLES = {'perception_llm': 'perception_node', 'planner': 'planner_node', 'critic_monitor': 'critic_node'}

# Python import name -> rosdep key, for what is not a ROS package of the same name.
ROSDEP_KEYS = {
    'numpy': 'python3-numpy', 'cv2': 'python3-opencv', 'yaml': 'python3-yaml', 'torch': 'python3-torch',
    'transforms3d': 'python3-transforms3d', 'jsonschema': 'python3-jsonschema',
    'safetensors': 'python3-safetensors-pip', 'rosbags': 'python3-rosbags-pip', 'matplotlib': 'python3-matplotlib',
    'mcap': 'python3-mcap-pip', 'backports': 'python3-backports-zstd-pip', 'xxhash': 'python3-xxhash',
    'tqdm': 'python3-tqdm', 'psutil': 'python3-psutil', 'gymnasium': 'python3-gymnasium-pip',
    'highway_env': 'python3-highway-env-pip', 'pytest': 'python3-pytest', 'hypothesis': 'python3-hypothesis',
    'launch': 'launch', 'launch_ros': 'launch_ros', 'pygame': 'python3-pygame',
}


def imported_modules(package_dir: Path) -> set[str]:
    modules = set()
    for path in (package_dir / package_dir.name).rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split('.')[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split('.')[0])
    # compression (zstd) is in the standard library from Python 3.14 on; before, backports.zstd stands in.
    return modules - set(sys.stdlib_module_names) - {package_dir.name, 'setuptools', 'compression'}


@pytest.mark.parametrize('package_dir', PACKAGES, ids=lambda p: p.name)
def test_package_xml_declares_every_import(package_dir):
    package = parse_package(str(package_dir / 'package.xml'))
    assert package.package_format == 3
    assert package.name == package_dir.name
    assert package.get_build_type() == 'ament_python'
    declared = {d.name for d in package.exec_depends + package.build_depends + package.build_export_depends}
    missing = sorted(f'{m} ({ROSDEP_KEYS.get(m, m)})' for m in imported_modules(package_dir)
                     if ROSDEP_KEYS.get(m, m) not in declared)
    assert not missing, f'{package_dir.name}/package.xml does not declare: {missing}'


@pytest.mark.parametrize('package_dir', PACKAGES, ids=lambda p: p.name)
def test_ament_python_layout(package_dir):
    name = package_dir.name
    assert (package_dir / 'resource' / name).is_file()
    assert (package_dir / name / '__init__.py').is_file()
    cfg = configparser.ConfigParser()
    cfg.read(package_dir / 'setup.cfg')
    assert cfg['install']['install_scripts'] == f'$base/lib/{name}'
    setup = (package_dir / 'setup.py').read_text()
    assert f"package_name = '{name}'" in setup and "'share/ament_index/resource_index/packages'" in setup


@pytest.mark.parametrize('package, executable', NODE_EXECUTABLES.items())
def test_node_executables_are_console_scripts(package, executable):
    setup = (REPO / 'src' / package / 'setup.py').read_text()
    assert f"'{executable} = {package}.{executable}:main'" in setup


def test_critic_never_imports_torch_or_the_planner():
    modules = imported_modules(REPO / 'src' / 'critic_monitor') | imported_modules(REPO / 'src' / 'stack_common')
    assert not modules & {'torch', 'planner', 'perception_llm'}
