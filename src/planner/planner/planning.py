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


def check_count(count: int, max_tokens: int) -> None:
    if count > max_tokens:
        raise ValueError(f'{count} tokens exceed the model input of {max_tokens} (more sensors than it was built for?)')


def pad_tokens(tokens: TokenSet, max_tokens: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(embedding (N, D), anchors (N, 3), mask (N,), modality (N,))`` padded to ``max_tokens``."""
    count = len(tokens)
    check_count(count, max_tokens)
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

    def validate(self, tokens: TokenSet) -> None:
        """Raises ValueError for a token set the model cannot plan on."""
        if tokens.dim != self.model.cfg.token_dim:
            raise ValueError(f'tokens have D={tokens.dim}, the model expects {self.model.cfg.token_dim}')
        if not np.isfinite(tokens.embedding).all():
            raise ValueError('token embeddings hold NaN or inf')
        check_count(len(tokens), self.model.cfg.max_tokens)

    def plan(self, tokens: TokenSet, route: str = 'follow') -> Plan:
        return self.plan_batch([tokens], route)[0]

    @torch.inference_mode()
    def plan_batch(self, token_sets: list[TokenSet], route: str = 'follow') -> list[Plan]:
        """One plan per token set from one forward pass: the node plans one set at a time, offline evaluation
        batches independent frames. Raises ValueError when a set is unusable (see :meth:`validate`)."""
        cfg = self.model.cfg
        for tokens in token_sets:
            self.validate(tokens)
        embedding, anchors, mask, modality = (np.stack(part) for part in zip(
            *(pad_tokens(tokens, cfg.max_tokens) for tokens in token_sets)))
        start = time.perf_counter()
        out = self.forward(
            torch.from_numpy(embedding).to(self.device, self.dtype),
            torch.from_numpy(anchors).to(self.device, self.dtype),
            torch.from_numpy(mask).to(self.device),
            torch.full((len(token_sets),), self.route_index[route], device=self.device),
            torch.from_numpy(modality).to(self.device))
        best = choose_mode(out).cpu().numpy()
        scores = out.plan_score.float().cpu().numpy()
        confidence = torch.softmax(out.mode_logits.float(), dim=-1).cpu().numpy()
        risk, progress, comfort = (t.float().cpu().numpy() for t in (out.collision_risk, out.progress, out.comfort))
        novelty = out.novelty.float().cpu().numpy()
        tags = torch.sigmoid(out.tag_logits.float()).cpu().numpy()
        modes = out.trajectories.float().cpu().numpy().astype(np.float64)
        forward_ms = (time.perf_counter() - start) * 1e3 / len(token_sets)
        plans = []
        for i, tokens in enumerate(token_sets):
            k = int(best[i])
            assessment = Assessment(
                stamp_ns=tokens.stamp_ns, chosen_mode=k, plan_score=float(scores[i, k]),
                confidence=float(confidence[i, k]), collision_risk=float(risk[i, k]), progress=float(progress[i, k]),
                comfort=float(comfort[i, k]), novelty=float(novelty[i]),
                tags={name: float(p) for name, p in zip(cfg.scene_tags, tags[i])})
            trajectory = Trajectory(tokens.stamp_ns, self.frame_id, self.t_s.copy(), modes[i, k, :, :2],
                                    modes[i, k, :, 2])
            plans.append(Plan(trajectory, assessment, modes[i], forward_ms))
        return plans
