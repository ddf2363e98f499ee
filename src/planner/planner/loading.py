"""Build the planner core from a node config: the checkpoint, or a seeded model of a preset."""

from pathlib import Path

import torch

from planner.checkpoint import load_model
from planner.model import DrivingModel, init_weights
from planner.planning import PlannerCore
from planner.presets import preset_configs
from stack_common.checkpoint import DEFAULT_CHECKPOINT

INIT_SEED = 0


def seeded_model(preset: str) -> DrivingModel:
    """A fixed-seed model for the default perception layout (one camera, one BEV grid, ego)."""
    # init_weights sets the matrices; biases and norms keep torch's default init, drawn from the global RNG.
    with torch.random.fork_rng():
        torch.manual_seed(INIT_SEED)
        model = DrivingModel(preset_configs(preset)[0])
    init_weights(model, INIT_SEED)
    return model.eval()


def load_planner(config: dict) -> tuple[PlannerCore, str | None]:
    """The core for a planner node config, and a warning when no checkpoint was used."""
    directory = Path(config['checkpoint']) if config['checkpoint'] else DEFAULT_CHECKPOINT
    note = None
    if not config['checkpoint'] and not (directory / 'config.json').exists():
        model = seeded_model(config['preset'])
        note = f'no checkpoint found: the {config["preset"]} model uses a fixed-seed initialisation (untrained)'
    else:
        model = load_model(directory)[0]
    source = f'seeded {config["preset"]} model' if note else str(directory)
    return PlannerCore(model, config['device'], config['dtype'], config['compile'], config['frame_id'], source), note
