"""The chapter's expectations, each a measurement judged against the seed-to-seed noise.

The experiment file says which expectations to judge (`verdicts:`, and `optuna.verdicts:` for a
search), each a check of `CHECKS` and the runs it names; this module holds what each check
measures and which test decides it. Every verdict has an effect, its standard error over seeds,
the seeds per side, the step it is judged at, its interval (and what it covers) and an outcome
(`holds`, `does not hold`, `within noise`, `cannot tell`) by the rule of `stats.py`, at the level
the design gives it. A comparison of two runs is paired by seed where both trained the same seeds,
and judged at the last evaluation every seed of both reached (a run that early stopping ended at a
rung is compared there); a seed that diverged before that step is named, and the comparison is
`cannot tell` (its loss is no sample of the run's), unless divergence is what the check looks for.
An expectation made of several tests (a composite, a maximum over rises, the lowest of k runs)
gives each test its share of the level, so that the expectation as a whole keeps it.
docs/verdicts.md lists every check with its rule and the chapter's wording.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sweeps.experiment.specs import EQUIV_TOL, OVERFIT_GAP, RISE_TOL
from sweeps.results.metrics import loss_noise, overfit_class
from sweeps.verdicts.lr_law import lr_scaling
from sweeps.verdicts.scaling import scaling
from sweeps.verdicts.search import best_range, trend
from sweeps.verdicts.stats import (
    HOLDS,
    NOISE,
    NOT,
    T1,
    UNKNOWN,
    Sample,
    against,
    all_of,
    any_of,
    compare,
    level,
    sample,
    share,
    t_quantile,
)
from sweeps.verdicts.verdict import Runs, Verdict, cannot_tell, measured, n_seeds

if TYPE_CHECKING:
    from sweeps.experiment.specs import VerdictSpec


def _compare(runs: Runs, spec: VerdictSpec, expectation: str, expect: int, column: str = "val_loss",
             step: float | None = None, what: str = "val") -> Verdict:
    """The run against `against` on one column at a shared step (the last, by default): paired by seed."""
    name, ref = spec.run, spec.against
    if why := runs.missing([name, ref]):
        return cannot_tell(expectation, why, spec.check, n_seeds(runs, name, ref))
    steps = runs.steps(name, ref)
    if not steps:
        return cannot_tell(expectation, f"{name} and {ref} share no evaluation step", spec.check,
                           n_seeds(runs, name, ref))
    step = steps[-1] if step is None else step
    if gone := runs.diverged_before([name, ref], step):
        return cannot_tell(expectation, f"diverged before step {step:.0f}: {', '.join(gone)}; its loss is no "
                                        "sample of the run's", spec.check, n_seeds(runs, name, ref))
    a, b = runs.at(name, step, column), runs.at(ref, step, column)
    test = compare(a, b)
    obs = f"at step {step:.0f}: {what} {a.text()} vs {ref} {b.text()}; {test.text()}"
    return measured(expectation, test.outcome(expect), obs, test, {name: a.n, ref: b.n}, step, spec.check)


def _rises(runs: Runs, name: str) -> tuple[str, float, float]:
    """Whether the run's val loss rises by more than RISE_TOL between two evaluations, beyond noise: (outcome,
    the step after the largest rise of the mean, that rise).

    Every rise is tested (a one-sample t-test of the per-seed rise minus RISE_TOL): `holds` (it rises) needs one
    of the m rises beyond the tolerance at 1/m of the level, as a maximum is tested; `does not hold` (it is
    steady) needs every rise below it at the level.
    """
    rises = runs.rises(name, RISE_TOL)
    if not rises:
        return UNKNOWN, math.nan, math.nan
    with share(len(rises)):
        beyond = [(at, mean, t) for at, mean, over in rises if (t := against(over, 0.0)).outcome(+1) == HOLDS]
    below = all(against(over, 0.0).outcome(+1) == NOT for _, _, over in rises)
    at, mean, over = max(rises, key=lambda r: r[1])
    outcome = HOLDS if beyond else NOT if below else NOISE
    return outcome, at, mean


# ----------------------------------------------------------------------------------------
# the checks: each takes the runs and the file's spec, and returns its verdicts


def falls_steadily(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    """The val loss ends below where it started, and no rise between evaluations exceeds RISE_TOL beyond noise:
    two parts, each at half the level; a diverged seed does not hold."""
    name = spec.run
    e = f"{name}: the loss decreases steadily"
    if why := runs.missing([name], 2):
        return [cannot_tell(e, why, spec.check, n_seeds(runs, name))]
    steps = runs.steps(name)
    first, last = steps[0], steps[-1]
    start, end = runs.at(name, first), runs.at(name, last)
    with share(2):
        fall = against(sample(np.array(end.values) - np.array(start.values), end.seeds), 0.0)
        outcome = fall.outcome(-1)
        rising, at, mean = _rises(runs, name)
        v = measured(e, outcome, "", fall, n_seeds(runs, name), last, spec.check)
    steady = "" if rising == UNKNOWN else (f"; the largest rise of the mean, {mean:+.4f} at step {at:.0f}, is "
                                           + {HOLDS: "beyond", NOT: "within"}.get(rising, "not separable from")
                                           + f" {RISE_TOL} and the noise (each rise tested)")
    if rising == HOLDS:
        outcome = NOT
    if k := runs.diverged(name):  # divergence is no steady fall
        outcome = NOT
        steady += f"; {k} of {runs.n(name)} seeds diverged"
    v.outcome = outcome
    v.observed = (f"val {start.text()} at step {first:.0f} → {end.text()} at step {last:.0f}; change {fall.text()}"
                  + steady)
    return [v]


def oscillates_or_worse(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    """Any of: a seed diverges, the val loss rises beyond RISE_TOL and the noise, or it ends worse than the
    reference: the two tests each at half the level."""
    name, ref = spec.run, spec.against
    e = (f"large learning rate ({name}): may oscillate (val loss rises between evaluations, or diverges) "
         f"or end worse than {ref}")
    if why := runs.missing([name, ref]):
        return [cannot_tell(e, why, spec.check, n_seeds(runs, name, ref))]
    parts = [f"lr {runs.row(name)['learning_rate']:g} vs {ref} {runs.row(ref)['learning_rate']:g}"]
    if k := runs.diverged(name):  # divergence is what the check looks for: it decides
        parts.append(f"{k} of {runs.n(name)} seeds diverged ({', '.join(runs.diverged_before([name], math.inf))})")
        return [Verdict(e, HOLDS, "; ".join(parts), n_seeds=n_seeds(runs, name, ref), check=spec.check,
                        rule="a seed diverged")]
    with share(2):
        rising, at, mean = _rises(runs, name)
        worse = _compare(runs, spec, e, +1)
    if rising != UNKNOWN:
        parts.append(f"largest rise of the mean val loss {mean:+.4f} at step {at:.0f}"
                     + (" (beyond the tolerance and the noise)" if rising == HOLDS else ""))
    worse.observed = "; ".join(parts + [f"end {worse.observed}"])
    worse.outcome = any_of([rising, worse.outcome])
    return [worse]


def converges_slower(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    """A higher val loss than the reference both at mid-run and at the last shared step: two tests, each at half
    the level."""
    name, ref = spec.run, spec.against
    e = f"small learning rate ({name}): converges slowly (higher val loss than {ref} at mid-run and at the end)"
    steps = [s for s in runs.steps(name, ref) if s > 0]
    mid_step = min(steps, key=lambda s: abs(s - steps[-1] / 2)) if steps else None
    if mid_step is None or mid_step == steps[-1]:  # only one step to compare at (a rung's first look)
        return [_compare(runs, spec, e, +1)]
    with share(2):
        end = _compare(runs, spec, e, +1)
        mid = _compare(runs, spec, e, +1, step=mid_step)
    end.observed = f"mid-run {mid.observed}; end {end.observed}"
    end.outcome = all_of([mid.outcome, end.outcome])
    return [end]


def noisier(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    """The per-iteration training loss is noisier: loss_noise per seed, over the same window of iterations."""
    name, ref = spec.run, spec.against
    e = f"small batch ({name}): training is noisier than {ref}"
    if why := runs.missing([name, ref]):
        return [cannot_tell(e, why, spec.check, n_seeds(runs, name, ref))]
    steps = runs.steps(name, ref)
    end = steps[-1] if steps else 0
    # the second half of what both ran: the same iterations on both sides, where the trend is slow
    window = (end / 2, end)

    def noise(run: str) -> Sample:
        seeds = runs.iter_losses(run, window)
        return sample([loss_noise(x, tail=False) for _, x in seeds], [s for s, _ in seeds])

    a, b = noise(name), noise(ref)
    if a.n == 0 or b.n == 0:
        return [cannot_tell(e, f"too few logged training losses between steps {window[0]:.0f} and {window[1]:.0f} "
                               "to measure noise (lower log_interval)", spec.check, n_seeds(runs, name, ref))]
    test = compare(a, b)
    bs = {n: runs.row(n)["batch_size"] for n in (name, ref)}
    ratio = f" ({a.mean / b.mean:.2f}×)" if b.mean > 0 else ""
    obs = (f"batch {bs[name]:.0f} vs {bs[ref]:.0f}: noise of the logged training loss per iteration (std of "
           f"step-to-step differences / √2, steps {window[0]:.0f}-{window[1]:.0f}) {a.text()} vs {b.text()}"
           f"{ratio}; {test.text()}")
    return [measured(e, test.outcome(+1), obs, test, {name: a.n, ref: b.n}, end, spec.check)]


def lower_loss(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    """A lower val loss than the reference at the last shared step (the chapter: a larger model)."""
    e = f"{spec.run}: ends at a lower val loss than {spec.against}"
    v = _compare(runs, spec, e, -1)
    a, b = runs.row(spec.run), runs.row(spec.against)
    if v.step is not None:  # both runs have results
        v.observed = (f"{a['n_layer']:.0f} layers × {a['n_embd']:.0f} vs {b['n_layer']:.0f} × {b['n_embd']:.0f}; "
                      + v.observed)
    return [v]


def same_curve(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    """Paired by seed, the largest |val difference| over the shared evaluations stays below EQUIV_TOL: an
    equivalence test (two one-sided tests at the level: `holds` when the upper bound is below the tolerance,
    `does not hold` when the lower bound is above it)."""
    name, ref = spec.run, spec.against
    e = (f"gradient accumulation equals a large batch: {name} and {ref} give val-loss curves that differ by "
         f"less than {EQUIV_TOL} (mean and max |difference|)")
    if why := runs.missing([name, ref]):
        return [cannot_tell(e, why, spec.check, n_seeds(runs, name, ref))]
    steps = runs.steps(name, ref)
    other = {s["seed"]: s for s in runs.seeds(ref)}
    worst, mean, seeds = [], [], []
    for a in runs.seeds(name):  # the same seed on both sides
        b = other.get(a["seed"])
        if b is None:
            continue
        shared = np.intersect1d(np.intersect1d(a["iter"], b["iter"]), steps)
        if len(shared):
            d = np.abs(a["val_loss"][np.isin(a["iter"], shared)] - b["val_loss"][np.isin(b["iter"], shared)])
            worst.append(float(d.max()))
            mean.append(float(d.mean()))
            seeds.append(a["seed"])
    if not worst:
        return [cannot_tell(e, "the two runs share no evaluation step", spec.check, n_seeds(runs, name, ref))]
    worst_s, mean_s = sample(worst, seeds), sample(mean, seeds)
    test = against(worst_s, EQUIV_TOL, "the max |difference| per seed against the tolerance")
    interval, outcome = None, UNKNOWN
    if test.estimable:
        margin = t_quantile(1 - level(T1), test.df) * test.stderr  # one-sided, at the level each
        interval = (worst_s.mean - margin, worst_s.mean + margin)
        outcome = HOLDS if interval[1] < EQUIV_TOL else NOT if interval[0] > EQUIV_TOL else NOISE
    shapes = [f"{r['batch_size']:.0f}×{r['gradient_accumulation_steps']:.0f}" for r in (runs.row(ref), runs.row(name))]
    obs = (f"max |Δ val| {worst_s.mean:.6f}, mean |Δ| {mean_s.mean:.6f} over {len(steps)} shared evaluations "
           f"(seed by seed, {worst_s.n} seed(s)); batch {shapes[0]} vs {shapes[1]}")
    if worst_s.n < 2:
        obs += "; one seed: never decisive"
    elif not test.estimable:
        obs += "; the seeds gave identical differences: no noise estimate"
    return [Verdict(e, outcome, obs, worst_s.mean, worst_s.se, n_seeds(runs, name, ref), steps[-1],
                    rule=f"equivalence: two one-sided t-tests of the mean max |difference| against {EQUIV_TOL}",
                    check=spec.check, interval=interval, coverage=1 - 2 * level(T1) if interval else None)]


def overfits(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    """The final gap val − train is at least OVERFIT_GAP, beyond noise (a one-sample t-test)."""
    name = spec.run
    e = f"without regularisation ({name}) the model overfits: final gap = val − train ≥ {OVERFIT_GAP}"
    if why := runs.missing([name]):
        return [cannot_tell(e, why, spec.check, n_seeds(runs, name))]
    step = runs.steps(name)[-1]
    if gone := runs.diverged_before([name], step):
        return [cannot_tell(e, f"diverged before step {step:.0f}: {', '.join(gone)}", spec.check, n_seeds(runs, name))]
    gap = runs.at(name, step, "gap")
    test = against(gap, OVERFIT_GAP, f"one-sample t-test over seeds against {OVERFIT_GAP}")
    bottom = pd.Series(runs.per_seed(name, "best_iter").values, dtype=float)
    obs = (f"gap {gap.text()} at step {step:.0f} → {overfit_class(gap.mean)}; {test.text()} against {OVERFIT_GAP}; "
           f"val loss bottomed out at step {bottom.median():.0f} (median over seeds)")
    return [measured(e, test.outcome(+1), obs, test, n_seeds(runs, name), step, spec.check)]


def narrower_gap(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    """A smaller gap than the reference at the last shared step."""
    row = runs.row(spec.run)
    what = {(True, False): "dropout", (False, True): "weight decay", (True, True): "dropout + weight decay"}
    label = what.get((bool(row["dropout"]), bool(row["weight_decay"])), "regularisation") if row is not None else ""
    e = f"{label} ({spec.run}) narrows the gap compared with {spec.against}"
    v = _compare(runs, spec, e, -1, column="gap", what="gap")
    if row is not None and v.outcome != UNKNOWN:
        v.observed = f"dropout {row['dropout']:g}, weight_decay {row['weight_decay']:g}: {v.observed}"
    return [v]


def _schedule_pair(runs: Runs, spec: VerdictSpec, at_start: bool) -> list[Verdict]:
    treated, control = spec.run, spec.against
    if at_start:
        e = f"warmup helps the start: {treated} has a lower val loss than {control} at the first evaluation after 0"
    else:
        e = f"decay helps the end: {treated} ends at a lower val loss than {control}"
    if why := runs.missing([treated, control]):
        return [cannot_tell(e, why, spec.check, n_seeds(runs, treated, control))]
    sa, sb = (runs.schedule(n) for n in (treated, control))
    if len(sa) == len(sb) and np.allclose(sa, sb):
        # nanoGPT's get_lr ignores warmup when decay_lr=False (the chapter's warmup_only command):
        # such a pair tests nothing
        why = (" (decay_lr=False turns warmup off in get_lr)"
               if not (runs.row(treated)["decay_lr"] or runs.row(control)["decay_lr"]) else "")
        return [cannot_tell(e, f"{treated} and {control} have identical learning-rate schedules{why}: not a test",
                            spec.check, n_seeds(runs, treated, control))]
    steps = [s for s in runs.steps(treated, control) if s > 0]
    return [_compare(runs, spec, e, -1, step=(steps[0] if at_start and steps else None))]


def lower_at_start(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    return _schedule_pair(runs, spec, at_start=True)


def lower_at_end(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    return _schedule_pair(runs, spec, at_start=False)


def lowest(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    """The run ends below every other run of the file: tested against each of the k others. `holds` needs it below
    every one of them (each at the level); `does not hold` needs it above one of them, at 1/k of the level."""
    names = runs.order
    e = f"{spec.run} ends lowest of the {len(names)} runs"
    if why := runs.missing(names):
        return [cannot_tell(e, why, spec.check, n_seeds(runs, *names))]
    steps = runs.steps(*names)
    if not steps:
        return [cannot_tell(e, f"the {len(names)} runs share no evaluation step", spec.check, n_seeds(runs, *names))]
    step = steps[-1]
    if gone := runs.diverged_before(names, step):
        return [cannot_tell(e, f"diverged before step {step:.0f}: {', '.join(gone)}", spec.check,
                            n_seeds(runs, *names))]
    vals = {n: runs.at(n, step) for n in names}
    others = [n for n in names if n != spec.run]
    tests = {n: compare(vals[spec.run], vals[n]) for n in others}
    below = all(t.outcome(-1) == HOLDS for t in tests.values())
    with share(len(others)):
        above = [n for n, t in tests.items() if t.outcome(-1) == NOT]
    unknown = any(not t.estimable for t in tests.values())
    outcome = NOT if above else HOLDS if below else UNKNOWN if unknown else NOISE
    closest = min(others, key=lambda n: vals[n].mean)  # the effect shown: against the best of the others
    obs = (f"at step {step:.0f}: " + ", ".join(f"{n} {v.text()}" for n, v in vals.items())
           + f"; against the best other, {closest}: {tests[closest].text()}"
           + (f"; above {', '.join(above)} beyond noise" if above else ""))
    v = measured(e, outcome, obs, tests[closest], {n: v.n for n, v in vals.items()}, step, spec.check,
                 rule=f"{tests[closest].how or 'a t-test'} against each of the {len(others)} others: below every one "
                      f"to hold, above one (at 1/{len(others)} of the level) not to")
    return [v]


# ----------------------------------------------------------------------------------------


# what each check of the experiment files (sweeps.specs.CHECK_NEEDS) measures
CHECKS: dict[str, Callable[[Runs, VerdictSpec], list[Verdict]]] = {
    "falls_steadily": falls_steadily,
    "oscillates_or_worse": oscillates_or_worse,
    "converges_slower": converges_slower,
    "noisier": noisier,
    "lower_loss": lower_loss,
    "same_curve": same_curve,
    "overfits": overfits,
    "narrower_gap": narrower_gap,
    "trend": trend,
    "best_range": best_range,
    "lower_at_start": lower_at_start,
    "lower_at_end": lower_at_end,
    "lowest": lowest,
    "scaling": scaling,
    "lr_scaling": lr_scaling,
}
