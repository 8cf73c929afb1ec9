"""The batches the trainer draws from a prepared dataset: deterministic functions of (seed, step).

The examples of one optimizer step do not depend on how they are split into micro-batches.
Evaluation uses fixed windows drawn from their own seed (`eval_seed`), the same for every run with
the same eval_seed, evaluation batch size and block size, whatever seed it trains with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import check_ids, split_tokens


@dataclass
class Split:
    tokens: np.ndarray  # uint16, memory-mapped

    def windows(self, starts: np.ndarray, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) for windows starting at `starts`; y is x shifted by one token."""
        idx = starts[:, None] + np.arange(block_size + 1)[None, :]
        w = torch.from_numpy(self.tokens[idx].astype(np.int64))
        return w[:, :-1].contiguous(), w[:, 1:].contiguous()


class Batches:
    """Draws training and evaluation batches for one run.

    Training: step `it` uses the `batch_size * accum` windows drawn from a generator seeded
    by (seed, it), cut into `accum` micro-batches in order, so 64 x 1 and 16 x 4 train on the
    same examples, and a resumed run draws what an uninterrupted one would have.
    Evaluation: `eval_iters` batches per split of windows spread evenly over the split (from
    an offset drawn from `eval_seed`, not `seed`), fixed once and reused at every evaluation.
    """

    def __init__(self, folder: Path, block_size: int, batch_size: int, accum: int, seed: int,
                 device: str, train_tokens: int = 0, eval_batch_size: int = 0, eval_seed: int = 1337):
        self.folder = folder
        self.block_size, self.batch_size, self.accum, self.seed = block_size, batch_size, accum, seed
        # its own seed, so that trials training with different seeds are measured on the same text
        # (1337: TrainConfig's default)
        self.eval_seed = eval_seed
        # evaluation batches have their own size, so a sweep can hold them equal across trials
        # that train with different batch sizes (0: the training micro-batch, as nanoGPT)
        self.eval_batch_size = eval_batch_size or batch_size
        self.device = device
        self.splits = {name: Split(split_tokens(folder, name, block_size, train_tokens)) for name in ("train", "val")}
        self._eval: dict[tuple[str, int], list[np.ndarray]] = {}

    def check_vocab(self, vocab_size: int) -> None:
        """Refuse token ids the model has no embedding for (a dataset and meta.pkl that do not match)."""
        for name, s in self.splits.items():
            check_ids(self.folder / f"{name}.bin", s.tokens, vocab_size)

    def _starts(self, split: str, key: tuple[int, ...], n: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, *key])
        return rng.integers(0, len(self.splits[split].tokens) - self.block_size, size=n)

    def _to_device(self, x: torch.Tensor, y: torch.Tensor):
        if self.device.startswith("cuda"):
            # pinned memory lets the copy overlap with compute
            return x.pin_memory().to(self.device, non_blocking=True), y.pin_memory().to(self.device, non_blocking=True)
        return x.to(self.device), y.to(self.device)

    def train_step(self, it: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The `accum` micro-batches of optimizer step `it`."""
        starts = self._starts("train", (0, it), self.batch_size * self.accum)
        split = self.splits["train"]
        out = []
        for k in range(self.accum):
            x, y = split.windows(starts[k * self.batch_size:(k + 1) * self.batch_size], self.block_size)
            out.append(self._to_device(x, y))
        return out

    def eval_batches(self, split: str, eval_iters: int):
        """The `eval_iters` fixed evaluation batches of `split`, drawn on first use."""
        key = (split, eval_iters)  # a diagnostic's single batch must not stand in for a full evaluation
        if key not in self._eval:
            # evenly spaced windows (one random offset, then a fixed stride) instead of nanoGPT's
            # fresh random draws: the same token budget estimates the loss of the whole split
            # with much less variance, so evaluations compare models, not samples
            eb = self.eval_batch_size
            n = eval_iters * eb
            span = len(self.splits[split].tokens) - self.block_size
            offset = int(np.random.default_rng([self.eval_seed, 1, 0 if split == "train" else 1]).integers(0, span))
            starts = (offset + (np.arange(n) * span) // n) % span
            self._eval[key] = [starts[i * eb:(i + 1) * eb] for i in range(eval_iters)]
        for starts in self._eval[key]:
            yield self._to_device(*self.splits[split].windows(starts, self.block_size))
