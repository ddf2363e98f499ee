"""Forward time of the driving model per preset on this machine (planner only, one frame, static shapes)."""

import time

import numpy as np
import torch

from avstack.benchmarks import Measurement
from planner.model import DrivingModel, init_weights
from planner.presets import PRESETS, preset_configs

RUNNABLE = ('tiny', 'small', 'base', 'large')   # the 40b preset is counted (model-info), not run on one machine


def forward_ms(preset: str, repeats: int, device: str = 'cpu', dtype=torch.float32) -> np.ndarray:
    cfg, _ = preset_configs(preset)
    model = DrivingModel(cfg)
    init_weights(model, 0)
    model = model.to(device, dtype).eval()
    tokens = torch.randn(1, cfg.max_tokens, cfg.token_dim, device=device, dtype=dtype)
    anchors = torch.zeros(1, cfg.max_tokens, 3, device=device, dtype=dtype)
    mask = torch.ones(1, cfg.max_tokens, dtype=torch.bool, device=device)
    route = torch.zeros(1, dtype=torch.long, device=device)
    modality = torch.zeros(1, cfg.max_tokens, dtype=torch.uint8, device=device)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 2):
            start = time.perf_counter()
            model(tokens, anchors, mask, route, modality)
            if device.startswith('cuda'):
                torch.cuda.synchronize()
            if i >= 2:   # the first calls allocate and warm caches
                times.append((time.perf_counter() - start) * 1e3)
    return np.array(times)


def run(options) -> list:
    torch.set_num_threads(1)
    measurements = []
    for preset in RUNNABLE:
        repeats = 3 if options.quick else {'tiny': 50, 'small': 20, 'base': 10, 'large': 5}[preset]
        times = forward_ms(preset, repeats)
        measurements.append(Measurement(f'forward {preset} p50 (cpu, 1 thread, fp32)', float(np.median(times)),
                                        'ms', f'{repeats} runs'))
    if torch.cuda.is_available():
        for preset in RUNNABLE:
            times = forward_ms(preset, 5 if options.quick else 20, 'cuda', torch.bfloat16)
            measurements.append(Measurement(f'forward {preset} p50 (cuda, bf16)', float(np.median(times)), 'ms'))
    measurements.append(Measurement('presets counted but not run', None, '', ', '.join(
        p for p in PRESETS if p not in RUNNABLE)))
    return measurements
