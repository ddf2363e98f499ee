"""Joint training of encoders and planner (:class:`planner.driving_stack.DrivingStack`): the losses of the three
roles."""

import torch
import torch.nn.functional as F

from planner.model import DrivingModel, ModelOutput

# relative weights of the loss terms
WEIGHTS = {'trajectory': 1.0, 'mode': 1.0, 'scores': 1.0, 'tags': 0.3, 'lane': 1.0}
MODE_TARGET_TEMPERATURE_M = 0.5
# the regression: lateral errors are small (decimetres) but decide whether the car stays in its lane, so
# they weigh more, and the L1 part starts at 0.25 m so that decimetre errors still pull
LATERAL_WEIGHT = 2.0
SMOOTH_L1_BETA_M = 0.25
# frames whose expert stands still (waiting at a junction, stopped in a queue) teach little; they count less
STANDSTILL_M = 0.5
STANDSTILL_WEIGHT = 0.25


def frame_weights(batch: dict) -> torch.Tensor:
    """(B,) 1 for a frame that moves, less for one whose expert stands still."""
    still = (batch['future'][:, -1, :2].norm(dim=-1) < STANDSTILL_M) & (batch['speed_mps'].abs() < STANDSTILL_M)
    return torch.where(still, STANDSTILL_WEIGHT, 1.0)


def losses(out: ModelOutput, batch: dict, model: DrivingModel) -> dict[str, torch.Tensor]:
    """Loss terms of the three roles, and their weighted total under ``'total'``."""
    truth = batch['future']                                                      # (B, T, 3)
    weight = frame_weights(batch)
    # driver: winner-takes-all regression on the mode closest to the label, and its classification
    distance = (out.trajectories[..., :2] - truth[:, None, :, :2]).norm(dim=-1).mean(-1)   # (B, K)
    best = distance.argmin(1)
    chosen = out.trajectories[torch.arange(len(best)), best]
    # the mode classifier learns a soft target: modes about as close as the best one share its probability,
    # so near-ties between modes do not make its target flip from frame to frame
    target = torch.softmax(-distance.detach() / MODE_TARGET_TEMPERATURE_M, dim=1)
    # positions only: a label's heading is the car body's, which slips against its course in a lane change
    # (up to 0.17 rad, 95th percentile); a mode's heading is its course, consistent with its positions
    errors = F.smooth_l1_loss(chosen[..., :2], truth[..., :2], reduction='none', beta=SMOOTH_L1_BETA_M)
    regression = (errors[..., 0] + LATERAL_WEIGHT * errors[..., 1]).mean(1) / (1 + LATERAL_WEIGHT)
    classification = F.cross_entropy(out.mode_logits, target, reduction='none')
    terms = {'trajectory': (regression * weight).sum() / weight.sum(),
             'mode': (classification * weight).sum() / weight.sum()}
    # scorer: the outcome scores of the frame's candidate vocabulary (the expert's plan and its alternatives),
    # measured once when the cache was built (planner.training.labels.score_candidates)
    logits = model.score(out, batch['candidates'])
    known = batch['candidate_known'].float()
    per_term = F.binary_cross_entropy_with_logits(logits, batch['candidate_scores'], reduction='none') * known
    terms['scores'] = (per_term.sum((1, 2)) * weight).sum() / (known.sum((1, 2)) * weight).sum().clamp(min=1)
    # analyst: scene tags where the log carries them
    valid = batch['tags_valid'].float()
    per_frame = F.binary_cross_entropy_with_logits(out.tag_logits, batch['tags'], reduction='none').mean(-1)
    terms['tags'] = (per_frame * valid).sum() / valid.sum().clamp(min=1)
    # perception, auxiliary: where the ego is in its lane, from the camera (metres, and radians x 10)
    known = batch['lane_pose_valid'].float()
    scale = truth.new_tensor([1.0, 10.0])
    lane = F.smooth_l1_loss(out.extras['lane_pose'] * scale, batch['lane_pose'] * scale, reduction='none').mean(-1)
    terms['lane'] = (lane * known).sum() / known.sum().clamp(min=1)
    terms['total'] = sum(WEIGHTS[name] * value for name, value in terms.items())
    return terms
