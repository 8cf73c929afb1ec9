"""What every tracker is given and does: the sweep, its trials as tracker runs, and the shape they share.

A `Tracker` is fed events in order, from one thread: `trial_started` (a trial's config),
`trial_rows` (its report rows: evaluations by `iter`), `trial_ended` (how it ended, one of
sweeps.results.trial's statuses), then `sweep_ended` (every verdict, the report and its plots) and
`close`. The events of a live sweep come from Tune's callback (sweeps/tune/tracking.py); those of
a finished one from its folder (finished.py); the tracker cannot tell them apart.

Resuming: a trial's run is found again by its sweep's tag and its trial id, and continued; the steps
it already holds are never logged again (a retried trial repeats rows: a step is logged once).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptcore.errors import UserError
from sweeps.results.trial import COMPLETED, STOPPED

TRACKERS = ("mlflow", "wandb")
FORMS = "wandb, wandb=PROJECT, mlflow or mlflow=URI"
# what a trial's tracker run holds by step (a report row's evaluation fields)
METRICS = ("train_loss", "val_loss", "gap", "lr", "tokens", "tokens_per_s", "best_val_loss", "mem_mb")
OK_ENDINGS = (COMPLETED, STOPPED)  # a run that ended as the sweep meant it to (the rest: failed or cut short)
# the sweep's outputs its sweep-level run keeps (beside plots/*.png)
REPORT_FILES = ("report.md", "verdicts.json", "trials.csv", "curves.csv", "scaling.json")


@dataclass(frozen=True)
class TrackerSpec:
    """`--tracker KIND[=TARGET]`: mlflow with its tracking URI, or wandb with its project (None: the default)."""

    kind: str
    target: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}={self.target}" if self.target else self.kind


def parse_tracker(text: str) -> TrackerSpec:
    """`--tracker`'s value as a TrackerSpec; an unknown tracker or an empty target is a one-line UserError."""
    kind, sep, target = str(text).partition("=")
    kind = kind.strip().lower()
    if kind not in TRACKERS:
        raise UserError(f"--tracker {text}: unknown tracker: use {FORMS}")
    if sep and not target.strip():
        raise UserError(f"--tracker {text}: nothing after '=': use {FORMS}, or drop the '='")
    return TrackerSpec(kind, target.strip() or None)


@dataclass(frozen=True)
class SweepRef:
    """The sweep a tracker logs: its experiment, its results folder and when it started (sweep.json)."""

    exp: str
    folder: str
    started: str = ""

    @property
    def tag(self) -> str:
        """The sweep's name in a tracker, the same in every session of it: `exp1-20261206-172030`."""
        digits = re.sub(r"\D", "", self.started)[:14]
        return f"{self.exp}-{digits[:8]}-{digits[8:14]}" if len(digits) == 14 else self.exp

    def info(self) -> dict[str, str]:
        return {"experiment": self.exp, "results": self.folder, "started": self.started, "sweep": self.tag}


def read_sweep_ref(exp: str, exp_path: str) -> SweepRef:
    """The SweepRef of the sweep in `exp_path` (local or in a bucket), from its sweep.json."""
    from sweeps.storage.local import is_remote, local_path

    text = None
    try:
        if is_remote(exp_path):
            from sweeps.storage.s3 import open_fs

            fs, path = open_fs(exp_path)
            with fs.open_input_stream(f"{path}/sweep.json") as f:
                text = f.read().decode()
        else:
            text = (Path(local_path(exp_path)) / "sweep.json").read_text(encoding="utf-8")
    except (OSError, UserError):  # a sweep written before sweep.json: named by its experiment alone
        pass
    try:
        info = json.loads(text) if text else {}
    except ValueError:
        info = {}
    started = info.get("started") if isinstance(info, dict) else None
    return SweepRef(exp, exp_path, started if isinstance(started, str) else "")


@dataclass(frozen=True)
class TrialInfo:
    """A trial as a tracker run: its id, run name, seed, stage and Tune config (its parameters)."""

    trial_id: str
    name: str
    seed: Any
    stage: str
    params: dict[str, Any]

    @property
    def label(self) -> str:
        """`baseline s1337`: the run and the seed (a search trial's name alone where it has no seed)."""
        return f"{self.name} s{self.seed}" if self.seed not in (None, "") else self.name

    def tags(self, sweep: SweepRef) -> dict[str, str]:
        return {"experiment": sweep.exp, "run": self.name, "seed": "" if self.seed is None else str(self.seed),
                "stage": self.stage, "sweep": sweep.tag, "trial_id": self.trial_id}


def trial_info(trial_id: str, config: dict[str, Any]) -> TrialInfo:
    """A TrialInfo from a trial's Tune config (params.json): `name`, `seed`, `stage` (grid without one)."""
    seed = config.get("seed")
    if isinstance(seed, float) and seed.is_integer():
        seed = int(seed)
    return TrialInfo(str(trial_id), str(config.get("name") or trial_id), seed, str(config.get("stage") or "grid"),
                     dict(config))


def metrics_of(row: dict[str, Any]) -> dict[str, float]:
    """The finite METRICS of a report row (a diverged trial's last row has none)."""
    out = {}
    for k in METRICS:
        v = row.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[k] = float(v)
    return out


def verdict_key(v: dict[str, Any], taken: set[str]) -> str:
    """A verdict's name in a tracker: its check (`converges_slower`), made unique in the sweep."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(v.get("check") or v.get("expectation") or "verdict"))[:60] or "verdict"
    key, n = base, 2
    while key in taken:
        key, n = f"{base}_{n}", n + 1
    taken.add(key)
    return key


def verdict_fields(v: dict[str, Any]) -> tuple[dict[str, str], dict[str, float]]:
    """A verdict (Verdict.to_json) as text fields (outcome, seeds, expectation, observed) and numbers
    (effect, stderr, p_value, interval_low, interval_high, step); a number the verdict lacks is left out."""
    seeds = v.get("n_seeds") or {}
    text = {"outcome": str(v.get("outcome", "")), "seeds": ", ".join(f"{k}={n}" for k, n in seeds.items()),
            "expectation": str(v.get("expectation", "")), "observed": str(v.get("observed", ""))}
    nums = {k: v.get(k) for k in ("effect", "stderr", "p_value", "step")}
    interval = v.get("interval") or (None, None)
    nums.update(interval_low=interval[0], interval_high=interval[1])
    return text, {k: float(x) for k, x in nums.items() if isinstance(x, (int, float)) and math.isfinite(x)}


def report_files(folder: Path) -> list[Path]:
    """The sweep's outputs that its sweep-level run keeps: report.md, the tables and verdicts, plots/*.png."""
    folder = Path(folder)
    return [folder / n for n in REPORT_FILES if (folder / n).is_file()] + sorted((folder / "plots").glob("*.png"))


class Tracker:
    """One kind of tracker (mlflow_runs.py, wandb_runs.py) behind the events every tracker gets (module docstring).

    A kind implements `check` (before Ray: one UserError line), `where` (what to tell the user),
    `_open`, `_start` (a trial's run, new or found again, and the last step it holds), `_log`,
    `_end`, `_verdicts` and `_close`; this class keeps which trials have runs and their last steps.
    """

    kind = ""

    def __init__(self, spec: TrackerSpec, exp: str, exp_path: str):
        self.spec, self.exp, self.exp_path = spec, exp, exp_path
        self.sweep: SweepRef | None = None
        self._runs: dict[str, Any] = {}  # trial id -> the tracker's handle of its run
        self._last: dict[str, int] = {}  # trial id -> the last step its run holds
        self._ended: set[str] = set()

    # -- what a kind implements ----------------------------------------------------------

    def check(self, dry_run: bool = False) -> None:
        """Refuse, in one line before Ray starts, settings that cannot work; `dry_run` writes nothing."""
        raise NotImplementedError

    def where(self) -> str:
        raise NotImplementedError

    def _open(self) -> None:
        raise NotImplementedError

    def _start(self, info: TrialInfo) -> tuple[Any, int]:
        raise NotImplementedError

    def _log(self, handle: Any, step: int, metrics: dict[str, float]) -> None:
        raise NotImplementedError

    def _end(self, handle: Any, status: str) -> None:
        raise NotImplementedError

    def _verdicts(self, verdicts: list[dict[str, Any]], files: list[Path], folder: Path) -> None:
        raise NotImplementedError

    def _close(self, open_runs: list[Any], interrupted: bool) -> None:
        raise NotImplementedError

    # -- the events ------------------------------------------------------------------------

    @property
    def opened(self) -> bool:
        return self.sweep is not None

    def open(self) -> None:
        """Connect, and find or make the sweep's own run (once; the first event opens it too)."""
        if self.sweep is None:
            self.sweep = read_sweep_ref(self.exp, self.exp_path)
            self._open()

    def trial_started(self, info: TrialInfo) -> None:
        """A trial starts (or starts again): its run is made, or found again and continued."""
        self.open()
        if info.trial_id in self._runs:
            if info.trial_id in self._ended:  # ended, then started again (a trial retried after an error)
                self._ended.discard(info.trial_id)
                self._runs[info.trial_id], self._last[info.trial_id] = self._start(info)
            return
        self._runs[info.trial_id], self._last[info.trial_id] = self._start(info)

    def trial_rows(self, trial_id: str, rows: list[dict[str, Any]]) -> None:
        """A trial's report rows: each step its run does not hold yet, in order."""
        handle = self._runs.get(trial_id)
        if handle is None:
            return
        for row in sorted(rows, key=lambda r: r.get("iter") if isinstance(r.get("iter"), (int, float)) else -1):
            it = row.get("iter")
            if not isinstance(it, (int, float)) or not math.isfinite(it) or int(it) <= self._last[trial_id]:
                continue
            metrics = metrics_of(row)
            if metrics:
                self._log(handle, int(it), metrics)
                self._last[trial_id] = int(it)

    def trial_ended(self, trial_id: str, status: str) -> None:
        if trial_id in self._runs and trial_id not in self._ended:
            self._ended.add(trial_id)
            self._end(self._runs[trial_id], status)

    def sweep_ended(self, verdicts: list[dict[str, Any]], folder: Path) -> None:
        """Every verdict (Verdict.to_json) and the report's files in `folder` to the sweep's own run."""
        self.open()
        self._verdicts(verdicts, report_files(folder), Path(folder))

    def close(self, interrupted: bool = False) -> None:
        """The end: runs of trials still open are marked cut short (a --resume continues them)."""
        if not self.opened:
            return
        still = [self._runs[t] for t in self._runs if t not in self._ended]
        self._ended.update(self._runs)
        self._close(still, interrupted)
