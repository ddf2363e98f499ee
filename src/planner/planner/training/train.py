"""The training loop: cached frames in, the best checkpoint and a per-epoch JSON log out.

Runs as one process or under ``torchrun --nproc_per_node N`` with
DistributedDataParallel (gloo on CPU, nccl on GPU): each rank reads its shard
of the training frames, gradients are averaged, rank 0 validates, logs and
writes checkpoints.

Validation frames are whole episodes (split by episode, never by time inside
one drive): those of separate validation logs when given, else a seeded
share of the episodes. The checkpoint kept is the one whose chosen mode is
closest to the label at 3 s on them. At the end, the weights with which
:func:`planner.model.choose_mode` trades the driver's probability against
the scorer's terms are tuned on the validation frames, and the analyst's
embedding statistics over the training frames are stored: they define the
novelty score.
"""

import itertools
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import ConcatDataset, DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from perception_llm.fusion import EncoderConfig, SensorEncoders
from planner.checkpoint import load_model, save_model
from planner.driving_stack import DrivingStack
from planner.model import GATES, SCORE_TERMS, DrivingModel, ModelConfig, choose_mode, init_weights
from planner.training.dataset import CachedFrames
from planner.training.labels import OutcomeRules, outcome_scores
from planner.training.objectives import losses

HORIZONS_S = (1.0, 2.0, 3.0)
# choose_mode's weights are searched over this grid on the validation frames (driver weight fixed at 1)
GATE_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)
TERM_WEIGHTS = (0.0, 0.5, 1.0)
# what a chosen mode costs in tuning: its error at 3 s (m), plus this per unsafe choice (collision, off road)
UNSAFE_COST_M = 10.0


@dataclass
class TrainOptions:
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    validation_fraction: float = 0.15   # share of episodes held out when no validation logs are given
    seed: int = 0
    max_steps: int = 0          # stop after this many optimiser steps (0: run all epochs); for smoke tests
    novelty_frames: int = 2000  # training frames used for the novelty statistics
    threads: int = 0            # torch CPU threads (0: torch's default)


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group('nccl' if torch.cuda.is_available() else 'gloo')
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def split_episodes(datasets: list[CachedFrames], validation_fraction: float, seed: int
                   ) -> tuple[list[list[int]], list[list[int]]]:
    """Per dataset, (training indices, validation indices): a seeded share of whole episodes is held out."""
    keys = sorted({(i, int(e)) for i, d in enumerate(datasets) for e in np.unique(d.episodes())})
    order = np.random.default_rng(seed).permutation(len(keys))
    count = max(1, round(validation_fraction * len(keys))) if validation_fraction > 0 and len(keys) > 1 else 0
    held = {keys[j] for j in order[:count]}
    train, validation = [], []
    for i, d in enumerate(datasets):
        episodes = d.episodes()
        is_held = np.array([(i, int(e)) in held for e in episodes], bool)
        train.append(np.flatnonzero(~is_held).tolist())
        validation.append(np.flatnonzero(is_held).tolist())
    return train, validation


def train(caches: list[Path], out_dir: Path, model_cfg: ModelConfig, encoder_cfg: EncoderConfig,
          options: TrainOptions, rules: OutcomeRules, device: str = 'cpu', extra: dict | None = None,
          init: Path | None = None, validation_caches: list[Path] | None = None) -> dict:
    """Train from cache directories, from scratch or from the weights of checkpoint ``init`` (same config);
    returns the summary written to ``out_dir/summary.json`` (rank 0)."""
    rank, world = _distributed()
    device = torch.device(f'cuda:{int(os.environ.get("LOCAL_RANK", 0))}' if device == 'cuda' else device)
    if options.threads:
        torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    datasets = [CachedFrames(c) for c in caches]
    if validation_caches:
        train_set = ConcatDataset(datasets)
        val_set = ConcatDataset([CachedFrames(c) for c in validation_caches])
    else:
        train_idx, val_idx = split_episodes(datasets, options.validation_fraction, options.seed)
        train_set = ConcatDataset([Subset(d, i) for d, i in zip(datasets, train_idx, strict=True)])
        val_set = ConcatDataset([Subset(d, i) for d, i in zip(datasets, val_idx, strict=True)])
    if len(train_set) == 0:
        raise ValueError('no training frames (logs too short for the planning horizon?)')

    if init is not None:
        model, encoders, _ = load_model(init)
        if replace(model.cfg, driver_weight=model_cfg.driver_weight, score_weights=model_cfg.score_weights) \
                != model_cfg or encoders.config != encoder_cfg:
            raise ValueError(f'{init}: its model or encoder config differs from the one being trained')
    else:
        encoders = SensorEncoders.seeded(encoder_cfg)
        model = DrivingModel(model_cfg)
        init_weights(model, options.seed)
    stack = DrivingStack(encoders, model).to(device).train()
    trainable = DistributedDataParallel(stack) if world > 1 else stack
    sampler = DistributedSampler(train_set, world, rank, shuffle=True, seed=options.seed) if world > 1 else None
    generator = torch.Generator().manual_seed(options.seed)
    loader = DataLoader(train_set, options.batch_size, shuffle=sampler is None, sampler=sampler,
                        generator=generator, drop_last=len(train_set) > options.batch_size)
    optimizer = torch.optim.AdamW(stack.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay,
                                  foreach=True)
    total_steps = options.max_steps or options.epochs * len(loader)
    warmup = min(options.warmup_steps, max(total_steps // 10, 1))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup)
                                                 * 0.5 * (1 + math.cos(math.pi * min(step / total_steps, 1.0))))
    out_dir = Path(out_dir)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / 'metrics.jsonl'
    best, step, history = math.inf, 0, []
    show = rank == 0 and sys.stderr.isatty()
    started = time.monotonic()
    for epoch in range(options.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        sums, start, batches = {}, time.monotonic(), 0
        for batch in tqdm(loader, desc=f'epoch {epoch + 1}/{options.epochs}', disable=not show, leave=False):
            batch = _to(batch, device)
            terms = losses(trainable(batch), batch, model)
            optimizer.zero_grad(set_to_none=True)
            terms['total'].backward()
            torch.nn.utils.clip_grad_norm_(stack.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step, batches = step + 1, batches + 1
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
            if options.max_steps and step >= options.max_steps:
                break
        seconds = time.monotonic() - start
        record = {'epoch': epoch + 1, 'step': step, 'seconds': round(seconds, 1),
                  'steps_per_s': round(batches / max(seconds, 1e-9), 2), 'lr': schedule.get_last_lr()[0],
                  'train': {k: v / max(batches, 1) for k, v in sums.items()}}
        if rank == 0:
            record['validation'] = evaluate(stack, val_set, options.batch_size, device, model.cfg, rules)
            history.append(record)
            with open(log_path, 'a') as log:
                log.write(json.dumps(record) + '\n')
            metric = record['validation'].get('ade_3s', record['train']['total'])
            if metric < best:
                best = metric
                save_model(out_dir, model, encoders, {'training': {'epoch': epoch + 1, 'step': step,
                                                                   **(extra or {})}})
            if not show:
                val = record['validation']
                print(f'epoch {epoch + 1}: {record["steps_per_s"]} steps/s, train loss '
                      f'{record["train"]["total"]:.4f}, validation ADE@3s {val.get("ade_3s", float("nan")):.2f} m '
                      f'(min {val.get("min_ade_3s", float("nan")):.2f}, constant velocity '
                      f'{val.get("cv_ade_3s", float("nan")):.2f})', flush=True)
        if options.max_steps and step >= options.max_steps:
            break
    summary = {}
    if rank == 0:
        best_model, best_encoders, document = load_model(out_dir)
        best_stack = DrivingStack(best_encoders, best_model).to(device)
        weights = tune_selection(best_stack, val_set, options.batch_size, device, rules)
        best_model.cfg = replace(best_model.cfg, **weights)
        fit_novelty(best_stack, train_set, options, device)
        final = evaluate(best_stack, val_set, options.batch_size, device, best_model.cfg, rules)
        save_model(out_dir, best_model, best_encoders, {k: v for k, v in document.items()
                                                        if k not in ('config', 'config_hash', 'format_version')})
        summary = {'frames': {'train': len(train_set), 'validation': len(val_set)}, 'steps': step,
                   'train_seconds': round(time.monotonic() - started, 1), 'options': asdict(options),
                   'selection': {k: list(v) if isinstance(v, tuple) else v for k, v in weights.items()},
                   'best_validation_ade_3s': best, 'validation': final, 'history': history}
        (out_dir / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return summary


def mode_outcomes(trajectories: torch.Tensor, batch: dict, dt_s: float, rules: OutcomeRules
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Outcome scores (B, K, terms) of every mode of a batch and where they are known, frame by frame."""
    frames = {name: value.cpu().numpy() for name, value in batch.items()}
    targets, known = zip(*(outcome_scores(modes, {name: value[i] for name, value in frames.items()}, dt_s, rules)
                           for i, modes in enumerate(trajectories.float().cpu().numpy())), strict=True)
    return torch.from_numpy(np.stack(targets)), torch.from_numpy(np.stack(known))


@torch.no_grad()
def evaluate(stack: DrivingStack, frames, batch_size: int, device, cfg: ModelConfig,
             rules: OutcomeRules) -> dict:
    """Frame-averaged validation loss terms; ADE/FDE of the chosen mode (:func:`choose_mode`), of the best
    mode (minADE) and of the constant-velocity baseline; how often the chosen mode is unsafe by the outcome
    labels; the scorer's accuracy per term; scene tag accuracy."""
    if len(frames) == 0:
        return {}
    stack.eval()
    t_s = torch.arange(1, cfg.horizon + 1, dtype=torch.float32, device=device) * cfg.dt_s
    totals: dict[str, float] = {}
    counts: dict[str, float] = {}

    def add(name: str, values: torch.Tensor) -> None:
        totals[name] = totals.get(name, 0.0) + float(values.float().sum())
        counts[name] = counts.get(name, 0.0) + values.numel()

    for batch in DataLoader(frames, batch_size):
        batch = _to(batch, device)
        out = stack(batch)
        b = len(batch['future'])
        for name, value in losses(out, batch, stack.model).items():
            add('loss' if name == 'total' else f'loss/{name}', value.detach().expand(b))
        truth = batch['future'][..., :2]
        pick = choose_mode(out, cfg)
        chosen = out.trajectories[torch.arange(b), pick][..., :2]
        constant_velocity = torch.stack([batch['speed_mps'][:, None] * t_s, torch.zeros_like(truth[..., 1])], -1)
        for horizon in HORIZONS_S:
            upto = t_s <= horizon + 1e-6
            error = (chosen - truth)[:, upto].norm(dim=-1)
            add(f'ade_{horizon:.0f}s', error.mean(1))
            add(f'fde_{horizon:.0f}s', error[:, -1])
            add(f'min_ade_{horizon:.0f}s', (out.trajectories[..., :2] - truth[:, None])[:, :, upto].norm(dim=-1)
                .mean(-1).amin(1))
            add(f'cv_ade_{horizon:.0f}s', (constant_velocity - truth)[:, upto].norm(dim=-1).mean(1))
        targets, known = mode_outcomes(out.trajectories, batch, cfg.dt_s, rules)
        for i, name in enumerate(SCORE_TERMS):
            k = known[..., i]
            if k.any():
                add(f'score_accuracy/{name}', ((out.score_logits[..., i] > 0) == (targets[..., i] > 0.5))[k])
        for name in GATES:
            i = SCORE_TERMS.index(name)
            k = known[torch.arange(b), pick, i]
            if k.any():
                add(f'chosen_not_{name}', (targets[torch.arange(b), pick, i] < 0.5)[k])
        valid = batch['tags_valid']
        if valid.any():
            add('tag_accuracy', ((out.tag_logits[valid] > 0) == (batch['tags'][valid] > 0.5)).float())
        lane = batch['lane_pose_valid']
        if lane.any():
            error = (out.extras['lane_pose'][lane] - batch['lane_pose'][lane]).abs()
            add('lane_offset_error_m', error[:, 0])
            add('lane_heading_error_rad', error[:, 1])
    stack.train()
    return {name: totals[name] / counts[name] for name in totals}


@torch.no_grad()
def tune_selection(stack: DrivingStack, frames, batch_size: int, device, rules: OutcomeRules) -> dict:
    """The weights of :func:`choose_mode` that minimise, over the validation frames, the chosen mode's error
    at 3 s plus ``UNSAFE_COST_M`` per choice that collides or leaves the road (by the outcome labels)."""
    cfg = stack.model.cfg
    if len(frames) == 0:
        return {'driver_weight': cfg.driver_weight, 'score_weights': cfg.score_weights}
    stack.eval()
    log_p, log_s, cost = [], [], []
    upto = torch.arange(1, cfg.horizon + 1, device=device) * cfg.dt_s <= 3.0 + 1e-6
    for batch in DataLoader(frames, batch_size):
        batch = _to(batch, device)
        out = stack(batch)
        error = (out.trajectories[..., :2] - batch['future'][:, None, :, :2])[:, :, upto].norm(dim=-1).mean(-1)
        targets, known = mode_outcomes(out.trajectories, batch, cfg.dt_s, rules)
        unsafe = sum(((targets[..., SCORE_TERMS.index(g)] < 0.5) & known[..., SCORE_TERMS.index(g)]).float()
                     for g in GATES)
        log_p.append(torch.log_softmax(out.mode_logits.float(), -1))
        log_s.append(torch.nn.functional.logsigmoid(out.score_logits.float()))
        cost.append(error + UNSAFE_COST_M * unsafe)
    stack.train()
    log_p, log_s, cost = torch.cat(log_p), torch.cat(log_s), torch.cat(cost)
    gates = [SCORE_TERMS.index(g) for g in GATES]
    others = [i for i in range(len(SCORE_TERMS)) if i not in gates]
    best_weights, best_cost = None, math.inf
    for gate_w in itertools.product(GATE_WEIGHTS, repeat=len(gates)):
        for term_w in itertools.product(TERM_WEIGHTS, repeat=len(others)):
            weights = torch.zeros(len(SCORE_TERMS))
            weights[gates], weights[others] = torch.tensor(gate_w), torch.tensor(term_w)
            pick = (log_p + (log_s * weights).sum(-1)).argmax(-1)
            total = float(cost[torch.arange(len(pick)), pick].mean())
            if total < best_cost - 1e-9:
                best_cost, best_weights = total, weights
    return {'driver_weight': 1.0, 'score_weights': tuple(round(float(w), 3) for w in best_weights)}


@torch.no_grad()
def fit_novelty(stack: DrivingStack, frames, options: TrainOptions, device) -> None:
    """Store mean and inverse variance of the analyst embedding over (up to N) training frames."""
    stack.eval()
    count = min(len(frames), options.novelty_frames)
    indices = np.random.default_rng(options.seed).permutation(len(frames))[:count].tolist()
    embeddings = torch.cat([stack(_to(batch, device)).extras['analyst'].float()
                            for batch in DataLoader(Subset(frames, indices), options.batch_size)])
    model = stack.model
    model.analyst_mean.copy_(embeddings.mean(0))
    model.analyst_inv_var.copy_(1.0 / embeddings.var(0, unbiased=False).clamp(min=1e-6))
