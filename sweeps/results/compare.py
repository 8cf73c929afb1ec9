"""Two sweeps of one experiment compared to the last digit: trials, decisions, verdicts, environments.

`gptsweep diff A B` (sweeps/command/diff.py) reads each folder into `SweepFacts` (`read_facts`),
judges the verdicts of a folder that has no verdicts.json, and asks `compare` for a `Comparison`:

- trials, matched by run name, seed and stage: the configuration (every value of the trial's Tune
  config but the places on a machine), the status, and train and val loss at every evaluation,
  compared exactly (two NaNs are equal: the same nothing was measured);
- decisions, from each decision log (decisions.py), paired by kind, key and trial, in the design's
  order: the first pair that differs is where the sweeps part;
- verdicts, paired by check and expectation (every field of verdicts.json);
- environments: the driver's (the log's `environment` records), each trial's (its config.json:
  the device, dtype, threads and versions it resolved), and how each sweep was started (sweep.json).

Nothing here judges or writes: a pure comparison of what the two folders hold.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptcore.config import FIELD_TYPES
from sweeps.results import decisions as log
from sweeps.results.files import read_json
from sweeps.results.frames import Results
from sweeps.results.trial import CONFIRM, GRID, SEARCH

# a trial's Tune config values that name a place on one machine, not what was trained
PLACES = ("out_dir", "data_dir")
# config.json's fields that are not the environment: the trial itself, or where Ray placed it
NOT_ENVIRONMENT = ("pid", "name", "trial_id", "cuda_visible_devices", "stage")
TRIAL_ENV_LABELS = {"resolved_device": "device", "resolved_dtype": "dtype", "dtype_why": "dtype why",
                    "torch_threads": "torch threads", "code_version": "trials' code", "python": "trials' python",
                    "torch": "trials' torch"}
# sweep.json's fields that differ between any two starts: not a setting
NOT_SETTINGS = ("started", "pid", "experiment_file")
STAGES = (GRID, SEARCH, CONFIRM)  # the order a sweep runs its stages in


@dataclass
class SweepFacts:
    """What one sweep's folder holds, for the comparison: its results, sweep.json, decision log (None
    without one), each trial's environment (config.json) and its verdicts (None until judged)."""

    where: str
    folder: Path
    res: Results
    info: dict[str, Any]
    log: list[dict] | None
    trial_envs: dict[str, dict[str, Any]]
    verdicts: list[dict] | None = None


def read_facts(folder: Path, res: Results, where: str) -> SweepFacts:
    """The facts of a sweep's folder whose trials `res` are; verdicts.json's verdicts where it has one."""
    folder = Path(folder)
    path = folder / log.FILE
    envs = {}
    for tid, sub in zip(res.trials["trial_id"], res.trials["path"]):
        cfg = read_json(folder / str(sub) / "config.json") if sub else None
        envs[str(tid)] = {k: v for k, v in (cfg or {}).items() if k not in FIELD_TYPES and k not in NOT_ENVIRONMENT}
    try:
        verdicts = json.loads((folder / "verdicts.json").read_text())
    except (OSError, ValueError):
        verdicts = None
    return SweepFacts(where, folder, res, read_json(folder / "sweep.json") or {},
                      log.read(path) if path.is_file() else None, envs,
                      plain(verdicts) if isinstance(verdicts, list) else None)


def plain(x: Any) -> Any:
    """JSON's view of a value: non-finite floats as None (as verdicts.json writes them), numpy scalars as
    Python's, tuples as lists; so that a fresh judgement and a file compare equal when they say the same."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    return x


def same(a: Any, b: Any) -> bool:
    """Exact equality, two NaNs (or two Nones) counting as equal."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


# ------------------------------------------------------------------------------------------------
# trials


@dataclass
class Trial:
    name: str
    seed: Any
    stage: str
    trial_id: str
    config: dict[str, Any]
    status: str
    evals: dict[float, tuple[float, float]]  # iter -> (train_loss, val_loss)


@dataclass
class TrialDiff:
    """How one trial differs: `only` names the side that has it; else its config values, status and the
    evaluations that differ ((iter, field, A's, B's), in step order; None: no evaluation there)."""

    name: str
    seed: Any
    stage: str
    only: str | None = None
    config: list[tuple[str, Any, Any]] = field(default_factory=list)
    status: tuple[str, str] | None = None
    evals: list[tuple[float, str, Any, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.name} (seed {self.seed}, {self.stage})"


def _int(x: Any) -> Any:
    x = plain(x)
    return int(x) if isinstance(x, float) and x.is_integer() else x


def trials_of(res: Results, run_names: list[str]) -> dict[tuple, Trial]:
    """A sweep's trials by (name, seed, stage), in comparison order: stage, the file's runs, name, seed."""
    hist = {tid: h for tid, h in res.history.groupby("trial_id")} if len(res.history) else {}
    out = []
    for row in res.trials.to_dict("records"):
        tid = str(row["trial_id"])
        params = res.params.get(tid) or {}
        seed = _int(params.get("seed", (res.configs.get(tid) or {}).get("seed")))
        config = {k: v for k, v in params.items() if k not in ("name", "seed", "stage") + PLACES}
        h = hist.get(row["trial_id"])
        evals = {} if h is None else {float(i): (float(t), float(v)) for i, t, v in
                                      zip(h["iter"], h["train_loss"], h["val_loss"])}
        out.append(Trial(str(row["name"]), seed, str(row["stage"]), tid, config, str(row["status"]), evals))
    rank = {n: i for i, n in enumerate(run_names)}

    def order(t: Trial) -> tuple:
        stage = STAGES.index(t.stage) if t.stage in STAGES else len(STAGES)
        return stage, rank.get(t.name, len(rank)), t.name, str(t.seed), t.trial_id

    trials: dict[tuple, Trial] = {}
    for t in sorted(out, key=order):
        key, n = (t.name, t.seed, t.stage), 1
        while key in trials:  # one name and seed twice (a hand-made folder): told apart by their order
            key, n = (t.name, t.seed, t.stage, n), n + 1
        trials[key] = t
    return trials


def trial_diff(a: Trial, b: Trial) -> TrialDiff | None:
    d = TrialDiff(a.name, a.seed, a.stage)
    d.config = [(k, a.config.get(k), b.config.get(k)) for k in sorted(set(a.config) | set(b.config))
                if not same(a.config.get(k), b.config.get(k))]
    d.status = (a.status, b.status) if a.status != b.status else None
    for it in sorted(set(a.evals) | set(b.evals)):
        ea, eb = a.evals.get(it), b.evals.get(it)
        if ea is None or eb is None:
            d.evals.append((it, "evaluation", ea, eb))
            continue
        d.evals += [(it, f, x, y) for f, x, y in zip(("train_loss", "val_loss"), ea, eb) if not same(x, y)]
    return d if d.config or d.status or d.evals else None


# ------------------------------------------------------------------------------------------------
# decisions and verdicts


@dataclass
class DecisionDiff:
    """One decision that differs: its kind, key and trial, each side's record (None: that side lacks it) and the
    differing fields ((path, A's, B's), a nested field's path joined by spaces: `config learning_rate`)."""

    kind: str
    key: Any
    trial: str | None
    a: dict | None
    b: dict | None
    fields: list[tuple[str, Any, Any]] = field(default_factory=list)


def _ident(r: dict) -> str:
    return json.dumps([r.get("kind"), r.get("key"), r.get("trial")])


def field_diffs(a: dict, b: dict, skip: tuple = (), path: str = "") -> list[tuple[str, Any, Any]]:
    """The fields of two records that differ, nested dicts entered (`config learning_rate`)."""
    out = []
    for k in sorted((set(a) | set(b)) - set(skip)):
        x, y, p = a.get(k), b.get(k), f"{path}{k}"
        if isinstance(x, dict) and isinstance(y, dict):
            out += field_diffs(x, y, (), p + " ")
        elif not same(x, y):
            out.append((p, x, y))
    return out


def decision_diffs(a: list[dict], b: list[dict]) -> tuple[list[DecisionDiff], int]:
    """Every decision that differs, in the design's order, and how many decisions the two logs hold together."""
    da, db = ({_ident(r): r for r in log.decisions(x)} for x in (a, b))
    both = log.decisions(list(da.values()) + list(db.values()))  # the union, in the design's order
    out = []
    for r in both:
        i = _ident(r)
        ra, rb = da.get(i), db.get(i)
        fields = field_diffs(ra, rb, ("kind", "key", "trial")) if ra is not None and rb is not None else []
        if ra is None or rb is None or fields:
            out.append(DecisionDiff(str(r.get("kind")), r.get("key"), r.get("trial"), ra, rb, fields))
    return out, len(both)


@dataclass
class VerdictChange:
    check: str
    expectation: str
    a: dict | None
    b: dict | None
    fields: list[str]


def verdict_changes(a: list[dict], b: list[dict]) -> list[VerdictChange]:
    """The verdicts that differ in any field, paired by (check, expectation); in A's order, then B's own."""
    def by(vs: list[dict]) -> dict[tuple, dict]:
        return {(str(v.get("check", "")), str(v.get("expectation", ""))): v for v in vs if isinstance(v, dict)}

    va, vb = by(a), by(b)
    out = []
    for k in list(va) + [k for k in vb if k not in va]:
        x, y = va.get(k), vb.get(k)
        fields = [f for f, _, _ in field_diffs(x, y)] if x is not None and y is not None else []
        if x is None or y is None or fields:
            out.append(VerdictChange(k[0], k[1], x, y, sorted({f.split(" ")[0] for f in fields})))
    return out


# ------------------------------------------------------------------------------------------------
# environments


@dataclass
class EnvDiff:
    """One part of the environment that differs: each side's values (as text) with how many trials (config.json's
    fields: `per_trial`) or starts of the sweep (the driver's, sweep.json's) had each."""

    what: str
    a: dict[str, int]
    b: dict[str, int]
    per_trial: bool = False


def _text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def environment_diffs(a: SweepFacts, b: SweepFacts) -> list[EnvDiff]:
    """Each part of the environment that differs: the driver's (from the decision logs, when both have one), each
    trial's (config.json), how the sweep was started (sweep.json)."""
    out = []
    if a.log is not None and b.log is not None:
        ea, eb = log.environments(a.log), log.environments(b.log)
        for k in sorted({k for e in ea + eb for k in e}):
            ca, cb = (dict(Counter(_text(e.get(k)) for e in envs)) for envs in (ea, eb))
            if set(ca) != set(cb):
                out.append(EnvDiff(k, ca, cb))
    keys = {k for s in (a, b) for env in s.trial_envs.values() for k in env}
    for k in sorted(keys, key=lambda k: (list(TRIAL_ENV_LABELS).index(k) if k in TRIAL_ENV_LABELS else 99, k)):
        ca, cb = (dict(Counter(_text(env[k]) for env in s.trial_envs.values() if k in env)) for s in (a, b))
        if set(ca) != set(cb):
            out.append(EnvDiff(TRIAL_ENV_LABELS.get(k, k), ca, cb, per_trial=True))
    for k in sorted((set(a.info) | set(b.info)) - set(NOT_SETTINGS)):
        if not same(a.info.get(k), b.info.get(k)):
            out.append(EnvDiff(f"sweep.json {k}", {_text(a.info.get(k)): 1}, {_text(b.info.get(k)): 1}))
    return out


# ------------------------------------------------------------------------------------------------
# the comparison


@dataclass
class Comparison:
    """Everything `gptsweep diff` says (module docstring); `identical` when no trial, decision or verdict differs."""

    a: SweepFacts
    b: SweepFacts
    trials: list[TrialDiff]
    n_trials: tuple[int, int]
    n_evals: tuple[int, int]
    decisions: list[DecisionDiff]
    n_decisions: int
    verdicts: list[VerdictChange]
    n_verdicts: tuple[int, int]
    environment: list[EnvDiff]

    @property
    def identical(self) -> bool:
        return not self.trials and not self.decisions and not self.verdicts

    @property
    def logs(self) -> tuple[bool, bool]:
        return self.a.log is not None, self.b.log is not None


def compare(a: SweepFacts, b: SweepFacts, run_names: list[str] | None = None) -> Comparison:
    """The two sweeps compared (their verdicts judged already: each side's `verdicts` a list)."""
    ta, tb = trials_of(a.res, run_names or []), trials_of(b.res, run_names or [])
    diffs = []
    for k in list(ta) + [k for k in tb if k not in ta]:
        x, y = ta.get(k), tb.get(k)
        if x is None or y is None:
            t = x or y
            diffs.append(TrialDiff(t.name, t.seed, t.stage, only="A" if y is None else "B"))
        elif (d := trial_diff(x, y)) is not None:
            diffs.append(d)
    both = a.log is not None and b.log is not None
    dd, n_dec = decision_diffs(a.log, b.log) if both else ([], len(log.decisions(a.log or b.log or [])))
    return Comparison(a, b, diffs, (len(ta), len(tb)), (sum(len(t.evals) for t in ta.values()),
                                                       sum(len(t.evals) for t in tb.values())),
                      dd, n_dec, verdict_changes(a.verdicts or [], b.verdicts or []),
                      (len(a.verdicts or []), len(b.verdicts or [])), environment_diffs(a, b))
