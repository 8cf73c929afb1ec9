"""The learning-rate schedule of nanoGPT's train.py: linear warmup, cosine decay to `min_lr`, then `min_lr`.

Pure arithmetic on a TrainConfig (no torch), so that a report can redraw a run's schedule without
loading the trainer.
"""

from __future__ import annotations

import math

from .config import TrainConfig


def get_lr(it: int, cfg: TrainConfig) -> float:
    """Learning rate at iteration `it`: linear warmup, cosine decay to `min_lr`, then `min_lr`.

    The same formula as nanoGPT (warmup starts at learning_rate / (warmup_iters + 1), not 0).
    With `decay_lr=False` there is no warmup either: the rate is constant, as in nanoGPT.
    """
    if not cfg.decay_lr:
        return cfg.learning_rate
    if it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / (cfg.warmup_iters + 1)
    if it > cfg.lr_decay_iters or cfg.lr_decay_iters <= cfg.warmup_iters:
        return cfg.min_lr
    decay_ratio = (it - cfg.warmup_iters) / (cfg.lr_decay_iters - cfg.warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))  # from 1 down to 0
    return cfg.min_lr + coeff * (cfg.learning_rate - cfg.min_lr)
