"""The shipped default checkpoint: it fits the shipped configs, the nodes load it without a warning, and it
was trained (its weights are not the fixed-seed initialisation)."""

import json

import pytest
import torch
import yaml

from perception_llm.fusion import SensorEncoders
from perception_llm.weights import load_encoders
from planner.loading import load_planner, seeded_model
from stack_common.checkpoint import DEFAULT_CHECKPOINT
from stack_common.config import load_node_config, merge_documents, read_params_file

from support import REPO, STACK_CONFIG

SIM_CONFIG = REPO / 'config' / 'sim.yaml'


def test_it_is_small_enough_to_ship_and_says_how_it_was_made():
    files = {p.name: p.stat().st_size for p in DEFAULT_CHECKPOINT.iterdir()}
    assert set(files) == {'model.safetensors', 'config.json', 'TRAINING.md'}
    assert sum(files.values()) <= 25 * 2**20
    assert json.loads((DEFAULT_CHECKPOINT / 'config.json').read_text())['training']['preset'] == 'tiny'
    assert 'avstack train' in (DEFAULT_CHECKPOINT / 'TRAINING.md').read_text()


@pytest.mark.parametrize('configs', [(STACK_CONFIG,), (STACK_CONFIG, SIM_CONFIG)], ids=['stack', 'stack+sim'])
def test_the_nodes_load_it_by_default_without_a_warning(configs, tmp_path):
    params = tmp_path / 'params.yaml'
    params.write_text(yaml.safe_dump(merge_documents(*(read_params_file(p) for p in configs))))
    perception = load_node_config('perception_llm', 'perception_node', params)
    planner = load_node_config('planner', 'planner_node', params)
    assert perception['checkpoint'] == planner['checkpoint'] == ''

    encoders, encoder_note = load_encoders(perception)
    core, planner_note = load_planner(planner)
    assert encoder_note is None and planner_note is None
    assert core.source == str(DEFAULT_CHECKPOINT)
    trained, seeded = encoders.state_dict(), SensorEncoders.seeded(encoders.config).state_dict()
    assert any(not torch.equal(trained[k], seeded[k]) for k in trained)
    trained, seeded = core.model.state_dict(), seeded_model('tiny').state_dict()
    assert any(not torch.equal(trained[k], seeded[k]) for k in trained)
