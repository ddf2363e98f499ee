"""The packages build with colcon as a ROS 2 workspace would, with executables where `ros2 run` looks."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO

COLCON = Path(sys.executable).with_name('colcon')


@pytest.mark.timeout(600)
def test_colcon_build_installs_nodes_launch_and_config(tmp_path):
    if not COLCON.exists():
        pytest.skip('colcon is not installed in this environment')
    workspace = tmp_path / 'ws'
    shutil.copytree(REPO, workspace, ignore=shutil.ignore_patterns('.venv', '.git', 'out', 'build', 'install', 'log',
                                                                    '__pycache__', '*.egg-info', 'bench'))
    result = subprocess.run([str(COLCON), 'build', '--base-paths', 'src'], cwd=workspace, capture_output=True,
                            text=True, env=dict(os.environ, COLCON_HOME=str(tmp_path / 'colcon_home')))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    install = workspace / 'install'
    for package, executable in (('perception_llm', 'perception_node'), ('planner', 'planner_node'),
                                ('critic_monitor', 'critic_node'), ('avstack', 'avstack')):
        assert (install / package / 'lib' / package / executable).is_file()
        assert (install / package / 'share' / 'ament_index' / 'resource_index' / 'packages' / package).is_file()
    share = install / 'avstack' / 'share' / 'avstack'
    assert (share / 'launch' / 'stack.launch.py').is_file()
    assert (share / 'config' / 'stack.yaml').read_text() == (REPO / 'config' / 'stack.yaml').read_text()
    schema = install / 'critic_monitor' / 'lib' / 'python3.11' / 'site-packages' / 'critic_monitor' / 'schema'
    assert (schema / 'critic_node.schema.json').is_file()
