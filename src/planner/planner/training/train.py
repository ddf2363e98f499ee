"""The training loop: cached frames in, the best checkpoint and a per-epoch JSON log out.

Runs as one process or under ``torchrun --nproc_per_node N`` with
DistributedDataParallel (gloo on CPU, nccl on GPU): each rank reads its shard
of the training frames, gradients are averaged, rank 0 validates, logs and
writes checkpoints. Validation frames are whole time blocks held out of each
log. At the end, the analyst's embedding statistics over the training frames
are stored in the best checkpoint: they define the novelty score.
"""

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import ConcatDataset, DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from perception_llm.fusion import EncoderConfig, SensorEncoders
from planner.checkpoint import load_model, save_model
from planner.model import DrivingModel, ModelConfig, choose_mode, init_weights
from planner.training.dataset import CachedFrames, split_blocks
from planner.training.objectives import DrivingStack, losses

HORIZONS_S = (1.0, 2.0, 3.0)


@dataclass
class TrainOptions:
    epochs: int = 10
    batch_size: int = 16
    learning_rate: float = 5e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    validation_fraction: float = 0.15
    seed: int = 0
    max_steps: int = 0          # stop after this many optimiser steps (0: run all epochs); for smoke tests
    novelty_frames: int = 2000  # training frames used for the novelty statistics


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group('nccl' if torch.cuda.is_available() else 'gloo')
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def train(caches: list[Path], out_dir: Path, model_cfg: ModelConfig, encoder_cfg: EncoderConfig,
          options: TrainOptions, device: str = 'cpu', extra: dict | None = None, init: Path | None = None) -> dict:
    """Train from cache directories, from scratch or from the weights of checkpoint ``init`` (same config);
    returns the summary written to ``out_dir/summary.json`` (rank 0)."""
    rank, world = _distributed()
    device = torch.device(f'cuda:{int(os.environ.get("LOCAL_RANK", 0))}' if device == 'cuda' else device)
    torch.manual_seed(options.seed)
    datasets = [CachedFrames(c) for c in caches]
    splits = [split_blocks(len(d), options.validation_fraction, seed=options.seed) for d in datasets]
    train_set = ConcatDataset([Subset(d, s.train) for d, s in zip(datasets, splits)])
    val_set = ConcatDataset([Subset(d, s.validation) for d, s in zip(datasets, splits)])
    if len(train_set) == 0:
        raise ValueError('no training frames (logs too short for the planning horizon?)')

    if init is not None:
        model, encoders, _ = load_model(init)
        if model.cfg != model_cfg or encoders.config != encoder_cfg:
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
    optimizer = torch.optim.AdamW(stack.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    total_steps = options.max_steps or options.epochs * len(loader)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / options.warmup_steps)
                                                 * 0.5 * (1 + math.cos(math.pi * min(step / total_steps, 1.0))))
    out_dir = Path(out_dir)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / 'metrics.jsonl'
    best, step, history = math.inf, 0, []
    show = rank == 0 and sys.stderr.isatty()
    for epoch in range(options.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        sums, start = {}, time.monotonic()
        for batch in tqdm(loader, desc=f'epoch {epoch + 1}/{options.epochs}', disable=not show, leave=False):
            terms = losses(trainable(_to(batch, device)), _to(batch, device), model_cfg.dt_s)
            optimizer.zero_grad(set_to_none=True)
            terms['total'].backward()
            torch.nn.utils.clip_grad_norm_(stack.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
            if options.max_steps and step >= options.max_steps:
                break
        record = {'epoch': epoch + 1, 'step': step, 'seconds': round(time.monotonic() - start, 1),
                  'lr': schedule.get_last_lr()[0],
                  'train': {k: v / max(len(loader), 1) for k, v in sums.items()}}
        if rank == 0:
            record['validation'] = evaluate(stack, val_set, options.batch_size, device, model_cfg)
            history.append(record)
            with open(log_path, 'a') as log:
                log.write(json.dumps(record) + '\n')
            score = record['validation'].get('loss', record['train']['total'])
            if score < best:
                best = score
                save_model(out_dir, model, encoders, {'training': {'epoch': epoch + 1, 'step': step,
                                                                   **(extra or {})}})
            if not show:
                print(f'epoch {epoch + 1}: train loss {record["train"]["total"]:.4f}, '
                      f'validation {json.dumps(record["validation"])}', flush=True)
        if options.max_steps and step >= options.max_steps:
            break
    summary = {}
    if rank == 0:
        best_model, best_encoders, document = load_model(out_dir)
        fit_novelty(DrivingStack(best_encoders, best_model).to(device), train_set, options, device)
        save_model(out_dir, best_model, best_encoders, {k: v for k, v in document.items()
                                                        if k not in ('config', 'config_hash', 'format_version')})
        summary = {'frames': {'train': len(train_set), 'validation': len(val_set)}, 'steps': step,
                   'options': asdict(options), 'best_validation_loss': best, 'history': history}
        (out_dir / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return summary


@torch.no_grad()
def evaluate(stack: DrivingStack, frames, batch_size: int, device, cfg: ModelConfig) -> dict:
    """Frame-averaged validation loss terms; ADE/FDE of the chosen mode (:func:`choose_mode`), of the best
    mode (minADE over the horizon) and of the constant-velocity baseline; scene tag accuracy."""
    if len(frames) == 0:
        return {}
    stack.eval()
    t_s = torch.arange(1, cfg.horizon + 1, dtype=torch.float32, device=device) * cfg.dt_s
    totals: dict[str, float] = {}
    counts: dict[str, float] = {}

    def add(name: str, values: torch.Tensor) -> None:
        totals[name] = totals.get(name, 0.0) + float(values.sum())
        counts[name] = counts.get(name, 0.0) + values.numel()

    for batch in DataLoader(frames, batch_size):
        batch = _to(batch, device)
        out = stack(batch)
        b = len(batch['future'])
        for name, value in losses(out, batch, cfg.dt_s).items():
            add('loss' if name == 'total' else f'loss/{name}', value.detach().expand(b))
        truth = batch['future'][..., :2]
        chosen = out.trajectories[torch.arange(b), choose_mode(out)][..., :2]
        constant_velocity = torch.stack([batch['speed_mps'][:, None] * t_s, torch.zeros_like(truth[..., 1])], -1)
        for horizon in HORIZONS_S:
            upto = t_s <= horizon + 1e-6
            error = (chosen - truth)[:, upto].norm(dim=-1)
            add(f'ade_{horizon:.0f}s', error.mean(1))
            add(f'fde_{horizon:.0f}s', error[:, -1])
            add(f'min_ade_{horizon:.0f}s', (out.trajectories[..., :2] - truth[:, None])[:, :, upto].norm(dim=-1)
                .mean(-1).amin(1))
            add(f'cv_ade_{horizon:.0f}s', (constant_velocity - truth)[:, upto].norm(dim=-1).mean(1))
        valid = batch['tags_valid']
        if valid.any():
            add('tag_accuracy', ((out.tag_logits[valid] > 0) == (batch['tags'][valid] > 0.5)).float())
    stack.train()
    return {name: totals[name] / counts[name] for name in totals}


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
