"""Training: labels from logs, outcome scores, the cached dataset, the joint train loop, and DDP over 2 CPUs."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from avstack.offline.stack import OfflineConfig
from avstack.synthetic.scene import SyntheticScene
from perception_llm.pipeline import PerceptionCore
from planner.model import SCORE_TERMS
from planner.presets import preset_configs
from planner.training.dataset import CachedFrames, FrameCacheWriter, field_specs, is_complete
from planner.training.frames import LogLabels, SceneInfo, frame_record, obstacle_points, parse_scene_info
from planner.training.labels import (
    OutcomeRules, candidate_set, constant_velocity, displacement_errors, future_poses, outcome_scores)
from planner.training.train import TrainOptions, split_episodes, train
from sim_bridge.simulation import SimulationCore
from stack_common.config import load_node_config, load_schema, merge_documents, read_params_file, validate
from stack_common.odometry import EgoState

from support import REPO, STACK_CONFIG

T_S = np.arange(1, 9) * 0.5
RULES = OutcomeRules.from_critic(load_node_config('critic_monitor', 'critic_node', STACK_CONFIG))
TERM = {name: i for i, name in enumerate(SCORE_TERMS)}


def test_future_poses_are_in_base_link_of_the_frame():
    # the ego drives along a circle of radius 20 m, counter-clockwise, starting heading north (yaw pi/2)
    t = np.linspace(0, 10, 201)
    angle = t * 0.5
    xy = np.stack([20 * np.cos(angle), 20 * np.sin(angle)], 1)
    yaw = angle + np.pi / 2
    poses = future_poses(t, xy, yaw, 2.0, T_S)
    expected_angle = 0.5 * T_S
    np.testing.assert_allclose(poses[:, 0], 20 * np.sin(expected_angle), atol=0.05)
    np.testing.assert_allclose(poses[:, 1], 20 * (1 - np.cos(expected_angle)), atol=0.05)
    np.testing.assert_allclose(poses[:, 2], expected_angle, atol=1e-3)
    assert future_poses(t, xy, yaw, 7.0, T_S) is None  # the log ends before the horizon


def test_displacement_errors_and_constant_velocity():
    truth = constant_velocity(10.0, T_S)
    shifted = truth + [0.0, 2.0, 0.0]
    assert displacement_errors(shifted, truth, T_S, 3.0) == (2.0, 2.0)
    assert displacement_errors(truth, truth, T_S, 3.0) == (0.0, 0.0)


def scene(traffic=(), lanes_y=(0.0, 4.0), speed=10.0, previous=None):
    """One frame's labels: other vehicles as (x0, y0, vx) moving straight along x, lane centre lines along x."""
    steps = 40
    t = 0.1 * np.arange(1, steps + 1)
    boxes = np.zeros((16, steps, 5))
    mask = np.zeros((16, steps), bool)
    for i, (x0, y0, vx) in enumerate(traffic):
        boxes[i, :, 0], boxes[i, :, 1], boxes[i, :, 3], boxes[i, :, 4] = x0 + vx * t, y0, 5.0, 2.0
        mask[i] = True
    lanes = np.array([[x, y] for y in lanes_y for x in np.arange(-20, 140, 2.0)])
    expert = constant_velocity(speed, T_S)
    return {'future': expert, 'speed_mps': speed, 'traffic': boxes, 'traffic_mask': mask,
            'lanes': lanes, 'lanes_mask': np.ones(len(lanes), bool), 'obstacles': np.zeros((1, 2)),
            'obstacle_mask': np.zeros(1, bool), 'previous': expert if previous is None else previous,
            'previous_pose': np.array([-speed * 0.1, 0.0, 0.0]), 'previous_offset_s': 0.1, 'previous_valid': True}


def scores(candidates, frame):
    return outcome_scores(np.asarray(candidates, np.float64), frame, 0.5, RULES)[0]


def test_a_car_where_the_plan_will_be_is_a_collision_and_one_behind_or_beside_it_is_not():
    straight = constant_velocity(10.0, T_S)
    slower_ahead = scene(traffic=[(15.0, 0.0, 5.0)])     # caught up with after about 2 s
    behind = scene(traffic=[(-15.0, 0.0, 15.0)])         # runs into the ego from behind: not its fault
    beside = scene(traffic=[(0.0, 4.0, 10.0)])           # the next lane, same speed
    assert scores([straight], slower_ahead)[0, TERM['collision_free']] == 0.0
    assert scores([straight], behind)[0, TERM['collision_free']] == 1.0
    assert scores([straight], beside)[0, TERM['collision_free']] == 1.0
    braking = np.stack([np.where(T_S < 2.0, 10 * T_S - 2.5 * T_S ** 2, 10.0), 0 * T_S, 0 * T_S], 1)   # stops in 10 m
    assert scores([braking], slower_ahead)[0, TERM['collision_free']] == 1.0


def test_leaving_the_lanes_is_off_road_and_changing_lanes_is_not():
    frame = scene()
    straight = constant_velocity(10.0, T_S)
    change = candidate_set(straight, 10.0, 0.5)[12]     # 4 m to the left: the other lane
    off = candidate_set(straight, 10.0, 0.5)[13]        # 4 m to the right: no lane there
    result = scores([straight, change, off], frame)[:, TERM['on_road']]
    np.testing.assert_array_equal(result, [1.0, 1.0, 0.0])


def test_the_critics_own_checks_judge_comfort_room_to_stop_and_consistency():
    frame = scene(speed=15.0, previous=constant_velocity(15.0, T_S))
    cruise = constant_velocity(15.0, T_S)
    swerve = cruise.copy()
    swerve[3:, 1] = 6.0                                   # 6 m sideways in half a second
    hard_stop = np.stack([np.where(T_S < 1.5, 15 * T_S - 5 * T_S ** 2, 11.25), 0 * T_S, 0 * T_S], 1)   # 10 m/s^2
    jumped = candidate_set(cruise, 15.0, 0.5)[12]          # a smooth lane change the previous plan did not have
    result = scores([cruise, swerve, hard_stop, jumped], frame)
    np.testing.assert_array_equal(result[:, TERM['comfortable']], [1, 0, 0, 1])
    np.testing.assert_array_equal(result[:, TERM['can_stop']], [1, 1, 0, 1])
    np.testing.assert_array_equal(result[:, TERM['consistent']], [1, 1, 0, 0])   # the swerve comes after 1 s


def sim_config(**overrides) -> dict:
    params = read_params_file(REPO / 'config' / 'sim.yaml')['bridge_node']['ros__parameters']
    return validate(load_schema('sim_bridge', 'bridge_node'), {**params, **overrides}, 'bridge_node')


@pytest.mark.parametrize('scenario', ['highway-v0', 'roundabout-v0'])
def test_the_experts_own_plan_scores_as_safe_on_held_out_frames(scenario, tmp_path):
    """The labels must not penalise the expert: its own plans collide with nothing and stay on the road."""
    core = SimulationCore(sim_config(scenarios=[scenario], driver='expert', seed=950, duration_s=12.0,
                                     relabel=True))
    core.start_next_episode()
    track, infos, plans = [], [], {}
    while core.record is not None:
        frame = core.sense()
        track.append(frame.ego)
        infos.append(parse_scene_info(frame.scene))
        plans[frame.stamp_ns] = np.concatenate([frame.expert_plan.xy, frame.expert_plan.heading[:, None]], 1)
        core.step()
    core.close()
    cfg, _ = preset_configs('tiny')
    params = tmp_path / 'params.yaml'
    params.write_text(yaml.safe_dump(merge_documents(read_params_file(STACK_CONFIG),
                                                     read_params_file(REPO / 'config' / 'sim.yaml'))))
    rules = OutcomeRules.from_critic(OfflineConfig.load(params).critic)
    labels = LogLabels(track, infos, cfg, plans)
    verdicts = []
    for state in track[:-40]:
        frame = labels.for_frame(state.stamp_ns)
        frame |= {'obstacles': np.zeros((1, 2)), 'obstacle_mask': np.zeros(1, bool)}
        verdicts.append(outcome_scores(frame['future'][None].astype(np.float64), frame, 0.5, rules)[0][0])
    verdicts = np.array(verdicts)
    assert verdicts[:, TERM['collision_free']].mean() == 1.0
    assert verdicts[:, TERM['on_road']].mean() >= 0.98, verdicts[:, TERM['on_road']].mean()


def make_cache(directory, frames=80, seed=0, episodes=1):
    """Synthetic frames through the live perception preprocessing, speeds changing every 10 frames; the
    frames belong to ``episodes`` episodes of equal length."""
    cfg, _ = preset_configs('tiny')
    perception = PerceptionCore(load_node_config('perception_llm', 'perception_node', STACK_CONFIG))
    encoder_cfg = perception.encoder_config
    writer = FrameCacheWriter(directory, frames, field_specs(encoder_cfg, cfg, cameras=1),
                              {'source': 'synthetic', 'seed': seed})
    track, states, x = [], [], 0.0
    for i in range(frames + 50):   # the odometry runs 5 s past the last frame: the labels need the future
        speed = 3.0 + 2.0 * ((i // 10 + seed) % 5)
        states.append((i * 0.1, speed, x))
        track.append(EgoState(int(i * 1e8) + 1, x, 0.0, 0.0, speed))
        x += speed * 0.1
    labels = LogLabels(track, [], cfg)
    for i, ((t, speed, x), ego) in enumerate(zip(states[:frames], track, strict=False)):
        scene_ = SyntheticScene(speed_mps=speed)
        perception.add_odometry(ego)
        perception.add_camera('front', ego.stamp_ns, scene_.camera(x / speed), ego.stamp_ns)
        lidar = scene_.lidar(x / speed)
        xyz = np.stack([lidar['x'], lidar['y'], lidar['z']], 1)
        synced = perception.add_lidar('top', ego.stamp_ns, xyz, lidar['intensity'] / 255, ego.stamp_ns)
        label = labels.for_frame(ego.stamp_ns) | {'episode': i * episodes // frames}
        record = frame_record(perception.preprocess(synced[0]), label, encoder_cfg.bev_grid, cfg.dt_s, RULES)
        record['tags'] = (np.arange(5) == int(t * 10) % 5).astype(np.float32)
        record['tags_valid'] = True
        writer.append(record)
    return writer.close()


def test_cache_round_trip_and_a_split_by_whole_episodes(tmp_path):
    directory = make_cache(tmp_path / 'cache', frames=20, episodes=4)
    assert is_complete(directory, {'source': 'synthetic', 'seed': 0})
    assert not is_complete(directory, {'source': 'synthetic', 'seed': 1})
    frames = CachedFrames(directory)
    assert len(frames) == 20 and frames[3]['images'].dtype == torch.uint8
    # 0.7 s at 3 m/s, then 1 s each at 5, 7 and 9 m/s, then 0.3 s at 11 m/s
    assert frames[3]['future'][-1, 0] == pytest.approx(0.7 * 3 + 5 + 7 + 9 + 0.3 * 11, abs=0.05)
    assert frames[3]['camera_present'].all() and frames[3]['lidar_present']
    assert frames[3]['candidates'].shape == (16, 8, 3)
    assert frames[3]['candidate_scores'][0, TERM['progress']] == pytest.approx(1.0)   # the expert's own plan
    [train_idx], [val_idx] = split_episodes([frames], 0.25, seed=0)
    episodes = frames.episodes()
    assert len(val_idx) == 5 and not set(episodes[train_idx]) & set(episodes[val_idx])


@pytest.mark.timeout(300)
def test_loss_falls_within_a_few_steps_and_the_best_checkpoint_is_kept(tmp_path):
    cache = make_cache(tmp_path / 'cache', episodes=5)
    cfg, encoder_cfg = preset_configs('tiny', d_model=64, n_layers=2, n_heads=2)
    summary = train([cache], tmp_path / 'run', cfg, encoder_cfg,
                    TrainOptions(epochs=6, batch_size=8, warmup_steps=3, learning_rate=2e-3,
                                 validation_fraction=0.2), RULES)
    history = summary['history']
    first, last = history[0]['train']['trajectory'], history[-1]['train']['trajectory']
    # measured 1.52 -> 0.63, 0.41 of the first epoch's trajectory loss (smooth L1 on positions; the same every
    # run): a model that cannot learn stays near its first epoch
    assert last < 0.5 * first, [h['train']['trajectory'] for h in history]
    log = [json.loads(line) for line in (tmp_path / 'run' / 'metrics.jsonl').read_text().splitlines()]
    assert [r['epoch'] for r in log] == list(range(1, 7)) and 'ade_3s' in log[-1]['validation']
    document = json.loads((tmp_path / 'run' / 'config.json').read_text())
    best_epoch = min(log, key=lambda r: r['validation']['ade_3s'])['epoch']
    assert document['training']['epoch'] == best_epoch
    from planner.checkpoint import load_model
    model, _, _ = load_model(tmp_path / 'run')
    assert float(model.analyst_inv_var.mean()) != 1.0   # novelty statistics were fitted
    assert list(model.cfg.score_weights) == summary['selection']['score_weights']   # tuned weights are kept


@pytest.mark.timeout(300)
def test_ddp_with_two_cpu_processes(tmp_path):
    cache = make_cache(tmp_path / 'cache', frames=40, episodes=4)
    script = tmp_path / 'ddp.py'
    script.write_text(f'''
import torch
from planner.presets import preset_configs
from planner.training.labels import OutcomeRules
from planner.training.train import TrainOptions, train
from stack_common.config import load_node_config
torch.set_num_threads(1)
rules = OutcomeRules.from_critic(load_node_config('critic_monitor', 'critic_node', {str(STACK_CONFIG)!r}))
cfg, encoder_cfg = preset_configs('tiny', d_model=32, n_layers=1, n_heads=2)
train([{str(cache)!r}], {str(tmp_path / 'run')!r}, cfg, encoder_cfg,
      TrainOptions(epochs=1, batch_size=4, max_steps=3, warmup_steps=1), rules)
''')
    env = dict(os.environ, OMP_NUM_THREADS='1', MASTER_ADDR='127.0.0.1')
    result = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
                             '--master_port', str(29500 + os.getpid() % 1000), str(script)],
                            capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / 'run' / 'summary.json').read_text())
    assert summary['steps'] == 3 and summary['frames']['train'] > 0
    assert math.isfinite(summary['history'][0]['train']['total'])


def test_log_labels_put_future_traffic_and_tags_in_the_frame_of_the_stamp():
    cfg, _ = preset_configs('tiny')
    # the ego drives north (yaw pi/2) at 10 m/s from (100, 0); a car 20 m ahead of it drives north at 5 m/s
    track = [EgoState(int(t * 1e9), 100.0, 10.0 * t, np.pi / 2, 10.0) for t in np.arange(0, 10, 0.1)]
    infos = [SceneInfo(int(t * 1e9), {'dense_traffic': True}, np.array([[100.0, 20 + 5.0 * t, np.pi / 2, 5.0, 5, 2]]),
                       np.zeros((0, 2)), 'highway-v0/3') for t in np.arange(0, 10, 0.1)]
    labels = LogLabels(track, infos, cfg).for_frame(int(2e9))
    np.testing.assert_allclose(labels['future'][:, 0], 10.0 * T_S, atol=1e-6)
    np.testing.assert_allclose(labels['future'][:, 1], 0.0, atol=1e-6)
    # relative to the ego at t=2 s (y=20): the car is at 20 + 5 (2 + t) - 20 = 10 + 5 t ahead, straight on
    t = 0.1 * np.arange(1, 41)
    np.testing.assert_allclose(labels['traffic'][0, :, 0], 10 + 5.0 * t, atol=1e-3)
    np.testing.assert_allclose(labels['traffic'][0, :, 2:], [[0.0, 5.0, 2.0]] * 40, atol=1e-5)
    assert labels['traffic_mask'][0].all() and not labels['traffic_mask'][1:].any()
    assert labels['tags_valid'] and labels['tags'][cfg.scene_tags.index('dense_traffic')] == 1.0
    assert LogLabels(track, [], cfg).for_frame(int(2e9))['tags_valid'] is False


def test_the_experts_plan_is_the_label_where_the_log_has_one_and_the_previous_one_is_in_its_own_frame():
    cfg, _ = preset_configs('tiny')
    track = [EgoState(int(t * 1e9), 10.0 * t, 0.0, 0.0, 10.0) for t in np.arange(0, 10, 0.1)]
    swerve = np.stack([10.0 * T_S, 0.5 * T_S, 0.1 * np.ones(8)], 1)
    plans = {int(2.0e9): swerve, int(2.1e9): swerve + [0.0, 0.2, 0.0]}
    labels = LogLabels(track, [], cfg, plans)
    at = labels.for_frame(int(2.1e9))
    np.testing.assert_allclose(at['future'], swerve + [0.0, 0.2, 0.0])
    np.testing.assert_allclose(at['previous'], swerve)                        # in its own base_link
    np.testing.assert_allclose(at['previous_pose'], [-1.0, 0.0, 0.0], atol=1e-6)   # 0.1 s back at 10 m/s
    assert at['previous_offset_s'] == pytest.approx(0.1) and at['expert_label']
    without = labels.for_frame(int(5.0e9))   # no plan at that stamp: the logged future
    np.testing.assert_allclose(without['future'][:, 0], 10.0 * T_S, atol=1e-6) and not without['expert_label']


def test_obstacle_points_are_the_tall_cells_not_the_road():
    cfg = PerceptionCore(load_node_config('perception_llm', 'perception_node', STACK_CONFIG)).encoder_config
    grid = cfg.bev_grid
    road = np.stack(np.meshgrid(np.arange(0, 40, 0.2), np.arange(-5, 5, 0.2)), -1).reshape(-1, 2)
    pole = np.array([[12.2, 3.1, z] for z in np.arange(0.0, 2.0, 0.1)])
    points = np.concatenate([np.column_stack([road, np.zeros(len(road))]), pole]).astype(np.float32)
    obstacles, mask = obstacle_points(grid.features(points), grid)
    assert mask.sum() == 1
    np.testing.assert_allclose(obstacles[0], [12.25, 3.25], atol=grid.cell_size_m)


def test_a_frame_whose_future_crosses_a_jump_in_the_track_has_no_label():
    """Simulator episodes in one bag: the ego teleports to the next episode's start."""
    cfg, _ = preset_configs('tiny')
    first = [EgoState(int(t * 1e9), 10.0 * t, 0.0, 0.0, 10.0) for t in np.arange(0, 10, 0.1)]
    second = [EgoState(int(t * 1e9), 500.0 + 10.0 * (t - 10), 50.0, 0.0, 10.0) for t in np.arange(10, 20, 0.1)]
    labels = LogLabels(first + second, [], cfg)
    assert labels.for_frame(int(5.9e9)) is not None           # its 4 s future ends at 9.9 s, before the jump
    assert labels.for_frame(int(6.5e9)) is None               # crosses the jump at 10 s
    assert labels.for_frame(int(10.0e9)) is not None
    np.testing.assert_allclose(labels.for_frame(int(10.0e9))['future'][:, 0], 10.0 * T_S, atol=1e-6)
