"""A grid's verdicts over its whole design: the rungs where early stopping may stop a run, and the looks at seeds.

With `seeds: {min: 3, max: 8}` every run of a grid trains with 3 seeds first. When they have
finished, every verdict is judged: that is the first *look*. A verdict still `within noise` gets
`step` more seeds on each run it rests on (`judging.spec_runs`), and is judged again at the next
look, up to `max` seeds. A verdict is reported at the first look that decides it (`holds` or
`does not hold`), else at its last look, `within noise`, with its interval.

Before the looks, a grid with early stopping may judge a verdict at a rung (sweeps/strategies/seeds.py
`VerdictHold`): a run below the cut there stops only when every verdict resting on it is decided,
so a stopped run's verdicts are decided at its rung, and the report judges them there, at the
rung's level.

All of these are chances of a false decisive outcome. The design (`stats.Design`, `design_of`)
spends each verdict's 5% over them: a share at the rungs (split between them), the rest over the
looks at one Pocock level for the test's kind, so that without a true effect a verdict is decisive
at most 5% of the time over everything it went through (benchmarks/calibration.py measures it
through this code). With `--family holm` the sweep's verdicts share one 5% by Holm's step-down.

Everything here is a function of the trials: look k uses each run's first n_k seeds (by seed), so
the report re-derives what the sweep decided while it ran, and `gptsweep analyze` gives the same
verdicts again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from sweeps.experiment.specs import EarlyStopping, SeedRange
from sweeps.results.frames import Results
from sweeps.results.trial import STOPPED
from sweeps.verdicts.judging import claims, holm, judge, spec_runs
from sweeps.verdicts.stats import NOISE, Design
from sweeps.verdicts.verdict import Runs, Verdict

if TYPE_CHECKING:
    from sweeps.experiment.specs import Experiment, VerdictSpec


def first_seeds(res: Results, n: int) -> Results:
    """The results of each run's first `n` seeds (by seed number): what a look at n seeds sees."""
    t = res.trials.sort_values(["name", "seed"], kind="stable")
    keep = set(t.groupby("name", sort=False).head(n)["trial_id"])
    ids = lambda f: f[f["trial_id"].isin(keep)]  # noqa: E731
    return dataclasses.replace(res, trials=ids(res.trials).reset_index(drop=True),
                               history=ids(res.history).reset_index(drop=True),
                               iters=ids(res.iters).reset_index(drop=True))


def design(seeds: SeedRange, stopping: EarlyStopping | None = None, max_iters: int = 0) -> Design:
    """A grid's design: its looks over seeds, and the rungs below max_iters where early stopping may stop a run."""
    return Design(tuple(seeds.looks) if not seeds.fixed else (seeds.least,),
                  rungs=len(stopping.rungs(max_iters)) if stopping is not None else 0)


def design_of(info: dict[str, Any] | None, res: Results | Runs) -> Design:
    """The design a sweep ran by, from sweep.json (`seed_range`, `scheduler`); without one (hand-made logs,
    a sweep of an older version), one look at the seeds there are."""
    info = info or {}
    r = info.get("seed_range") or {}
    if isinstance(res, Runs):
        trials = pd.concat([res.trials(n) for n in sorted(res.names)]) if res.names else pd.DataFrame()
    else:
        trials = res.trials
    try:
        seeds = SeedRange(int(r["min"]), int(r["max"]), int(r.get("step", 2)))
    except (KeyError, TypeError, ValueError):
        n = int(trials.groupby("name")["trial_id"].count().max()) if len(trials) else 1
        seeds = SeedRange(n, n)
    if seeds.least < 2:
        seeds = SeedRange(seeds.most, seeds.most)
    s = info.get("scheduler")
    stopping = None
    if isinstance(s, dict) and info.get("search", "grid") == "grid":
        try:
            stopping = EarlyStopping(int(s["grace_period"]), int(s["reduction_factor"]))
        except (KeyError, TypeError, ValueError):
            stopping = None
    max_iters = int(trials["max_iters"].max()) if len(trials) else 0
    return design(seeds, stopping, max_iters)


@dataclass
class Judged:
    """One expectation of the file, at the look that settled it (or its last look)."""

    spec: VerdictSpec
    verdicts: list[Verdict]
    look: int  # 1 for the first look
    seeds: int  # the seeds a run had at that look (at most)
    open: bool  # still within noise there
    at_rung: bool = False  # decided at the rung where one of its runs stopped

    @property
    def runs_note(self) -> str:
        return f"look {self.look} ({self.seeds} seeds)"


def phases(exp: Experiment, runs: Runs, design: Design) -> list[str]:
    """Each verdict's phase at the first look: "rung" where one of the runs it rests on was stopped early (its
    verdicts were decided at that rung, by the rung's level), else "look"."""
    stopped = {n for n in runs.names if runs.n(n) and all(r["status"] == STOPPED for r in runs.rows(n))} \
        if design.rungs else set()
    return ["rung" if stopped & set(spec_runs(spec, exp)) else "look" for spec in exp.verdicts]


def judge_looks(exp: Experiment, runs: Runs | Results, design: Design, family: str | None = None,
                tolerant: bool = False) -> list[Judged]:
    """Every grid verdict of the file, judged look by look (module docstring); one Judged per verdict spec.

    A verdict stays open past a look only while the runs it rests on have more seeds than that
    look used; so on a sweep still running (sweeps/strategies/seeds.py) an open verdict's last look is the
    one its runs have just finished. `tolerant`: a check that fails is `cannot tell` (judging.judge).
    """
    runs = runs if isinstance(runs, Runs) else Runs(runs, exp.run_names)
    count = {n: runs.n(n) for n in runs.names}
    looks = design.looks if design.looks != (0,) else (max(count.values(), default=1),)
    phase = phases(exp, runs, design)
    out: list[Judged | None] = [None] * len(exp.verdicts)
    for k, n in enumerate(looks, start=1):
        todo = [i for i, j in enumerate(out) if j is None or j.open]
        # a look with no seed more than the last one for a verdict's runs repeats it: keep the last
        todo = [i for i in todo if out[i] is None
                or any(count.get(r, 0) > out[i].seeds for r in spec_runs(exp.verdicts[i], exp))]
        if not todo:
            break
        look = runs.first(n)
        here = [phase[i] if k == 1 else "look" for i in todo]
        if family == "holm":
            decided = sum(claims(j.spec) for j in out if j is not None and not j.open)
            judged = holm([exp.verdicts[i] for i in todo], look, design, here, decided, tolerant)
        else:
            judged = [judge([exp.verdicts[i]], look, design, p, tolerant)[0] for i, p in zip(todo, here)]
        for i, j, p in zip(todo, judged, here):
            out[i] = Judged(j.spec, j.verdicts, k, n, j.open, at_rung=p == "rung")
    return [j for j in out if j is not None]


def sequential_verdicts(judged: list[Judged]) -> list[Verdict]:
    """The grid's verdicts (`judge_looks`), each from the look that settled it, saying which."""
    out = []
    for j in judged:
        for v in j.verdicts:
            if j.at_rung:
                v.observed += " (decided at the rung where its run stopped)"
            elif v.outcome != NOISE:
                v.observed += f" (decided at {j.runs_note})" if j.look > 1 else ""
            else:
                v.observed += f" (still within noise at {j.runs_note})"
            out.append(v)
    return out


def seed_reasons(exp: Experiment, res: Results, judged: list[Judged], seeds: SeedRange) -> list[dict]:
    """How many seeds each run ended with, and why: one {"run", "seeds", "why"} per run of the file."""
    count = res.trials.groupby("name")["trial_id"].count().to_dict() if len(res.trials) else {}
    out = []
    for run in exp.run_names:
        n = int(count.get(run, 0))
        mine = [j for j in judged if run in spec_runs(j.spec, exp)]
        needed = [j for j in mine if j.look > 1]
        if n == 0:
            why = "not run"
        elif not mine:
            why = "no verdict rests on it"
        elif not needed:
            open_ = [j for j in mine if j.open]
            why = (f"its verdicts were decided with {seeds.least} seeds" if not open_ else
                   f"{', '.join(j.spec.check for j in open_)} within noise, and no seed was added")
        else:
            parts = []
            for j in needed:
                state = "still within noise at" if j.open else "decided at"
                top = " (the most)" if j.open and j.seeds >= seeds.most else ""
                parts.append(f"{j.spec.check} ({' vs '.join(spec_runs(j.spec, exp))}): {state} {j.seeds}{top}")
            why = "; ".join(parts)
        out.append({"run": run, "seeds": n, "why": why})
    return out


def seeds_of(info: dict | None) -> SeedRange | None:
    """The range of seeds a sweep was started with (sweep.json's `seed_range`), None for a fixed number."""
    r = (info or {}).get("seed_range") or {}
    try:
        seeds = SeedRange(int(r["min"]), int(r["max"]), int(r.get("step", 2)))
    except (KeyError, TypeError, ValueError):
        return None
    return None if seeds.fixed or seeds.least < 2 else seeds
