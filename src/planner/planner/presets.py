"""Model size presets, as data. ``tiny`` is the CPU default; ``40b`` is for parameter counting and sharded training."""

from planner.model import ModelConfig

PRESETS: dict[str, dict] = {
    'tiny': dict(d_model=128, n_layers=4, n_heads=4),
    'small': dict(d_model=384, n_layers=6, n_heads=6),
    'base': dict(d_model=768, n_layers=12, n_heads=12),
    'large': dict(d_model=1536, n_layers=24, n_heads=16),
    '40b': dict(d_model=8192, n_layers=48, n_heads=64, token_dim=1024),
}


def preset_config(name: str, **overrides) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f'unknown preset {name!r}; choose one of {", ".join(PRESETS)}')
    return ModelConfig(**{**PRESETS[name], **overrides})
