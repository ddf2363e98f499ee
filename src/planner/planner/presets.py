"""Model size presets, as data: the planner backbone and the token width the encoders produce.

``tiny`` is the CPU default (the whole stack keeps 10 Hz on a 2-core laptop);
``40b`` is a 40B-class configuration for parameter counting and sharded
training on a cluster.
"""

from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perception_llm.fusion import EncoderConfig
    from planner.model import ModelConfig

PRESETS: dict[str, dict] = {
    'tiny': dict(d_model=128, n_layers=4, n_heads=4, token_dim=64),
    'small': dict(d_model=384, n_layers=6, n_heads=6, token_dim=128),
    'base': dict(d_model=768, n_layers=12, n_heads=12, token_dim=256),
    'large': dict(d_model=1536, n_layers=24, n_heads=16, token_dim=512),
    '40b': dict(d_model=8192, n_layers=48, n_heads=64, token_dim=1024),
}


def preset_configs(name: str, encoder_cfg: 'EncoderConfig | None' = None, cameras: int = 1,
                   **overrides) -> 'tuple[ModelConfig, EncoderConfig]':
    """Model and encoder configs of a preset; the static input fits ``cameras`` cameras + BEV + ego."""
    # Imported here: the preset names alone (the command line's choices) must not load torch.
    from perception_llm.fusion import EncoderConfig
    from planner.model import ModelConfig
    if name not in PRESETS:
        raise ValueError(f'unknown preset {name!r}; choose one of {", ".join(PRESETS)}')
    values = {**PRESETS[name], **overrides}
    encoder_cfg = replace(encoder_cfg or EncoderConfig(), token_dim=values['token_dim'])
    values.setdefault('max_tokens', encoder_cfg.max_tokens(cameras))
    return ModelConfig(**values), encoder_cfg
