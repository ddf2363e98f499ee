"""`avstack mine`: clips around the model's most novel, doubtful or rare moments, with the reasons."""

import json

from rosbags.rosbag2 import Reader

from avstack.cli import main
from avstack.offline.mining import Moment, score, select
from avstack.synthetic.bag import SyntheticBagSpec, write_synthetic_bag

from bagtools import SMALL_SCENE


def test_mined_clips_open_with_rosbags_and_cover_the_flagged_moments(tmp_path, capsys):
    bag = write_synthetic_bag(tmp_path / 'drive', SyntheticBagSpec(duration_s=4.0), SMALL_SCENE)
    assert main(['mine', str(bag), '--out', str(tmp_path / 'mined'), '--top', '2', '--duration', '1.0']) == 0
    # times are seconds into the bag, not epoch seconds
    offsets = [float(line.split(' at ')[1].split(' s:')[0]) for line in capsys.readouterr().out.splitlines()
               if ' at ' in line]
    assert len(offsets) == 2 and all(0.0 <= s <= 4.0 for s in offsets), offsets
    index = json.loads((tmp_path / 'mined' / 'index.json').read_text())
    assert index['frames'] > 20 and len(index['clips']) == 2
    first, second = index['clips']
    assert first['score'] >= second['score'] and abs(first['log_time_ns'] - second['log_time_ns']) >= 1e9
    for clip in index['clips']:
        assert clip['reasons'] and clip['start_ns'] <= clip['log_time_ns'] < clip['end_ns']
        with Reader(tmp_path / 'mined' / clip['clip']) as reader:
            times = [t for _, t, _ in reader.messages()]
            assert {c.topic for c in reader.connections} >= {'/sensors/camera/front/image_raw',
                                                              '/sensors/lidar/top/points', '/vehicle/odometry'}
        assert min(times) >= clip['start_ns'] and max(times) < clip['end_ns']
        assert min(times) <= clip['log_time_ns'] <= max(times)


def moment(t_s, novelty=1.0, plan_score=0.9, tags=()):
    return Moment('bag', int(t_s * 1e9), int(t_s * 1e9), novelty, plan_score, list(tags))


def test_ranking_prefers_novel_doubtful_and_rare_and_spaces_the_clips():
    moments = [moment(t / 10) for t in range(100)]
    moments[10] = moment(1.0, novelty=9.0)
    moments[11] = moment(1.1, novelty=8.0)                 # the same moment: merged into the clip of 1.0 s
    moments[50] = moment(5.0, plan_score=0.05)
    moments[80] = moment(8.0, tags=['cut_in'])
    chosen = select(score(moments), 3, int(2e9))
    assert sorted(m.stamp_ns / 1e9 for m in chosen) == [1.0, 5.0, 8.0]
    reasons = {m.stamp_ns / 1e9: m.reasons for m in chosen}
    assert 'novelty' in reasons[1.0][0] and 'low plan score' in reasons[5.0][0]
    assert reasons[8.0] == ['rare tags: cut_in']
