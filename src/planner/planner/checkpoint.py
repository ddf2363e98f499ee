"""Model checkpoints: the whole driving model (perception encoders + planner) in one directory.

The file format (safetensors + config.json, version and hash) is
:mod:`stack_common.checkpoint`; this module maps it to torch modules.
``config.json``'s ``config`` holds ``model`` (:class:`ModelConfig`) and
``perception`` (:class:`EncoderConfig`).
"""

from pathlib import Path

import torch

from perception_llm.fusion import CHECKPOINT_PREFIX as PERCEPTION_PREFIX
from perception_llm.fusion import EncoderConfig, SensorEncoders
from perception_llm.weights import encoders_from_tensors
from planner.model import DrivingModel, ModelConfig
from stack_common.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

PLANNER_PREFIX = 'planner.'


def save_model(directory: str | Path, model: DrivingModel, encoders: SensorEncoders,
               extra: dict | None = None) -> Path:
    tensors = {PLANNER_PREFIX + k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    tensors |= {PERCEPTION_PREFIX + k: v.detach().float().cpu().numpy() for k, v in encoders.state_dict().items()}
    config = {'model': model.cfg.to_dict(), 'perception': encoders.config.to_dict()}
    return save_checkpoint(directory, tensors, config, extra)


def load_model(directory: str | Path) -> tuple[DrivingModel, SensorEncoders, dict]:
    """Model and encoders in eval mode, and the config document; :class:`CheckpointError` on any mismatch."""
    directory = Path(directory)
    tensors, document = load_checkpoint(directory)
    try:
        cfg = ModelConfig.from_dict(document['config']['model'])
        encoder_cfg = EncoderConfig.from_dict(document['config']['perception'])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f'{directory}: config.json does not describe a driving model ({error})') from error
    model = DrivingModel(cfg)
    state = {k[len(PLANNER_PREFIX):]: torch.from_numpy(v) for k, v in tensors.items() if k.startswith(PLANNER_PREFIX)}
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(f'{directory}: planner weights do not match config.json '
                              f'({str(error).splitlines()[1].strip()})') from error
    return model.eval(), encoders_from_tensors(encoder_cfg, tensors, directory), document
