"""Process replay: the stack's outputs on the generated reference bag match the stored references, and a change
is reported readably (topic, how many messages differ, the largest change) while last-bit noise is not.

After an intended change of outputs (a new checkpoint): `make update-refs`, and commit the new references.
"""

import copy
import json

import pytest

from avstack.offline import process_replay
from avstack.offline.process_replay import compare, digest
from stack_common import topics

from support import REPO

REFERENCE = REPO / 'test' / 'references' / 'process_replay.json'


@pytest.fixture(scope='module')
def current() -> dict:
    return process_replay.current_document()


def test_the_stacks_outputs_match_the_stored_references(current):
    reference = json.loads(REFERENCE.read_text())
    differences = compare(reference, current)
    assert not differences, '\n'.join(d.describe() for d in differences) + '\n(intended? `make update-refs`)'
    assert current['outputs'][topics.TRAJECTORY] and current['outputs'][topics.FUSED_TOKENS]
    takeovers = [m for m in current['outputs'][topics.TAKEOVER_REQUEST] if m['reasons']]
    assert takeovers and 'collision' in takeovers[0]['reasons'], 'the car parked in the lane is taken over'


def test_the_same_run_twice_gives_the_same_digests(current):
    assert process_replay.current_document()['digests'] == current['digests']


def test_a_moved_waypoint_is_reported_with_its_topic_count_and_size(current):
    changed = copy.deepcopy(current)
    plan = changed['outputs'][topics.TRAJECTORY][3]
    plan['waypoints'][5][2] += 500                        # 5 cm sideways (stored in 0.1 mm)
    (difference,) = compare(current, changed)
    text = difference.describe()
    assert text.startswith(f'{topics.TRAJECTORY}: ') and '1 differ' in text
    assert 'largest waypoint change 0.050 m' in text and 't=3.0 s' in text


def test_changed_tokens_and_a_lost_takeover_are_reported(current):
    changed = copy.deepcopy(current)
    changed['outputs'][topics.FUSED_TOKENS][0]['lidar'][4] *= 1.01
    changed['outputs'][topics.TAKEOVER_REQUEST] = [m for m in changed['outputs'][topics.TAKEOVER_REQUEST]
                                                   if not m['reasons']]
    differences = {d.topic: d for d in compare(current, changed)}
    assert set(differences) == {topics.FUSED_TOKENS, topics.TAKEOVER_REQUEST}
    assert 'largest token change 1.00e-02 (relative, lidar tokens' in differences[topics.FUSED_TOKENS].describe()
    assert 'only on one side' in differences[topics.TAKEOVER_REQUEST].describe()


def test_last_bit_differences_change_a_digest_at_most_and_pass(current):
    noisy = copy.deepcopy(current)
    for plan in noisy['outputs'][topics.TRAJECTORY]:
        plan['waypoints'][0][1] += 1                      # 0.1 mm: a rounding boundary crossed
    tokens = noisy['outputs'][topics.FUSED_TOKENS][0]
    tokens['camera'][3] *= 1 + 1e-6
    assert digest(noisy['outputs'][topics.TRAJECTORY]) != current['digests'][topics.TRAJECTORY]
    assert compare(current, noisy) == []


def test_check_and_update_are_one_command_each_with_exit_codes(current, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(process_replay, 'current_document', lambda: current)
    reference = tmp_path / 'refs.json'
    assert process_replay.main(['check', str(reference)]) == 2 and 'make update-refs' in capsys.readouterr().err
    assert process_replay.main(['update', str(reference)]) == 0
    assert process_replay.main(['check', str(reference)]) == 0
    stored = json.loads(reference.read_text())
    stored['outputs'][topics.TRAJECTORY][0]['waypoints'][7][1] += 2_000
    reference.write_text(json.dumps(stored))
    assert process_replay.main(['check', str(reference)]) == 1
    out = capsys.readouterr().out
    assert f'{topics.TRAJECTORY}: 60 messages, 1 differ; largest waypoint change 0.200 m' in out
