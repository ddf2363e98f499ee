"""The driving model: one transformer backbone, three roles.

Read top to bottom like nanoGPT. Inputs are the fused tokens of one frame
(real tokens packed first, :func:`pack_tokens`), each with an anchor in
``base_link`` (NaN when it has none) and its modality, plus a route command.
The ego token's first channels are the measured ego state (speed, yaw rate,
acceleration; the token contract in :mod:`stack_common.tokens`): it conditions
every query and every head directly, not through a normalised embedding.
Learned queries ride along with the context tokens through the backbone:

* ``n_modes`` **driver** queries each decode one trajectory mode and its logit.
  A mode is a kinematic rollout from the measured speed: per waypoint interval
  a longitudinal and a lateral acceleration, integrated like a car moves. All-zero
  outputs drive straight on at the current speed (the inertia prior), the
  plan starts exactly at the ego's pose and speed, and no mode reverses or
  turns tighter than ``max_curvature_per_m``. Lateral acceleration rather than
  curvature keeps both outputs on one scale: a waypoint's offset depends on
  each about as ``t^2 / 2``, while it depends on curvature as ``distance^2 / 2``
  (thousands of times more at highway speed), which starves the other
  gradients.
* the **critic** (scorer) reads any candidate trajectory with one
  cross-attention into the scene and predicts the sub-scores the training
  labels measure from outcomes (:data:`SCORE_TERMS`, mirroring the
  independent critic's checks); the mode driven is chosen from the driver's
  probability and those scores (:func:`choose_mode`, weights tuned on
  validation seeds and stored in the config).
* one **analyst** query predicts multi-label scene tags; the novelty score is
  the distance of the analyst embedding to the training distribution
  (statistics stored as buffers at the end of training).
"""

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from stack_common.tokens import EGO_STATE_FEATURES, EGO_STATE_SCALE, Modality

ROUTE_COMMANDS = ('follow', 'left', 'right', 'straight', 'lane_left', 'lane_right')
SCENE_TAGS = ('lead_vehicle_braking', 'cut_in', 'merge', 'dense_traffic', 'intersection')
# What the scorer predicts for a candidate, each the probability that it holds (labels: planner.training.labels):
# no contact with another vehicle's future box or an obstacle; every waypoint on a lane; within the comfort
# limits (lateral and longitudinal acceleration, jerk); room to brake (the critic's stopping check);
# consistent with the previous plan near the ego (the critic's shift check); progress along the expert's path.
SCORE_TERMS = ('collision_free', 'on_road', 'comfortable', 'can_stop', 'consistent', 'progress')
GATES = ('collision_free', 'on_road')   # multiply the plan score; the others are averaged (PDM-style)


@dataclass
class ModelConfig:
    token_dim: int = 64        # D of the fused tokens on the wire
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    max_tokens: int = 512      # most context tokens a frame may have
    n_modes: int = 6           # K trajectory modes
    horizon: int = 8           # T waypoints
    dt_s: float = 0.5          # waypoint spacing
    anchor_scale_m: float = 50.0
    max_accel_mps2: float = 5.0
    max_decel_mps2: float = 8.0
    max_lat_accel_mps2: float = 8.0
    max_curvature_per_m: float = 0.25
    route_commands: tuple[str, ...] = ROUTE_COMMANDS
    scene_tags: tuple[str, ...] = SCENE_TAGS
    score_terms: tuple[str, ...] = SCORE_TERMS
    # choose_mode: driver_weight * log p(mode) + sum_i score_weights[i] * log score_i (tuned on validation)
    driver_weight: float = 1.0
    score_weights: tuple[float, ...] = (1.0, 1.0, 0.0, 0.0, 0.0, 0.0)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> 'ModelConfig':
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f'unknown model config keys {sorted(unknown)}')
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def check_token_count(count: int, max_tokens: int) -> None:
    """Raises ValueError when a frame's ``count`` real tokens do not fit the model's ``max_tokens``."""
    if count > max_tokens:
        raise ValueError(f'{count} tokens exceed the model input of {max_tokens} (more sensors than it was built for?)')


def pack_tokens(tokens: torch.Tensor, anchors: torch.Tensor, mask: torch.Tensor, modality: torch.Tensor,
                max_tokens: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The one place tokens become model input, for serving and training alike.

    ``tokens (B, N, D)``, ``anchors (B, N, 3)``, ``mask (B, N)`` True = real, ``modality (B, N)`` or ``(N,)``:
    real tokens move to the front (their order is kept) and the batch is cut to the most real tokens any
    frame has, so the backbone spends nothing on empty slots. Raises when a frame has more than ``max_tokens``.
    """
    b, n, _ = tokens.shape
    modality = modality.expand(b, n)
    if mask.device.type == 'meta':   # sizing on the meta device (planner.sizing): every slot counts
        return tokens, anchors, mask, modality
    counts = mask.sum(1)
    most = int(counts.max()) if b else 0
    check_token_count(most, max_tokens)
    order = torch.sort((~mask).to(torch.uint8), dim=1, stable=True).indices[:, :max(most, 1)]

    def take(x: torch.Tensor) -> torch.Tensor:
        return torch.gather(x, 1, order.view(b, -1, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:]))
    return take(tokens), take(anchors), take(mask), take(modality)


class Block(nn.Module):
    """Pre-norm transformer block: self-attention over all slots, then an MLP."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        hidden = int(cfg.mlp_ratio * cfg.d_model)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, hidden), nn.GELU(), nn.Linear(hidden, cfg.d_model))
        self.n_heads, self.dropout = cfg.n_heads, cfg.dropout

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        x = x + self.proj(y.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


class Scorer(nn.Module):
    """The critic role: a candidate trajectory (its own kinematics) attends to the scene, then sub-score logits."""

    FEATURES = 6   # per waypoint: x, y, heading, speed, acceleration, curvature (scaled)

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.embed = nn.Sequential(nn.Linear(cfg.horizon * self.FEATURES + EGO_STATE_FEATURES, d), nn.GELU(),
                                   nn.Linear(d, d))
        self.norm_q, self.norm_kv = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attention = nn.MultiheadAttention(d, cfg.n_heads, batch_first=True)
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(), nn.Linear(d, len(cfg.score_terms)))
        self.dt_s = cfg.dt_s

    def forward(self, candidates: torch.Tensor, ego: torch.Tensor, context: torch.Tensor,
                context_mask: torch.Tensor) -> torch.Tensor:
        """candidates (B, C, T, 3), ego (B, EGO_STATE_FEATURES), context (B, N, d) -> (B, C, terms) logits."""
        b, c = candidates.shape[:2]
        features = trajectory_features(candidates, ego[:, 0] * EGO_STATE_SCALE[0], self.dt_s)
        query = self.embed(torch.cat([features.flatten(2), ego[:, None].expand(-1, c, -1)], -1))
        attended, _ = self.attention(self.norm_q(query), self.norm_kv(context), self.norm_kv(context),
                                     key_padding_mask=~context_mask, need_weights=False)
        return self.out(query + attended)


def trajectory_features(trajectories: torch.Tensor, speed_mps: torch.Tensor, dt_s: float) -> torch.Tensor:
    """(B, C, T, 6) scaled kinematics of any candidates (B, C, T, 3) from their positions alone, so a mode
    and a logged or perturbed trajectory look the same to the scorer."""
    xy = trajectories[..., :2]
    origin = torch.zeros_like(xy[..., :1, :])
    step = torch.diff(xy, dim=-2, prepend=origin)
    speed = step.norm(dim=-1) / dt_s
    accel = torch.diff(speed, dim=-1, prepend=speed_mps[:, None, None].expand(-1, speed.shape[1], 1)) / dt_s
    heading = trajectories[..., 2]
    turn = torch.diff(heading, dim=-1, prepend=torch.zeros_like(heading[..., :1]))
    curvature = turn / step.norm(dim=-1).clamp(min=0.5)
    return torch.stack([xy[..., 0] / 40, xy[..., 1] / 5, heading / 0.3, speed / 10, accel / 3, curvature / 0.05], -1)


@dataclass
class ModelOutput:
    trajectories: torch.Tensor    # (B, K, T, 3) x, y, heading in base_link
    mode_logits: torch.Tensor     # (B, K)
    score_logits: torch.Tensor    # (B, K, terms) the scorer's logits of the modes
    plan_score: torch.Tensor      # (B, K) in [0, 1]
    tag_logits: torch.Tensor      # (B, n_tags)
    novelty: torch.Tensor         # (B,)
    ego: torch.Tensor             # (B, EGO_STATE_FEATURES) the scaled ego state read from the ego token
    context: torch.Tensor         # (B, N, d) the backbone's view of the scene (scoring other candidates)
    context_mask: torch.Tensor    # (B, N)
    extras: dict = field(default_factory=dict)

    def term(self, name: str, cfg: ModelConfig) -> torch.Tensor:
        """(B, K) probability of one score term for every mode."""
        return torch.sigmoid(self.score_logits[..., cfg.score_terms.index(name)].float())


class DrivingModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.d_model % cfg.n_heads:
            raise ValueError(f'd_model {cfg.d_model} is not divisible by n_heads {cfg.n_heads}')
        if len(cfg.score_weights) != len(cfg.score_terms):
            raise ValueError(f'{len(cfg.score_weights)} score weights for {len(cfg.score_terms)} score terms')
        self.cfg = cfg
        d = cfg.d_model
        self.token_in = nn.Linear(cfg.token_dim, d)
        self.modality_embedding = nn.Embedding(len(Modality), d)
        self.anchor_in = nn.Sequential(nn.Linear(3, d), nn.GELU(), nn.Linear(d, d))
        self.ego_in = nn.Sequential(nn.Linear(EGO_STATE_FEATURES, d), nn.GELU(), nn.Linear(d, d))
        self.route_embedding = nn.Embedding(len(cfg.route_commands), d)
        self.mode_queries = nn.Parameter(torch.randn(cfg.n_modes, d) * 0.02)
        self.analyst_query = nn.Parameter(torch.randn(1, d) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)
        # driver role: per waypoint interval a longitudinal and a lateral acceleration, and the mode's logit
        self.trajectory_head = nn.Sequential(nn.Linear(d + EGO_STATE_FEATURES, d), nn.GELU(),
                                             nn.Linear(d, cfg.horizon * 2))
        # the mode's logit sees its own trajectory too: how plausible a plan is depends on what it does
        self.mode_head = nn.Sequential(nn.Linear(d + EGO_STATE_FEATURES + cfg.horizon * Scorer.FEATURES, d), nn.GELU(),
                                       nn.Linear(d, 1))
        self.scorer = Scorer(cfg)
        # analyst role
        self.tag_head = nn.Linear(d, len(cfg.scene_tags))
        self.register_buffer('analyst_mean', torch.zeros(d))
        self.register_buffer('analyst_inv_var', torch.ones(d))

    @property
    def n_query_slots(self) -> int:
        return self.cfg.n_modes + 2  # route token, mode queries, analyst query

    def forward(self, tokens: torch.Tensor, anchors: torch.Tensor, mask: torch.Tensor, route: torch.Tensor,
                modality: torch.Tensor) -> ModelOutput:
        """tokens (B, N, D), anchors (B, N, 3) with NaN for none, mask (B, N) True = real token, route (B,),
        modality (B, N) or (N,) :class:`Modality` of each slot."""
        tokens, anchors, mask, modality = pack_tokens(tokens, anchors, mask, modality.long(), self.cfg.max_tokens)
        b, n, _ = tokens.shape
        cfg = self.cfg
        has_anchor = torch.isfinite(anchors).all(dim=-1, keepdim=True)
        anchor_features = torch.where(has_anchor, anchors, torch.zeros_like(anchors)) / cfg.anchor_scale_m
        x = self.token_in(tokens) + self.anchor_in(anchor_features) * has_anchor + self.modality_embedding(modality)
        is_ego = (mask & (modality == Modality.EGO)).to(tokens.dtype)                       # (B, N)
        ego = (tokens[..., :EGO_STATE_FEATURES] * is_ego[..., None]).sum(1)                 # (B, 3), 0 without
        condition = self.ego_in(ego)[:, None, :]
        queries = torch.cat([self.route_embedding(route)[:, None, :],
                             self.mode_queries.expand(b, -1, -1),
                             self.analyst_query.expand(b, -1, -1)], dim=1) + condition
        x = torch.cat([x, queries], dim=1)
        keep = torch.cat([mask, mask.new_ones(b, self.n_query_slots)], dim=1)
        attn_mask = keep[:, None, None, :]           # every slot attends to real tokens and queries
        for block in self.blocks:
            x = block(x, attn_mask)
        x = self.norm(x)
        modes = x[:, n + 1:n + 1 + cfg.n_modes]     # (B, K, d)
        analyst = x[:, -1]                           # (B, d)

        mode_input = torch.cat([modes, ego[:, None].expand(-1, cfg.n_modes, -1)], -1)
        controls = self.trajectory_head(mode_input).view(b, cfg.n_modes, cfg.horizon, 2)
        speed = ego[:, 0] * EGO_STATE_SCALE[0]
        trajectories = self.rollout(speed, controls)
        score_logits = self.scorer(trajectories, ego, x, keep)
        own = trajectory_features(trajectories.detach(), speed, cfg.dt_s).flatten(2)
        mode_logits = self.mode_head(torch.cat([mode_input, own], -1)).squeeze(-1)
        novelty = ((analyst - self.analyst_mean) ** 2 * self.analyst_inv_var).mean(-1).sqrt()
        return ModelOutput(trajectories, mode_logits, score_logits,
                           plan_score(score_logits, cfg), self.tag_head(analyst), novelty, ego, x, keep,
                           {'analyst': analyst, 'controls': controls})

    def rollout(self, speed_mps: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
        """(B, K, T, 3) poses from the measured speed (B,) and raw controls (B, K, T, 2): per interval a
        bounded longitudinal and lateral acceleration, integrated with the speed and heading at each
        interval's middle (x, y, heading of the course)."""
        cfg = self.cfg
        raw_accel, raw_lateral = controls.unbind(-1)
        accel = torch.where(raw_accel >= 0, cfg.max_accel_mps2 * torch.tanh(raw_accel),
                            cfg.max_decel_mps2 * torch.tanh(raw_accel))
        v0 = speed_mps.clamp(min=0)[:, None, None].expand_as(accel)
        v_end = (v0 + torch.cumsum(accel, -1) * cfg.dt_s).clamp(min=0)           # never reverses
        v_start = torch.cat([v0[..., :1], v_end[..., :-1]], -1)
        v_mid = 0.5 * (v_start + v_end)
        distance = v_mid * cfg.dt_s
        lateral = cfg.max_lat_accel_mps2 * torch.tanh(raw_lateral)
        limit = cfg.max_curvature_per_m
        curvature = (lateral / v_mid.square().clamp(min=lateral.abs() / limit + 1e-6)).clamp(-limit, limit)
        heading_end = torch.cumsum(curvature * distance, -1)
        heading_mid = heading_end - 0.5 * curvature * distance
        x = torch.cumsum(distance * torch.cos(heading_mid), -1)
        y = torch.cumsum(distance * torch.sin(heading_mid), -1)
        return torch.stack([x, y, heading_end], -1)

    def score(self, out: ModelOutput, candidates: torch.Tensor) -> torch.Tensor:
        """(B, C, terms) scorer logits of any candidates (B, C, T, 3) in the scene of ``out``."""
        return self.scorer(candidates, out.ego, out.context, out.context_mask)


def plan_score(score_logits: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """(B, K) in [0, 1]: the gates multiplied, times the mean of the other terms."""
    p = torch.sigmoid(score_logits.float())
    gates = [cfg.score_terms.index(name) for name in GATES]
    others = [i for i in range(len(cfg.score_terms)) if i not in gates]
    return p[..., gates].prod(-1) * p[..., others].mean(-1)


def selection_logits(out: ModelOutput, cfg: ModelConfig) -> torch.Tensor:
    """(B, K): how much each mode is worth driving, driver probability and scores in log space."""
    log_p = torch.log_softmax(out.mode_logits.float(), dim=-1)
    log_scores = F.logsigmoid(out.score_logits.float())
    weights = log_scores.new_tensor(cfg.score_weights)
    return cfg.driver_weight * log_p + (log_scores * weights).sum(-1)


def choose_mode(out: ModelOutput, cfg: ModelConfig) -> torch.Tensor:
    """(B,) the mode to drive: the driver's probability for it, weighted against the scorer's verdicts.

    The scorer alone cannot tell two safe modes apart by how well they fit the scene (that is the driver's
    knowledge); the driver alone would drive a likely mode the scorer sees colliding or leaving the road.
    """
    return selection_logits(out, cfg).argmax(-1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def init_weights(model: nn.Module, seed: int) -> None:
    """Deterministic GPT-2 style init: N(0, 0.02), residual projections scaled by depth."""
    generator = torch.Generator().manual_seed(seed)
    depth = max(len(getattr(model, 'blocks', [])), 1)
    for name, parameter in model.named_parameters():
        if parameter.dim() < 2:
            continue
        std = 0.02 / math.sqrt(2 * depth) if name.endswith(('proj.weight', 'mlp.2.weight')) else 0.02
        with torch.no_grad():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
