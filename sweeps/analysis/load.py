"""What a sweep (docs/outputs.md) or a hand-run tutorial log leaves on disk, as pandas DataFrames.

Only raw files are read (`result.json`, `params.json`, `config.json`, `metrics.jsonl`,
`error.txt`, `sample.txt`, `train.log`): no Ray import and no `ray.init`, so a report can be made
on any machine that holds a copy of the results, and a sweep that died half-way still loads.

Two frames come out:

- trials: one row per trial (name, id, config, final and best metrics, status, cost);
- history: one row per evaluation (retries de-duplicated on `iter`, keeping the last).

A third, `iters`, holds the per-iteration training loss where a trial logged it
(`metrics.jsonl` or `iter N: loss ...` lines); the noise verdict of experiment 1 uses it.
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

from gptcore.config import FIELD_TYPES, SHIPPED_DIR, TrainConfig, coerce, read_config_file, shipped_configs
from gptcore.errors import UserError

from .metrics import overfit_class

# config columns copied into the trials table (the brief's list plus the schedule's min_lr and
# the evaluation interval, which say how to read the curves)
CONFIG_COLUMNS = ("learning_rate", "batch_size", "gradient_accumulation_steps", "n_layer", "n_head", "n_embd",
                  "dropout", "weight_decay", "warmup_iters", "decay_lr", "lr_decay_iters", "min_lr", "max_iters",
                  "block_size", "eval_interval")

HISTORY_COLUMNS = ("trial_id", "name", "iter", "tokens", "train_loss", "val_loss", "gap", "lr", "elapsed_s",
                   "tokens_per_s", "best_val_loss", "mem_mb", "diverged")

# how a trial ended; "unfinished" only for hand-made logs, which have no scheduler to blame
STATUSES = ("completed", "stopped early", "diverged", "errored", "no results", "unfinished")

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


# ----------------------------------------------------------------------------------------
# small readers


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The JSON objects of a JSON-lines file, and how many lines could not be read.

    A crash while writing leaves a truncated last line: skip it rather than lose the trial.
    Ray writes non-finite numbers as `NaN`/`Infinity`, which `json` accepts; gptcore writes null.
    """
    rows, bad = [], 0
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return rows, 0
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(obj, dict):
            rows.append(obj)
    return rows, bad


def _num(value: Any) -> float:
    """A float, with None and non-numbers as NaN (JSON null is how gptcore writes NaN)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return math.nan


def _last_line(path: Path, limit: int = 200) -> str:
    """The last non-empty line of a text file: for a traceback, the exception itself."""
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""


def _sample(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


@functools.lru_cache(maxsize=1)
def _tutorial_base() -> dict[str, Any]:
    """TrainConfig defaults overlaid with the shipped `train_shakespeare_char` config.

    Every experiment of the chapter starts from that config, so it is the best guess for
    fields a trial did not record (a trial that crashed before gptcore wrote config.json).
    """
    base = TrainConfig().as_dict()
    base.update(read_config_file(SHIPPED_DIR / "train_shakespeare_char.py"))
    return base


def _config_fields(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k in FIELD_TYPES}


def tokens_per_iter(cfg: dict[str, Any]) -> int:
    """Tokens one optimizer step consumes: micro-batch x accumulation steps x context."""
    return int(cfg["batch_size"]) * int(cfg["gradient_accumulation_steps"]) * int(cfg["block_size"])


# ----------------------------------------------------------------------------------------
# the per-trial summary, shared by sweep folders and log files


def trial_status(final_iter: float, max_iters: float | None, diverged: bool, has_error: bool,
                 has_rows: bool, sweep: bool = True) -> str:
    """How a trial ended, from what it left behind (see STATUSES).

    Divergence wins over everything; reaching max_iters is `completed` even if an earlier
    attempt failed (Ray retried it); an error file otherwise means `errored`. Fewer iterations
    without an error is the scheduler's doing in a sweep (`stopped early`), while a hand-made
    log that simply ends is `unfinished`.
    """
    if diverged:
        return "diverged"
    if has_rows and max_iters is not None and not math.isnan(max_iters) and final_iter >= max_iters:
        return "completed"
    if has_error:
        return "errored"
    if not has_rows:
        return "no results"
    return "stopped early" if sweep else "unfinished"


def _summarise(trial_id: str, name: str, cfg: dict[str, Any], hist: pd.DataFrame, *, diverged_at: float,
               has_error: bool, error: str, sample: str, time_s: float, n_params: float, mem_mb: float,
               max_iters_known: bool, sweep: bool, where: str, retried_rows: int = 0) -> dict[str, Any]:
    """One trials-table row from a trial's config and de-duplicated evaluation history."""
    clean = hist[hist["diverged"] == 0] if len(hist) else hist
    finite = clean.dropna(subset=["val_loss"]) if len(clean) else clean
    has_rows = len(hist) > 0
    last = clean.iloc[-1] if len(clean) else None
    final_iter = float(hist["iter"].max()) if has_rows else 0.0
    if not math.isnan(diverged_at):
        final_iter = max(final_iter, diverged_at)
    max_iters = float(cfg["max_iters"]) if max_iters_known else math.nan
    diverged = not math.isnan(diverged_at)
    status = trial_status(final_iter, max_iters, diverged, has_error, has_rows, sweep)
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
    row: dict[str, Any] = {"name": name, "trial_id": trial_id, "status": status}
    row.update({k: cfg.get(k) for k in CONFIG_COLUMNS})
    row.update({
        "final_iter": final_iter,
        "final_train_loss": final_train,
        "final_val_loss": final_val,
        "final_gap": gap,
        "overfit_class": overfit_class(gap),
        "best_val_loss": best_val,
        "best_iter": best_iter,
        "diverged_at": diverged_at,
        "tokens": tokens,
        "tokens_per_iter": tpi,
        "tokens_planned": float(cfg["max_iters"]) * tpi if max_iters_known else math.nan,
        "time_s": time_s,
        "n_params": n_params,
        "mem_mb": mem_mb,
        "n_evals": len(finite),
        "retried_rows": retried_rows,
        "error": error,
        "sample": sample,
        "path": where,
    })
    return row


def _history(trial_id: str, name: str, rows: list[dict[str, Any]]) -> tuple[pd.DataFrame, int]:
    """Evaluation rows as a frame, de-duplicated on iter (a retried trial repeats rows: keep the last)."""
    recs = []
    for r in rows:
        if "iter" not in r or _num(r["iter"]) != _num(r["iter"]):
            continue
        rec = {k: _num(r.get(k)) for k in HISTORY_COLUMNS[2:]}
        rec["diverged"] = 1.0 if rec["diverged"] == 1.0 else 0.0
        if math.isnan(rec["gap"]):
            rec["gap"] = rec["val_loss"] - rec["train_loss"]
        recs.append({"trial_id": trial_id, "name": name, **rec})
    hist = pd.DataFrame(recs, columns=list(HISTORY_COLUMNS))
    before = len(hist)
    hist = hist.drop_duplicates("iter", keep="last").sort_values("iter", kind="stable").reset_index(drop=True)
    return hist, before - len(hist)


# ----------------------------------------------------------------------------------------
# sweep folders


def trial_dirs(exp_dir: Path) -> list[Path]:
    """The trial folders of an experiment: subfolders with a result.json or a params.json."""
    return sorted(d for d in exp_dir.iterdir()
                  if d.is_dir() and ((d / "result.json").is_file() or (d / "params.json").is_file()))


def _trial_name_and_id(d: Path, params: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[str, str]:
    m = _TRIAL_ID.search(d.name)
    trial_id = next((str(r["trial_id"]) for r in rows if r.get("trial_id")), None)
    trial_id = trial_id or (m.group(1) if m else d.name)
    name = params.get("name")
    if not isinstance(name, str) or not name:
        # the folder is <name>_<trial_id>...: the part before the id is the label
        name = d.name[:m.start()] if m and m.start() > 0 else d.name
    return name, trial_id


def _load_trial(d: Path) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame, dict[str, Any], list[str]]:
    notes: list[str] = []
    params = _read_json(d / "params.json") or {}
    rows, bad = _read_jsonl(d / "result.json")
    if bad:
        notes.append(f"{d.name}/result.json: skipped {bad} unreadable line(s)")
    events, _ = _read_jsonl(d / "metrics.jsonl")
    name, trial_id = _trial_name_and_id(d, params, rows)

    resolved = _read_json(d / "config.json")
    if resolved is not None:
        cfg = {**TrainConfig().as_dict(), **_config_fields(resolved)}
        max_known = True
    else:
        cfg = {**_tutorial_base(), **_config_fields(params)}
        shape = params.get("shape")  # exp5's grid names a size as "n_layer/n_head/n_embd"
        if isinstance(shape, str) and re.fullmatch(r"\d+/\d+/\d+", shape):
            cfg["n_layer"], cfg["n_head"], cfg["n_embd"] = (int(x) for x in shape.split("/"))
        row_max = next((r["max_iters"] for r in reversed(rows) if isinstance(r.get("max_iters"), (int, float))), None)
        if row_max is not None:
            cfg["max_iters"] = int(row_max)
        max_known = row_max is not None or "max_iters" in params
        notes.append(f"{d.name}: no config.json; config rebuilt from params.json over train_shakespeare_char")

    if not rows:
        # no Ray results: fall back on the gptcore run's own files in the same folder
        rows = [e for e in events if e.get("event") == "eval"]
        if not rows and (d / "train.log").is_file():
            parsed = parse_log((d / "train.log").read_text(encoding="utf-8", errors="replace"))
            rows = [{"iter": it, "train_loss": tr, "val_loss": va} for it, tr, va in parsed.evals]
    hist, dup = _history(trial_id, name, rows)
    if hist["tokens"].isna().all() and len(hist):
        hist["tokens"] = hist["iter"] * tokens_per_iter(cfg)

    diverged_at = math.nan
    div_rows = hist[hist["diverged"] == 1]
    if len(div_rows):
        diverged_at = float(div_rows["iter"].min())
    for e in events:
        if e.get("event") == "diverged":
            diverged_at = _num(e.get("iter")) if math.isnan(diverged_at) else diverged_at

    last = rows[-1] if rows else {}
    time_s = _num(last.get("time_total_s"))
    if math.isnan(time_s):
        time_s = _num(last.get("elapsed_s"))
    done = [e for e in events if e.get("event") == "done"]
    if math.isnan(time_s) and done:
        time_s = _num(done[-1].get("elapsed_s"))
    mems = [_num(r.get("mem_mb")) for r in rows] + [_num(e.get("mem_mb")) for e in done]
    mems = [m for m in mems if not math.isnan(m)]
    n_params = next((_num(r["n_params"]) for r in reversed(rows) if "n_params" in r), math.nan)

    has_error = (d / "error.txt").is_file()
    row = _summarise(trial_id, name, cfg, hist, diverged_at=diverged_at, has_error=has_error,
                     error=_last_line(d / "error.txt") if has_error else "", sample=_sample(d / "sample.txt"),
                     time_s=time_s, n_params=n_params, mem_mb=max(mems) if mems else math.nan,
                     max_iters_known=max_known, sweep=True, where=d.name, retried_rows=dup)
    its = [{"trial_id": trial_id, "iter": _num(e.get("iter")), "loss": _num(e.get("loss"))}
           for e in events if e.get("event") == "iter"]
    iters = pd.DataFrame(its, columns=["trial_id", "iter", "loss"]).drop_duplicates("iter", keep="last")
    return row, hist, iters, cfg, notes


def _assemble(rows: list[dict[str, Any]], hists: list[pd.DataFrame], iters: list[pd.DataFrame],
              configs: dict[str, dict[str, Any]], source: str, notes: list[str]) -> Results:
    trials = pd.DataFrame(rows)
    # a display label that is unique: the run's name, with the trial id where names repeat (Optuna)
    counts = trials["name"].value_counts()
    trials.insert(1, "label", [n if counts[n] == 1 else f"{n} {t}" for n, t in zip(trials["name"], trials["trial_id"])])
    history = pd.concat(hists, ignore_index=True) if hists else pd.DataFrame(columns=list(HISTORY_COLUMNS))
    it = [f for f in iters if len(f)]
    per_iter = pd.concat(it, ignore_index=True) if it else pd.DataFrame(columns=["trial_id", "iter", "loss"])
    return Results(trials=trials, history=history, iters=per_iter, configs=configs, source=source, notes=notes)


def load_sweep(exp_dir: Path) -> Results:
    """Read every trial folder of a sweep's experiment directory (see docs/outputs.md).

    Raises UserError, with a one-line message, when the folder is missing or holds no trials.
    """
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise UserError(f"no experiment directory at {exp_dir}: run `python sweeps/run.py EXP` first, "
                        "or point --results at the folder that holds it")
    dirs = trial_dirs(exp_dir)
    if not dirs:
        raise UserError(f"{exp_dir} holds no trials (no subfolder with result.json or params.json): "
                        "the sweep has not started any trial yet, or this is not an experiment directory")
    rows, hists, iters, configs, notes = [], [], [], {}, []
    for d in dirs:
        row, hist, it, cfg, trial_notes = _load_trial(d)
        rows.append(row)
        hists.append(hist)
        iters.append(it)
        configs[row["trial_id"]] = cfg
        notes.extend(trial_notes)
    return _assemble(rows, hists, iters, configs, "sweep", notes)


# ----------------------------------------------------------------------------------------
# nanoGPT-style log files (the tutorial's `... 2>&1 | tee experiments/exp1_baseline.log`)

# the contract lines (docs/outputs.md); `search`, not `match`, as the tutorial's own parser does
STEP_RE = re.compile(r"step (\d+): train loss ([^\s,]+), val loss ([^\s,]+)")
ITER_RE = re.compile(r"iter (\d+): loss ([^\s,]+), time ([-\d.]+)ms, mfu ([-\d.]+)%(?:, ([\d.]+) tok/s)?")
TOOK_RE = re.compile(r"training took ([\d.]+) seconds")
DIVERGED_RE = re.compile(r"training diverged at step (\d+): loss is (\S+)")
PARAMS_RE = re.compile(r"number of parameters: ([\d.]+)M")
TOKENS_RE = re.compile(r"tokens per iteration will be: ([\d,]+)")
CONFIG_FILE_RE = re.compile(r"Overriding config with (\S+)")
# nanoGPT echoes the config file (`max_iters = 5000`) and each override (`Overriding: max_iters = 1000`);
# gptcore writes `Overriding: max_iters=1000`
ASSIGN_RE = re.compile(r"^\s*(?:Overriding:\s*)?([A-Za-z_]\w*)\s*=\s*(.*?)\s*(?:#.*)?$")


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


@dataclass
class ParsedLog:
    """What one training log says: evaluations, logged iterations and the end of the run."""

    evals: list[tuple[int, float, float]] = field(default_factory=list)  # (step, train loss, val loss)
    iters: list[tuple[int, float, float, float, float]] = field(default_factory=list)  # (iter, loss, ms, mfu, tok/s)
    took_s: float = math.nan
    diverged_at: float = math.nan
    n_params_m: float = math.nan  # millions, as printed
    tokens_per_iter: int | None = None
    config_file: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # config values the log echoes


def parse_log(text: str) -> ParsedLog:
    """Parse a nanoGPT or gptcore console log (the lines of docs/outputs.md)."""
    out = ParsedLog()
    for line in text.splitlines():
        if m := STEP_RE.search(line):
            out.evals.append((int(m.group(1)), _float(m.group(2)), _float(m.group(3))))
        elif m := ITER_RE.search(line):
            tok = _float(m.group(5)) if m.group(5) else math.nan
            out.iters.append((int(m.group(1)), _float(m.group(2)), _float(m.group(3)), _float(m.group(4)), tok))
        elif m := TOOK_RE.search(line):
            out.took_s = float(m.group(1))
        elif m := DIVERGED_RE.search(line):
            out.diverged_at = float(m.group(1))
        elif m := PARAMS_RE.search(line):
            out.n_params_m = float(m.group(1))
        elif m := TOKENS_RE.search(line):
            out.tokens_per_iter = int(m.group(1).replace(",", ""))
        elif m := CONFIG_FILE_RE.search(line):
            out.config_file = m.group(1)
        elif (m := ASSIGN_RE.match(line)) and m.group(1) in FIELD_TYPES:
            try:
                out.settings[m.group(1)] = coerce(m.group(1), m.group(2), FIELD_TYPES[m.group(1)], "log")
            except UserError:
                pass  # a line that merely looks like an assignment
    return out


LOG_NAME_RE = re.compile(r"^(exp\d+)_(.+)$")


def log_name(path: Path) -> tuple[str | None, str]:
    """(experiment, run name) from a log's file name: `exp1_large_lr.log` -> ('exp1', 'large_lr')."""
    m = LOG_NAME_RE.match(path.stem)
    return (m.group(1), m.group(2)) if m else (None, path.stem)


def load_logs(files: list[Path]) -> Results:
    """Read hand-made training logs, one trial per file.

    The config comes from what the log echoes (nanoGPT prints the config file and every
    override), over the shipped config it names; a gptcore `config.json` in the run's out_dir
    beside the log (`experiments/exp1_baseline/` for `experiments/exp1_baseline.log`) wins.
    """
    rows, hists, iters, configs, notes = [], [], [], {}, []
    for f in files:
        f = Path(f)
        if not f.is_file():
            raise UserError(f"no log file at {f}: give the files `tee` wrote, e.g. experiments/exp1_baseline.log")
        parsed = parse_log(f.read_text(encoding="utf-8", errors="replace"))
        _, name = log_name(f)
        trial_id = f.stem
        cfg = TrainConfig().as_dict()
        stem = Path(parsed.config_file).stem if parsed.config_file else None
        max_known = "max_iters" in parsed.settings
        if stem and stem in shipped_configs():
            cfg.update(read_config_file(SHIPPED_DIR / f"{stem}.py"))
            max_known = True
        cfg.update(parsed.settings)
        resolved = _read_json(f.with_suffix("") / "config.json")
        if resolved is not None:
            cfg.update(_config_fields(resolved))
            max_known = True
        if not max_known:
            notes.append(f"{f.name}: max_iters unknown (the log does not echo the config): "
                         "completion and compute accounting are not judged")
        tpi = parsed.tokens_per_iter or tokens_per_iter(cfg)
        recs = [{"iter": it, "train_loss": tr, "val_loss": va, "tokens": it * tpi} for it, tr, va in parsed.evals]
        diverged_at = parsed.diverged_at
        for it, tr, va in parsed.evals:
            # nanoGPT keeps going after a NaN loss: the first non-finite evaluation is where it diverged
            if math.isnan(diverged_at) and not (math.isfinite(tr) and math.isfinite(va)):
                diverged_at = float(it)
        hist, dup = _history(trial_id, name, recs)
        if not math.isnan(diverged_at):
            hist.loc[hist["iter"] >= diverged_at, "diverged"] = 1.0
        time_s = parsed.took_s
        row = _summarise(trial_id, name, cfg, hist, diverged_at=diverged_at, has_error=False, error="",
                         sample="", time_s=time_s, n_params=parsed.n_params_m * 1e6, mem_mb=math.nan,
                         max_iters_known=max_known, sweep=False, where=str(f), retried_rows=dup)
        if parsed.took_s == parsed.took_s and row["status"] == "unfinished":
            row["status"] = "completed"  # the run said it finished, whatever max_iters we guessed
        rows.append(row)
        hists.append(hist)
        its = [{"trial_id": trial_id, "iter": float(it), "loss": loss} for it, loss, *_ in parsed.iters]
        iters.append(pd.DataFrame(its, columns=["trial_id", "iter", "loss"]).drop_duplicates("iter", keep="last"))
        configs[trial_id] = cfg
    if not rows:
        raise UserError("no log files given: pass one or more, e.g. --logs experiments/exp1_*.log")
    return _assemble(rows, hists, iters, configs, "logs", notes)


def infer_log_experiment(files: list[Path]) -> str | None:
    """The experiment all log files share by prefix (`exp1_*.log` -> 'exp1'), else None."""
    prefixes = {log_name(Path(f))[0] for f in files}
    return prefixes.pop() if len(prefixes) == 1 and None not in prefixes else None


def config_of(res: Results, trial_id: str) -> TrainConfig:
    """A trial's full config as a TrainConfig (for `gptcore.train.get_lr`)."""
    return TrainConfig(**_config_fields(res.configs[trial_id]))


def finite_curve(res: Results, trial_id: str) -> pd.DataFrame:
    """A trial's evaluations with a finite val loss, divergence rows left out, sorted by iter."""
    h = res.history[res.history["trial_id"] == trial_id]
    h = h[(h["diverged"] == 0) & np.isfinite(h["val_loss"].astype(float))]
    return h.sort_values("iter")
