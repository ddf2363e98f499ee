"""The planner core: a token set in, the best-scored trajectory and its assessment out.

No ROS here. Token sets are padded to the model's static ``max_tokens`` with
a mask, the model runs under ``torch.inference_mode``, and the mode with the
highest plan score (the critic role) becomes the trajectory.
"""

import time
from dataclasses import dataclass

import numpy as np
import torch

from planner.model import DrivingModel, choose_mode
from stack_common.assessment import Assessment
from stack_common.tokens import TokenSet
from stack_common.trajectory import Trajectory

DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}


@dataclass
class Plan:
    trajectory: Trajectory
    assessment: Assessment
    modes: np.ndarray        # (K, T, 3) every mode, x, y, heading
    forward_ms: float


def pad_tokens(tokens: TokenSet, max_tokens: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(embedding (N, D), anchors (N, 3), mask (N,), modality (N,))`` padded to ``max_tokens``."""
    count = len(tokens)
    if count > max_tokens:
        raise ValueError(f'{count} tokens exceed the model input of {max_tokens} (more sensors than it was built for?)')
    embedding = np.zeros((max_tokens, tokens.dim), np.float32)
    anchors = np.full((max_tokens, 3), np.nan, np.float32)
    mask = np.zeros(max_tokens, bool)
    modality = np.zeros(max_tokens, np.uint8)
    embedding[:count], anchors[:count], mask[:count] = tokens.embedding, tokens.anchors, True
    modality[:count] = tokens.modality
    return embedding, anchors, mask, modality


class PlannerCore:
    def __init__(self, model: DrivingModel, device: str = 'cpu', dtype: str = 'float32',
                 compile_model: bool = False, frame_id: str = 'base_link', source: str = 'model'):
        self.device, self.dtype = torch.device(device), DTYPES[dtype]
        self.model = model.to(self.device, self.dtype).eval()
        self.forward = torch.compile(self.model) if compile_model else self.model
        self.frame_id = frame_id
        self.source = source   # where the weights came from, for logs
        cfg = model.cfg
        self.t_s = cfg.dt_s * np.arange(1, cfg.horizon + 1)
        self.route_index = {name: i for i, name in enumerate(cfg.route_commands)}

    @torch.inference_mode()
    def plan(self, tokens: TokenSet, route: str = 'follow') -> Plan:
        cfg = self.model.cfg
        if tokens.dim != cfg.token_dim:
            raise ValueError(f'tokens have D={tokens.dim}, the model expects {cfg.token_dim}')
        if not np.isfinite(tokens.embedding).all():
            raise ValueError('token embeddings hold NaN or inf')
        embedding, anchors, mask, modality = pad_tokens(tokens, cfg.max_tokens)
        start = time.perf_counter()
        out = self.forward(
            torch.from_numpy(embedding)[None].to(self.device, self.dtype),
            torch.from_numpy(anchors)[None].to(self.device, self.dtype),
            torch.from_numpy(mask)[None].to(self.device),
            torch.tensor([self.route_index[route]], device=self.device),
            torch.from_numpy(modality)[None].to(self.device))
        scores = out.plan_score[0].float()
        best = int(choose_mode(out)[0])
        modes = out.trajectories[0].float().cpu().numpy().astype(np.float64)
        forward_ms = (time.perf_counter() - start) * 1e3
        confidence = float(torch.softmax(out.mode_logits[0].float(), dim=0)[best])
        tags = torch.sigmoid(out.tag_logits[0].float()).cpu().numpy()
        assessment = Assessment(
            stamp_ns=tokens.stamp_ns, chosen_mode=best, plan_score=float(scores[best]), confidence=confidence,
            collision_risk=float(out.collision_risk[0, best]), progress=float(out.progress[0, best]),
            comfort=float(out.comfort[0, best]), novelty=float(out.novelty[0]),
            tags={name: float(p) for name, p in zip(cfg.scene_tags, tags)})
        trajectory = Trajectory(tokens.stamp_ns, self.frame_id, self.t_s.copy(),
                                modes[best, :, :2], modes[best, :, 2])
        return Plan(trajectory, assessment, modes, forward_ms)
