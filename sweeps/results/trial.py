"""A sweep's record of a trial, beyond the run's own (`gptcore.record`): how it ended, what it reported.

A trial is a gptcore run inside a sweep. The run says how it ended when it knows (`completed`,
`diverged`); only the sweep knows the other endings: its scheduler stopped the trial early
(`stopped early`), Ray gave up on it (`errored`), it never ran (`not started`), or the sweep ended
before it did (`interrupted`). `ending` decides that, once, for everything that asks: the
trial's status file, the live view, a search's sampler and the loader.

What a trial reports to Tune at each evaluation is a `report_row` (Ray's result.json, one per
report): the run's evaluation fields, its size and budget, and its status (`running` until its
last row). `row_of` takes those fields back out of what Tune hands the driver, for every part of
the sweep that judges the trials while they run.
"""

from __future__ import annotations

import math
import re
from typing import Any

from gptcore.record import COMPLETED, DIVERGED, EVAL, EVAL_FIELDS, INTERRUPTED, tokens

STOPPED, ERRORED, NOT_STARTED = "stopped early", "errored", "not started"
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
# where a sweep writes a trial's ending into its folder ({"status": ..., "iter": ...})
STATUS_FILE = "status.json"

# a trial's `stage` (its config's, a column of the trials table): a grid's trials, and a search's own
# and its confirm stage's (sweeps/strategies/search.py)
GRID, SEARCH, CONFIRM = "grid", "search", "confirm"

# what a sweep's trial reports at each evaluation (Ray's result.json / progress.csv rows)
RUN_FIELDS = ("n_params", "max_iters")
REPORT_FIELDS = tuple(f for f in EVAL_FIELDS if f != "saved") + RUN_FIELDS + ("status",)


def ending(last: dict[str, Any] | None, over: bool, errored: bool = False, live: bool = False) -> str:
    """How a trial ended, or where it stands: the one rule of the sweep.

    `last` is its last report row (None: it never reported); `over` whether Tune (or its record)
    says the trial has ended; `errored` whether Ray gave up on it. Ray's verdict comes first, then
    the run's own word in its last row (`completed`, `diverged`); a trial Tune ended before that
    was stopped early by the scheduler (before its first report too: a waiting seed of a stopped
    run). One not over is `running` while the sweep runs (`live`), else `interrupted` once it
    reported; without a report it is `not started`.
    """
    if errored:
        return ERRORED
    said = (last or {}).get("status")
    if said in (COMPLETED, DIVERGED):
        return str(said)
    if over:
        return STOPPED
    if not last:
        return NOT_STARTED
    return RUNNING if live else INTERRUPTED


def final_status(status_doc: dict[str, Any] | None, last_row: dict[str, Any] | None) -> str | None:
    """How a trial ended, as its folder says: its STATUS_FILE, else its last report row; None while it has
    no final status (running, interrupted, or a row written before rows carried one)."""
    if isinstance(status_doc, dict) and status_doc.get("status") in FINAL:
        return str(status_doc["status"])
    said = (last_row or {}).get("status")
    return str(said) if said in FINAL else None


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


def row_of(result: dict[str, Any]) -> dict[str, Any]:
    """A report row's fields out of a result Tune hands the driver (it adds its own: the trial id, the time...)."""
    return {k: result[k] for k in REPORT_FIELDS if k in result}


def of_stage(trials: Any, stage: str) -> Any:
    """The rows of a trials table (a DataFrame) whose trials have this `stage`."""
    return trials[trials["stage"] == stage]


def is_evaluation(row: dict[str, Any]) -> bool:
    """Whether a report row holds an evaluation (every row but a diverged trial's last)."""
    return row.get("status") != DIVERGED


# a trial's folder: <name>_s<seed>_<trial id> (tune.launch), Ray adding a suffix when that name is taken
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
