"""A sweep's folder (docs/outputs.md) as `Results`: the one reader of what a sweep leaves on disk.

Only raw files are read (Ray's `result.json`, `params.json`, `experiment_state-*.json`; gptcore's
`config.json`, `metrics.jsonl`, `train.log`, `sample.txt`; the sweep's `status.json`; Ray's
`error.txt`): no Ray import and no `ray.init`, so a report can be made on any machine that holds
a copy of the results, and a sweep that died half-way still loads. The sweep command's summary,
`gptsweep ls`, the benchmarks and the tests read sweeps through this module too.

A trial's status is the one its record holds (`gptcore.record`): the sweep's `status.json`
(written when the trial ended), else its last report row's (`completed`, `diverged`), else it was
`interrupted`; a trial Ray created but never started has no folder and is `not started`. Sweeps
written before the record carried a status are read by `legacy_status`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from gptcore import record
from gptcore.config import TrainConfig
from gptcore.errors import UserError
from sweeps.experiment.specs import SHAPE, expand_shape
from sweeps.results.files import last_line, num, read_json, read_jsonl, result_rows, text_of
from sweeps.results.frames import (
    ITER_COLUMNS,
    Results,
    assemble,
    config_fields,
    trial_frames,
    tutorial_base,
)
from sweeps.results.logs import parse_log
from sweeps.results.trial import (
    ERRORED,
    NOT_STARTED,
    STATUS_FILE,
    STOPPED,
    TRIAL_ID_IN_FOLDER,
    ending,
    final_status,
    is_evaluation,
    left_behind,
)

__all__ = ["Results", "legacy_status", "load_sweep", "ray_records", "read_json", "read_sweep_info", "result_rows",
           "trial_dirs", "trial_status"]

_TRIAL_ID = TRIAL_ID_IN_FOLDER


def read_sweep_info(exp_dir: Path) -> dict[str, Any] | None:
    """sweep.json (how the sweep was started), or None when absent or unreadable."""
    return read_json(Path(exp_dir) / "sweep.json")


def trial_status(rows: list[dict[str, Any]], status_doc: dict[str, Any] | None) -> str | None:
    """A trial's status from its record: `status.json` (written when it ended, by `trial.ending`), else its
    last report row by the same rule (a trial that reported and never ended was interrupted); None for a
    trial whose rows carry no status (written by an older version: see `legacy_status`)."""
    said = final_status(status_doc, rows[-1] if rows else None)
    if said is None and rows and "status" in rows[-1]:
        return ending(rows[-1], over=False)
    return said


def legacy_status(final_iter: float, max_iters: float | None, diverged: bool, has_error: bool,
                  has_rows: bool, ray_status: str | None = None) -> str:
    """How a trial of a sweep written before the record's `status` ended, from what it left behind.

    Divergence wins over everything; reaching max_iters is `completed` even if an earlier
    attempt failed (Ray retried it). Otherwise Ray's own record of the trial decides
    (`ray_status`, from the experiment state): ERROR is `errored`; TERMINATED short of max_iters
    is the scheduler's doing, `stopped early`; RUNNING, PAUSED or PENDING means the sweep ended
    first: `interrupted`, or `not started` without a single report. Without that record (a copied
    folder) an error file means `errored`, and a trial short of max_iters is `stopped early`.
    """
    if diverged:
        return record.DIVERGED
    if has_rows and max_iters is not None and not math.isnan(max_iters) and final_iter >= max_iters:
        return record.COMPLETED
    if ray_status == "ERROR" or (ray_status is None and has_error):
        return ERRORED
    if not has_rows:
        return NOT_STARTED if ray_status in (None, "PENDING", "TERMINATED") else record.INTERRUPTED
    if ray_status in ("RUNNING", "PAUSED", "PENDING"):
        return record.INTERRUPTED
    return STOPPED


@dataclass(frozen=True)
class RayRecord:
    """Ray's own record of a trial, from the newest experiment state."""

    trial_id: str
    status: str  # PENDING, RUNNING, PAUSED, TERMINATED, ERROR
    folder: str  # the trial folder's name under the experiment directory
    config: dict[str, Any]


def ray_records(exp_dir: Path) -> dict[str, RayRecord]:
    """Every trial Ray knows of, by trial id (empty when no experiment state is readable).

    Read for the trials a sweep created but never started (they have no folder) and for the
    status of trials written before the record had one.
    """
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


def _identity(config: dict[str, Any]) -> tuple[Any, ...] | None:
    """What makes a trial the same trial when a sweep asks for it again: its run, seed and stage."""
    if not isinstance(config, dict) or "name" not in config:
        return None
    return config.get("name"), config.get("seed"), config.get("stage", "grid")


def rerun_elsewhere(dirs: list[Path], records: dict[str, RayRecord]) -> set[str]:
    """The folders of trials whose start a stopped sweep cut short before Ray saved them, and that
    `--resume` asked for again under a new trial id: no experiment state names the folder, and Ray's
    newest state holds a trial of the same run, seed and stage in another folder that exists."""
    if not records:
        return set()
    names = {d.name for d in dirs}
    known = {_identity(r.config) for r in records.values() if r.folder in names and r.folder}
    folders = {r.folder for r in records.values()}
    return {d.name for d in dirs if d.name not in folders
            and _identity(read_json(d / "params.json") or {}) in known - {None}}


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
    cfg = {**tutorial_base(), **config_fields(params)}
    shape = params.get("shape")  # a grid may name a size as "n_layer/n_head/n_embd"
    if isinstance(shape, str) and SHAPE.match(shape):
        cfg = expand_shape({**cfg, "shape": shape}, str(d))
    row_max = next((r["max_iters"] for r in reversed(rows) if isinstance(r.get("max_iters"), (int, float))), None)
    if row_max is not None:
        cfg["max_iters"] = int(row_max)
    note = f"{d.name}: no config.json; config rebuilt from params.json over train_shakespeare_char"
    return cfg, row_max is not None or "max_iters" in params, note


def _divergence(rows: list[dict[str, Any]], events: list[dict[str, Any]]) -> float:
    """Where the trial diverged (NaN if it did not): its record's divergence row or end event.

    Older versions wrote a row flagged `diverged: 1` (holding the last finite losses) and a
    `diverged` event."""
    at = [num(r.get("iter")) for r in rows if r.get("status") == record.DIVERGED or r.get("diverged") == 1]
    at += [num(e.get("iter")) for e in events
           if e.get("event") == "diverged" or (e.get("event") == record.END and e.get("status") == record.DIVERGED)]
    return min(at) if at else math.nan


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
    diverged_at = _divergence(rows, events)
    evals = [r for r in rows if is_evaluation(r) and r.get("diverged") != 1]
    if rows:
        # Ray's result.json can lose the rows before a pause at a rung (seen once in 30 paused trials on
        # Ray 2.60); the run's own record has every evaluation: take the ones result.json lacks from it
        have = {num(r.get("iter")) for r in evals}
        lost = [e for e in events if e.get("event") == record.EVAL and num(e.get("iter")) not in have
                and num(e.get("iter")) <= max(have, default=math.inf)]
        if lost:
            evals = sorted(lost + evals, key=lambda r: num(r.get("iter")))
            notes.append(f"{d.name}: {len(lost)} evaluation(s) missing from result.json taken from metrics.jsonl")
    if not rows:
        # no Ray results: fall back on the gptcore run's own events in the same folder
        evals = [e for e in events if e.get("event") == record.EVAL]
        if not evals and (d / "train.log").is_file():
            parsed = parse_log(text_of(d / "train.log"))
            evals = [{"iter": it, "train_loss": tr, "val_loss": va} for it, tr, va in parsed.evals]
    has_error = (d / "error.txt").is_file()
    status = trial_status(rows, read_json(d / STATUS_FILE))
    if status is None:
        its = [x for x in (num(e.get("iter")) for e in evals) if not math.isnan(x)]
        reached = max(its) if its else 0.0
        final_iter = reached if math.isnan(diverged_at) else max(reached, diverged_at)
        status = legacy_status(final_iter, float(cfg["max_iters"]) if max_known else math.nan,
                               not math.isnan(diverged_at), has_error, bool(its), ray.status if ray else None)
    last = rows[-1] if rows else {}
    ends = [e for e in events if e.get("event") in (record.END, "done")]
    time_s = next((t for t in (num(last.get("time_total_s")), num(last.get("elapsed_s")),
                               num(ends[-1].get("elapsed_s")) if ends else math.nan) if not math.isnan(t)), math.nan)
    mems = [m for m in [num(r.get("mem_mb")) for r in rows] + [num(e.get("mem_mb")) for e in ends] if not math.isnan(m)]
    n_params = next((num(r["n_params"]) for r in reversed(rows) if "n_params" in r), math.nan)
    notes += [f"{d.name}: {line[8:]}" for line in text_of(d / "train.log").splitlines() if line.startswith("resume: ")]
    row, hist = trial_frames(trial_id, name, cfg, evals, status=status, diverged_at=diverged_at,
                             stage=str(params.get("stage", "grid")),
                             error=last_line(d / "error.txt") if has_error else "", sample=text_of(d / "sample.txt"),
                             time_s=time_s, n_params=n_params, mem_mb=max(mems) if mems else math.nan,
                             max_iters_known=max_known, where=d.name)
    its = [{"trial_id": trial_id, "iter": num(e.get("iter")), "loss": num(e.get("loss"))}
           for e in events if e.get("event") == record.STEP]
    iters = pd.DataFrame(its, columns=list(ITER_COLUMNS)).drop_duplicates("iter", keep="last")
    return row, hist, iters, cfg, notes, params


def _unstarted(rec: RayRecord) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """A row for a trial Ray created but never ran: it has no folder, only its config."""
    cfg = {**tutorial_base(), **config_fields(rec.config)}
    name = str(rec.config.get("name", "trial"))
    # Ray's record: TERMINATED (stopped before it started), ERROR, PENDING, or RUNNING/PAUSED for one
    # that was starting when the sweep ended
    status = ending(None, over=rec.status in ("TERMINATED", "ERROR"), errored=rec.status == "ERROR")
    if status == NOT_STARTED and rec.status in ("RUNNING", "PAUSED"):
        status = record.INTERRUPTED
    row, hist = trial_frames(rec.trial_id, name, cfg, [], status=status, stage=str(rec.config.get("stage", "grid")),
                             where=rec.folder)
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
    sizes = {d.name: (d / "result.json").stat().st_size if (d / "result.json").is_file() else 0 for d in dirs}
    stale = left_behind(sizes, set(by_folder)) | rerun_elsewhere(dirs, records)
    dirs = [d for d in dirs if d.name not in stale]
    if not dirs and not records:
        raise UserError(f"{exp_dir} holds no trials (no subfolder with result.json or params.json): "
                        "the sweep has not started any trial yet, or this is not an experiment directory")
    rows, hists, iters, configs, notes, params = [], [], [], {}, [], {}
    notes += [f"{name}: left by a start of the trial that an interruption cut short; --resume ran it again in "
              "another folder (this one is not read)" for name in sorted(stale)]
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
    res.envs = {row["trial_id"]: run_environment(d) for row, d in zip(rows, dirs)}
    return res


ENV_KEYS = {"resolved_device": "device", "resolved_dtype": "dtype", "dtype_why": "dtype_why",
            "torch_threads": "threads"}
ENV_FACTS = ("torch", "gpu", "cpu", "cpu_bf16", "python", "code_version")  # gptcore.version.environment's


def run_environment(d: Path) -> dict[str, Any]:
    """Where a trial ran, from its config.json (gptcore/run.py): device, dtype and why, threads, and what
    `gptcore.record.environment` recorded (torch, CPU or GPU, host). Empty for a trial without one."""
    resolved = read_json(d / "config.json") or {}
    out = {short: resolved[key] for key, short in ENV_KEYS.items() if key in resolved}
    out.update({k: v for k, v in resolved.items() if k in ENV_FACTS})
    return out
