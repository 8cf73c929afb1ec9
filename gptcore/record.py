"""The record of a training run: the events it emits, their fields, its clock and how it ends.

Defined once, here: the trainer builds its events with these functions, the sinks print and
store them (metrics.jsonl), a sweep reports the `report_row`s to Ray (result.json), and the
analysis reads them back by these names. Nothing here imports torch or ray.

The clock is `iter`: the number of optimizer updates the measured model has had. An evaluation
logged as `step N` and the training loss logged as `iter N` measure the same weights, those
after N updates (the training loss of update N is its forward pass, before the step), so both
carry `iter` N and `tokens` = N x tokens per iteration: the training tokens the model had seen.

How a run ends is one of `STATUSES`. The trainer knows two of them and writes them itself (its
`end` event: `completed`, `diverged`; a run stopped by Ctrl-C writes `interrupted`); a sweep adds
the two only its scheduler or Ray know (`stopped early`, `errored`); a trial that never wrote an
end, and has no other record, was `interrupted` (or `not started`, without a single evaluation).
"""

from __future__ import annotations

import math
import re
from typing import Any

# the kinds of event (the `event` key of every dict)
EVAL, STEP, END = "eval", "iter", "end"

EVAL_FIELDS = ("iter", "tokens", "train_loss", "val_loss", "gap", "lr", "elapsed_s", "train_time_s", "tokens_per_s",
               "best_val_loss", "mem_mb", "saved")
STEP_FIELDS = ("iter", "tokens", "loss", "lr", "time_ms", "tokens_per_s", "mfu")
END_FIELDS = ("iter", "status", "loss", "elapsed_s", "train_time_s", "best_val_loss", "mem_mb")

COMPLETED, STOPPED, DIVERGED, ERRORED, INTERRUPTED, NOT_STARTED = (
    "completed", "stopped early", "diverged", "errored", "interrupted", "not started")
STATUSES = (COMPLETED, STOPPED, DIVERGED, ERRORED, INTERRUPTED, NOT_STARTED)
STATUS_NOTES = {
    COMPLETED: "reached max_iters",
    STOPPED: "the scheduler stopped it before max_iters (early stopping)",
    DIVERGED: "the loss became NaN/Inf; its losses are the last finite ones",
    ERRORED: "its last attempt failed (error.txt) before max_iters",
    INTERRUPTED: "the sweep (or the run) ended before this trial reached max_iters; `--resume` continues it",
    NOT_STARTED: "the trial never reported an evaluation",
}
FINAL = (COMPLETED, STOPPED, DIVERGED, ERRORED)  # a trial with one of these is over: --resume leaves it
UNFINISHED = (INTERRUPTED, NOT_STARTED)  # a sweep with such a trial is resumable
RUNNING = "running"  # the status of every report row but a trial's last
# where a sweep writes a trial's ending into its folder ({"status": ..., "iter": ...}): the two statuses
# only the sweep knows, and the trainer's own when the trial ends with it
STATUS_FILE = "status.json"

# what a sweep's trial reports at each evaluation (Ray's result.json / progress.csv rows)
RUN_FIELDS = ("n_params", "max_iters")
REPORT_FIELDS = tuple(f for f in EVAL_FIELDS if f != "saved") + RUN_FIELDS + ("status",)


def tokens(it: int, tokens_per_iter: int) -> int:
    """The training tokens a model has seen after `it` updates."""
    return it * tokens_per_iter


def estimated_params(n_layer, n_embd):
    """nanoGPT's non-embedding parameter count of a shape, about 12 * n_layer * n_embd**2 (numbers or arrays).

    Each block holds 4 * n_embd**2 weights in attention and 8 * n_embd**2 in its MLP; biases and
    LayerNorms are left out. For when a run did not report its exact count (`n_params`).
    """
    return 12.0 * n_layer * n_embd ** 2


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
    if status not in (COMPLETED, DIVERGED, INTERRUPTED):
        raise ValueError(f"a run ends completed, diverged or interrupted, not {status!r}")
    return {"event": END, "iter": it, "status": status, "loss": loss, "elapsed_s": elapsed_s,
            "train_time_s": train_time_s, "best_val_loss": best_val_loss, "mem_mb": mem_mb}


def report_row(ev: dict[str, Any], n_params: int, max_iters: int, status: str = RUNNING) -> dict[str, Any]:
    """What a sweep's trial reports: an `eval` event's fields, the run's size and budget, and its status.

    A trial's last row says how it ended (`completed`); a diverged trial's last row is
    `divergence_row`, with no losses. Every other row is `running`.
    """
    if ev.get("event") != EVAL:
        raise ValueError(f"a report row is made from an eval event, not {ev.get('event')!r}")
    return {**{k: ev[k] for k in REPORT_FIELDS[:-3]}, "n_params": n_params, "max_iters": max_iters, "status": status}


def divergence_row(ev: dict[str, Any], tokens_per_iter: int, n_params: int, max_iters: int) -> dict[str, Any]:
    """The last row of a diverged trial: where it diverged, and no losses (NaN: none was measured there)."""
    if ev.get("status") != DIVERGED:
        raise ValueError("a divergence row is made from the end event of a diverged run")
    nan = math.nan
    return {"iter": ev["iter"], "tokens": tokens(ev["iter"], tokens_per_iter), "train_loss": nan, "val_loss": nan,
            "gap": nan, "lr": nan, "elapsed_s": ev["elapsed_s"], "train_time_s": ev["train_time_s"],
            "tokens_per_s": nan, "best_val_loss": ev["best_val_loss"], "mem_mb": ev["mem_mb"], "n_params": n_params,
            "max_iters": max_iters, "status": DIVERGED}


def final_status(status_doc: dict[str, Any] | None, last_row: dict[str, Any] | None) -> str | None:
    """How a sweep's trial ended, as its record says: its STATUS_FILE, else its last report row; None while
    it has no final status (running, interrupted, or a row written before rows carried one)."""
    if isinstance(status_doc, dict) and status_doc.get("status") in FINAL:
        return str(status_doc["status"])
    said = (last_row or {}).get("status")
    return str(said) if said in FINAL else None


def is_evaluation(row: dict[str, Any]) -> bool:
    """Whether a report row holds an evaluation (every row but a diverged trial's last)."""
    return row.get("status") != DIVERGED


# a trial's folder: <name>_s<seed>_<trial id> (launch._trial_name), Ray adding a suffix when that name is taken
TRIAL_ID_IN_FOLDER = re.compile(r"_([0-9a-f]{5}_\d{5})(?:_|$)")


def left_behind(folders: dict[str, int], named_by_ray: set[str] = frozenset()) -> set[str]:
    """The trial folders that an interrupted start left behind: to be passed over when reading a sweep.

    `folders` maps each trial folder's name to the size of its result.json. A trial whose start is
    cut short (the driver stopped or killed) before Ray records its folder in the experiment state
    keeps that folder, and `--resume` runs it again in a new one (Ray adds a suffix to the taken
    name). Of the folders of one trial id, the one Ray's newest state names stays, else the one
    with the most results; the others are returned.
    """
    by_id: dict[str, list[str]] = {}
    for name in folders:
        m = TRIAL_ID_IN_FOLDER.search(name)
        if m:
            by_id.setdefault(m.group(1), []).append(name)
    out: set[str] = set()
    for names in by_id.values():
        if len(names) > 1:
            keep = max(names, key=lambda n: (n in named_by_ray, folders[n], n))
            out |= set(names) - {keep}
    return out
