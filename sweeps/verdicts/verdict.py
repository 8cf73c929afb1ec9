"""What every check works with: a Verdict (a measurement with an outcome) and Runs (a run's seeds, by step).

A verdict is a measurement: the effect it rests on, that effect's standard error from the seeds,
the number of seeds on each side, the step it was judged at, one outcome of
`sweeps.verdicts.stats.OUTCOMES`, and the effect's 95% interval from the same test (a `within noise`
verdict says by it how small the effect may be).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sweeps.results.frames import Results, finite_curve
from sweeps.verdicts.stats import HOLDS, NOISE, NOT, RULE, UNKNOWN, Sample, sample


def _num(x) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


@dataclass
class Verdict:
    """One expectation of the chapter, judged: verdicts.json holds a list of these (`to_json`)."""

    expectation: str
    outcome: str
    observed: str
    effect: float | None = None
    stderr: float | None = None
    n_seeds: dict[str, int] = field(default_factory=dict)
    step: float | None = None
    rule: str = RULE
    p_value: float | None = None
    check: str = ""
    interval: tuple[float, float] | None = None  # the effect's 95% interval, from the test that judged it

    @property
    def holds(self) -> bool | None:
        """True for `holds`, False for `does not hold`, None when the data cannot decide."""
        return {HOLDS: True, NOT: False}.get(self.outcome)

    def to_json(self) -> dict:
        d = asdict(self)
        for k in ("effect", "stderr", "p_value", "step"):
            d[k] = _num(d[k])
        d["interval"] = [float(x) for x in self.interval] if self.interval is not None else None
        return d

    def noise_text(self) -> str:
        """`within noise: the effect lies in [−0.064, +0.035]` for a within-noise verdict with an interval, else ''."""
        if self.outcome != NOISE or self.interval is None:
            return ""
        lo, hi = (signed(x) for x in self.interval)
        return f"within noise: the effect lies in [{lo}, {hi}]"


def verdict_text(v: Verdict) -> str:
    """`oscillates_or_worse within noise (+0.0173 ± 0.0120, p = 0.25)`: a verdict in a line."""
    figures = ""
    if v.effect is not None and v.stderr is not None and math.isfinite(v.stderr):
        p = f", p = {v.p_value:.2g}" if v.p_value is not None else ""
        figures = f" ({v.effect:+.4f} ± {v.stderr:.4f}{p})"
    return f"{v.check} {v.outcome}{figures}"


def signed(x: float) -> str:
    """A number with its sign, 4 decimals below 10 (a true minus sign)."""
    return (f"{x:+.4f}" if abs(x) < 10 else f"{x:+.1f}").replace("-", "−")


def n_seeds(runs: Runs, *names: str) -> dict[str, int]:
    """The seeds (trials) of each named run."""
    return {n: runs.n(n) for n in names}


def cannot_tell(expectation: str, why: str, check: str = "", n_seeds: dict[str, int] | None = None) -> Verdict:
    return Verdict(expectation, UNKNOWN, f"cannot tell: {why}", n_seeds=n_seeds or {}, rule="", check=check)


class Runs:
    """The trials of one experiment by run name; each run's trials are its seeds.

    `order` is the experiment file's run order. One Runs serves one analysis: what several
    checks, the report and the plots need (a scaling fit, a search's facts) is computed once,
    on first use (`once`).
    """

    def __init__(self, res: Results, order: list[str] | None = None):
        self.res = res
        self.names = set(res.trials["name"])
        self.order = list(order or [])
        self._once: dict[str, Any] = {}

    def once(self, key: str, compute: Callable[[], Any]) -> Any:
        """`compute()`, the first time `key` is asked for in this analysis; the same value afterwards."""
        if key not in self._once:
            self._once[key] = compute()
        return self._once[key]

    def trials(self, name: str) -> pd.DataFrame:
        return self.res.trials[self.res.trials["name"] == name]

    def n(self, name: str) -> int:
        return len(self.trials(name))

    def row(self, name: str) -> pd.Series | None:
        """One trial of the run (its first seed): for the settings every seed shares."""
        t = self.trials(name)
        return t.sort_values("seed", kind="stable").iloc[0] if len(t) else None

    def curves(self, name: str) -> list[pd.DataFrame]:
        """Each seed's finite evaluations, in seed order."""
        t = self.trials(name).sort_values("seed", kind="stable")
        return [finite_curve(self.res, tid) for tid in t["trial_id"]]

    def missing(self, names: list[str], min_evals: int = 1) -> str | None:
        """Why these runs cannot be judged, or None when every seed of each has evaluations."""
        problems = []
        for n in names:
            t = self.trials(n)
            if t.empty:
                problems.append(f"{n} is not in this sweep")
            elif (t["n_evals"] < min_evals).all():
                problems.append(f"{n} has {'no' if t['n_evals'].max() == 0 else 'too few'} evaluations "
                                f"({', '.join(sorted(set(t['status'])))})")
        return "; ".join(problems) or None

    def diverged(self, name: str) -> int:
        return int((self.trials(name)["status"] == "diverged").sum())

    def steps(self, *names: str) -> list[float]:
        """Evaluation steps every seed of these runs reached (diverged seeds aside), ascending."""
        common: set[float] | None = None
        for name in names:
            for t, c in zip(self.trials(name).sort_values("seed", kind="stable")["status"], self.curves(name)):
                if t == "diverged" and len(self.curves(name)) > 1:
                    continue
                common = set(c["iter"]) if common is None else common & set(c["iter"])
        return sorted(common or ())

    def at(self, name: str, step: float, column: str = "val_loss") -> Sample:
        """The run's seeds' `column` at `step` (val_loss, train_loss or gap)."""
        values = []
        for c in self.curves(name):
            hit = c[c["iter"] == step]
            if len(hit):
                values.append(hit[column].iloc[-1])
        return sample(values)

    def per_seed(self, name: str, column: str) -> Sample:
        """A trials-table column over the run's seeds (time_s, mem_mb, ...)."""
        return sample(self.trials(name)[column].astype(float))

    def largest_rise(self, name: str, tol: float) -> tuple[float, float, Sample] | None:
        """The largest rise of the run's seed-mean val loss between consecutive evaluations after step 0.

        Returns (step after the rise, mean rise, the per-seed rises there minus `tol`), or None
        with fewer than three shared evaluations.
        """
        steps = [s for s in self.steps(name) if s > 0]
        if len(steps) < 2:
            return None
        means = np.array([self.at(name, s).mean for s in steps])
        i = int(np.argmax(np.diff(means))) + 1
        before, after = self.at(name, steps[i - 1]), self.at(name, steps[i])
        rises = sample(np.array(after.values) - np.array(before.values) - tol) if after.n == before.n else sample([])
        return steps[i], float(means[i] - means[i - 1]), rises


def best_run(res: Results) -> tuple[str, float, Sample] | None:
    """The run with the lowest mean val loss at the largest budget a whole run reached: (run, step, sample).

    Runs stopped earlier are not ranked against it by their last losses.
    """
    runs = Runs(res, sorted(res.trials["name"].unique()))
    best = None
    reach = {n: (runs.steps(n) or [math.nan])[-1] for n in runs.order}
    top = max((s for s in reach.values() if math.isfinite(s)), default=None)
    if top is None:
        return None
    for n, s in reach.items():
        if s == top:
            v = runs.at(n, s)
            if v.n and (best is None or v.mean < best[2].mean):
                best = (n, s, v)
    return best
