"""nanoGPT-style training logs (the tutorial's `... 2>&1 | tee experiments/exp1_baseline.log`) as Results.

The lines parsed are the contract of docs/outputs.md, written by nanoGPT's train.py and by
`python -m gptcore train` alike; a tutorial user can analyse runs made by hand with the same
report as a sweep.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gptcore import record
from gptcore.config import FIELD_TYPES, SHIPPED_DIR, TrainConfig, coerce, read_config_file, shipped_configs
from gptcore.errors import UserError
from sweeps.results.files import read_json
from sweeps.results.frames import (
    ITER_COLUMNS,
    Results,
    assemble,
    config_fields,
    history_of,
    summary_of,
    tokens_per_iter,
    trial_record,
)
from sweeps.results.trial import NOT_STARTED

# `search`, not `match`, as the tutorial's own parser does
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
LOG_NAME_RE = re.compile(r"^(exp\d+)_(.+)$")


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
    for f, parsed in _read_logs([Path(f) for f in files]):
        _, name = log_name(f)
        trial_id = f.stem
        cfg = TrainConfig().as_dict()
        stem = Path(parsed.config_file).stem if parsed.config_file else None
        max_known = "max_iters" in parsed.settings
        if stem and stem in shipped_configs():
            cfg.update(read_config_file(SHIPPED_DIR / f"{stem}.py"))
            max_known = True
        cfg.update(parsed.settings)
        resolved = read_json(f.with_suffix("") / "config.json")
        if resolved is not None:
            cfg.update(config_fields(resolved))
            max_known = True
        if not max_known:
            notes.append(f"{f.name}: max_iters unknown (the log does not echo the config): "
                         "completion and compute accounting are not judged")
        tpi = parsed.tokens_per_iter or tokens_per_iter(cfg)
        diverged_at = parsed.diverged_at
        for it, tr, va in parsed.evals:
            # nanoGPT keeps going after a NaN loss: the first non-finite evaluation is where it diverged
            if math.isnan(diverged_at) and not (math.isfinite(tr) and math.isfinite(va)):
                diverged_at = float(it)
        recs = [{"iter": it, "train_loss": tr, "val_loss": va, "tokens": record.tokens(it, tpi)}
                for it, tr, va in parsed.evals if math.isnan(diverged_at) or it < diverged_at]
        rec = trial_record(trial_id, name, cfg, recs, status="", diverged_at=diverged_at, time_s=parsed.took_s,
                           n_params=parsed.n_params_m * 1e6, max_iters_known=max_known, where=str(f))
        hist = history_of(rec)
        rec.status = _status(parsed, hist, diverged_at, cfg, max_known)
        rows.append(summary_of(rec))
        hists.append(hist)
        its = [{"trial_id": trial_id, "iter": float(it), "loss": loss} for it, loss, *_ in parsed.iters]
        iters.append(pd.DataFrame(its, columns=list(ITER_COLUMNS)).drop_duplicates("iter", keep="last"))
        configs[trial_id] = cfg
    if not rows:
        raise UserError("no log files given: pass one or more, e.g. --logs experiments/exp1_*.log")
    return assemble(rows, hists, iters, configs, "logs", notes)


def _read_logs(files: list[Path]) -> list[tuple[Path, ParsedLog]]:
    """Each file parsed; a UserError naming every file that holds no training log (empty, binary, or
    without one `step N: train loss ..., val loss ...` line), so that no report is written of nothing."""
    out, bad = [], []
    for f in files:
        if not f.is_file():
            raise UserError(f"no log file at {f}: give the files `tee` wrote, e.g. experiments/exp1_baseline.log")
        try:
            raw = f.read_bytes()
        except OSError as e:
            raise UserError(f"cannot read {f} ({e.strerror or e}): check its permissions") from None
        if not raw.strip():
            bad.append(f"{f} (empty)")
            continue
        if b"\x00" in raw[:65536]:
            bad.append(f"{f} (binary)")
            continue
        parsed = parse_log(raw.decode("utf-8", errors="replace"))
        if not parsed.evals and math.isnan(parsed.diverged_at):
            bad.append(f"{f} (no `step N: train loss X, val loss Y` line)")
            continue
        out.append((f, parsed))
    if bad:
        raise UserError(f"no training log in {', '.join(bad)}: give the console logs of training runs (`python -m "
                        "gptcore train ... | tee experiments/exp1_baseline.log`, or nanoGPT's train.py)")
    return out


def _status(parsed: ParsedLog, hist: pd.DataFrame, diverged_at: float, cfg: dict[str, Any], max_known: bool) -> str:
    """How a logged run ended: diverged, completed (it said `training took`, or reached max_iters), else
    interrupted (the log simply ends)."""
    if not math.isnan(diverged_at):
        return record.DIVERGED
    if not math.isnan(parsed.took_s) or (max_known and len(hist) and hist["iter"].max() >= cfg["max_iters"]):
        return record.COMPLETED
    return record.INTERRUPTED if len(hist) else NOT_STARTED


def infer_log_experiment(files: list[Path]) -> str | None:
    """The experiment all log files share by prefix (`exp1_*.log` -> 'exp1'), else None."""
    prefixes = {log_name(Path(f))[0] for f in files}
    return prefixes.pop() if len(prefixes) == 1 and None not in prefixes else None
