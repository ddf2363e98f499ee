"""The driving model: presets, shapes, the kinematic decoder, mode selection, checkpoints and the planner core."""

import json

import numpy as np
import pytest
import torch

from perception_llm.fusion import SensorEncoders
from perception_llm.lidar_encoder import BEV_CHANNELS
from planner.checkpoint import load_model, save_model
from planner.model import SCORE_TERMS, DrivingModel, ModelOutput, choose_mode, init_weights, pack_tokens
from planner.planning import PlannerCore
from planner.presets import PRESETS, preset_configs
from planner.sizing import measure
from stack_common.checkpoint import CheckpointError
from stack_common.tokens import EGO_STATE_SCALE, Modality, TokenSet


def small_model(seed: int = 0):
    cfg, encoder_cfg = preset_configs('tiny', d_model=32, n_layers=1, n_heads=2)
    model = DrivingModel(cfg)
    init_weights(model, seed)
    return model.eval(), SensorEncoders.seeded(encoder_cfg)


def random_inputs(cfg, batch=2, real=60, seed=0, speed_mps=10.0):
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch, cfg.max_tokens, cfg.token_dim, generator=generator)
    anchors = torch.randn(batch, cfg.max_tokens, 3, generator=generator) * 20
    anchors[:, :20] = float('nan')
    mask = torch.zeros(batch, cfg.max_tokens, dtype=torch.bool)
    mask[:, :real] = True
    modality = torch.full((batch, cfg.max_tokens), int(Modality.LIDAR), dtype=torch.uint8)
    modality[:, real - 1] = Modality.EGO
    tokens[:, real - 1, :3] = torch.tensor([speed_mps / EGO_STATE_SCALE[0], 0.0, 0.0])
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
    assert out.score_logits.shape == (2, cfg.n_modes, len(SCORE_TERMS))
    assert out.tag_logits.shape == (2, len(cfg.scene_tags))
    assert bool(((out.plan_score >= 0) & (out.plan_score <= 1)).all())
    assert bool(torch.isfinite(out.trajectories).all()) and out.novelty.shape == (2,)


def test_padding_slots_do_not_change_the_plan_and_real_tokens_are_packed_first():
    model, _ = small_model()
    tokens, anchors, mask, route, modality = random_inputs(model.cfg)
    with torch.no_grad():
        first = model(tokens, anchors, mask, route, modality).trajectories
        tokens[:, 60:] = torch.randn_like(tokens[:, 60:]) * 100
        modality[:, 60:] = Modality.EGO
        second = model(tokens, anchors, mask, route, modality).trajectories
        # the same real tokens, scattered among padding slots
        order = torch.randperm(tokens.shape[1], generator=torch.Generator().manual_seed(1))
        third = model(tokens[:, order], anchors[:, order], mask[:, order], route, modality[:, order]).trajectories
    torch.testing.assert_close(first, second)
    torch.testing.assert_close(first, third, rtol=1e-4, atol=1e-4)
    packed = pack_tokens(tokens[:, order], anchors[:, order], mask[:, order], modality[:, order], model.cfg.max_tokens)
    assert packed[0].shape[1] == 60 and bool(packed[2].all())


def test_route_command_changes_the_plan():
    model, _ = small_model()
    tokens, anchors, mask, _, modality = random_inputs(model.cfg)
    with torch.no_grad():
        follow = model(tokens, anchors, mask, torch.tensor([0, 0]), modality).trajectories
        left = model(tokens, anchors, mask, torch.tensor([4, 4]), modality).trajectories
    assert not torch.allclose(follow, left)


def test_zero_controls_drive_straight_on_at_the_measured_speed():
    model, _ = small_model()
    speed = torch.tensor([0.0, 12.5])
    straight = model.rollout(speed, torch.zeros(2, 3, model.cfg.horizon, 2))
    t_s = model.cfg.dt_s * torch.arange(1, model.cfg.horizon + 1)
    torch.testing.assert_close(straight[1, :, :, 0], (12.5 * t_s).expand(3, -1))
    torch.testing.assert_close(straight[..., 1:], torch.zeros_like(straight[..., 1:]))
    torch.testing.assert_close(straight[0], torch.zeros_like(straight[0]))


def test_the_ego_speed_in_the_token_is_the_speed_the_plan_starts_from():
    model, _ = small_model()
    with torch.no_grad():
        model.trajectory_head[-1].weight.zero_()
        model.trajectory_head[-1].bias.zero_()
        slow = model(*random_inputs(model.cfg, speed_mps=5.0)).trajectories
        fast = model(*random_inputs(model.cfg, speed_mps=20.0)).trajectories
    t_s = model.cfg.dt_s * torch.arange(1, model.cfg.horizon + 1)
    torch.testing.assert_close(fast[..., 0] - slow[..., 0], (15.0 * t_s).expand_as(fast[..., 0]))


def test_no_mode_reverses_or_turns_tighter_than_the_limit():
    model, _ = small_model()
    controls = torch.randn(4, 6, model.cfg.horizon, 2) * 10
    poses = model.rollout(torch.tensor([0.5, 3.0, 15.0, 30.0]), controls)
    step = torch.diff(torch.cat([torch.zeros_like(poses[..., :1, :]), poses], -2), dim=-2)
    heading = poses[..., 2]
    forward = step[..., 0] * torch.cos(heading) + step[..., 1] * torch.sin(heading)
    assert bool((forward >= -1e-3).all())
    turn = torch.diff(torch.cat([torch.zeros_like(heading[..., :1]), heading], -1), dim=-1)
    length = step[..., :2].norm(dim=-1)
    assert bool((turn.abs() <= model.cfg.max_curvature_per_m * length + 1e-4).all())


def mode_output(mode_logits, score_logits) -> ModelOutput:
    b, k = mode_logits.shape
    zeros = torch.zeros(b, k)
    return ModelOutput(torch.zeros(b, k, 8, 3), mode_logits, score_logits, zeros, torch.zeros(b, 5), torch.zeros(b),
                       torch.zeros(b, 3), torch.zeros(b, 1, 4), torch.ones(b, 1, dtype=torch.bool))


def test_the_mode_driven_weighs_the_drivers_probability_against_the_scorers_verdicts():
    model, _ = small_model()
    logits = torch.tensor([[0.0, 2.0, 1.0, 0.0]])
    safe = torch.full((1, 4, len(SCORE_TERMS)), 6.0)
    assert int(choose_mode(mode_output(logits, safe), model.cfg)) == 1
    # the driver's favourite leaves the road by the scorer: the next most likely mode is driven
    unsafe = safe.clone()
    unsafe[0, 1, SCORE_TERMS.index('on_road')] = -6.0
    assert int(choose_mode(mode_output(logits, unsafe), model.cfg)) == 2
    # weights that ignore the scorer drive the favourite anyway
    blind = type(model.cfg)(**{**model.cfg.__dict__, 'score_weights': (0.0,) * len(SCORE_TERMS)})
    assert int(choose_mode(mode_output(logits, unsafe), blind)) == 1


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    model, encoders = small_model(seed=3)
    save_model(tmp_path / 'ckpt', model, encoders)
    loaded, loaded_encoders, document = load_model(tmp_path / 'ckpt')
    assert document['config']['model']['d_model'] == 32
    inputs = random_inputs(model.cfg)
    with torch.no_grad():
        torch.testing.assert_close(model(*inputs).trajectories, loaded(*inputs).trajectories, rtol=0, atol=0)
        bev = torch.rand(1, BEV_CHANNELS, *encoders.config.bev_grid.shape)
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


def token_set(cfg, count: int, stamp_ns: int = 123_456_789) -> TokenSet:
    rng = np.random.default_rng(0)
    modality = np.full(count, Modality.CAMERA, np.uint8)
    modality[-1] = Modality.EGO
    embedding = rng.normal(size=(count, cfg.token_dim)).astype(np.float32)
    embedding[-1, :3] = [1.0, 0.0, 0.0]
    return TokenSet(stamp_ns, np.full((count, 3), np.nan, np.float32), modality, np.zeros(count, np.uint8), embedding)


def test_planner_core_plans_the_chosen_mode_at_the_token_stamp():
    model, _ = small_model()
    cfg = model.cfg
    tokens = token_set(cfg, 20)
    plan = PlannerCore(model).plan(tokens, 'lane_left')
    assert plan.trajectory.stamp_ns == tokens.stamp_ns and plan.trajectory.frame_id == 'base_link'
    np.testing.assert_allclose(plan.trajectory.t_s, cfg.dt_s * np.arange(1, cfg.horizon + 1))
    assert plan.modes.shape == (cfg.n_modes, cfg.horizon, 3)
    np.testing.assert_allclose(plan.trajectory.xy, plan.modes[plan.assessment.chosen_mode, :, :2])
    assert set(plan.assessment.tags) == set(cfg.scene_tags)
    assert 0.0 <= plan.assessment.plan_score <= 1.0 and 0.0 <= plan.assessment.collision_risk <= 1.0


def test_a_planner_core_in_bfloat16_runs_the_weights_in_bfloat16():
    model, _ = small_model()
    core = PlannerCore(model, dtype='bfloat16', source='ckpt/tiny')
    assert {p.dtype for p in core.model.parameters()} == {torch.bfloat16}
    assert core.source == 'ckpt/tiny'   # what the node logs the weights as
    plan = core.plan(token_set(model.cfg, 20))
    assert np.isfinite(plan.trajectory.xy).all() and plan.trajectory.xy.shape == (model.cfg.horizon, 2)


def test_compile_model_plans_through_the_compiled_model():
    model, _ = small_model()
    core = PlannerCore(model, compile_model=True)
    # torch.compile wraps the model (and compiles at the first call); without the option the model runs as is
    assert core.forward is not core.model and getattr(core.forward, '_orig_mod', None) is core.model
    assert PlannerCore(small_model()[0]).forward is not None


def test_too_many_tokens_is_a_clear_error():
    model, _ = small_model()
    with pytest.raises(ValueError, match='exceed the model input'):
        PlannerCore(model).plan(token_set(model.cfg, model.cfg.max_tokens + 1))
