"""The planner core: a token set in, the chosen trajectory and its assessment out.

No ROS here. A token set goes to the model as it is (only real tokens travel;
:func:`planner.model.pack_tokens` is the one place that shapes model input),
the model runs under ``torch.inference_mode``, and the mode
:func:`planner.model.choose_mode` picks from the driver's probability and the
scorer's terms becomes the trajectory.
"""

import time
from dataclasses import dataclass

import numpy as np
import torch

from planner.model import DrivingModel, check_token_count, choose_mode
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
        check_token_count(len(tokens), cfg.max_tokens)   # before the forward pass (pack_tokens checks in training)
        start = time.perf_counter()
        out = self.forward(
            torch.from_numpy(tokens.embedding)[None].to(self.device, self.dtype),
            torch.from_numpy(tokens.anchors)[None].to(self.device, self.dtype),
            torch.ones(1, len(tokens), dtype=torch.bool, device=self.device),
            torch.tensor([self.route_index[route]], device=self.device),
            torch.from_numpy(tokens.modality)[None].to(self.device))
        best = int(choose_mode(out, cfg)[0])
        modes = out.trajectories[0].float().cpu().numpy().astype(np.float64)
        forward_ms = (time.perf_counter() - start) * 1e3
        confidence = float(torch.softmax(out.mode_logits[0].float(), dim=0)[best])
        tags = torch.sigmoid(out.tag_logits[0].float()).cpu().numpy()
        assessment = Assessment(
            stamp_ns=tokens.stamp_ns, chosen_mode=best, plan_score=float(out.plan_score[0, best]),
            confidence=confidence, collision_risk=1.0 - float(out.term('collision_free', cfg)[0, best]),
            progress=float(out.term('progress', cfg)[0, best]), comfort=float(out.term('comfortable', cfg)[0, best]),
            novelty=float(out.novelty[0]), tags={name: float(p) for name, p in zip(cfg.scene_tags, tags, strict=True)})
        trajectory = Trajectory(tokens.stamp_ns, self.frame_id, self.t_s.copy(),
                                modes[best, :, :2], modes[best, :, 2])
        return Plan(trajectory, assessment, modes, forward_ms)
