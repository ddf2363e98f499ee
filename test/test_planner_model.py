"""The driving model: presets, shapes, checkpoints and the planner core."""

import json

import numpy as np
import pytest
import torch

from perception_llm.fusion import SensorEncoders
from planner.checkpoint import load_model, save_model
from planner.model import DrivingModel, init_weights
from planner.planning import PlannerCore, pad_tokens
from planner.presets import PRESETS, preset_configs
from planner.sizing import measure
from stack_common.checkpoint import CheckpointError
from stack_common.tokens import Modality, TokenSet


def small_model(seed: int = 0):
    cfg, encoder_cfg = preset_configs('tiny', d_model=32, n_layers=1, n_heads=2)
    model = DrivingModel(cfg)
    init_weights(model, seed)
    return model.eval(), SensorEncoders.seeded(encoder_cfg)


def random_inputs(cfg, batch=2, real=300, seed=0):
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch, cfg.max_tokens, cfg.token_dim, generator=generator)
    anchors = torch.randn(batch, cfg.max_tokens, 3, generator=generator) * 20
    anchors[:, :50] = float('nan')
    mask = torch.zeros(batch, cfg.max_tokens, dtype=torch.bool)
    mask[:, :real] = True
    modality = torch.full((batch, cfg.max_tokens), int(Modality.LIDAR), dtype=torch.uint8)
    modality[:, real - 1] = Modality.EGO
    return tokens, anchors, mask, torch.zeros(batch, dtype=torch.long), modality


def test_tiny_preset_fits_the_cpu_budget_and_40b_is_40b_class():
    tiny = measure(*preset_configs('tiny'))
    assert tiny.total_parameters <= 10_000_000
    big = measure(*preset_configs('40b'))
    assert 30e9 <= big.total_parameters <= 50e9
    assert big.total_flops > 1000 * tiny.total_flops
    sizes = [measure(*preset_configs(name)).total_parameters for name in PRESETS]
    assert sizes == sorted(sizes)


def test_output_shapes_and_ranges():
    model, _ = small_model()
    cfg = model.cfg
    with torch.no_grad():
        out = model(*random_inputs(cfg))
    assert out.trajectories.shape == (2, cfg.n_modes, cfg.horizon, 3)
    assert out.mode_logits.shape == out.plan_score.shape == (2, cfg.n_modes)
    assert out.tag_logits.shape == (2, len(cfg.scene_tags))
    for scores in (out.collision_risk, out.progress, out.comfort, out.plan_score):
        assert bool(((scores >= 0) & (scores <= 1)).all())
    assert bool(torch.isfinite(out.trajectories).all()) and out.novelty.shape == (2,)


def test_padding_slots_do_not_change_the_plan():
    model, _ = small_model()
    tokens, anchors, mask, route, modality = random_inputs(model.cfg)
    with torch.no_grad():
        first = model(tokens, anchors, mask, route, modality).trajectories
        tokens[:, 300:] = torch.randn_like(tokens[:, 300:]) * 100
        modality[:, 300:] = Modality.EGO
        second = model(tokens, anchors, mask, route, modality).trajectories
    torch.testing.assert_close(first, second)


def test_route_command_changes_the_plan():
    model, _ = small_model()
    tokens, anchors, mask, _, modality = random_inputs(model.cfg)
    with torch.no_grad():
        follow = model(tokens, anchors, mask, torch.tensor([0, 0]), modality).trajectories
        left = model(tokens, anchors, mask, torch.tensor([4, 4]), modality).trajectories
    assert not torch.allclose(follow, left)


def test_every_mode_is_a_residual_over_driving_on_at_the_ego_tokens_speed():
    model, _ = small_model()
    tokens, anchors, mask, route, modality = random_inputs(model.cfg)
    with torch.no_grad():
        model.ego_speed_head.weight.zero_()
        model.ego_speed_head.bias.fill_(1.2)
        fast = model(tokens, anchors, mask, route, modality)
        model.ego_speed_head.bias.fill_(0.2)
        slow = model(tokens, anchors, mask, route, modality)
        no_ego = model(tokens, anchors, mask, route, torch.full_like(modality, int(Modality.LIDAR)))
    t_s = model.cfg.dt_s * torch.arange(1, model.cfg.horizon + 1)
    torch.testing.assert_close(fast.ego_speed, torch.full((2,), 12.0))
    torch.testing.assert_close(no_ego.ego_speed, torch.zeros(2))
    shift = fast.trajectories - slow.trajectories
    torch.testing.assert_close(shift[..., 0], (10.0 * t_s).expand_as(shift[..., 0]))
    torch.testing.assert_close(shift[..., 1:], torch.zeros_like(shift[..., 1:]))


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    model, encoders = small_model(seed=3)
    save_model(tmp_path / 'ckpt', model, encoders)
    loaded, loaded_encoders, document = load_model(tmp_path / 'ckpt')
    assert document['config']['model']['d_model'] == 32
    inputs = random_inputs(model.cfg)
    with torch.no_grad():
        torch.testing.assert_close(model(*inputs).trajectories, loaded(*inputs).trajectories, rtol=0, atol=0)
        bev = torch.rand(1, 4, *encoders.config.bev_grid.shape)
        torch.testing.assert_close(encoders.encode_lidar(bev), loaded_encoders.encode_lidar(bev), rtol=0, atol=0)


def test_pickle_checkpoint_is_refused(tmp_path):
    model, _ = small_model()
    torch.save(model.state_dict(), tmp_path / 'model.pt')
    with pytest.raises(CheckpointError, match='pickle'):
        load_model(tmp_path / 'model.pt')


def test_checkpoint_whose_config_does_not_fit_the_weights_is_refused(tmp_path):
    model, encoders = small_model()
    directory = save_model(tmp_path / 'ckpt', model, encoders)
    other, _ = small_model()
    other.cfg.n_layers = 2
    document = json.loads((directory / 'config.json').read_text())
    save_model(tmp_path / 'other', DrivingModel(other.cfg), encoders)
    (directory / 'config.json').write_text((tmp_path / 'other' / 'config.json').read_text())
    with pytest.raises(CheckpointError):
        load_model(directory)
    assert document['config']['model']['n_layers'] == 1


def test_planner_core_plans_the_best_scored_mode_at_the_token_stamp():
    model, _ = small_model()
    cfg = model.cfg
    rng = np.random.default_rng(0)
    tokens = TokenSet(123_456_789, np.full((20, 3), np.nan, np.float32), np.full(20, Modality.CAMERA, np.uint8),
                      np.zeros(20, np.uint8), rng.normal(size=(20, cfg.token_dim)).astype(np.float32))
    plan = PlannerCore(model).plan(tokens, 'lane_left')
    assert plan.trajectory.stamp_ns == tokens.stamp_ns and plan.trajectory.frame_id == 'base_link'
    np.testing.assert_allclose(plan.trajectory.t_s, cfg.dt_s * np.arange(1, cfg.horizon + 1))
    assert plan.modes.shape == (cfg.n_modes, cfg.horizon, 3)
    np.testing.assert_allclose(plan.trajectory.xy, plan.modes[plan.assessment.chosen_mode, :, :2])
    assert set(plan.assessment.tags) == set(cfg.scene_tags)


def test_too_many_tokens_is_a_clear_error():
    model, _ = small_model()
    tokens = TokenSet(0, np.zeros((model.cfg.max_tokens + 1, 3), np.float32),
                      np.zeros(model.cfg.max_tokens + 1, np.uint8), np.zeros(model.cfg.max_tokens + 1, np.uint8),
                      np.zeros((model.cfg.max_tokens + 1, model.cfg.token_dim), np.float32))
    with pytest.raises(ValueError, match='exceed the model input'):
        pad_tokens(tokens, model.cfg.max_tokens)
