"""The record of a training run: the events it emits, their fields, its clock and how it ends.

Defined once, here: the trainer builds its events with these functions, the sinks print and
store them (metrics.jsonl), and whoever reads a run back (a sweep's analysis) reads these names.
Nothing here imports torch or ray.

The clock is `iter`: the number of optimizer updates the measured model has had. An evaluation
logged as `step N` and the training loss logged as `iter N` measure the same weights, those
after N updates (the training loss of update N is its forward pass, before the step), so both
carry `iter` N and `tokens` = N x tokens per iteration: the training tokens the model had seen.

How a run ends is one of `ENDINGS`, written by the trainer itself in its `end` event: `completed`,
`diverged`, or `interrupted` (Ctrl-C). What only a sweep knows of a trial (stopped early by its
scheduler, errored, not started, the report rows it sends Ray) is the sweep's own record,
sweeps/results/trial.py.
"""

from __future__ import annotations

from typing import Any

# the kinds of event (the `event` key of every dict)
EVAL, STEP, END = "eval", "iter", "end"

EVAL_FIELDS = ("iter", "tokens", "train_loss", "val_loss", "gap", "lr", "elapsed_s", "train_time_s", "tokens_per_s",
               "best_val_loss", "mem_mb", "saved")
STEP_FIELDS = ("iter", "tokens", "loss", "lr", "time_ms", "tokens_per_s", "mfu")
END_FIELDS = ("iter", "status", "loss", "elapsed_s", "train_time_s", "best_val_loss", "mem_mb")

# how a run ends: what the trainer itself knows (a sweep adds the endings only it knows: sweeps/results/trial.py)
COMPLETED, DIVERGED, INTERRUPTED = "completed", "diverged", "interrupted"
ENDINGS = (COMPLETED, DIVERGED, INTERRUPTED)


def tokens(it: int, tokens_per_iter: int) -> int:
    """The training tokens a model has seen after `it` updates."""
    return it * tokens_per_iter


def estimated_params(n_layer, n_embd):
    """nanoGPT's non-embedding parameter count of a shape, about 12 * n_layer * n_embd**2 (numbers or arrays).

    Each block holds 4 * n_embd**2 weights in attention and 8 * n_embd**2 in its MLP; biases and
    LayerNorms are left out. For when a run did not report its exact count (`n_params`).
    """
    return 12.0 * n_layer * n_embd ** 2


def flops_per_token(n_params: int, n_layer: int, n_embd: int, block_size: int) -> int:
    """Forward plus backward FLOPs per token, as nanoGPT counts them (PaLM paper, appendix B):
    6N for the matmuls plus 12*L*H*Q*T for attention, where H*Q is n_embd."""
    return 6 * n_params + 12 * n_layer * n_embd * block_size


def evaluation(it: int, tokens_per_iter: int, train_loss: float, val_loss: float, lr: float, elapsed_s: float,
               train_time_s: float, steps: int, best_val_loss: float, mem_mb: float, saved: bool) -> dict[str, Any]:
    """The `eval` event: the losses of the model after `it` updates.

    `steps` is the number of optimizer steps this process made in `train_time_s` seconds, the
    basis of `tokens_per_s` (training only, evaluations excluded).
    """
    return {"event": EVAL, "iter": it, "tokens": tokens(it, tokens_per_iter), "train_loss": train_loss,
            "val_loss": val_loss, "gap": val_loss - train_loss, "lr": lr, "elapsed_s": elapsed_s,
            "train_time_s": train_time_s,
            "tokens_per_s": steps * tokens_per_iter / train_time_s if train_time_s else 0.0,
            "best_val_loss": best_val_loss, "mem_mb": mem_mb, "saved": saved}


def step(it: int, tokens_per_iter: int, loss: float, lr: float, seconds: float, mfu_percent: float) -> dict[str, Any]:
    """The `iter` event: update `it`'s training loss (the mean over its micro-batches) and its speed."""
    return {"event": STEP, "iter": it, "tokens": tokens(it, tokens_per_iter), "loss": loss, "lr": lr,
            "time_ms": seconds * 1000, "tokens_per_s": tokens_per_iter / seconds, "mfu": mfu_percent}


def end(status: str, it: int, elapsed_s: float, train_time_s: float, best_val_loss: float, mem_mb: float,
        loss: float | None = None) -> dict[str, Any]:
    """The `end` event: how the run ended (completed, diverged or interrupted) after `it` updates.

    `loss` is the training loss that diverged (NaN or Inf); None otherwise.
    """
    if status not in ENDINGS:
        raise ValueError(f"a run ends completed, diverged or interrupted, not {status!r}")
    return {"event": END, "iter": it, "status": status, "loss": loss, "elapsed_s": elapsed_s,
            "train_time_s": train_time_s, "best_val_loss": best_val_loss, "mem_mb": mem_mb}
