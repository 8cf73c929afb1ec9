"""The chapter's expectations, one verdict each, computed from the results.

The experiment file says which expectations to judge (`verdicts:` and `optuna.verdicts:`, each a
check of `CHECKS` and the runs it names); this module holds what each check computes. Every
verdict says what was expected, what the data shows (with the figures) and whether the
expectation holds: True, False, or None when these results cannot decide it (a run missing,
no evaluations, nothing to compare). Comparisons between two runs are made at the last
evaluation both reached, so a trial stopped early is not compared with a finished one at
different steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .load import Results, config_of, finite_curve
from .metrics import fit_power_law, loss_noise, overfit_class, rises

if TYPE_CHECKING:
    from ..spaces import Experiment, VerdictSpec

RISE_TOL = 0.01  # a val-loss rise between two evaluations larger than this counts as oscillation
EQUIV_TOL = 0.01  # the chapter's bound on the difference of the two exp2 curves
DECADE_DROP = (0.1, 0.3)  # "10x parameters -> loss about 0.2 lower", accepted range


@dataclass
class Verdict:
    """One expectation of the chapter, what the results show, and whether it holds (None: undecided)."""

    expectation: str
    observed: str
    holds: bool | None


# ----------------------------------------------------------------------------------------
# looking runs up by name


class Runs:
    """The trials of one experiment, looked up by run name; `order` is the file's run order."""

    def __init__(self, res: Results, order: list[str] | None = None):
        self.res = res
        self.names = set(res.trials["name"])
        self.order = order or []

    def row(self, name: str) -> pd.Series | None:
        rows = self.res.trials[self.res.trials["name"] == name]
        if rows.empty:
            return None
        # a name run twice (a repeated grid): take the trial with the most evaluations
        return rows.sort_values("n_evals", ascending=False, kind="stable").iloc[0]

    def curve(self, name: str) -> pd.DataFrame:
        row = self.row(name)
        return finite_curve(self.res, row["trial_id"]) if row is not None else pd.DataFrame()

    def missing(self, names: tuple[str, ...] | list[str], min_evals: int = 1) -> str | None:
        """Why these runs cannot be compared, or None when all have evaluations."""
        problems = []
        for n in names:
            row = self.row(n)
            if row is None:
                problems.append(f"{n} is not in this sweep")
            elif row["n_evals"] < min_evals:
                problems.append(f"{n} has {'no' if row['n_evals'] == 0 else 'too few'} evaluations ({row['status']})")
        return "; ".join(problems) or None


def _need(runs: Runs, names: list[str], expectation: str, min_evals: int = 1) -> Verdict | None:
    why = runs.missing(names, min_evals)
    return Verdict(expectation, f"cannot tell: {why}", None) if why else None


def common_end(a: pd.DataFrame, b: pd.DataFrame) -> tuple[float, pd.Series, pd.Series] | None:
    """The last evaluation step both curves reached, and each curve's row there."""
    common = sorted(set(a["iter"]) & set(b["iter"]))
    if not common:
        return None
    it = common[-1]
    return it, a[a["iter"] == it].iloc[-1], b[b["iter"] == it].iloc[-1]


def _val_at(curve: pd.DataFrame, it: float) -> float:
    return float(curve.loc[curve["iter"] == it, "val_loss"].iloc[-1])


def _diverged_note(row: pd.Series) -> str:
    return f" ({row['name']} diverged at step {row['diverged_at']:.0f})" if row["status"] == "diverged" else ""


# ----------------------------------------------------------------------------------------
# the checks: each takes the runs and the file's spec, and returns its verdicts


def falls_steadily(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    name = spec.run
    e = f"{name}: the loss decreases steadily"
    if v := _need(runs, [name], e, 2):
        return [v]
    c = runs.curve(name)
    val = c["val_loss"].to_numpy()
    rise, i = rises(val, RISE_TOL)
    fell = val[-1] < val[0]
    obs = f"val loss {val[0]:.4f} at step {c['iter'].iloc[0]:.0f} → {val[-1]:.4f} at step {c['iter'].iloc[-1]:.0f}; "
    obs += (f"never rises by more than {RISE_TOL} between evaluations" if i < 0
            else f"rises by {rise:.4f} at step {c['iter'].iloc[i]:.0f}")
    row = runs.row(name)
    return [Verdict(e, obs + _diverged_note(row), bool(fell and i < 0 and row["status"] != "diverged"))]


def oscillates_or_worse(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    name, ref = spec.run, spec.against
    e = (f"large learning rate ({name}): may oscillate (val loss rises between evaluations, or diverges) "
         f"or end worse than {ref}")
    if v := _need(runs, [ref, name], e):
        return [v]
    row, base, c = runs.row(name), runs.row(ref), runs.curve(name)
    rise, i = rises(c["val_loss"].to_numpy(), RISE_TOL)
    parts = [f"lr {row['learning_rate']:g} vs {ref} {base['learning_rate']:g}"]
    if row["status"] == "diverged":
        parts.append(f"diverged at step {row['diverged_at']:.0f}")
    parts.append(f"val rises by {rise:.4f} at step {c['iter'].iloc[i]:.0f}" if i >= 0
                 else f"val never rises by more than {RISE_TOL}")
    worse = False
    if (end := common_end(runs.curve(ref), c)) is not None:
        it, b, a = end
        worse = a["val_loss"] > b["val_loss"]
        parts.append(f"at step {it:.0f} val {a['val_loss']:.4f} vs {ref} {b['val_loss']:.4f} "
                     f"({a['val_loss'] - b['val_loss']:+.4f})")
    return [Verdict(e, "; ".join(parts), bool(row["status"] == "diverged" or i >= 0 or worse))]


def converges_slower(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    name, ref = spec.run, spec.against
    e = f"small learning rate ({name}): converges slowly (higher val loss than {ref} at mid-run and at the end)"
    if v := _need(runs, [ref, name], e):
        return [v]
    b, s = runs.curve(ref), runs.curve(name)
    common = sorted(set(b["iter"]) & set(s["iter"]))
    if not common:
        return [Verdict(e, f"cannot tell: {ref} and {name} share no evaluation step", None)]
    end = common[-1]
    # mid-run: the shared evaluation nearest half of the shared range (not step 0)
    later = [it for it in common if it > 0] or common
    mid = min(later, key=lambda it: abs(it - end / 2))
    checks, parts = [], [f"lr {runs.row(name)['learning_rate']:g}"]
    for label, it in (("mid-run", mid), ("end", end)) if mid != end else (("end", end),):
        sv, bv = _val_at(s, it), _val_at(b, it)
        checks.append(sv > bv)
        parts.append(f"{label} (step {it:.0f}): val {sv:.4f} vs {ref} {bv:.4f} ({sv - bv:+.4f})")
    return [Verdict(e, "; ".join(parts), all(checks))]


def noisier(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    """Per-iteration training-loss noise (else eval-to-eval val-loss noise) of the run against the reference."""
    name, ref = spec.run, spec.against
    e = f"small batch ({name}): training is noisier than {ref}"
    if v := _need(runs, [ref, name], e):
        return [v]
    res = runs.res
    ids = {n: runs.row(n)["trial_id"] for n in (ref, name)}
    per_iter = {n: res.iters[res.iters["trial_id"] == t].sort_values("iter")["loss"].to_numpy() for n, t in ids.items()}
    noise = {n: loss_noise(v) for n, v in per_iter.items()}
    what = "std of iteration-to-iteration differences of the logged training loss (second half, /√2)"
    if any(math.isnan(x) for x in noise.values()):
        # no per-iteration log: fall back on the evaluations, a much coarser view
        noise = {n: loss_noise(runs.curve(n)["val_loss"].to_numpy()) for n in ids}
        what = "std of eval-to-eval differences of val loss (second half, /√2; weak: few points)"
    if any(math.isnan(x) for x in noise.values()):
        return [Verdict(e, "cannot tell: too few logged losses to measure noise", None)]
    b, s = noise[ref], noise[name]
    bs = {n: runs.row(n)["batch_size"] for n in ids}
    ratio = f" ({s / b:.2f}×)" if b > 0 else ""
    return [Verdict(e, f"batch {bs[name]:.0f} vs {bs[ref]:.0f}: noise {s:.4f} vs {b:.4f}{ratio}; {what}",
                    bool(s > b))]


def lower_loss(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    name, ref = spec.run, spec.against
    e = f"large model ({name}): ends at a lower val loss than {ref}"
    if v := _need(runs, [ref, name], e):
        return [v]
    big, base = runs.row(name), runs.row(ref)
    end = common_end(runs.curve(ref), runs.curve(name))
    if end is None:
        return [Verdict(e, "cannot tell: no shared evaluation step", None)]
    it, b, m = end
    shape = f"{big['n_layer']:.0f} layers × {big['n_embd']:.0f} vs {base['n_layer']:.0f} × {base['n_embd']:.0f}"
    return [Verdict(e, f"{shape}; at step {it:.0f} val {m['val_loss']:.4f} vs {ref} {b['val_loss']:.4f} "
                       f"({m['val_loss'] - b['val_loss']:+.4f}){_diverged_note(big)}",
                    bool(m["val_loss"] < b["val_loss"]))]


def equivalence(a: pd.DataFrame, b: pd.DataFrame) -> tuple[float, float, float, int] | None:
    """(mean |diff|, max |diff|, step of the max, n) of val loss at the steps both curves evaluated."""
    m = a[["iter", "val_loss"]].merge(b[["iter", "val_loss"]], on="iter", suffixes=("_a", "_b"))
    if m.empty:
        return None
    d = (m["val_loss_a"] - m["val_loss_b"]).abs()
    return float(d.mean()), float(d.max()), float(m["iter"].iloc[int(d.to_numpy().argmax())]), len(m)


def same_curve(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    name, ref = spec.run, spec.against
    e = (f"gradient accumulation equals a large batch: val-loss curves nearly identical "
         f"(mean and max |difference| < {EQUIV_TOL})")
    if v := _need(runs, [ref, name], e):
        return [v]
    eq = equivalence(runs.curve(ref), runs.curve(name))
    if eq is None:
        return [Verdict(e, "cannot tell: the two runs share no evaluation step", None)]
    mean, mx, at, n = eq
    ok = mx < EQUIV_TOL  # the max bounds the mean
    eff = [runs.row(k) for k in (ref, name)]
    shapes = [f"{r['batch_size']:.0f}×{r['gradient_accumulation_steps']:.0f}" for r in eff]
    sizes = {r["batch_size"] * r["gradient_accumulation_steps"] for r in eff}
    note = "" if len(sizes) == 1 else " — the effective batches differ, so this is not the chapter's check"
    obs = (f"{'PASS' if ok else 'FAIL'}: mean |Δ| {mean:.6f}, max |Δ| {mx:.6f} (step {at:.0f}) over {n} shared "
           f"evaluations; batch {shapes[0]} vs {shapes[1]}{note}")
    return [Verdict(e, obs, ok)]


def _gap_at(curve: pd.DataFrame, it: float) -> float:
    r = curve[curve["iter"] == it].iloc[-1]
    return float(r["val_loss"] - r["train_loss"])


def overfits(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    name = spec.run
    e = f"without regularisation ({name}) the model overfits: final gap = val − train ≥ 0.1"
    if v := _need(runs, [name], e):
        return [v]
    r, c = runs.row(name), runs.curve(name)
    rebound = float(c["val_loss"].iloc[-1] - r["best_val_loss"])
    obs = (f"gap {r['final_gap']:.4f} at step {r['final_iter']:.0f} → {r['overfit_class']}; "
           f"val loss bottomed out at step {r['best_iter']:.0f} ({r['best_val_loss']:.4f})"
           + (f" and then rose by {rebound:.4f}" if rebound > 0 else ""))
    return [Verdict(e, obs + _diverged_note(r), r["overfit_class"] in ("slight", "moderate", "severe"))]


def narrower_gap(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    name, ref = spec.run, spec.against
    row = runs.row(name)
    what = {(True, False): "dropout", (False, True): "weight decay", (True, True): "dropout + weight decay"}
    label = what.get((bool(row["dropout"]), bool(row["weight_decay"])), "regularisation") if row is not None else name
    e = f"{label} ({name}) narrows the gap compared with {ref}"
    if v := _need(runs, [ref, name], e):
        return [v]
    end = common_end(runs.curve(ref), runs.curve(name))
    if end is None:
        return [Verdict(e, "cannot tell: no shared evaluation step", None)]
    it = end[0]
    g_ref, g = _gap_at(runs.curve(ref), it), _gap_at(runs.curve(name), it)
    return [Verdict(e, f"dropout {row['dropout']:g}, weight_decay {row['weight_decay']:g}: gap {g:.4f} vs "
                       f"{g_ref:.4f} ({g - g_ref:+.4f}) at step {it:.0f} → {overfit_class(g)}", bool(g < g_ref))]


def gap_trend(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    """A search: does more of each regulariser go with a smaller gap across the trials?"""
    t = runs.res.trials[np.isfinite(runs.res.trials["final_gap"].astype(float))]
    out = []
    for knob in ("dropout", "weight_decay"):
        e = f"more {knob.replace('_', ' ')} goes with a smaller gap (across the trials)"
        x, y = t[knob].astype(float), t["final_gap"].astype(float)
        if len(t) < 3 or x.nunique() < 2:
            out.append(Verdict(e, f"cannot tell: {len(t)} trial(s) with results, {x.nunique()} distinct {knob}", None))
            continue
        r = float(np.corrcoef(x, y)[0, 1])
        out.append(Verdict(e, f"Pearson r({knob}, gap) = {r:+.2f} over {len(t)} trials", bool(r < 0)))
    return out


def schedule(res: Results, trial_id: str) -> np.ndarray:
    """The learning rate at every iteration 0..max_iters of a trial, from gptcore's own get_lr."""
    from gptcore.train import get_lr  # imports torch: only when a schedule is needed

    cfg = config_of(res, trial_id)
    return np.array([get_lr(it, cfg) for it in range(cfg.max_iters + 1)])


def _same_schedule(runs: Runs, a: str, b: str) -> bool:
    sa, sb = (schedule(runs.res, runs.row(n)["trial_id"]) for n in (a, b))
    return len(sa) == len(sb) and bool(np.allclose(sa, sb))


def _schedule_pair(runs: Runs, spec: VerdictSpec, at_start: bool) -> list[Verdict]:
    treated, control = spec.run, spec.against
    if at_start:
        e = f"warmup helps the start: {treated} has a lower val loss than {control} at the first evaluation after 0"
    else:
        e = f"decay helps the end: {treated} ends at a lower val loss than {control}"
    if v := _need(runs, [treated, control], e):
        return [v]
    if _same_schedule(runs, treated, control):
        # nanoGPT's get_lr ignores warmup when decay_lr=False (the chapter's warmup_only command):
        # such a pair tests nothing
        why = (" (decay_lr=False turns warmup off in get_lr)"
               if not (runs.row(treated)["decay_lr"] or runs.row(control)["decay_lr"]) else "")
        return [Verdict(e, f"{treated} vs {control}: identical learning-rate schedules{why}, not a test", None)]
    ct, cc = runs.curve(treated), runs.curve(control)
    if at_start:
        later = ct[ct["iter"] > 0]
        it = float(later["iter"].iloc[0]) if len(later) else None
        shared = it is not None and it in set(cc["iter"])
    else:
        end = common_end(ct, cc)
        it, shared = (end[0] if end else None), end is not None
    if not shared:
        return [Verdict(e, f"cannot tell: {treated} and {control} share no evaluation step", None)]
    vt, vc = _val_at(ct, it), _val_at(cc, it)
    return [Verdict(e, f"{treated} {vt:.4f} vs {control} {vc:.4f} ({vt - vc:+.4f}) at step {it:.0f}", vt < vc)]


def lower_at_start(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    return _schedule_pair(runs, spec, at_start=True)


def lower_at_end(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    return _schedule_pair(runs, spec, at_start=False)


def lowest(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    names = runs.order
    e = f"{spec.run} ends lowest of the {len(names)} runs"
    if v := _need(runs, names, e):
        return [v]
    curves = {n: runs.curve(n) for n in names}
    common = set.intersection(*(set(c["iter"]) for c in curves.values()))
    if not common:
        return [Verdict(e, f"cannot tell: the {len(names)} runs share no evaluation step", None)]
    it = max(common)
    vals = {n: _val_at(c, it) for n, c in curves.items()}
    best = min(vals, key=vals.get)
    return [Verdict(e, f"at step {it:.0f}: " + ", ".join(f"{n} {x:.4f}" for n, x in vals.items())
                    + f"; lowest: {best}", best == spec.run)]


def sizes(res: Results, names: list[str] | None) -> pd.DataFrame:
    """One row per model size, smallest first: the named runs, or (a search) the best trial of each size.

    Parameters are the trial's reported `n_params`; where missing, nanoGPT's non-embedding
    estimate 12 * n_layer * n_embd^2 stands in.
    """
    t = res.trials.copy()
    est = 12 * t["n_layer"].astype(float) * t["n_embd"].astype(float) ** 2
    t["params"] = t["n_params"].astype(float).fillna(est)
    t = t[np.isfinite(t["final_val_loss"].astype(float))]
    if names is not None:
        t = t[t["name"].isin(names)]
    else:
        t = t.sort_values("final_val_loss").drop_duplicates("params")
    return t.sort_values("params").reset_index(drop=True)


def _increasing(values: list[float]) -> bool:
    return all(b > a for a, b in zip(values, values[1:]))


def scaling(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    """Loss against model size: the named runs of a grid, or the best trial of each size in a search."""
    named = bool(runs.names & set(runs.order))
    tab = sizes(runs.res, runs.order if named else None)
    out = []
    labels = list(tab["label"])
    if named:
        e = "each larger model reaches a lower val loss"
        if len(tab) < 2:
            out.append(Verdict(e, f"cannot tell: {len(tab)} size(s) with results", None))
        else:
            vals = list(tab["final_val_loss"])
            obs = " > ".join(f"{n} {v:.4f}" for n, v in zip(labels, vals))
            unfinished = [f"{n} ({s})" for n, s in zip(labels, tab["status"]) if s != "completed"]
            if unfinished:
                obs += "; not completed: " + ", ".join(unfinished)
            out.append(Verdict(e, obs, _increasing([-v for v in vals])))
    law = fit_power_law(tab["params"], tab["final_val_loss"])
    e = "the loss falls as a power of the parameter count: loss = a · N^(−α), α > 0"
    if law is None:
        out.append(Verdict(e, f"cannot tell: {len(tab)} distinct size(s) with results, 2 needed", None))
    else:
        out.append(Verdict(e, f"α = {law.alpha:.4f}, a = {law.a:.3g}, R² {law.r2:.3f} over {law.n_points} sizes",
                           bool(law.alpha > 0)))
        e = f"10× more parameters lowers the loss by about 0.2 (accepted {DECADE_DROP[0]} to {DECADE_DROP[1]})"
        slope = float(np.polyfit(np.log10(tab["params"].astype(float)), tab["final_val_loss"].astype(float), 1)[0])
        change = f"{-slope:.3f} lower" if slope <= 0 else f"{slope:.3f} higher"
        out.append(Verdict(e, f"{change} per 10× (straight line of loss against log10 N)",
                           bool(DECADE_DROP[0] <= -slope <= DECADE_DROP[1])))
    if named and len(tab) >= 2:
        for col, e, unit in (("time_s", "larger models take longer to train", "s"),
                             ("mem_mb", "larger models need more memory", " MB")):
            vals = tab[col].astype(float)
            if vals.isna().any():
                out.append(Verdict(e, f"cannot tell: {col} not recorded for every size", None))
            else:
                obs = " < ".join(f"{n} {v:.0f}{unit}" for n, v in zip(labels, vals))
                out.append(Verdict(e, obs, _increasing(list(vals))))
    return out


# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """A kind of expectation: its function and the runs an experiment file must name for it."""

    fn: Callable[[Runs, VerdictSpec], list[Verdict]]
    needs: tuple[str, ...]  # "run" (the run judged), "against" (the run it is compared with)


CHECKS: dict[str, Check] = {
    "falls_steadily": Check(falls_steadily, ("run",)),
    "oscillates_or_worse": Check(oscillates_or_worse, ("run", "against")),
    "converges_slower": Check(converges_slower, ("run", "against")),
    "noisier": Check(noisier, ("run", "against")),
    "lower_loss": Check(lower_loss, ("run", "against")),
    "same_curve": Check(same_curve, ("run", "against")),
    "overfits": Check(overfits, ("run",)),
    "narrower_gap": Check(narrower_gap, ("run", "against")),
    "gap_trend": Check(gap_trend, ()),
    "lower_at_start": Check(lower_at_start, ("run", "against")),
    "lower_at_end": Check(lower_at_end, ("run", "against")),
    "lowest": Check(lowest, ("run",)),
    "scaling": Check(scaling, ()),
}


def verdicts(exp: Experiment | None, res: Results) -> list[Verdict]:
    """The expectations the experiment file lists, judged on `res` (empty without an experiment).

    When none of the file's runs is in the results (a search names its trials by number), the
    first verdict says so and the file's search verdicts (`optuna.verdicts`) follow.
    """
    if exp is None:
        return []
    runs = Runs(res, exp.run_names)
    if not runs.names & set(exp.run_names):
        found = res.trials["name"].value_counts()
        listed = ", ".join(f"{n} ×{c}" for n, c in found.items())
        head = Verdict(f"the chapter's {exp.name} runs ({', '.join(exp.run_names)}) are compared",
                       f"none of them is in this sweep (trials: {listed}): the comparisons between named runs "
                       "are skipped; what can be computed follows", None)
        return [head] + [v for spec in exp.search_verdicts for v in CHECKS[spec.check].fn(runs, spec)]
    return [v for spec in exp.verdicts for v in CHECKS[spec.check].fn(runs, spec)]


def best_trial(res: Results) -> pd.Series | None:
    """The trial with the lowest val loss at any evaluation, or None when no trial evaluated."""
    t = res.trials[np.isfinite(res.trials["best_val_loss"].astype(float))]
    return t.loc[t["best_val_loss"].astype(float).idxmin()] if len(t) else None
