"""Model sizes without training: parameters per part and forward FLOPs per frame.

Everything is built on the ``meta`` device, so even the 40B-class preset is
counted without allocating its weights.
"""

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from perception_llm.ego import EGO_FEATURES
from perception_llm.fusion import EncoderConfig, SensorEncoders
from perception_llm.lidar_encoder import BEV_CHANNELS
from planner.model import DrivingModel, ModelConfig, count_parameters

HEADS = ('trajectory_head', 'mode_head', 'scorer', 'tag_head')


@dataclass
class ModelSize:
    parameters: dict[str, int]   # part -> count
    flops: dict[str, float]      # part -> forward FLOPs per frame

    @property
    def total_parameters(self) -> int:
        return sum(self.parameters.values())

    @property
    def total_flops(self) -> float:
        return sum(self.flops.values())


def measure(cfg: ModelConfig, encoder_cfg: EncoderConfig, cameras: int = 1) -> ModelSize:
    with torch.device('meta'):
        # .to('meta') also moves buffers that were built from numpy (torch.from_numpy ignores the default device)
        encoders, model = SensorEncoders(encoder_cfg).to('meta'), DrivingModel(cfg).to('meta')
        head_params = sum(count_parameters(getattr(model, h)) for h in HEADS)
        parameters = {'encoders': count_parameters(encoders),
                      'backbone': count_parameters(model) - head_params, 'heads': head_params}
        rows, cols = encoder_cfg.bev_grid.shape
        images = torch.zeros(cameras, 3, encoder_cfg.input_height, encoder_cfg.input_width, dtype=torch.uint8)
        encoder_counter, model_counter = FlopCounterMode(display=False), FlopCounterMode(display=False)
        with encoder_counter:
            encoders.encode_cameras(images, torch.arange(cameras))
            encoders.encode_lidar(torch.zeros(1, BEV_CHANNELS, rows, cols))
            encoders.encode_ego(torch.zeros(1, EGO_FEATURES))
        with model_counter:
            model(torch.zeros(1, cfg.max_tokens, cfg.token_dim), torch.zeros(1, cfg.max_tokens, 3),
                  torch.ones(1, cfg.max_tokens, dtype=torch.bool), torch.zeros(1, dtype=torch.long),
                  torch.zeros(1, cfg.max_tokens, dtype=torch.uint8))
    return ModelSize(parameters, {'encoders': float(encoder_counter.get_total_flops()),
                                  'planner': float(model_counter.get_total_flops())})
