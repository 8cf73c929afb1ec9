"""What a search found: its trials ranked, parameter importance, the question's answers, and the confirm stage.

A search's trials are named by their Optuna number (`t007`, `stage: search`); the confirm stage's
are `confirm_t007`, `confirm_<reference>` (`stage: confirm`), one per seed. Trials that early
stopping ended at different steps are not compared by their last losses: every search verdict
is judged at one step, the *judging step* (`judging_step`), and says which.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gptcore.record import estimated_params
from sweeps.results.frames import Results
from sweeps.results.trial import SEARCH, of_stage
from sweeps.verdicts.stats import HOLDS, NOISE, NOT, compare, coverage, level, p_value, t_interval
from sweeps.verdicts.verdict import Runs, Verdict, cannot_tell

if TYPE_CHECKING:
    from sweeps.experiment.files import VerdictSpec

MIN_TRIALS = 5  # fewer trials at a step than this, and no verdict is judged there
TOP = 20  # trials listed in report.md (all are in trials.csv)
CURSE = 0.02  # "within 0.02 of the best": the range of good values the report gives


def search_trials(res: Results) -> pd.DataFrame:
    """The search stage's trials (not the confirm stage's), with their parameter count."""
    t = of_stage(res.trials, SEARCH).copy()
    t["params"] = t["n_params"].astype(float).where(np.isfinite(t["n_params"].astype(float)),
                                                    estimated_params(t["n_layer"].astype(float),
                                                                     t["n_embd"].astype(float)))
    return t


def values_at(res: Results, trials: pd.DataFrame, step: float, column: str = "val_loss") -> pd.Series:
    """Each trial's `column` at `step` (NaN where it has no evaluation there), indexed like `trials`."""
    h = res.history[res.history["iter"] == step]
    by_id = dict(zip(h["trial_id"], h[column]))
    return trials["trial_id"].map(by_id).astype(float)


def judging_step(res: Results, trials: pd.DataFrame) -> float | None:
    """The step the search's verdicts are judged at: the full budget when at least MIN_TRIALS trials
    reached it, else the largest evaluation step at least half of the trials (and MIN_TRIALS) reached."""
    h = res.history[res.history["trial_id"].isin(trials["trial_id"])]
    if h.empty:
        return None
    counts = h.groupby("iter")["trial_id"].nunique().sort_index()
    full = float(trials["max_iters"].max())
    if counts.get(full, 0) >= MIN_TRIALS:
        return full
    need = max(MIN_TRIALS, math.ceil(len(trials) / 2))
    ok = counts[(counts >= need) & (counts.index > 0)]
    return float(ok.index.max()) if len(ok) else None


def ranked(res: Results) -> pd.DataFrame:
    """The search's trials, the furthest-trained first and, among equals, by val loss at their last step."""
    t = search_trials(res)
    return t.sort_values(["final_iter", "final_val_loss", "name"], ascending=[False, True, True], kind="stable")


# a parameter's scale is the parameter's, not the values a search happened to draw (that would switch between two
# runs of one search): rates and sizes searched on a log scale are per decade, the powers of two per doubling
LOG_PARAMS = {"learning_rate": 10, "min_lr": 10, "weight_decay": 10, "params": 10, "batch_size": 2,
              "gradient_accumulation_steps": 2, "n_layer": 2, "n_head": 2, "n_embd": 2}


def _x(trials: pd.DataFrame, param: str) -> tuple[np.ndarray, str]:
    """The parameter as the regressor: on its log scale (LOG_PARAMS, where every value is positive), else as it is;
    and the unit of a slope on it."""
    x = trials[param].astype(float).to_numpy()
    base = LOG_PARAMS.get(param)
    if base and len(x) and np.all(x > 0):
        return np.log(x) / np.log(base), f"per {'decade' if base == 10 else 'doubling'} of {param}"
    return x, f"per unit of {param}"


def trend(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    """The slope of the metric against a searched parameter across the trials, at the judging step."""
    metric = spec.metric or "val_loss"
    words = {"val_loss": "val loss", "gap": "gap"}[metric]
    direction = spec.expect or "lower"
    e = f"more {spec.param.replace('_', ' ')} goes with a {direction} {words} (across the search's trials)"
    trials = search_trials(runs.res)
    step = judging_step(runs.res, trials)
    if step is None:
        return [cannot_tell(e, f"fewer than {MIN_TRIALS} trials share an evaluation step", spec.check)]
    y = values_at(runs.res, trials, step, metric)
    ok = y.notna().to_numpy()
    x, unit = _x(trials[ok], spec.param)
    if ok.sum() < MIN_TRIALS or len(np.unique(x)) < 2:
        return [cannot_tell(e, f"{int(ok.sum())} trial(s) with a value at step {step:.0f}, "
                               f"{len(np.unique(x))} distinct {spec.param}", spec.check, {"trials": int(ok.sum())})]
    others = _covariates(runs.res, trials, ok, skip={spec.param, "shape"} if spec.param == "params" else {spec.param})
    slope, se, p, dof = _partial_slope(x, y[ok].to_numpy(), others)
    expect = -1 if direction == "lower" else 1
    outcome = (HOLDS if math.copysign(1, slope) == expect else NOT) if p < level() else NOISE
    held = f", the other searched values ({', '.join(others)}) as covariates" if others else ""
    obs = (f"{words} changes by {slope:+.4f} ± {se:.4f} {unit} at step {step:.0f} (p = {p:.2g}) over "
           f"{int(ok.sum())} trials{held}")
    interval = t_interval(slope, se, dof)
    return [Verdict(e, outcome, obs, slope, se, {"trials": int(ok.sum())}, step,
                    rule="least-squares slope across the trials, the other searched values as covariates "
                         "(a quadratic in each numeric one), two-sided t-test",
                    p_value=p, check=spec.check, interval=interval, coverage=coverage() if interval else None)]


def _covariates(res: Results, trials: pd.DataFrame, ok: np.ndarray, skip: set[str]) -> dict[str, np.ndarray]:
    """The other searched values as regression columns: numbers (on their log scale, LOG_PARAMS) with their squares,
    choices as indicator columns."""
    out = {}
    for name, values in searched(res).items():
        if name in skip:
            continue
        v = [val for val, keep in zip(values, ok) if keep]
        if numeric(v):
            z = np.asarray(v, dtype=float)
            if name in LOG_PARAMS and np.all(z > 0):
                z = np.log(z) / np.log(LOG_PARAMS[name])
            z = (z - z.mean()) / (z.std() or 1)
            out[name] = np.column_stack([z, z ** 2])
        else:
            levels = sorted({str(a) for a in v})
            out[name] = np.column_stack([[str(a) == lv for a in v] for lv in levels[1:]]).astype(float) \
                if len(levels) > 1 else np.zeros((len(v), 0))
    return out


def _partial_slope(x: np.ndarray, y: np.ndarray, others: dict[str, np.ndarray]) -> tuple[float, float, float, int]:
    """(slope of y on x, its standard error, two-sided p, degrees of freedom), with `others` as covariates."""
    design = np.column_stack([np.ones_like(x), x, *others.values()])
    dof = len(y) - design.shape[1]
    if dof < 1:
        return math.nan, math.nan, math.nan, dof
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    cov = (resid @ resid / dof) * np.linalg.pinv(design.T @ design)
    se = float(math.sqrt(max(cov[1, 1], 0.0)))
    p = p_value(coef[1] / se, dof) if se > 0 else math.nan  # no spread: no noise estimate, not certainty
    return float(coef[1]), se, p, dof


def best_range(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    """Whether the parameter has a best value inside the searched range: a quadratic fit, at the judging step."""
    e = (f"{spec.param.replace('_', ' ')} has a best value inside the searched range: larger and smaller values "
         "both do worse")
    trials = search_trials(runs.res)
    step = judging_step(runs.res, trials)
    if step is None:
        return [cannot_tell(e, f"fewer than {MIN_TRIALS} trials share an evaluation step", spec.check)]
    y = values_at(runs.res, trials, step)
    ok = y.notna().to_numpy()
    t = trials[ok]
    x, _ = _x(t, spec.param)
    if ok.sum() < MIN_TRIALS or len(np.unique(x)) < 3:
        return [cannot_tell(e, f"{int(ok.sum())} trial(s) at step {step:.0f}, {len(np.unique(x))} distinct values",
                            spec.check, {"trials": int(ok.sum())})]
    yv = y[ok].to_numpy()
    design = np.column_stack([np.ones_like(x), x, x ** 2])
    coef, *_ = np.linalg.lstsq(design, yv, rcond=None)
    dof = len(x) - 3
    resid = yv - design @ coef
    cov = (resid @ resid / dof) * np.linalg.pinv(design.T @ design) if dof > 0 else np.full((3, 3), np.nan)
    c, se_c = float(coef[2]), float(math.sqrt(cov[2, 2])) if dof > 0 and cov[2, 2] >= 0 else math.nan
    p = p_value(c / se_c, dof) if dof > 0 and se_c > 0 else math.nan
    vertex = -coef[1] / (2 * c) if c else math.nan
    inside = bool(x.min() <= vertex <= x.max())
    if not (p < level()):
        outcome = NOISE
    else:
        outcome = HOLDS if c > 0 and inside else NOT
    raw = t[spec.param].astype(float)
    best = raw.iloc[int(np.argmin(yv))]
    good = raw[yv <= yv.min() + CURSE]
    base = LOG_PARAMS.get(spec.param) if not np.array_equal(x, raw.to_numpy()) else None
    log = base is not None
    at = base ** vertex if log else vertex
    unit = {10: "decade²", 2: "doubling²", None: "unit²"}[base]
    # what the curvature means in loss: the fitted rise from the bottom to the range's ends
    ends = (np.polyval(coef[::-1], np.array([x.min(), x.max()])) - np.polyval(coef[::-1], vertex)) if inside \
        else np.array([math.nan, math.nan])
    rise = (f"; the fit rises by {ends[0]:+.4f} at {raw.min():.3g} and {ends[1]:+.4f} at {raw.max():.3g}"
            if inside and c > 0 else "")
    obs = (f"at step {step:.0f} over {len(x)} trials: the best trial has {spec.param}={best:.3g} (val {yv.min():.4f}); "
           f"within {CURSE} of it: {good.min():.3g} to {good.max():.3g}; a quadratic in "
           f"{f'log{base} ' if log else ''}{spec.param} bottoms out at {at:.3g}"
           + ("" if inside else " (outside the searched range)")
           + f", curvature {c:+.4f} ± {se_c:.4f} loss per {unit} (p = {p:.2g}){rise}")
    interval = t_interval(c, se_c, dof)
    return [Verdict(e, outcome, obs, c, se_c, {"trials": len(x)}, step,
                    rule="quadratic fit across the trials (log10 of a log-searched parameter): curvature > 0 by a "
                         "two-sided t-test, minimum inside the range",
                    p_value=p, check=spec.check, interval=interval, coverage=coverage() if interval else None)]


def confirm_verdict(runs: Runs, reference: str | None) -> list[Verdict]:
    """The best confirmed configuration against the reference run, both re-run over the same seeds."""
    confirmed = sorted(n for n in runs.names if n.startswith("confirm_t"))
    if not confirmed:
        return []
    ref = f"confirm_{reference}" if reference else None
    e = (f"the search's best configuration beats the reference {reference} beyond noise, both re-run to the full "
         "budget over the seeds")
    if ref is None or ref not in runs.names:
        return [cannot_tell(e, "no reference run was confirmed", "confirm")]
    steps = runs.steps(*confirmed, ref)
    if not steps:
        return [cannot_tell(e, "the confirmed runs share no evaluation step", "confirm")]
    step = steps[-1]
    best = min(confirmed, key=lambda n: runs.at(n, step).mean)
    a, b = runs.at(best, step), runs.at(ref, step)
    test = compare(a, b)
    obs = f"at step {step:.0f}: {best} {a.text()} vs {ref} {b.text()}; {test.text()}"
    interval = test.interval()
    return [Verdict(e, test.outcome(-1), obs, test.effect, test.stderr, {best: a.n, ref: b.n}, step,
                    rule=f"{test.how}, two-sided", p_value=test.p, check="confirm", interval=interval,
                    coverage=coverage(test.kind) if interval else None)]


def confirm_table(res: Results) -> list[dict]:
    """Per confirmed configuration: its search trial's loss against the confirmed mean (the winner's curse)."""
    runs = Runs(res, [])
    out = []
    for name in sorted(n for n in runs.names if n.startswith("confirm_")):
        steps = runs.steps(name)
        if not steps:
            continue
        confirmed = runs.at(name, steps[-1])
        searched = of_stage(res.trials, SEARCH)
        src = searched[searched["name"] == name.removeprefix("confirm_")]
        searched = float(src["final_val_loss"].iloc[0]) if len(src) else math.nan
        searched_step = float(src["final_iter"].iloc[0]) if len(src) else math.nan
        out.append({"name": name, "searched": searched, "searched_step": searched_step, "confirmed": confirmed,
                    "step": steps[-1], "curse": searched - confirmed.mean if math.isfinite(searched) else math.nan})
    return out


def searched(res: Results) -> dict[str, list]:
    """The searched parameters and each search trial's value: the Tune config keys that vary across them."""
    trials = search_trials(res)
    cfgs = [res.params.get(tid, {}) for tid in trials["trial_id"]]
    keys = sorted({k for c in cfgs for k in c} - {"name", "stage", "seed"})
    out = {}
    for k in keys:
        values = [c.get(k) for c in cfgs]
        if len({repr(v) for v in values}) > 1 and all(v is not None for v in values):
            out[k] = values
    return out


def numeric(values: list) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def as_choices(values: list) -> bool:
    """Whether searched values read as choices: anything but numbers, or a few whole numbers (batch sizes)."""
    return not numeric(values) or (len(set(values)) <= 8 and all(float(v).is_integer() for v in values))


def _distribution(values: list):
    import optuna

    if as_choices(values):
        return optuna.distributions.CategoricalDistribution(sorted({repr(v): v for v in values}.values(), key=repr))
    lo, hi = float(min(values)), float(max(values))
    return optuna.distributions.FloatDistribution(lo, hi, log=lo > 0 and hi / lo >= 4)


def importance(res: Results) -> tuple[dict[str, float], float | None]:
    """Optuna's parameter importance (PED-ANOVA) of every searched parameter, at the judging step.

    Computed on a study of the trials' values at that step, so that trials stopped early and
    trials run to the end are compared at one budget.
    """
    import optuna

    trials = search_trials(res)
    step = judging_step(res, trials)
    params = searched(res)
    if step is None or not params:
        return {}, step
    dists = {k: _distribution(v) for k, v in params.items()}
    y = values_at(res, trials, step)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created in memory" line in the report's output
    study = optuna.create_study(direction="minimize")
    for i, value in enumerate(y):
        if math.isfinite(value):
            study.add_trial(optuna.trial.create_trial(params={k: v[i] for k, v in params.items()},
                                                      distributions=dists, value=float(value)))
    if len(study.trials) < MIN_TRIALS:
        return {}, step
    return dict(optuna.importance.get_param_importances(study)), step
