"""Encoder weights: from the shared checkpoint (prefix perception.), else seeded with one warning."""

import numpy as np
import pytest
import torch

from perception_llm.fusion import CHECKPOINT_PREFIX, EncoderConfig, SensorEncoders
from perception_llm.lidar_encoder import BEV_CHANNELS
from perception_llm.weights import load_encoders
from stack_common.checkpoint import CheckpointError, save_checkpoint
from stack_common.config import load_node_config


def node_config(**overrides) -> dict:
    return load_node_config('perception_llm', 'perception_node') | overrides


def save_encoders(directory, encoders: SensorEncoders, **extra_config):
    tensors = {CHECKPOINT_PREFIX + k: v.numpy() for k, v in encoders.state_dict().items()}
    tensors['planner.weight'] = np.zeros(3, np.float32)       # the planner's half lives in the same file
    return save_checkpoint(directory, tensors, {'perception': encoders.config.to_dict(), **extra_config})


def sample_tokens(encoders: SensorEncoders) -> torch.Tensor:
    with torch.inference_mode():
        return encoders.encode_lidar(torch.ones(1, BEV_CHANNELS, 160, 120))


def test_without_a_checkpoint_the_seeded_encoders_come_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.setattr('perception_llm.weights.DEFAULT_CHECKPOINT', tmp_path / 'none')
    encoders, warning = load_encoders(node_config())
    assert 'fixed-seed' in warning
    assert torch.equal(sample_tokens(encoders), sample_tokens(SensorEncoders.seeded(EncoderConfig())))


def test_trained_weights_load_from_the_shared_checkpoint(tmp_path):
    trained = SensorEncoders.seeded(EncoderConfig())
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(0.01)
    save_encoders(tmp_path / 'ckpt', trained, model={'d_model': 8})
    encoders, warning = load_encoders(node_config(checkpoint=str(tmp_path / 'ckpt')))
    assert warning is None and not encoders.training
    assert torch.equal(sample_tokens(encoders), sample_tokens(trained))
    assert not torch.equal(sample_tokens(encoders), sample_tokens(SensorEncoders.seeded(EncoderConfig())))


def test_a_checkpoint_of_another_architecture_is_refused_naming_the_difference(tmp_path):
    save_encoders(tmp_path / 'ckpt', SensorEncoders.seeded(EncoderConfig(token_dim=32)))
    with pytest.raises(CheckpointError, match='token_dim: config 64 vs checkpoint 32'):
        load_encoders(node_config(checkpoint=str(tmp_path / 'ckpt')))


def test_a_checkpoint_without_perception_weights_is_refused(tmp_path):
    save_checkpoint(tmp_path / 'ckpt', {'planner.weight': np.zeros(3, np.float32)}, {'model': {}})
    with pytest.raises(CheckpointError, match='no perception encoder config'):
        load_encoders(node_config(checkpoint=str(tmp_path / 'ckpt')))
