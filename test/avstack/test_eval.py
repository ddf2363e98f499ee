"""``avstack eval``: deterministic output, a consistent report, the plots; and the report's arithmetic."""

import json

import numpy as np
import pytest
import xxhash
import yaml
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import Reader

from avstack import cli
from avstack.bag.codec import deserialize
from avstack.offline.report import OdometryTrack, PlannedPath, constant_velocity_plans, open_loop_errors
from avstack.synthetic.bag import START_NS, SyntheticBagSpec, write_synthetic_bag
from stack_common import topics
from stack_common.camera_info import Intrinsics, intrinsics_to_camera_info
from stack_common.config import merge_documents, read_params_file
from stack_common.odometry import EgoState
from stack_common.tokens import Modality, cloud_to_tokens
from stack_common.trajectory import path_to_trajectory

from bagtools import small_bag
from support import STACK_CONFIG

OUTPUT_TOPICS = {topics.FUSED_TOKENS, topics.TRAJECTORY, topics.ASSESSMENT, topics.TAKEOVER_REQUEST,
                 topics.EVAL_INPUT_BAG}
STRING = 'std_msgs/msg/String'
INPUT_TOPICS = {topics.camera_topic('front'), topics.lidar_topic('top'), topics.ODOMETRY}
# Fields that depend on the machine's speed, not on the bag, config and checkpoint.
TIMING_FIELDS = ('compute_ms', 'wall_s', 'real_time_factor', 'cpu_s_per_bag_s')


@pytest.fixture(scope='module')
def full_size_bag(tmp_path_factory):
    """4 s of the full rig: 1280x720 camera and ~100k-point lidar at 10 Hz, odometry at 50 Hz."""
    return write_synthetic_bag(tmp_path_factory.mktemp('eval') / 'bag', SyntheticBagSpec(duration_s=4.0))


def read_output(path):
    with Reader(path) as reader:
        return [(c.topic, c.msgtype, t, bytes(d)) for c, t, d in reader.messages()]


def test_eval_is_deterministic_and_its_report_is_consistent(full_size_bag, tmp_path, capsys):
    outputs = []
    for run, options in (('first', []), ('second', ['--with-inputs'])):
        assert cli.main(['eval', str(full_size_bag), '--out', str(tmp_path / run), *options]) == 0
        outputs.append(tmp_path / run)
    summary = capsys.readouterr().out
    assert 'real time' in summary and 'ADE' in summary

    first, second = (read_output(out / 'output.mcap') for out in outputs)
    # the stack's outputs are the same bytes at the same times, with or without the inputs copied in
    assert first == [m for m in second if m[0] not in INPUT_TOPICS]
    assert {m[0] for m in first} == OUTPUT_TOPICS
    reference = json.loads(deserialize(next(m[3] for m in first if m[0] == topics.EVAL_INPUT_BAG), STRING).data)
    assert reference['path'] == str(full_size_bag.resolve())
    assert [(f['name'], f['size']) for f in reference['files']] == [
        (f.name, f.stat().st_size) for f in sorted(full_size_bag.glob('*.mcap'))]
    assert reference['files'][0]['xxh3_128'] == xxhash.xxh3_128(next(full_size_bag.glob('*.mcap')).read_bytes()
                                                                ).hexdigest()
    reports = [json.loads((out / 'report.json').read_text()) for out in outputs]
    for field in TIMING_FIELDS + ('bag',):
        reports[0].pop(field), reports[1].pop(field)
    assert reports[0] == reports[1]

    report = reports[0]
    assert report['frames'] >= 38 and 0 < report['trajectories'] <= report['frames']
    assert report['duration_s'] == pytest.approx(3.98, abs=0.05)
    assert report['distance_km'] == pytest.approx(8.0 * 3.98 / 1000, rel=0.02)   # the scene drives 8 m/s
    assert report['inputs'] == {topics.camera_topic('front'): 40, topics.lidar_topic('top'): 40, topics.ODOMETRY: 200}
    assert report['decode_errors'] == 0 and report['missing_sensors'] == {}
    for takeover in report['takeovers']:
        assert takeover['reasons'] and 0 <= takeover['time_s'] <= report['duration_s']
    if report['takeovers']:
        assert report['km_per_takeover'] == pytest.approx(report['distance_km'] / len(report['takeovers']), abs=1e-4)
    else:
        assert report['km_per_takeover'] is None
    for key in ('ade_m', 'fde_m'):
        assert set(report[key]) == {'1s', '2s', '3s'}
        assert all(v is None or v >= 0 for v in report[key].values())
    assert report['open_loop_samples']['1s'] > report['open_loop_samples']['3s'] > 0
    compute = json.loads((outputs[0] / 'report.json').read_text())['compute_ms']
    assert set(compute) == {'decode', 'perception', 'planner', 'critic'}
    assert all(0 < stage['p50_ms'] <= stage['p99_ms'] for stage in compute.values())
    for plot in ('paths.png', 'takeovers.png', 'latency.png'):
        assert (outputs[0] / plot).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'

    messages = second
    assert {m[0] for m in messages} == INPUT_TOPICS | OUTPUT_TOPICS
    with Reader(full_size_bag) as reader:
        recorded = [(c.topic, t, bytes(d)) for c, t, d in reader.messages()]
    assert [(t, lt, d) for t, _, lt, d in messages if t in INPUT_TOPICS] == recorded  # inputs copied unchanged
    paths = [path_to_trajectory(deserialize(d, msgtype)) for t, msgtype, _, d in messages if t == topics.TRAJECTORY]
    assert len(paths) == report['trajectories']
    assert sum(1 for m in messages if m[0] == topics.FUSED_TOKENS) == report['frames']
    camera_stamps = {deserialize(d, msgtype).header.stamp.sec * 10**9 + deserialize(d, msgtype).header.stamp.nanosec
                     for t, msgtype, _, d in messages if t == topics.camera_topic('front')}
    assert {p.stamp_ns for p in paths} <= camera_stamps   # every plan belongs to a recorded frame
    # The scene's own geometry is the oracle: its lane runs straight ahead of the ego (y = 0 in base_link at
    # every stamp), so the plans keep near it at 1 s. The shipped model was trained on the simulator's top-down
    # camera only; on this perspective camera it drifts (measured: mean 0.76 m to the left at 1 s), so the
    # bound is loose. The exact outputs, any offset included, are pinned by test_process_replay.
    lateral_1s = [float(np.interp(1.0, p.t_s, p.xy[:, 1])) for p in paths]
    assert abs(np.mean(lateral_1s)) < 1.5, lateral_1s


def straight_track(speed_mps=10.0, duration_s=10.0, rate_hz=50.0, yaw=0.3):
    t = np.arange(0, duration_s, 1 / rate_hz)
    return OdometryTrack.from_states([EgoState(int(round(s * 1e9)), speed_mps * s * np.cos(yaw),
                                               speed_mps * s * np.sin(yaw), yaw, speed_mps) for s in t])


def test_open_loop_error_against_the_logged_future():
    track = straight_track()
    t_s = np.arange(1, 9) * 0.5
    exact = PlannedPath(2_000_000_000, 2_000_000_000, t_s, np.stack([10.0 * t_s, 0 * t_s], 1))
    beside = PlannedPath(3_000_000_000, 3_000_000_000, t_s, np.stack([10.0 * t_s, 0 * t_s + 1.0], 1))
    errors = open_loop_errors(track, [exact])
    assert errors['ade_m']['3s'] == pytest.approx(0.0, abs=1e-6) and errors['fde_m']['1s'] == pytest.approx(0.0,
                                                                                                          abs=1e-6)
    errors = open_loop_errors(track, [exact, beside])
    assert errors['fde_m']['2s'] == pytest.approx(0.5) and errors['samples']['2s'] == 2
    late = PlannedPath(8_000_000_000, 8_000_000_000, t_s, np.stack([10.0 * t_s, 0 * t_s], 1))
    assert open_loop_errors(track, [late])['samples'] == {'1s': 1, '2s': 0, '3s': 0}   # the log ends at 10 s


def test_distance_skips_gaps_and_jumps():
    track = straight_track(duration_s=10.0)
    assert track.distance_m() == pytest.approx(10.0 * (10.0 - 0.02), rel=1e-6)
    states = [EgoState(int(t), x, y, yaw, v) for t, (x, y), yaw, v in
              zip(track.t_ns, track.xy, track.yaw, track.speed, strict=True)]
    end_ns = int(track.t_ns[-1])
    jumped = OdometryTrack.from_states(states + [EgoState(end_ns + 10**7, 5000.0, 0.0, 0.0, 10.0),
                                                 EgoState(end_ns + 2 * 10**7, 5000.1, 0.0, 0.0, 10.0)])
    assert jumped.distance_m() == pytest.approx(track.distance_m() + 0.1, rel=1e-6)


def test_open_loop_errors_skip_plans_whose_future_crosses_a_jump_and_the_baseline_is_constant_velocity():
    """Simulator episodes in one bag: the ego teleports; no plan is scored against the next episode."""
    first = [EgoState(int(s * 1e9), 10.0 * s, 0.0, 0.0, 10.0) for s in np.arange(0, 10, 0.02)]
    second = [EgoState(int(s * 1e9), 900.0 + 10.0 * s, 40.0, 0.0, 10.0) for s in np.arange(10, 20, 0.02)]
    track = OdometryTrack.from_states(first + second)
    t_s = np.arange(1, 9) * 0.5
    plans = [PlannedPath(int(s * 1e9), int(s * 1e9), t_s, np.stack([10.0 * t_s, 0 * t_s], 1)) for s in (8.5, 12.0)]
    errors = open_loop_errors(track, plans)
    assert errors['samples'] == {'1s': 2, '2s': 1, '3s': 1}   # 8.5 s + 2 s is in the next episode
    assert errors['ade_m']['3s'] == pytest.approx(0.0, abs=1e-6)
    baseline = open_loop_errors(track, constant_velocity_plans(track, plans))
    assert baseline['ade_m']['3s'] == pytest.approx(0.0, abs=1e-6) and baseline['samples'] == errors['samples']


def test_eval_without_odometry_runs_and_reports_no_distance(tmp_path, capsys):
    bag = small_bag(tmp_path / 'bag', odometry_topic='')
    assert cli.main(['eval', str(bag), '--out', str(tmp_path / 'out'), '--no-plots']) == 0
    report = json.loads((tmp_path / 'out' / 'report.json').read_text())
    assert report['trajectories'] > 0 and report['missing_sensors'].get('odometry') == report['frames']
    assert report['distance_km'] is None and report['km_per_takeover'] is None
    assert report['ade_m'] == {'1s': None, '2s': None, '3s': None}
    assert 'no odometry' in capsys.readouterr().out


def test_a_lockstep_recording_reports_duration_and_real_time_factor_from_the_sensor_stamps(tmp_path, capsys):
    """A lockstep simulator wrote 3 s of sim time in 1 s of wall time: the drive lasted 3 s, not 1 s."""
    bag = small_bag(tmp_path / 'bag', duration_s=3.0, recording_speedup=3.0)
    assert cli.main(['eval', str(bag), '--out', str(tmp_path / 'out'), '--no-plots']) == 0
    report = json.loads((tmp_path / 'out' / 'report.json').read_text())
    assert report['duration_s'] == pytest.approx(2.98, abs=0.01)       # first to last stamp, odometry at 50 Hz
    assert report['bag_duration_s'] == pytest.approx(2.98 / 3, abs=0.03)
    assert report['real_time_factor'] == pytest.approx(report['duration_s'] / report['wall_s'], rel=0.01)
    assert 'over 3.0 s of driving (sensor stamps; recorded over 1.0 s)' in capsys.readouterr().out


def test_a_camera_without_intrinsics_takes_them_from_the_bags_camera_info(tmp_path):
    """As live: K and D of the latest camera_info in the bag; until then the camera tokens have no position."""
    info = intrinsics_to_camera_info(Intrinsics(800.0, 800.0, 640.0, 360.0, (), (1280, 720)), 0, 'cam')
    topic = '/sensors/camera/front/camera_info'
    bag = write_synthetic_bag(tmp_path / 'bag', SyntheticBagSpec(duration_s=1.0, extra_messages=(
        (topic, 'sensor_msgs/msg/CameraInfo', 450_000_000, serialize_message(info)),)))
    config = tmp_path / 'camera_info.yaml'
    config.write_text(yaml.safe_dump(merge_documents(read_params_file(STACK_CONFIG), {'perception_node': {
        'ros__parameters': {'camera': {'front': {'intrinsics': [], 'camera_info_topic': topic}}}}})))
    assert cli.main(['eval', str(bag), '--out', str(tmp_path / 'out'), '--config', str(config), '--no-plots']) == 0
    report = json.loads((tmp_path / 'out' / 'report.json').read_text())
    assert report['inputs'][topic] == 1 and report['decode_errors'] == 0
    placed = {}
    for topic_name, type_name, _, data in read_output(tmp_path / 'out' / 'output.mcap'):
        if topic_name == topics.FUSED_TOKENS:
            tokens = cloud_to_tokens(deserialize(data, type_name))
            camera = tokens.anchors[tokens.modality == Modality.CAMERA]
            placed[tokens.stamp_ns] = int(np.isfinite(camera).all(axis=1).sum())
    before = [n for stamp, n in placed.items() if stamp < START_NS + 400_000_000]
    after = [n for stamp, n in placed.items() if stamp >= START_NS + 500_000_000]
    # 17 of the 32 camera patches see the ground once intrinsics came (measured)
    assert before and after and not any(before) and all(n > 10 for n in after), placed
