"""What every check works with: a Verdict (a measurement with an outcome) and Runs (a run's seeds, by step).

A verdict is a measurement: the effect it rests on, that effect's standard error from the seeds,
the number of seeds on each side, the step it was judged at, one outcome of
`sweeps.verdicts.stats.OUTCOMES`, and the effect's interval from the same test at the level it was
judged at, with what that interval covers (`coverage`: 0.95 for one test at 5%; more at a look of
a sequential design or for one part of a composite). A `within noise` verdict says by its
interval how small the effect may be.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gptcore.record import DIVERGED
from sweeps.results.files import num
from sweeps.results.frames import (
    CONFIG_COLUMNS,
    EVAL_KEYS,
    Results,
    TrialRecord,
    config_fields,
    summary_of,
    trial_record,
    tutorial_base,
)
from sweeps.results.trial import ending, is_evaluation
from sweeps.verdicts.stats import HOLDS, NOISE, NOT, RULE, UNKNOWN, Sample, Test, coverage, sample


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
    interval: tuple[float, float] | None = None  # the effect's interval, from the test that judged it
    coverage: float | None = None  # what the interval covers (0.95, or more where the level is lower)

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

    def interval_text(self) -> str:
        """`[−0.0640, +0.0350] (97.6%)`: the interval and what it covers, or ''."""
        if self.interval is None:
            return ""
        lo, hi = (signed(x) for x in self.interval)
        return f"[{lo}, {hi}]" + (f" ({percent(self.coverage)})" if self.coverage else "")

    def noise_text(self) -> str:
        """`within noise: the effect lies in [−0.064, +0.035] (97.6%)` for a within-noise verdict with an interval,
        else ''."""
        if self.outcome != NOISE or self.interval is None:
            return ""
        return f"within noise: the effect lies in {self.interval_text()}"


def measured(expectation: str, outcome: str, observed: str, test: Test, seeds: dict[str, int], step: float | None,
             check: str, rule: str | None = None) -> Verdict:
    """A verdict resting on `test`: its effect, standard error, p, and interval at the level it was judged at."""
    interval = test.interval()
    return Verdict(expectation, outcome, observed, test.effect, test.stderr, seeds, step,
                   rule=rule or f"{test.how or 'one-sample t-test over seeds'}, two-sided", p_value=test.p,
                   check=check, interval=interval, coverage=coverage(test.kind) if interval else None)


def verdict_text(v: Verdict) -> str:
    """`oscillates_or_worse within noise (+0.0173 ± 0.0120, p = 0.25)`: a verdict in a line."""
    figures = ""
    if v.effect is not None and v.stderr is not None and math.isfinite(v.stderr):
        p = f", p = {v.p_value:.2g}" if v.p_value is not None else ""
        figures = f" ({v.effect:+.4f} ± {v.stderr:.4f}{p})"
    return f"{v.check} {v.outcome}{figures}"


def percent(x: float) -> str:
    """0.95 as `95%`, 0.97647 as `97.6%`, 0.9951 as `99.5%`: as many decimals as tell it apart."""
    for digits in (0, 1, 2, 3):
        text = f"{100 * x:.{digits}f}"
        if abs(float(text) - 100 * x) < 0.05 * 10 ** -digits or digits == 3:
            return f"{text}%"
    return f"{100 * x:.3f}%"


def signed(x: float) -> str:
    """A number with its sign, 4 decimals below 10 (a true minus sign)."""
    return (f"{x:+.4f}" if abs(x) < 10 else f"{x:+.1f}").replace("-", "−")


def n_seeds(runs: Runs, *names: str) -> dict[str, int]:
    """The seeds (trials) of each named run."""
    return {n: runs.n(n) for n in names}


def cannot_tell(expectation: str, why: str, check: str = "", n_seeds: dict[str, int] | None = None) -> Verdict:
    return Verdict(expectation, UNKNOWN, f"cannot tell: {why}", n_seeds=n_seeds or {}, rule="", check=check)


class Runs:
    """The trials of one experiment by run name; each run's trials are its seeds, in seed order.

    `order` is the experiment file's run order. One Runs serves one analysis: what several
    checks, the report and the plots need (a scaling fit, a search's facts) is computed once,
    on first use (`once`). A Runs is built from a sweep's Results (the report), or straight from the
    rows the trials reported (`from_reports`: judging a sweep while it runs, or many synthetic
    sweeps in benchmarks/calibration.py); each seed is a `TrialRecord` with its trials-table row,
    its curves as arrays.
    """

    def __init__(self, res: Results | None, order: list[str] | None = None,
                 seeds: dict[str, list[tuple[TrialRecord, dict[str, Any]]]] | None = None):
        self.res = res
        self.order = list(order or [])
        self._once: dict[str, Any] = {}
        self._trials: dict[str, pd.DataFrame] = {}
        if seeds is None:
            seeds = _records_of(res)
        self._seeds = {n: sorted(v, key=lambda rs: (rs[1]["seed"] is None, rs[1]["seed"])) for n, v in seeds.items()}
        self.names = set(self._seeds)

    @classmethod
    def from_reports(cls, trials: list[tuple[str, dict[str, Any], list[dict[str, Any]]]], order: list[str] | None
                     = None, upto: float | None = None, iters: dict[str, np.ndarray] | None = None) -> Runs:
        """Runs from what trials reported to Tune as they ran: (trial id, config with `name`, report rows) each,
        only the rows up to `upto`. The rows are `sweeps.results.trial.report_row`s: the evaluations, not the
        per-iteration losses (`iters`, by trial id, where a caller has them: a check that needs them cannot tell
        without)."""
        seeds: dict[str, list] = {}
        for trial_id, config, reports in trials:
            reports = [r for r in reports if upto is None or num(r.get("iter")) <= upto]
            cfg = {**tutorial_base(), **config_fields(config)}
            diverged = [num(r.get("iter")) for r in reports if not is_evaluation(r)]
            rec = trial_record(trial_id, str(config.get("name", trial_id)), cfg,
                               [r for r in reports if is_evaluation(r)],
                               status=config.get("_status") or ending(reports[-1] if reports else None, over=False,
                                                                      live=True),
                               diverged_at=min(diverged) if diverged else math.nan,
                               stage=str(config.get("stage", "grid")),
                               n_params=num(reports[-1].get("n_params")) if reports else math.nan,
                               time_s=num(config.get("_time_s")), mem_mb=num(config.get("_mem_mb")))
            if iters is not None and trial_id in iters:
                rec.facts["iters"] = iters[trial_id]
            seeds.setdefault(rec.name, []).append((rec, summary_of(rec)))
        return cls(None, order, seeds)

    def first(self, n: int) -> Runs:
        """These runs with each one's first `n` seeds (by seed number): what a look at n seeds sees."""
        out = Runs(None, self.order, {name: v[:n] for name, v in self._seeds.items()})
        out.res = self.res
        out._first = n
        return out

    def once(self, key: str, compute: Callable[[], Any]) -> Any:
        """`compute()`, the first time `key` is asked for in this analysis; the same value afterwards."""
        if key not in self._once:
            self._once[key] = compute()
        return self._once[key]

    def rows(self, name: str) -> list[dict[str, Any]]:
        """The run's trials-table rows (dicts), in seed order."""
        return [row for _, row in self._seeds.get(name, [])]

    def trials(self, name: str) -> pd.DataFrame:
        """The run's trials-table rows, in seed order."""
        if name not in self._trials:
            rows = [row for _, row in self._seeds.get(name, [])]
            self._trials[name] = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["name", "seed", "status",
                                                                                       "n_evals", "trial_id"])
        return self._trials[name]

    def n(self, name: str) -> int:
        return len(self._seeds.get(name, []))

    def row(self, name: str) -> dict[str, Any] | None:
        """One trial of the run (its first seed): for the settings every seed shares."""
        v = self._seeds.get(name)
        return v[0][1] if v else None

    def records(self, name: str) -> list[TrialRecord]:
        return [rec for rec, _ in self._seeds.get(name, [])]

    def seeds(self, name: str) -> list[dict[str, Any]]:
        """Each seed's finite evaluations: {"seed", "status", "trial_id", "diverged_at", "iter", "val_loss",
        "train_loss", "gap"} (arrays sorted by iter, one value per step)."""
        key = f"seeds/{name}"
        if key not in self._once:
            out = []
            for rec, row in self._seeds.get(name, []):
                e = rec.evals
                ok = ~np.isnan(e["val_loss"])
                out.append({"seed": row["seed"], "status": row["status"], "trial_id": rec.trial_id,
                            "diverged_at": float(rec.diverged_at), "iter": e["iter"][ok],
                            **{k: e[k][ok] for k in ("val_loss", "train_loss", "gap")}})
            self._once[key] = out
        return self._once[key]

    def curves(self, name: str) -> list[pd.DataFrame]:
        """Each seed's finite evaluations, in seed order (for the plots)."""
        return [pd.DataFrame({k: s[k] for k in ("iter", "val_loss", "train_loss", "gap")}) for s in self.seeds(name)]

    def missing(self, names: list[str], min_evals: int = 1) -> str | None:
        """Why these runs cannot be judged, or None when every seed of each has evaluations."""
        problems = []
        for n in names:
            rows = [row for _, row in self._seeds.get(n, [])]
            if not rows:
                problems.append(f"{n} is not in this sweep")
            elif all(r["n_evals"] < min_evals for r in rows):
                problems.append(f"{n} has {'no' if max(r['n_evals'] for r in rows) == 0 else 'too few'} evaluations "
                                f"({', '.join(sorted({r['status'] for r in rows}))})")
        return "; ".join(problems) or None

    def diverged(self, name: str) -> int:
        return sum(row["status"] == DIVERGED for _, row in self._seeds.get(name, []))

    def diverged_before(self, names: list[str], step: float) -> list[str]:
        """The seeds of these runs that diverged before reaching `step`, in words ("large_lr seed 1338 at 250")."""
        out = []
        for n in names:
            for s in self.seeds(n):
                if s["status"] == DIVERGED and not (s["iter"] == step).any():
                    at = s["diverged_at"]
                    out.append(f"{n} seed {s['seed']}" + (f" at step {at:.0f}" if math.isfinite(at) else ""))
        return out

    def steps(self, *names: str) -> list[float]:
        """Evaluation steps every seed of these runs reached (diverged seeds aside), ascending."""
        common: set[float] | None = None
        for name in names:
            seeds = self.seeds(name)
            for s in seeds:
                if s["status"] == DIVERGED and len(seeds) > 1:
                    continue
                common = set(s["iter"].tolist()) if common is None else common & set(s["iter"].tolist())
        return sorted(common or ())

    def at(self, name: str, step: float, column: str = "val_loss") -> Sample:
        """The run's seeds' `column` at `step` (val_loss, train_loss or gap), with their seeds."""
        values, seeds = [], []
        for s in self.seeds(name):
            hit = s[column][s["iter"] == step]
            if len(hit):
                values.append(hit[-1])
                seeds.append(s["seed"])
        return sample(values, seeds)

    def per_seed(self, name: str, column: str) -> Sample:
        """A trials-table column over the run's seeds (time_s, mem_mb, best_iter, ...)."""
        rows = [row for _, row in self._seeds.get(name, [])]
        return sample([num(r.get(column)) for r in rows], [r["seed"] for r in rows])

    def rises(self, name: str, tol: float) -> list[tuple[float, float, Sample]]:
        """Every rise of the run's val loss between consecutive shared evaluations after step 0: (step after it,
        the rise of the seeds' mean, the per-seed rises there minus `tol`)."""
        steps = [s for s in self.steps(name) if s > 0]
        out = []
        for before, after in zip(steps, steps[1:]):
            a, b = self.at(name, before), self.at(name, after)
            if a.seeds != b.seeds or a.n < 1:
                continue
            out.append((after, b.mean - a.mean, sample(np.array(b.values) - np.array(a.values) - tol, b.seeds)))
        return out

    def iter_losses(self, name: str, window: tuple[float, float]) -> list[tuple[Any, np.ndarray]]:
        """Each seed's logged training loss per iteration inside `window` (seed, losses in iteration order); an empty
        array where the trial logged none."""
        out = []
        frame = self.res.iters if self.res is not None else None
        for rec, row in self._seeds.get(name, []):
            if "iters" in rec.facts:
                it, loss = rec.facts["iters"]
            elif frame is not None and len(frame):
                mine = frame[frame["trial_id"] == rec.trial_id].sort_values("iter")
                it, loss = mine["iter"].to_numpy(float), mine["loss"].to_numpy(float)
            else:
                it, loss = np.array([]), np.array([])
            inside = (it >= window[0]) & (it <= window[1])
            out.append((row["seed"], loss[inside]))
        return out

    def schedule(self, name: str) -> np.ndarray:
        """The run's learning rate at every iteration 0..max_iters (its first seed's config, gptcore's get_lr)."""
        from gptcore.config import TrainConfig
        from gptcore.schedule import get_lr

        def compute() -> np.ndarray:
            cfg = TrainConfig(**config_fields(self._seeds[name][0][0].config))
            return np.array([get_lr(it, cfg) for it in range(cfg.max_iters + 1)])

        return self.once(f"schedule/{name}", compute)


def _records_of(res: Results) -> dict[str, list[tuple[TrialRecord, dict[str, Any]]]]:
    """The trials of a Results as records with their trials-table rows, by run name."""
    hist = {tid: h for tid, h in res.history.groupby("trial_id", sort=False)} if len(res.history) else {}
    out: dict[str, list] = {}
    for row in res.trials.to_dict("records"):
        h = hist.get(row["trial_id"])
        evals = {k: (h[k].to_numpy(float) if h is not None else np.array([], dtype=float)) for k in EVAL_KEYS}
        cfg = res.configs.get(row["trial_id"]) or {k: row.get(k) for k in CONFIG_COLUMNS}
        rec = TrialRecord(row["trial_id"], row["name"], cfg, row["status"], row.get("stage", "grid"), evals,
                          float(row.get("diverged_at", math.nan)))
        out.setdefault(row["name"], []).append((rec, row))
    return out


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
