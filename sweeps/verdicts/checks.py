"""The chapter's expectations, each a measurement judged against the seed-to-seed noise.

The experiment file says which expectations to judge (`verdicts:`, and `optuna.verdicts:` for a
search), each a check of `CHECKS` and the runs it names; this module holds what each check
measures. Every verdict has an effect, its standard error over seeds, the seeds per side, the
step it is judged at, and an outcome (`holds`, `does not hold`, `within noise`, `cannot tell`)
by the rule of `stats.py`. A comparison is judged at the last evaluation every seed of both runs
reached, and says which, so a run that early stopping ended at a rung is compared there.
docs/verdicts.md lists every check with its rule and the chapter's wording.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from sweeps.experiment.specs import EQUIV_TOL, OVERFIT_GAP, RISE_TOL
from sweeps.results.frames import lr_schedule
from sweeps.results.metrics import loss_noise, overfit_class
from sweeps.verdicts.lr_law import lr_scaling
from sweeps.verdicts.scaling import scaling
from sweeps.verdicts.search import best_range, trend
from sweeps.verdicts.stats import HOLDS, NOISE, NOT, UNKNOWN, Sample, against, all_of, any_of, sample, t_crit, welch
from sweeps.verdicts.verdict import Runs, Verdict, cannot_tell, n_seeds

if TYPE_CHECKING:
    from sweeps.experiment.specs import VerdictSpec


def _compare(runs: Runs, spec: VerdictSpec, expectation: str, expect: int, column: str = "val_loss",
             step: float | None = None, what: str = "val") -> Verdict:
    """The run against `against` on one column at a shared step (the last, by default): Welch's test."""
    name, ref = spec.run, spec.against
    if why := runs.missing([name, ref]):
        return cannot_tell(expectation, why, spec.check, n_seeds(runs, name, ref))
    steps = runs.steps(name, ref)
    if not steps:
        return cannot_tell(expectation, f"{name} and {ref} share no evaluation step", spec.check,
                           n_seeds(runs, name, ref))
    step = steps[-1] if step is None else step
    a, b = runs.at(name, step, column), runs.at(ref, step, column)
    test = welch(a, b)
    obs = f"at step {step:.0f}: {what} {a.text()} vs {ref} {b.text()}; {test.text()}"
    return Verdict(expectation, test.outcome(expect), obs, test.effect, test.stderr, {name: a.n, ref: b.n}, step,
                   p_value=test.p, check=spec.check, interval=test.interval())


# ----------------------------------------------------------------------------------------
# the checks: each takes the runs and the file's spec, and returns its verdicts


def falls_steadily(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    """The val loss ends below where it started, and no rise between evaluations exceeds RISE_TOL beyond noise."""
    name = spec.run
    e = f"{name}: the loss decreases steadily"
    if why := runs.missing([name], 2):
        return [cannot_tell(e, why, spec.check, n_seeds(runs, name))]
    steps = runs.steps(name)
    first, last = steps[0], steps[-1]
    drop = sample(np.array(runs.at(name, last).values) - np.array(runs.at(name, first).values))
    fall = against(drop, 0.0)
    outcome = fall.outcome(-1)
    rise = runs.largest_rise(name, RISE_TOL)
    steady = ""
    if rise is not None:
        at, mean_rise, over = rise
        bumpy = against(over, 0.0).outcome(+1) == HOLDS  # rises by more than the tolerance, beyond noise
        steady = (f"; the largest rise of the mean, {mean_rise:+.4f} at step {at:.0f}, is "
                  + ("beyond" if bumpy else "within") + f" {RISE_TOL} and the noise")
        outcome = NOT if bumpy else outcome
    if runs.diverged(name):
        outcome = NOT
    obs = (f"val {runs.at(name, first).text()} at step {first:.0f} → {runs.at(name, last).text()} at step "
           f"{last:.0f}; change {fall.text()}{steady}")
    return [Verdict(e, outcome, obs, fall.effect, fall.stderr, n_seeds(runs, name), last, p_value=fall.p,
                    check=spec.check, interval=fall.interval())]


def oscillates_or_worse(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    """Any of: a seed diverges, the mean val loss rises beyond RISE_TOL and the noise, or it ends worse."""
    name, ref = spec.run, spec.against
    e = (f"large learning rate ({name}): may oscillate (val loss rises between evaluations, or diverges) "
         f"or end worse than {ref}")
    worse = _compare(runs, spec, e, +1)
    if worse.outcome == UNKNOWN and runs.missing([name, ref]):
        return [worse]
    parts, outcomes = [f"lr {runs.row(name)['learning_rate']:g} vs {ref} {runs.row(ref)['learning_rate']:g}"], []
    if k := runs.diverged(name):
        parts.append(f"{k} of {runs.n(name)} seeds diverged")
        outcomes.append(HOLDS)
    rise = runs.largest_rise(name, RISE_TOL)
    if rise is not None:
        at, mean_rise, over = rise
        osc = against(over, 0.0).outcome(+1)  # holds: a rise beyond the tolerance and the noise
        outcomes.append(osc)
        parts.append(f"largest rise of the mean val loss {mean_rise:+.4f} at step {at:.0f}"
                     + (" (beyond the tolerance and the noise)" if osc == HOLDS else ""))
    outcomes.append(worse.outcome)
    worse.observed = "; ".join(parts + [f"end {worse.observed}"])
    worse.outcome = any_of(outcomes)
    return [worse]


def converges_slower(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    """A higher val loss than the reference both at mid-run and at the last shared step."""
    name, ref = spec.run, spec.against
    e = f"small learning rate ({name}): converges slowly (higher val loss than {ref} at mid-run and at the end)"
    end = _compare(runs, spec, e, +1)
    steps = [s for s in runs.steps(name, ref) if s > 0]
    if not steps:  # only step 0 shared (a rung's first look): nothing to compare at mid-run
        return [end]
    mid_step = min(steps, key=lambda s: abs(s - steps[-1] / 2))
    if mid_step == steps[-1]:
        return [end]
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
    iters = runs.res.iters

    def noise(run: str) -> Sample:
        out = []
        for tid in runs.trials(run).sort_values("seed", kind="stable")["trial_id"]:
            x = iters[(iters["trial_id"] == tid) & iters["iter"].between(*window)].sort_values("iter")["loss"]
            out.append(loss_noise(x.to_numpy(), tail=False))
        return sample(out)

    a, b = noise(name), noise(ref)
    if a.n == 0 or b.n == 0:
        return [cannot_tell(e, f"too few logged training losses between steps {window[0]:.0f} and {window[1]:.0f} "
                               "to measure noise (lower log_interval)", spec.check, n_seeds(runs, name, ref))]
    test = welch(a, b)
    bs = {n: runs.row(n)["batch_size"] for n in (name, ref)}
    ratio = f" ({a.mean / b.mean:.2f}×)" if b.mean > 0 else ""
    obs = (f"batch {bs[name]:.0f} vs {bs[ref]:.0f}: noise of the logged training loss per iteration (std of "
           f"step-to-step differences / √2, steps {window[0]:.0f}-{window[1]:.0f}) {a.text()} vs {b.text()}"
           f"{ratio}; {test.text()}")
    return [Verdict(e, test.outcome(+1), obs, test.effect, test.stderr, {name: a.n, ref: b.n}, end, p_value=test.p,
                    check=spec.check, interval=test.interval())]


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
    """Paired by seed, the largest |val difference| over the shared evaluations stays below EQUIV_TOL."""
    name, ref = spec.run, spec.against
    e = (f"gradient accumulation equals a large batch: {name} and {ref} give val-loss curves that differ by "
         f"less than {EQUIV_TOL} (mean and max |difference|)")
    if why := runs.missing([name, ref]):
        return [cannot_tell(e, why, spec.check, n_seeds(runs, name, ref))]
    steps = runs.steps(name, ref)
    pairs = []
    for ca, cb in zip(runs.curves(name), runs.curves(ref)):  # the same seed on both sides
        m = ca[["iter", "val_loss"]].merge(cb[["iter", "val_loss"]], on="iter", suffixes=("_a", "_b"))
        m = m[m["iter"].isin(steps)]
        if len(m):
            d = (m["val_loss_a"] - m["val_loss_b"]).abs()
            pairs.append((float(d.max()), float(d.mean())))
    if not pairs:
        return [cannot_tell(e, "the two runs share no evaluation step", spec.check, n_seeds(runs, name, ref))]
    worst, mean = sample([p[0] for p in pairs]), sample([p[1] for p in pairs])
    interval = None
    if worst.n < 2:
        outcome = UNKNOWN
    else:  # the 95% interval of the mean max |difference| against the bound
        margin = t_crit(worst.n) * worst.se
        interval = (worst.mean - margin, worst.mean + margin)
        outcome = HOLDS if worst.mean + margin < EQUIV_TOL else NOT if worst.mean - margin > EQUIV_TOL else NOISE
    shapes = [f"{r['batch_size']:.0f}×{r['gradient_accumulation_steps']:.0f}" for r in (runs.row(ref), runs.row(name))]
    obs = (f"max |Δ val| {worst.mean:.6f}, mean |Δ| {mean.mean:.6f} over {len(steps)} shared evaluations "
           f"(seed by seed, {worst.n} seed(s)); batch {shapes[0]} vs {shapes[1]}")
    if outcome == UNKNOWN:
        obs += "; one seed: never decisive"
    return [Verdict(e, outcome, obs, worst.mean, worst.se, n_seeds(runs, name, ref), steps[-1],
                    rule=f"95% interval of the mean max |difference| over seeds below {EQUIV_TOL}", check=spec.check,
                    interval=interval)]


def overfits(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    """The final gap val − train is at least OVERFIT_GAP, beyond noise (a one-sample t-test)."""
    name = spec.run
    e = f"without regularisation ({name}) the model overfits: final gap = val − train ≥ {OVERFIT_GAP}"
    if why := runs.missing([name]):
        return [cannot_tell(e, why, spec.check, n_seeds(runs, name))]
    step = runs.steps(name)[-1]
    gap = runs.at(name, step, "gap")
    test = against(gap, OVERFIT_GAP)
    bottom = runs.trials(name)["best_iter"].astype(float)
    obs = (f"gap {gap.text()} at step {step:.0f} → {overfit_class(gap.mean)}; {test.text()} against {OVERFIT_GAP}; "
           f"val loss bottomed out at step {bottom.median():.0f} (median over seeds)")
    return [Verdict(e, test.outcome(+1), obs, test.effect, test.stderr, n_seeds(runs, name), step, p_value=test.p,
                    rule="one-sample t-test over seeds against 0.1, two-sided p < 0.05", check=spec.check,
                    interval=test.interval())]


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
    sa, sb = (lr_schedule(runs.res, runs.row(n)["trial_id"]) for n in (treated, control))
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
    """The run ends below every other run of the file: tested against the best of the others."""
    names = runs.order
    e = f"{spec.run} ends lowest of the {len(names)} runs"
    if why := runs.missing(names):
        return [cannot_tell(e, why, spec.check, n_seeds(runs, *names))]
    steps = runs.steps(*names)
    if not steps:
        return [cannot_tell(e, f"the {len(names)} runs share no evaluation step", spec.check, n_seeds(runs, *names))]
    step = steps[-1]
    vals = {n: runs.at(n, step) for n in names}
    others = {n: v for n, v in vals.items() if n != spec.run}
    best = min(others, key=lambda n: others[n].mean)
    test = welch(vals[spec.run], others[best])
    obs = (f"at step {step:.0f}: " + ", ".join(f"{n} {v.text()}" for n, v in vals.items())
           + f"; against the best other, {best}: {test.text()}")
    return [Verdict(e, test.outcome(-1), obs, test.effect, test.stderr, {n: v.n for n, v in vals.items()}, step,
                    p_value=test.p, check=spec.check, interval=test.interval())]


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
