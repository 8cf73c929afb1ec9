"""What a sweep leaves on disk (docs/outputs.md), as pandas DataFrames: the one reader of its folder.

Only raw files are read (Ray's `experiment_state-*.json`, `result.json`, `params.json`; gptcore's
`config.json`, `metrics.jsonl`, `train.log`, `sample.txt`; `error.txt`): no Ray import and no
`ray.init`, so a report can be made on any machine that holds a copy of the results, and a sweep
that died half-way still loads. The sweep command's summary, the benchmarks and the tests read
sweeps through this module too. Hand-made training logs are read by `logs.py` into the same frames.

Three frames come out:

- trials: one row per trial (name, seed, config, final and best metrics, status, cost);
- history: one row per evaluation (retries de-duplicated on `iter`, keeping the last);
- iters: the per-iteration training loss where a trial logged it (`metrics.jsonl`).
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gptcore.config import FIELD_TYPES, SHIPPED_DIR, TrainConfig, read_config_file
from gptcore.errors import UserError

from ..spaces import KNOBS as CONFIG_COLUMNS  # the config columns of the trials table
from ..spaces import SHAPE, expand_shape
from .files import last_line, num, read_json, read_jsonl, result_rows, text_of
from .metrics import overfit_class

__all__ = ["CONFIG_COLUMNS", "STATUSES", "STATUS_NOTES", "Results", "config_of", "finite_curve", "load_sweep",
           "num", "ray_records", "read_json", "read_jsonl", "result_rows", "trial_dirs", "trial_status"]

HISTORY_COLUMNS = ("trial_id", "name", "seed", "iter", "tokens", "train_loss", "val_loss", "gap", "lr", "elapsed_s",
                   "tokens_per_s", "best_val_loss", "mem_mb", "diverged")
ITER_COLUMNS = ("trial_id", "iter", "loss")

# how a trial ended: the one vocabulary of the live summary, trials.csv and report.md
STATUSES = ("completed", "stopped early", "diverged", "errored", "interrupted", "not started")
STATUS_NOTES = {
    "completed": "reached max_iters",
    "stopped early": "the scheduler stopped it before max_iters (early stopping)",
    "diverged": "the loss became NaN/Inf; its losses are the last finite ones",
    "errored": "an attempt failed (error.txt) and the trial did not reach max_iters",
    "interrupted": "the sweep (or the run) ended before this trial reached max_iters; `--resume` continues it",
    "not started": "the trial never reported an evaluation",
}

_TRIAL_ID = re.compile(r"_([0-9a-f]{5}_\d{5})(?:_|$)")


@dataclass
class Results:
    """Everything the analysis needs about one experiment.

    `configs` maps trial_id to that trial's full config (every TrainConfig field), so schedules
    can be recomputed; `notes` are things the reader should know (unreadable lines, guesses).
    """

    trials: pd.DataFrame
    history: pd.DataFrame
    iters: pd.DataFrame
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "sweep"
    notes: list[str] = field(default_factory=list)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # trial_id -> its Tune config (params.json)


@functools.lru_cache(maxsize=1)
def _tutorial_base() -> dict[str, Any]:
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


# ----------------------------------------------------------------------------------------
# the per-trial summary, shared by sweep folders and log files


def trial_status(final_iter: float, max_iters: float | None, diverged: bool, has_error: bool,
                 has_rows: bool, ray_status: str | None = None, sweep: bool = True) -> str:
    """How a trial ended (one of STATUSES), from what it left behind.

    Divergence wins over everything; reaching max_iters is `completed` even if an earlier
    attempt failed (Ray retried it). Otherwise Ray's own record of the trial decides
    (`ray_status`, from the experiment state): ERROR is `errored`; TERMINATED short of max_iters
    is the scheduler's doing, `stopped early`; RUNNING, PAUSED or PENDING means the sweep ended
    first: `interrupted`, or `not started` without a single report. Without that record (a copied
    folder, hand-made logs) an error file means `errored`, and a trial short of max_iters is
    `stopped early` in a sweep and `interrupted` in a log that simply ends.
    """
    if diverged:
        return "diverged"
    if has_rows and max_iters is not None and not math.isnan(max_iters) and final_iter >= max_iters:
        return "completed"
    if ray_status == "ERROR" or (ray_status is None and has_error):
        return "errored"
    if not has_rows:
        return "not started" if ray_status in (None, "PENDING", "TERMINATED") else "interrupted"
    if ray_status in ("RUNNING", "PAUSED", "PENDING"):
        return "interrupted"
    return "stopped early" if sweep else "interrupted"


def history_frame(trial_id: str, name: str, seed: Any, rows: list[dict[str, Any]]) -> tuple[pd.DataFrame, int]:
    """Evaluation rows as a frame, de-duplicated on iter (a retried trial repeats rows: keep the last)."""
    recs = []
    for r in rows:
        if math.isnan(num(r.get("iter"))):
            continue
        rec = {k: num(r.get(k)) for k in HISTORY_COLUMNS[3:]}
        rec["diverged"] = 1.0 if rec["diverged"] == 1.0 else 0.0
        if math.isnan(rec["gap"]):
            rec["gap"] = rec["val_loss"] - rec["train_loss"]
        recs.append({"trial_id": trial_id, "name": name, "seed": seed, **rec})
    hist = pd.DataFrame(recs, columns=list(HISTORY_COLUMNS))
    before = len(hist)
    hist = hist.drop_duplicates("iter", keep="last").sort_values("iter", kind="stable").reset_index(drop=True)
    return hist, before - len(hist)


def summary_row(trial_id: str, name: str, cfg: dict[str, Any], hist: pd.DataFrame, *, diverged_at: float,
                has_error: bool, error: str, sample: str, time_s: float, n_params: float, mem_mb: float,
                max_iters_known: bool, where: str, retried_rows: int = 0, ray_status: str | None = None,
                sweep: bool = True, stage: str = "grid") -> dict[str, Any]:
    """One trials-table row from a trial's config and de-duplicated evaluation history."""
    clean = hist[hist["diverged"] == 0] if len(hist) else hist
    finite = clean.dropna(subset=["val_loss"]) if len(clean) else clean
    has_rows = len(hist) > 0
    last = clean.iloc[-1] if len(clean) else None
    final_iter = float(hist["iter"].max()) if has_rows else 0.0
    if not math.isnan(diverged_at):
        final_iter = max(final_iter, diverged_at)
    max_iters = float(cfg["max_iters"]) if max_iters_known else math.nan
    status = trial_status(final_iter, max_iters, not math.isnan(diverged_at), has_error, has_rows, ray_status, sweep)
    tpi = tokens_per_iter(cfg)
    tokens = float(hist["tokens"].max()) if has_rows and hist["tokens"].notna().any() else final_iter * tpi
    if len(finite):
        best = finite.loc[finite["val_loss"].idxmin()]
        best_val, best_iter = float(best["val_loss"]), float(best["iter"])
    else:
        best_val = best_iter = math.nan
    final_train = float(last["train_loss"]) if last is not None else math.nan
    final_val = float(last["val_loss"]) if last is not None else math.nan
    gap = final_val - final_train
    return {"name": name, "trial_id": trial_id, "status": status, "stage": stage,
            **{k: cfg.get(k) for k in CONFIG_COLUMNS},
            "final_iter": final_iter, "final_train_loss": final_train, "final_val_loss": final_val,
            "final_gap": gap, "overfit_class": overfit_class(gap), "best_val_loss": best_val, "best_iter": best_iter,
            "diverged_at": diverged_at, "tokens": tokens, "tokens_per_iter": tpi,
            "tokens_planned": float(cfg["max_iters"]) * tpi if max_iters_known else math.nan,
            "time_s": time_s, "n_params": n_params, "mem_mb": mem_mb, "n_evals": len(finite),
            "retried_rows": retried_rows, "error": error, "sample": sample, "path": where}


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


# ----------------------------------------------------------------------------------------
# sweep folders


@dataclass(frozen=True)
class RayRecord:
    """Ray's own record of a trial, from the newest experiment state."""

    trial_id: str
    status: str  # PENDING, RUNNING, PAUSED, TERMINATED, ERROR
    folder: str  # the trial folder's name under the experiment directory
    config: dict[str, Any]


def ray_records(exp_dir: Path) -> dict[str, RayRecord]:
    """Every trial Ray knows of, by trial id (empty when no experiment state is readable)."""
    states = sorted(Path(exp_dir).glob("experiment_state-*.json"))
    for path in reversed(states):  # the newest that reads
        doc = read_json(path)
        if doc is None or not isinstance(doc.get("trial_data"), list):
            continue
        out = {}
        for item in doc["trial_data"]:
            try:
                state = json.loads(item[0]) if isinstance(item[0], str) else item[0]
                rec = RayRecord(str(state["trial_id"]), str(state["status"]), str(state.get("relative_logdir") or ""),
                                state.get("config") if isinstance(state.get("config"), dict) else {})
            except (ValueError, KeyError, TypeError, IndexError):
                continue
            out[rec.trial_id] = rec
        return out
    return {}


def trial_dirs(exp_dir: Path) -> list[Path]:
    """The trial folders of an experiment: subfolders with a result.json or a params.json."""
    return sorted(d for d in Path(exp_dir).iterdir()
                  if d.is_dir() and ((d / "result.json").is_file() or (d / "params.json").is_file()))


def _name_and_id(d: Path, params: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[str, str]:
    m = _TRIAL_ID.search(d.name)
    trial_id = next((str(r["trial_id"]) for r in rows if r.get("trial_id")), None)
    trial_id = trial_id or (m.group(1) if m else d.name)
    name = params.get("name")
    if not isinstance(name, str) or not name:
        # the folder is <name>_<trial_id>...: the part before the id is the label
        name = d.name[:m.start()] if m and m.start() > 0 else d.name
    return name, trial_id


def _trial_config(d: Path, params: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[dict[str, Any], bool, str]:
    """(full config, whether max_iters is known, a note) for a trial folder."""
    resolved = read_json(d / "config.json")
    if resolved is not None:
        return {**TrainConfig().as_dict(), **config_fields(resolved)}, True, ""
    cfg = {**_tutorial_base(), **config_fields(params)}
    shape = params.get("shape")  # a grid may name a size as "n_layer/n_head/n_embd"
    if isinstance(shape, str) and SHAPE.match(shape):
        cfg = expand_shape({**cfg, "shape": shape}, str(d))
    row_max = next((r["max_iters"] for r in reversed(rows) if isinstance(r.get("max_iters"), (int, float))), None)
    if row_max is not None:
        cfg["max_iters"] = int(row_max)
    note = f"{d.name}: no config.json; config rebuilt from params.json over train_shakespeare_char"
    return cfg, row_max is not None or "max_iters" in params, note


def _load_trial(d: Path, ray: RayRecord | None):
    notes: list[str] = []
    params = read_json(d / "params.json") or {}
    rows, bad = read_jsonl(d / "result.json")
    if bad:
        notes.append(f"{d.name}/result.json: skipped {bad} unreadable line(s)")
    events, _ = read_jsonl(d / "metrics.jsonl")
    name, trial_id = _name_and_id(d, params, rows)
    cfg, max_known, note = _trial_config(d, params, rows)
    notes += [note] if note else []
    if not rows:
        # no Ray results: fall back on the gptcore run's own events in the same folder
        rows = [e for e in events if e.get("event") == "eval"]
        if not rows and (d / "train.log").is_file():
            from .logs import parse_log

            parsed = parse_log(text_of(d / "train.log"))
            rows = [{"iter": it, "train_loss": tr, "val_loss": va} for it, tr, va in parsed.evals]
    hist, dup = history_frame(trial_id, name, cfg.get("seed"), rows)
    if hist["tokens"].isna().all() and len(hist):
        hist["tokens"] = hist["iter"] * tokens_per_iter(cfg)

    diverged = list(hist.loc[hist["diverged"] == 1, "iter"]) + [num(e.get("iter")) for e in events
                                                                  if e.get("event") == "diverged"]
    diverged_at = min(diverged) if diverged else math.nan
    last = rows[-1] if rows else {}
    done = [e for e in events if e.get("event") == "done"]
    time_s = next((t for t in (num(last.get("time_total_s")), num(last.get("elapsed_s")),
                               num(done[-1].get("elapsed_s")) if done else math.nan) if not math.isnan(t)), math.nan)
    mems = [m for m in [num(r.get("mem_mb")) for r in rows] + [num(e.get("mem_mb")) for e in done] if not math.isnan(m)]
    n_params = next((num(r["n_params"]) for r in reversed(rows) if "n_params" in r), math.nan)
    notes += [f"{d.name}: {line[8:]}" for line in text_of(d / "train.log").splitlines() if line.startswith("resume: ")]
    has_error = (d / "error.txt").is_file()
    row = summary_row(trial_id, name, cfg, hist, diverged_at=diverged_at, has_error=has_error,
                      error=last_line(d / "error.txt") if has_error else "", sample=text_of(d / "sample.txt"),
                      time_s=time_s, n_params=n_params, mem_mb=max(mems) if mems else math.nan,
                      max_iters_known=max_known, where=d.name, retried_rows=dup,
                      ray_status=ray.status if ray else None, stage=str(params.get("stage", "grid")))
    its = [{"trial_id": trial_id, "iter": num(e.get("iter")), "loss": num(e.get("loss"))}
           for e in events if e.get("event") == "iter"]
    iters = pd.DataFrame(its, columns=list(ITER_COLUMNS)).drop_duplicates("iter", keep="last")
    return row, hist, iters, cfg, notes, params


def _unstarted(rec: RayRecord) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """A row for a trial Ray created but never ran: it has no folder, only its config."""
    cfg = {**_tutorial_base(), **config_fields(rec.config)}
    hist, _ = history_frame(rec.trial_id, str(rec.config.get("name", "trial")), cfg.get("seed"), [])
    row = summary_row(rec.trial_id, str(rec.config.get("name", "trial")), cfg, hist, diverged_at=math.nan,
                      has_error=False, error="", sample="", time_s=math.nan, n_params=math.nan, mem_mb=math.nan,
                      max_iters_known=True, where=rec.folder, ray_status=rec.status,
                      stage=str(rec.config.get("stage", "grid")))
    return row, hist, cfg


def load_sweep(exp_dir: Path) -> Results:
    """Read every trial of a sweep's experiment directory (see docs/outputs.md).

    Raises UserError, with a one-line message, when the folder is missing or holds no trials.
    """
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise UserError(f"no experiment directory at {exp_dir}: run `python sweeps/run.py EXP` first, "
                        "or point --results at the folder that holds it")
    records = ray_records(exp_dir)
    by_folder = {r.folder: r for r in records.values()}
    dirs = trial_dirs(exp_dir)
    if not dirs and not records:
        raise UserError(f"{exp_dir} holds no trials (no subfolder with result.json or params.json): "
                        "the sweep has not started any trial yet, or this is not an experiment directory")
    rows, hists, iters, configs, notes, params = [], [], [], {}, [], {}
    for d in dirs:
        row, hist, it, cfg, trial_notes, p = _load_trial(d, by_folder.get(d.name))
        rows.append(row)
        hists.append(hist)
        iters.append(it)
        configs[row["trial_id"]] = cfg
        params[row["trial_id"]] = p
        notes.extend(trial_notes)
    seen = {r["trial_id"] for r in rows}
    for rec in records.values():
        if rec.trial_id not in seen:
            row, hist, cfg = _unstarted(rec)
            rows.append(row)
            hists.append(hist)
            configs[rec.trial_id] = cfg
            params[rec.trial_id] = rec.config
    res = assemble(rows, hists, iters, configs, "sweep", notes)
    res.params = params
    return res


def config_of(res: Results, trial_id: str) -> TrainConfig:
    """A trial's full config as a TrainConfig (for `gptcore.train.get_lr`)."""
    return TrainConfig(**config_fields(res.configs[trial_id]))


def finite_curve(res: Results, trial_id: str) -> pd.DataFrame:
    """A trial's evaluations with a finite val loss, divergence rows left out, sorted by iter."""
    h = res.history[res.history["trial_id"] == trial_id]
    h = h[(h["diverged"] == 0) & np.isfinite(h["val_loss"].astype(float))]
    return h.sort_values("iter")
