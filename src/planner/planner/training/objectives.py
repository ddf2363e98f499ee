"""Joint training of encoders and planner: token assembly for batches, the losses of the three roles.

``DrivingStack`` is the whole model (perception encoders + planner) as one
module, so DDP and the optimiser see one set of weights, the same weights the
nodes load from the checkpoint. Its token set for a frame equals the live
perception output (same encoders, anchors and masks; slot order does not
matter to the transformer, which has no slot positions).
"""

import torch
import torch.nn.functional as F
from torch import nn

from perception_llm.fusion import SensorEncoders
from planner.model import DrivingModel, ModelOutput
from planner.training.labels import critic_targets

# relative weights of the loss terms
WEIGHTS = {'trajectory': 1.0, 'mode': 0.5, 'critic': 0.5, 'tags': 0.3}
# per-coordinate scale of the trajectory regression (x, y in metres, heading in radians)
REGRESSION_SCALE = (1.0, 1.0, 0.1)


class DrivingStack(nn.Module):
    def __init__(self, encoders: SensorEncoders, model: DrivingModel):
        super().__init__()
        self.encoders, self.model = encoders, model
        cfg = encoders.config
        anchors = torch.from_numpy(cfg.bev_grid.token_anchors(cfg.token_stride))
        self.register_buffer('lidar_anchors', torch.cat([anchors, torch.zeros(len(anchors), 1)], 1), persistent=False)

    def assemble(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(tokens, anchors, mask)`` padded to the model's static ``max_tokens``."""
        images, present = batch['images'], batch['camera_present']
        b, cameras = present.shape
        ids = torch.arange(cameras, device=images.device).repeat(b)
        camera = self.encoders.encode_cameras(images.flatten(0, 1), ids)          # (B*C, P, D)
        per_camera = camera.shape[1]
        camera = camera.view(b, cameras * per_camera, -1)
        lidar = self.encoders.encode_lidar(batch['bev'].float())                 # (B, L, D)
        ego = self.encoders.encode_ego(batch['ego'])                             # (B, 1, D)
        tokens = torch.cat([camera, lidar, ego], 1)
        nan = torch.full((b, cameras * per_camera, 3), float('nan'), device=tokens.device)
        anchors = torch.cat([nan, self.lidar_anchors.expand(b, -1, -1), torch.zeros(b, 1, 3, device=tokens.device)], 1)
        mask = torch.cat([present.repeat_interleave(per_camera, 1),
                          batch['lidar_present'][:, None].expand(-1, lidar.shape[1]),
                          batch['ego_present'][:, None]], 1)
        pad = self.model.cfg.max_tokens - tokens.shape[1]
        if pad < 0:
            raise ValueError(f'{tokens.shape[1]} tokens exceed the model input of {self.model.cfg.max_tokens}')
        if pad:
            tokens = F.pad(tokens, (0, 0, 0, pad))
            anchors = F.pad(anchors, (0, 0, 0, pad), value=float('nan'))
            mask = F.pad(mask, (0, pad), value=False)
        return tokens, anchors, mask

    def forward(self, batch: dict) -> ModelOutput:
        tokens, anchors, mask = self.assemble(batch)
        return self.model(tokens, anchors, mask, batch['route'])


def losses(out: ModelOutput, batch: dict, dt_s: float) -> dict[str, torch.Tensor]:
    """Loss terms of the three roles, and their weighted total under ``'total'``."""
    truth = batch['future']                                                      # (B, T, 3)
    scale = truth.new_tensor(REGRESSION_SCALE)
    # driver: winner-takes-all regression on the mode closest to the logged future, and its classification
    distance = (out.trajectories[..., :2] - truth[:, None, :, :2]).norm(dim=-1).mean(-1)   # (B, K)
    best = distance.argmin(1)
    chosen = out.trajectories[torch.arange(len(best)), best]
    terms = {'trajectory': F.smooth_l1_loss(chosen / scale, truth / scale),
             'mode': F.cross_entropy(out.mode_logits, best)}
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
    terms['total'] = sum(WEIGHTS[name] * value for name, value in terms.items())
    return terms
