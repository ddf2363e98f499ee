"""The driving model: one transformer backbone, three roles.

Read top to bottom like nanoGPT. Inputs are the fused tokens of one frame
(padded to a static ``max_tokens`` with a mask), each with an anchor in
``base_link`` (NaN when it has none) and its modality, plus a route command.
The ego token is also read on its own: a linear head decodes the ego speed
from it, and every trajectory mode is a residual over driving straight on at
that speed (the constant-velocity prior), so the backbone learns how driving
deviates from inertia rather than inertia itself. Learned queries ride along
with the context tokens through the backbone:

* ``n_modes`` **driver** queries each decode one trajectory mode
  (``horizon`` waypoints of x, y, heading, residual over the prior) and its logit;
* the same mode queries feed the **critic** heads: predicted collision risk,
  progress and comfort per mode, combined into a plan score; the mode driven
  is the one whose probability times plan score is highest (:func:`choose_mode`);
* one **analyst** query predicts multi-label scene tags; the novelty score is
  the distance of the analyst embedding to the training distribution
  (statistics stored as buffers at the end of training).
"""

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from stack_common.tokens import Modality

ROUTE_COMMANDS = ('follow', 'left', 'right', 'straight', 'lane_left', 'lane_right')
SPEED_SCALE_MPS = 10.0   # the ego speed head predicts speed / 10
SCENE_TAGS = ('lead_vehicle_braking', 'cut_in', 'merge', 'dense_traffic', 'intersection')


@dataclass
class ModelConfig:
    token_dim: int = 64        # D of the fused tokens on the wire
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    max_tokens: int = 512      # static number of context slots (tokens are padded to it)
    n_modes: int = 6           # K trajectory modes
    horizon: int = 8           # T waypoints
    dt_s: float = 0.5          # waypoint spacing
    anchor_scale_m: float = 50.0
    route_commands: tuple[str, ...] = ROUTE_COMMANDS
    scene_tags: tuple[str, ...] = SCENE_TAGS
    # plan score = progress * (1 - collision risk) * (comfort_weight * comfort + 1 - comfort_weight)
    comfort_weight: float = 0.3

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> 'ModelConfig':
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f'unknown model config keys {sorted(unknown)}')
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


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


@dataclass
class ModelOutput:
    trajectories: torch.Tensor    # (B, K, T, 3) x, y, heading in base_link
    mode_logits: torch.Tensor     # (B, K)
    collision_risk: torch.Tensor  # (B, K) in [0, 1]
    progress: torch.Tensor        # (B, K) in [0, 1]
    comfort: torch.Tensor         # (B, K) in [0, 1]
    plan_score: torch.Tensor      # (B, K) in [0, 1]
    tag_logits: torch.Tensor      # (B, n_tags)
    novelty: torch.Tensor         # (B,)
    ego_speed: torch.Tensor       # (B,) m/s decoded from the ego token (0 without one)
    extras: dict = field(default_factory=dict)


class DrivingModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.d_model % cfg.n_heads:
            raise ValueError(f'd_model {cfg.d_model} is not divisible by n_heads {cfg.n_heads}')
        self.cfg = cfg
        d = cfg.d_model
        self.token_in = nn.Linear(cfg.token_dim, d)
        self.modality_embedding = nn.Embedding(len(Modality), d)
        self.ego_speed_head = nn.Linear(cfg.token_dim, 1)
        self.anchor_in = nn.Sequential(nn.Linear(3, d), nn.GELU(), nn.Linear(d, d))
        self.route_embedding = nn.Embedding(len(cfg.route_commands), d)
        self.mode_queries = nn.Parameter(torch.randn(cfg.n_modes, d) * 0.02)
        self.analyst_query = nn.Parameter(torch.randn(1, d) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)
        # driver role
        self.trajectory_head = nn.Linear(d, cfg.horizon * 3)
        self.mode_head = nn.Linear(d, 1)
        # critic role: reads the mode embedding and the mode's own trajectory
        self.critic_head = nn.Sequential(nn.Linear(d + cfg.horizon * 3, d), nn.GELU(), nn.Linear(d, 3))
        # analyst role
        self.tag_head = nn.Linear(d, len(cfg.scene_tags))
        self.register_buffer('analyst_mean', torch.zeros(d))
        self.register_buffer('analyst_inv_var', torch.ones(d))
        self.register_buffer('trajectory_scale', torch.tensor([5.0, 2.0, 0.2]))  # of the residual

    @property
    def n_query_slots(self) -> int:
        return self.cfg.n_modes + 2  # route token, mode queries, analyst query

    def forward(self, tokens: torch.Tensor, anchors: torch.Tensor, mask: torch.Tensor, route: torch.Tensor,
                modality: torch.Tensor) -> ModelOutput:
        """tokens (B, N, D), anchors (B, N, 3) with NaN for none, mask (B, N) True = real token, route (B,),
        modality (B, N) or (N,) :class:`Modality` of each slot."""
        b, n, _ = tokens.shape
        cfg = self.cfg
        modality = modality.long().expand(b, n)
        has_anchor = torch.isfinite(anchors).all(dim=-1, keepdim=True)
        anchor_features = torch.where(has_anchor, anchors, torch.zeros_like(anchors)) / cfg.anchor_scale_m
        x = self.token_in(tokens) + self.anchor_in(anchor_features) * has_anchor + self.modality_embedding(modality)
        is_ego = (mask & (modality == Modality.EGO)).to(tokens.dtype)                       # (B, N)
        ego_token = (tokens * is_ego[..., None]).sum(1)                                     # (B, D), 0 without
        ego_speed = self.ego_speed_head(ego_token).squeeze(-1) * SPEED_SCALE_MPS * is_ego.sum(1).clamp(max=1)
        queries = torch.cat([self.route_embedding(route)[:, None, :],
                             self.mode_queries.expand(b, -1, -1),
                             self.analyst_query.expand(b, -1, -1)], dim=1)
        x = torch.cat([x, queries], dim=1)
        keep = torch.cat([mask, mask.new_ones(b, self.n_query_slots)], dim=1)
        attn_mask = keep[:, None, None, :]           # every slot attends to real tokens and queries
        for block in self.blocks:
            x = block(x, attn_mask)
        x = self.norm(x)
        modes = x[:, n + 1:n + 1 + cfg.n_modes]     # (B, K, d)
        analyst = x[:, -1]                           # (B, d)

        raw = self.trajectory_head(modes).view(b, cfg.n_modes, cfg.horizon, 3)
        trajectories = raw * self.trajectory_scale + self.constant_velocity(ego_speed)[:, None]
        critic = self.critic_head(torch.cat([modes, raw.flatten(2)], dim=-1)).sigmoid()
        collision_risk, progress, comfort = critic.unbind(-1)
        plan_score = progress * (1 - collision_risk) * (cfg.comfort_weight * comfort + 1 - cfg.comfort_weight)
        novelty = ((analyst - self.analyst_mean) ** 2 * self.analyst_inv_var).mean(-1).sqrt()
        return ModelOutput(trajectories, self.mode_head(modes).squeeze(-1), collision_risk, progress,
                           comfort, plan_score, self.tag_head(analyst), novelty, ego_speed, {'analyst': analyst})

    def constant_velocity(self, speed: torch.Tensor) -> torch.Tensor:
        """(B, T, 3): straight ahead in base_link at ``speed`` (B,), the prior every mode is a residual over."""
        t_s = torch.arange(1, self.cfg.horizon + 1, device=speed.device, dtype=speed.dtype) * self.cfg.dt_s
        prior = torch.zeros(*speed.shape, self.cfg.horizon, 3, device=speed.device, dtype=speed.dtype)
        prior[..., 0] = speed[..., None] * t_s
        return prior


def choose_mode(out: ModelOutput) -> torch.Tensor:
    """(B,) the mode to drive: the driver's probability for it weighted by the critic's plan score.

    The critic head alone cannot tell two safe, comfortable modes apart by how
    well they fit the scene (that is the driver's knowledge); the driver alone
    would drive a likely mode its critic scores as a collision.
    """
    return (torch.softmax(out.mode_logits.float(), dim=-1) * out.plan_score.float()).argmax(-1)


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
