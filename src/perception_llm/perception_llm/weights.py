"""Encoder weights from the stack's checkpoint (prefix ``perception.``), or a seeded init.

The perception encoders are trained jointly with the planner and saved in the
same checkpoint (:mod:`planner.checkpoint` writes it, in the format of
:mod:`stack_common.checkpoint`). The node's architecture settings must equal
the checkpoint's ``perception`` config; any difference is refused with the
keys that differ. Without a checkpoint the encoders get a fixed-seed
initialisation and the caller logs the returned warning once.
"""

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from perception_llm.fusion import CHECKPOINT_PREFIX, EncoderConfig, SensorEncoders
from stack_common.checkpoint import DEFAULT_CHECKPOINT, CheckpointError, load_checkpoint


def encoders_from_tensors(config: EncoderConfig, tensors: dict[str, np.ndarray], origin: Path) -> SensorEncoders:
    state = {name[len(CHECKPOINT_PREFIX):]: torch.from_numpy(value)
             for name, value in tensors.items() if name.startswith(CHECKPOINT_PREFIX)}
    encoders = SensorEncoders(config)
    try:
        encoders.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(f'{origin}: perception weights do not match their config '
                              f'({str(error).splitlines()[1].strip()})') from error
    return encoders.eval()


def load_encoders(config: dict) -> tuple[SensorEncoders, str | None]:
    """The encoders for a perception node config, and a warning when no checkpoint was used."""
    wanted = EncoderConfig.from_node_config(config)
    directory = Path(config['checkpoint']) if config['checkpoint'] else DEFAULT_CHECKPOINT
    if not config['checkpoint'] and not (directory / 'config.json').exists():
        return SensorEncoders.seeded(wanted), (
            'no checkpoint found: perception encoders use a fixed-seed initialisation (untrained); '
            'set checkpoint to a trained model directory')
    tensors, document = load_checkpoint(directory)
    try:
        stored = EncoderConfig.from_dict(document['config']['perception'])
    except (KeyError, TypeError) as error:
        raise CheckpointError(f'{directory}: config.json has no perception encoder config ({error})') from error
    differ = [f'{k}: config {v!r} vs checkpoint {getattr(stored, k)!r}'
              for k, v in asdict(wanted).items() if getattr(stored, k) != v]
    if differ:
        raise CheckpointError(f'{directory}: perception config does not match the checkpoint ({"; ".join(differ)})')
    return encoders_from_tensors(stored, tensors, directory), None
