"""A node or tool given a bad configuration or file stops at start-up with exit code 2 and one clear line."""

import pickle
import subprocess
import sys

import numpy as np
import pytest
import yaml

from planner.checkpoint import save_model
from planner.loading import seeded_model
from perception_llm.fusion import EncoderConfig, SensorEncoders

from support import STACK_CONFIG


def run_node(module: str, tmp_path, parameters: dict, extra=()) -> subprocess.CompletedProcess:
    config = tmp_path / 'params.yaml'
    config.write_text(yaml.safe_dump({module.split('.')[-1]: {'ros__parameters': parameters}}))
    return subprocess.run([sys.executable, '-m', module, '--ros-args', '--params-file', str(config), *extra],
                          capture_output=True, text=True, timeout=120)


def fatal_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith('[FATAL]')]
    assert len(lines) == 1 and 'Traceback' not in result.stderr, result.stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize('module, parameters, expected', [
    ('critic_monitor.critic_node', {'timer_hz': 5.0}, "'timer_hz' = 5.0 is invalid: expected number in [20.0, 1000.0]"),
    ('critic_monitor.critic_node', {'checks': {'staleness': {'max_age': 1.0}}},
     'unknown parameter(s) checks.staleness.max_age'),
    ('planner.planner_node', {'dtype': 'float8'}, "'dtype' = 'float8' is invalid: expected string one of"),
    ('perception_llm.perception_node', {'sync': {'slop_s': 'soon'}},
     "'sync.slop_s' = 'soon' is invalid: expected number"),
])
def test_bad_parameters_stop_the_node_naming_the_key_and_the_allowed_values(tmp_path, module, parameters, expected):
    assert expected in fatal_line(run_node(module, tmp_path, parameters))


def test_a_pickle_checkpoint_is_refused_at_start_up(tmp_path):
    (tmp_path / 'model.pt').write_bytes(pickle.dumps({'weights': np.zeros(3)}))
    line = fatal_line(run_node('planner.planner_node', tmp_path, {'checkpoint': str(tmp_path / 'model.pt')}))
    assert 'refusing a pickle checkpoint' in line


def test_a_corrupt_safetensors_file_is_one_line(tmp_path):
    directory = save_model(tmp_path / 'ckpt', seeded_model('tiny'), SensorEncoders.seeded(EncoderConfig()))
    data = (directory / 'model.safetensors').read_bytes()
    (directory / 'model.safetensors').write_bytes(data[:len(data) // 3])
    line = fatal_line(run_node('planner.planner_node', tmp_path, {'checkpoint': str(directory)}))
    assert 'corrupt safetensors' in line


def test_an_unreadable_config_stops_the_launcher_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, '-m', 'avstack.cli', 'up', '--config', str(tmp_path / 'nope.yaml')],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.count('\n') == 1 and 'cannot read config' in result.stderr
    bad = tmp_path / 'bad.yaml'
    bad.write_text(STACK_CONFIG.read_text().replace('timer_hz: 50.0', 'timer_hz: [50'))
    result = subprocess.run([sys.executable, '-m', 'avstack.cli', 'up', '--config', str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.count('\n') == 1 and 'not valid YAML' in result.stderr
