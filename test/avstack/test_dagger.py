"""DAgger end to end: the expert's round, then a round the model drives over real DDS, relabelled and retrained."""

import json

import pytest

from avstack.bag.codec import deserialize
from avstack.bag.reader import open_bag
from avstack.cli import main
from planner.checkpoint import load_model
from stack_common import topics
from stack_common.timeutil import stamp_to_ns


@pytest.mark.timeout(600)
def test_every_round_drives_relabels_and_trains_on_the_union(ros_domain, tmp_path):
    assert main(['sim', '--scenario', 'merge-v0', '--driver', 'expert', '--relabel', '--duration', '3',
                 '--seed', '950', '--out', str(tmp_path / 'val')]) == 0
    code = main(['dagger', '--out', str(tmp_path / 'dagger'), '--rounds', '1', '--scenario', 'merge-v0',
                 '--episodes', '1', '--expert-episodes', '1', '--duration', '4', '--epochs', '1',
                 '--finetune-epochs', '1', '--val-data', str(tmp_path / 'val' / 'run_mcap')])
    assert code == 0
    record = json.loads((tmp_path / 'dagger' / 'dagger.json').read_text())
    expert, model = record['rounds']
    assert expert['driver'] == 'expert' and expert['seed'] == 0
    assert model['driver'] == 'model' and model['seed'] == 300 and model['checkpoint_driving'] == expert['checkpoint']
    assert model['drive']['km'] > 0.05 and 'ade_3s' in model['validation']
    # the model's drive is relabelled: every camera frame has the expert's plan from that state
    with open_bag(model['bag']) as bag:
        cameras = {stamp_to_ns(deserialize(m.data, m.type_name).header.stamp)
                   for m in bag.messages([topics.camera_topic('front')])}
        plans = {stamp_to_ns(deserialize(m.data, m.type_name).header.stamp)
                 for m in bag.messages([topics.SIM_EXPERT_PLAN])}
    assert cameras and cameras <= plans
    # round 1 trained on both rounds' caches, from round 0's weights
    _, _, document = load_model(tmp_path / 'dagger' / 'final')
    assert len(document['training']['data']) == 2 and document['training']['dagger_round'] == 1
    assert record['final']['round'] == 1
