"""Joint training of encoders and planner: token assembly for batches, the losses of the three roles.

``DrivingStack`` is the whole model (perception encoders + planner) as one
module, so DDP and the optimiser see one set of weights, the same weights the
nodes load from the checkpoint. Its tokens come from the same
``SensorEncoders.fuse`` as the live perception output.
"""

import torch
import torch.nn.functional as F
from torch import nn

from perception_llm.fusion import SensorEncoders
from planner.model import SPEED_SCALE_MPS, DrivingModel, ModelOutput
from planner.training.labels import critic_targets

# relative weights of the loss terms
WEIGHTS = {'trajectory': 1.0, 'mode': 1.0, 'critic': 0.5, 'tags': 0.3, 'ego_speed': 1.0}
MODE_TARGET_TEMPERATURE_M = 0.5
# per-coordinate scale of the trajectory regression (x, y in metres, heading in radians)
REGRESSION_SCALE = (1.0, 1.0, 0.1)


class DrivingStack(nn.Module):
    def __init__(self, encoders: SensorEncoders, model: DrivingModel):
        super().__init__()
        self.encoders, self.model = encoders, model

    def forward(self, batch: dict) -> ModelOutput:
        fused = self.encoders.fuse(batch['images'], batch['camera_present'], batch['bev'], batch['lidar_present'],
                                   batch['ego'], batch['ego_present'], batch['camera_anchors'])
        pad = self.model.cfg.max_tokens - fused.embedding.shape[1]
        if pad < 0:
            raise ValueError(f'{fused.embedding.shape[1]} tokens exceed the model input of {self.model.cfg.max_tokens}')
        tokens = F.pad(fused.embedding, (0, 0, 0, pad))
        anchors = F.pad(fused.anchors, (0, 0, 0, pad), value=float('nan'))
        mask = F.pad(fused.mask, (0, pad), value=False)
        modality = F.pad(fused.modality, (0, pad))
        return self.model(tokens, anchors, mask, batch['route'], modality)


def losses(out: ModelOutput, batch: dict, dt_s: float) -> dict[str, torch.Tensor]:
    """Loss terms of the three roles, and their weighted total under ``'total'``."""
    truth = batch['future']                                                      # (B, T, 3)
    scale = truth.new_tensor(REGRESSION_SCALE)
    # driver: winner-takes-all regression on the mode closest to the logged future, and its classification
    distance = (out.trajectories[..., :2] - truth[:, None, :, :2]).norm(dim=-1).mean(-1)   # (B, K)
    best = distance.argmin(1)
    chosen = out.trajectories[torch.arange(len(best)), best]
    # the mode classifier learns a soft target: modes about as close as the best one share its probability,
    # so near-ties between modes do not make its target flip from frame to frame
    target = torch.softmax(-distance.detach() / MODE_TARGET_TEMPERATURE_M, dim=1)
    terms = {'trajectory': F.smooth_l1_loss(chosen / scale, truth / scale),
             'mode': F.cross_entropy(out.mode_logits, target)}
    # critic: rule-based scores of every predicted mode, recomputed from the log
    with torch.no_grad():
        risk, progress, comfort = critic_targets(out.trajectories.detach(), truth, batch['obstacles'],
                                                 batch['obstacle_mask'], batch['traffic'], batch['traffic_mask'],
                                                 dt_s)
    terms['critic'] = (F.binary_cross_entropy(out.collision_risk.clamp(1e-6, 1 - 1e-6), risk)
                       + F.binary_cross_entropy(out.progress.clamp(1e-6, 1 - 1e-6), progress)
                       + F.binary_cross_entropy(out.comfort.clamp(1e-6, 1 - 1e-6), comfort))
    # analyst: scene tags where the log carries them
    valid = batch['tags_valid'].float()
    per_frame = F.binary_cross_entropy_with_logits(out.tag_logits, batch['tags'], reduction='none').mean(-1)
    terms['tags'] = (per_frame * valid).sum() / valid.sum().clamp(min=1)
    # the speed the prior rolls out must be the logged one, where the frame has an ego token
    present = batch['ego_present'].float()
    error = (out.ego_speed - batch['speed_mps']) / SPEED_SCALE_MPS
    terms['ego_speed'] = (error ** 2 * present).sum() / present.sum().clamp(min=1)
    terms['total'] = sum(WEIGHTS[name] * value for name, value in terms.items())
    return terms
