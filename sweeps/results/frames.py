"""The analysis's data: `Results`, the three frames every reader builds (a sweep's folder, hand-made logs).

- trials: one row per trial (name, seed, config, status, final and best metrics, cost);
- history: one row per evaluation (de-duplicated on `iter`, keeping the last: a retried trial
  repeats rows), evaluations only: a diverged trial's end is its `status` and `diverged_at`;
- iters: the per-iteration training loss where a trial logged it.

The column names are gptcore's record (`gptcore.record`) and the config fields experiments vary
(`sweeps.specs.KNOBS`); nothing here reads a file but the shipped base config.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gptcore import record
from gptcore.config import FIELD_TYPES, SHIPPED_DIR, TrainConfig, read_config_file
from sweeps.experiment.specs import KNOBS as CONFIG_COLUMNS  # the config columns of the trials table
from sweeps.results.files import num
from sweeps.results.metrics import overfit_class
from sweeps.results.trial import ending, is_evaluation

# one row per evaluation: the trial, then the record's evaluation fields
HISTORY_COLUMNS = ("trial_id", "name", "seed") + tuple(f for f in record.EVAL_FIELDS if f != "saved")
ITER_COLUMNS = ("trial_id", "iter", "loss")


@dataclass
class Results:
    """Everything the analysis needs about one experiment.

    `configs` maps trial_id to that trial's full config (every TrainConfig field), so schedules
    can be recomputed; `params` maps it to its Tune config (params.json: what a search sampled);
    `notes` are things the reader should know (unreadable lines, guesses).
    """

    trials: pd.DataFrame
    history: pd.DataFrame
    iters: pd.DataFrame
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "sweep"
    notes: list[str] = field(default_factory=list)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    # trial_id -> where it ran, from its config.json: device, dtype (and why), threads, CPU or GPU, versions
    envs: dict[str, dict[str, Any]] = field(default_factory=dict)


@functools.lru_cache(maxsize=1)
def tutorial_base() -> dict[str, Any]:
    """TrainConfig defaults overlaid with the shipped `train_shakespeare_char` config.

    Every experiment of the chapter starts from that config, so it is the best guess for
    fields a trial did not record (a trial that crashed before gptcore wrote config.json).
    """
    return {**TrainConfig().as_dict(), **read_config_file(SHIPPED_DIR / "train_shakespeare_char.py")}


def config_fields(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k in FIELD_TYPES}


def tokens_per_iter(cfg: dict[str, Any]) -> int:
    """Tokens one optimizer step consumes: micro-batch x accumulation steps x context."""
    return int(cfg["batch_size"]) * int(cfg["gradient_accumulation_steps"]) * int(cfg["block_size"])


EVAL_KEYS = HISTORY_COLUMNS[3:]  # an evaluation's fields: iter, tokens, train_loss, val_loss, gap, lr, ...


@dataclass
class TrialRecord:
    """One trial as the analysis reads it: its config and ending, and its evaluations as arrays (one per step).

    `evals` maps each of EVAL_KEYS to an array sorted by iter, one value per step (a retried trial repeats rows:
    the last is kept; `retried` counts the ones dropped). `facts` are what its files add (time_s, mem_mb,
    n_params, error, sample, max_iters_known, where).
    """

    trial_id: str
    name: str
    config: dict[str, Any]
    status: str
    stage: str
    evals: dict[str, np.ndarray]
    diverged_at: float = math.nan
    retried: int = 0
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> Any:
        return self.config.get("seed")


FACTS = {"error": "", "sample": "", "time_s": math.nan, "n_params": math.nan, "mem_mb": math.nan,
         "max_iters_known": True, "where": ""}


def trial_record(trial_id: str, name: str, cfg: dict[str, Any], evals: list[dict[str, Any]], *, status: str,
                 diverged_at: float = math.nan, stage: str = "grid", **facts: Any) -> TrialRecord:
    """A trial's record from its evaluation rows: the one builder, for the loader (a sweep's folder, with what its
    files add in `facts`) and for judging a sweep while it runs (`from_reports`, sweeps.verdicts' Runs)."""
    table = {k: np.array([num(r.get(k)) for r in evals], dtype=float) for k in EVAL_KEYS}
    keep = ~np.isnan(table["iter"])
    table = {k: v[keep] for k, v in table.items()}
    missing = np.isnan(table["gap"])
    table["gap"][missing] = table["val_loss"][missing] - table["train_loss"][missing]
    # one row per step, the last one kept; in step order
    it = table["iter"]
    last = {x: i for i, x in enumerate(it)}
    order = sorted(last.values(), key=lambda i: it[i])
    table = {k: v[order] for k, v in table.items()}
    if len(order) and np.isnan(table["tokens"]).all():
        table["tokens"] = table["iter"] * tokens_per_iter(cfg)
    return TrialRecord(trial_id, name, dict(cfg), status, stage, table, diverged_at, len(it) - len(order),
                       {**FACTS, **facts})


def history_of(rec: TrialRecord) -> pd.DataFrame:
    """A record's evaluations as history rows (HISTORY_COLUMNS)."""
    n = len(rec.evals["iter"])
    return pd.DataFrame({"trial_id": [rec.trial_id] * n, "name": [rec.name] * n, "seed": [rec.seed] * n,
                         **rec.evals}, columns=list(HISTORY_COLUMNS))


def summary_of(rec: TrialRecord) -> dict[str, Any]:
    """A record's trials-table row: its config, its status, its final and best metrics and its cost."""
    e, cfg, f = rec.evals, rec.config, rec.facts
    n = len(e["iter"])
    finite = ~np.isnan(e["val_loss"])
    final_iter = float(e["iter"].max()) if n else 0.0
    if not math.isnan(rec.diverged_at):
        final_iter = max(final_iter, rec.diverged_at)
    tpi = tokens_per_iter(cfg)
    if finite.any():
        i = int(np.flatnonzero(finite)[np.argmin(e["val_loss"][finite])])
        best_val, best_iter = float(e["val_loss"][i]), float(e["iter"][i])
    else:
        best_val = best_iter = math.nan
    final_train = float(e["train_loss"][-1]) if n else math.nan
    final_val = float(e["val_loss"][-1]) if n else math.nan
    gap = final_val - final_train
    return {"name": rec.name, "trial_id": rec.trial_id, "status": rec.status, "stage": rec.stage,
            **{k: cfg.get(k) for k in CONFIG_COLUMNS},
            "final_iter": final_iter, "final_train_loss": final_train, "final_val_loss": final_val,
            "final_gap": gap, "overfit_class": overfit_class(gap), "best_val_loss": best_val, "best_iter": best_iter,
            "diverged_at": rec.diverged_at, "tokens": record.tokens(final_iter, tpi), "tokens_per_iter": tpi,
            "tokens_planned": float(cfg["max_iters"]) * tpi if f["max_iters_known"] else math.nan,
            "time_s": f["time_s"], "n_params": f["n_params"], "mem_mb": f["mem_mb"], "n_evals": int(finite.sum()),
            "retried_rows": rec.retried, "error": f["error"], "sample": f["sample"], "path": f["where"]}


def trial_frames(trial_id: str, name: str, cfg: dict[str, Any], evals: list[dict[str, Any]], *, status: str,
                 diverged_at: float = math.nan, stage: str = "grid",
                 **facts: Any) -> tuple[dict[str, Any], pd.DataFrame]:
    """One trial's trials-table row and its history, from its evaluation rows (`trial_record`)."""
    rec = trial_record(trial_id, name, cfg, evals, status=status, diverged_at=diverged_at, stage=stage, **facts)
    return summary_of(rec), history_of(rec)


def assemble(rows: list[dict[str, Any]], hists: list[pd.DataFrame], iters: list[pd.DataFrame],
             configs: dict[str, dict[str, Any]], source: str, notes: list[str]) -> Results:
    """The three frames from per-trial parts, with a unique display label per trial."""
    trials = pd.DataFrame(rows)
    labels = []
    for name, seed, tid in zip(trials["name"], trials["seed"], trials["trial_id"]):
        same = trials[trials["name"] == name]
        if len(same) == 1:
            labels.append(name)
        elif same["seed"].nunique() == len(same):  # the seeds of one run
            labels.append(f"{name} s{seed}")
        else:  # names that repeat with one seed (a search): the trial id tells them apart
            labels.append(f"{name} {tid}")
    trials.insert(1, "label", labels)
    history = pd.concat(hists, ignore_index=True) if hists else pd.DataFrame(columns=list(HISTORY_COLUMNS))
    it = [f for f in iters if len(f)]
    per_iter = pd.concat(it, ignore_index=True) if it else pd.DataFrame(columns=list(ITER_COLUMNS))
    return Results(trials=trials, history=history, iters=per_iter, configs=configs, source=source, notes=notes)


def config_of(res: Results, trial_id: str) -> TrainConfig:
    """A trial's full config as a TrainConfig (for `gptcore.train.get_lr`)."""
    return TrainConfig(**config_fields(res.configs[trial_id]))


def finite_curve(res: Results, trial_id: str) -> pd.DataFrame:
    """A trial's evaluations with a finite val loss, sorted by iter."""
    h = res.history[res.history["trial_id"] == trial_id]
    h = h[np.isfinite(h["val_loss"].astype(float))]
    return h.sort_values("iter")


def lr_schedule(res: Results, trial_id: str) -> np.ndarray:
    """The learning rate at every iteration 0..max_iters of a trial, from gptcore's own get_lr."""
    from gptcore.schedule import get_lr

    cfg = config_of(res, trial_id)
    return np.array([get_lr(it, cfg) for it in range(cfg.max_iters + 1)])


def from_reports(trials: list[tuple[str, dict[str, Any], list[dict[str, Any]]]], upto: float | None = None) -> Results:
    """Results from what trials reported to Tune as they ran: (trial id, config with `name`, report rows) each.

    For judging a sweep while it runs (the early stopping's rungs, the seeds added after a look):
    the rows are `sweeps.results.trial.report_row`s, so this has the evaluations but not the per-iteration
    losses (a check that needs those cannot tell here). `upto`: only the rows up to that iteration.
    """
    rows, hists, configs = [], [], {}
    for trial_id, config, reports in trials:
        reports = [r for r in reports if upto is None or num(r.get("iter")) <= upto]
        cfg = {**tutorial_base(), **config_fields(config)}
        diverged = [num(r.get("iter")) for r in reports if not is_evaluation(r)]
        row, hist = trial_frames(trial_id, str(config.get("name", trial_id)), cfg,
                                 [r for r in reports if is_evaluation(r)],
                                 status=ending(reports[-1] if reports else None, over=False, live=True),
                                 diverged_at=min(diverged) if diverged else math.nan,
                                 stage=str(config.get("stage", "grid")),
                                 n_params=num(reports[-1].get("n_params")) if reports else math.nan)
        rows.append(row)
        hists.append(hist)
        configs[trial_id] = cfg
    return assemble(rows, hists, [], configs, "reports", [])
