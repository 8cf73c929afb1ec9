"""Verdicts over a range of seeds: looks at more and more seeds, each at a group-sequential level.

With `seeds: {min: 3, max: 8}` every run of a grid trains with 3 seeds first. When they have
finished, every verdict is judged: that is the first *look*. A verdict still `within noise` gets
`step` more seeds on each run it rests on (`spec_runs`), and is judged again at the next look, up
to `max` seeds. A verdict is reported at the first look that decides it (`holds` or `does not
hold`), else at its last look, `within noise`, with its interval.

Looking again and again would make a decisive verdict without a true effect more likely than 5%
(each look is another chance). Every look therefore uses the lower nominal level of a Pocock
boundary for the looks the range allows (`stats.pocock_level`: 0.0235 for looks at 3, 5, 7 and 8
seeds), so that over all looks the rate stays at 5%; a within-noise verdict's interval is the
matching repeated interval. docs/verdicts.md has the rule and the simulation that checks it.

Everything here is a function of the trials: look k uses each run's first n_k seeds (by seed), so
the report re-derives what the sweep decided while it ran (sweeps/strategies/seeds.py judges what the trials
reported, with this module), and `gptsweep analyze` gives the same verdicts again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sweeps.experiment.specs import SeedRange
from sweeps.results.frames import Results
from sweeps.verdicts.judging import judge, spec_runs
from sweeps.verdicts.stats import NOISE, pocock_level
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


def level_of(seeds: SeedRange) -> float:
    """Each look's nominal two-sided level (0.05 with a fixed number of seeds)."""
    return pocock_level(seeds.looks)


@dataclass
class Judged:
    """One expectation of the file, at the look that settled it (or its last look)."""

    spec: VerdictSpec
    verdicts: list[Verdict]
    look: int  # 1 for the first look
    seeds: int  # the seeds a run had at that look (at most)
    open: bool  # still within noise there

    @property
    def runs_note(self) -> str:
        return f"look {self.look} ({self.seeds} seeds)"


def judge_looks(exp: Experiment, res: Results, seeds: SeedRange, tolerant: bool = False) -> list[Judged]:
    """Every grid verdict of the file, judged look by look (module docstring); one Judged per verdict spec.

    A verdict stays open past a look only while the runs it rests on have more seeds than that
    look used; so on a sweep still running (sweeps/strategies/seeds.py) an open verdict's last look is the
    one its runs have just finished. `tolerant`: a check that fails is `cannot tell` (judging.judge).
    """
    level = level_of(seeds)
    count = res.trials.groupby("name")["trial_id"].count().to_dict()
    out: list[Judged | None] = [None] * len(exp.verdicts)
    for k, n in enumerate(seeds.looks, start=1):
        todo = [i for i, j in enumerate(out) if j is None or j.open]
        if not todo:
            break
        runs = Runs(first_seeds(res, n), exp.run_names)
        # a look with no seed more than the last one for a verdict's runs repeats it: keep the last
        todo = [i for i in todo if out[i] is None
                or any(count.get(r, 0) > out[i].seeds for r in spec_runs(exp.verdicts[i], exp))]
        for i, j in zip(todo, judge([exp.verdicts[i] for i in todo], runs, level, tolerant=tolerant)):
            out[i] = Judged(j.spec, j.verdicts, k, n, j.open)
    return [j for j in out if j is not None]


def rule_of(rule: str, seeds: SeedRange) -> str:
    """A verdict's rule with the sequential level in place of 0.05."""
    level = level_of(seeds)
    looks = ", ".join(map(str, seeds.looks))
    return rule.replace("p < 0.05", f"p < {level:.4f} at each look (Pocock boundary for looks at {looks} seeds: "
                                    "5% over all looks)")


def sequential_verdicts(judged: list[Judged], seeds: SeedRange) -> list[Verdict]:
    """The grid's verdicts (`judge_looks`), each from the look that settled it, with its look in the rule."""
    out = []
    for j in judged:
        for v in j.verdicts:
            v.rule = rule_of(v.rule, seeds)
            if v.outcome != NOISE:
                v.observed += f" (decided at {j.runs_note})" if j.look > 1 else ""
            else:
                v.observed += f" (still within noise at {j.runs_note})"
            out.append(v)
    return out


def seed_reasons(exp: Experiment, res: Results, judged: list[Judged], seeds: SeedRange) -> list[dict]:
    """How many seeds each run ended with, and why: one {"run", "seeds", "why"} per run of the file."""
    count = res.trials.groupby("name")["trial_id"].count().to_dict()
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
