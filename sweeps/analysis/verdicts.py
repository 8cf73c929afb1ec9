"""The chapter's expectations, one verdict each, computed from the results.

Every verdict says what was expected, what the data shows (with the figures) and whether the
expectation holds: True, False, or None when these results cannot decide it (a run missing,
no evaluations, nothing to compare). Comparisons between two runs are made at the last
evaluation both reached, so a trial stopped early by ASHA is not compared with a finished one
at different steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from .load import Results, config_of, finite_curve
from .metrics import fit_power_law, loss_noise, overfit_class, rises

RISE_TOL = 0.01  # a val-loss rise between two evaluations larger than this counts as oscillation
EQUIV_TOL = 0.01  # the chapter's bound on the difference of the two exp2 curves
DECADE_DROP = (0.1, 0.3)  # "10x parameters -> loss about 0.2 lower", accepted range


@dataclass(frozen=True)
class Experiment:
    """One experiment of the chapter: its question and the names of its runs."""

    title: str
    runs: tuple[str, ...]


EXPERIMENTS: dict[str, Experiment] = {
    "exp1": Experiment("Effect of config parameters",
                       ("baseline", "large_lr", "small_lr", "small_batch", "large_model")),
    "exp2": Experiment("Gradient accumulation equals a large batch", ("large_batch", "grad_accum")),
    "exp3": Experiment("Overfitting and regularisation", ("overfit", "dropout", "weight_decay", "both")),
    "exp4": Experiment("Learning-rate schedule", ("no_schedule", "warmup_only", "decay_only", "full_schedule")),
    "exp5": Experiment("Model scale", ("tiny", "small", "medium", "large")),
}


@dataclass
class Verdict:
    """One expectation of the chapter, what the results show, and whether it holds (None: undecided)."""

    expectation: str
    observed: str
    holds: bool | None


# ----------------------------------------------------------------------------------------
# looking runs up by name


class Runs:
    """The trials of one experiment, looked up by run name."""

    def __init__(self, res: Results):
        self.res = res
        self.names = set(res.trials["name"])

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


def _need(runs: Runs, names: tuple[str, ...] | list[str], expectation: str, min_evals: int = 1) -> Verdict | None:
    why = runs.missing(names, min_evals)
    return Verdict(expectation, f"cannot tell: {why}", None) if why else None


def common_end(a: pd.DataFrame, b: pd.DataFrame) -> tuple[float, pd.Series, pd.Series] | None:
    """The last evaluation step both curves reached, and each curve's row there."""
    common = sorted(set(a["iter"]) & set(b["iter"]))
    if not common:
        return None
    it = common[-1]
    return it, a[a["iter"] == it].iloc[-1], b[b["iter"] == it].iloc[-1]


def _diverged_note(row: pd.Series) -> str:
    return f" ({row['name']} diverged at step {row['diverged_at']:.0f})" if row["status"] == "diverged" else ""


def _fmt_lr(x: float) -> str:
    return f"{x:g}"


# ----------------------------------------------------------------------------------------
# experiment 1


def _exp1(runs: Runs) -> list[Verdict]:
    out = []
    e = "baseline: the loss decreases steadily"
    if not (v := _need(runs, ["baseline"], e, 2)):
        c = runs.curve("baseline")
        val = c["val_loss"].to_numpy()
        rise, i = rises(val, RISE_TOL)
        fell = val[-1] < val[0]
        obs = (f"val loss {val[0]:.4f} at step {c['iter'].iloc[0]:.0f} → {val[-1]:.4f} "
               f"at step {c['iter'].iloc[-1]:.0f}; ")
        obs += (f"never rises by more than {RISE_TOL} between evaluations" if i < 0
                else f"rises by {rise:.4f} at step {c['iter'].iloc[i]:.0f}")
        v = Verdict(e, obs + _diverged_note(runs.row("baseline")),
                    bool(fell and i < 0 and runs.row("baseline")["status"] != "diverged"))
    out.append(v)

    base = runs.row("baseline")
    e = ("large learning rate: may oscillate (val loss rises between evaluations, or diverges) "
         "or end worse than baseline")
    if not (v := _need(runs, ["baseline", "large_lr"], e)):
        lr, c = runs.row("large_lr"), runs.curve("large_lr")
        rise, i = rises(c["val_loss"].to_numpy(), RISE_TOL)
        parts = [f"lr {_fmt_lr(lr['learning_rate'])} vs baseline {_fmt_lr(base['learning_rate'])}"]
        if lr["status"] == "diverged":
            parts.append(f"diverged at step {lr['diverged_at']:.0f}")
        parts.append(f"val rises by {rise:.4f} at step {c['iter'].iloc[i]:.0f}" if i >= 0
                     else f"val never rises by more than {RISE_TOL}")
        worse = False
        if (end := common_end(runs.curve("baseline"), c)) is not None:
            it, b, a = end
            worse = a["val_loss"] > b["val_loss"]
            parts.append(f"at step {it:.0f} val {a['val_loss']:.4f} vs baseline {b['val_loss']:.4f} "
                         f"({a['val_loss'] - b['val_loss']:+.4f})")
        v = Verdict(e, "; ".join(parts), bool(lr["status"] == "diverged" or i >= 0 or worse))
    out.append(v)

    e = "small learning rate: converges slowly (higher val loss than baseline at mid-run and at the end)"
    if not (v := _need(runs, ["baseline", "small_lr"], e)):
        b, s = runs.curve("baseline"), runs.curve("small_lr")
        common = sorted(set(b["iter"]) & set(s["iter"]))
        if not common:
            v = Verdict(e, "cannot tell: baseline and small_lr share no evaluation step", None)
        else:
            end = common[-1]
            # mid-run: the shared evaluation nearest half of the shared range (not step 0)
            later = [it for it in common if it > 0] or common
            mid = min(later, key=lambda it: abs(it - end / 2))
            checks, parts = [], [f"lr {_fmt_lr(runs.row('small_lr')['learning_rate'])}"]
            for label, it in (("mid-run", mid), ("end", end)) if mid != end else (("end", end),):
                sv = float(s.loc[s["iter"] == it, "val_loss"].iloc[-1])
                bv = float(b.loc[b["iter"] == it, "val_loss"].iloc[-1])
                checks.append(sv > bv)
                parts.append(f"{label} (step {it:.0f}): val {sv:.4f} vs baseline {bv:.4f} ({sv - bv:+.4f})")
            v = Verdict(e, "; ".join(parts), all(checks))
    out.append(v)

    e = "small batch: training is noisier than baseline"
    if not (v := _need(runs, ["baseline", "small_batch"], e)):
        v = _noise_verdict(runs, e)
    out.append(v)

    e = "large model: ends at a lower val loss than baseline"
    if not (v := _need(runs, ["baseline", "large_model"], e)):
        big = runs.row("large_model")
        end = common_end(runs.curve("baseline"), runs.curve("large_model"))
        if end is None:
            v = Verdict(e, "cannot tell: no shared evaluation step", None)
        else:
            it, b, m = end
            shape = (f"{big['n_layer']:.0f} layers × {big['n_embd']:.0f} vs "
                     f"{base['n_layer']:.0f} × {base['n_embd']:.0f}")
            v = Verdict(e, f"{shape}; at step {it:.0f} val {m['val_loss']:.4f} vs baseline {b['val_loss']:.4f} "
                           f"({m['val_loss'] - b['val_loss']:+.4f}){_diverged_note(big)}",
                        bool(m["val_loss"] < b["val_loss"]))
    out.append(v)
    return out


def _noise_verdict(runs: Runs, expectation: str) -> Verdict:
    """Compare per-iteration training-loss noise (else eval-to-eval val-loss noise) of small_batch and baseline."""
    res = runs.res
    ids = {n: runs.row(n)["trial_id"] for n in ("baseline", "small_batch")}
    per_iter = {n: res.iters[res.iters["trial_id"] == t].sort_values("iter")["loss"].to_numpy() for n, t in ids.items()}
    noise = {n: loss_noise(v) for n, v in per_iter.items()}
    what = "std of iteration-to-iteration differences of the logged training loss (second half, /√2)"
    if any(math.isnan(x) for x in noise.values()):
        # no per-iteration log: fall back on the evaluations, a much coarser view
        noise = {n: loss_noise(runs.curve(n)["val_loss"].to_numpy()) for n in ids}
        what = "std of eval-to-eval differences of val loss (second half, /√2; weak: few points)"
    if any(math.isnan(x) for x in noise.values()):
        return Verdict(expectation, "cannot tell: too few logged losses to measure noise", None)
    b, s = noise["baseline"], noise["small_batch"]
    bs = {n: runs.row(n)["batch_size"] for n in ids}
    ratio = f" ({s / b:.2f}×)" if b > 0 else ""
    return Verdict(expectation, f"batch {bs['small_batch']:.0f} vs {bs['baseline']:.0f}: noise {s:.4f} vs "
                                f"{b:.4f}{ratio}; {what}", bool(s > b))


# ----------------------------------------------------------------------------------------
# experiment 2


def equivalence(a: pd.DataFrame, b: pd.DataFrame) -> tuple[float, float, float, int] | None:
    """(mean |diff|, max |diff|, step of the max, n) of val loss at the steps both curves evaluated."""
    m = a[["iter", "val_loss"]].merge(b[["iter", "val_loss"]], on="iter", suffixes=("_a", "_b"))
    if m.empty:
        return None
    d = (m["val_loss_a"] - m["val_loss_b"]).abs()
    return float(d.mean()), float(d.max()), float(m["iter"].iloc[int(d.to_numpy().argmax())]), len(m)


def _exp2(runs: Runs) -> list[Verdict]:
    e = (f"gradient accumulation equals a large batch: val-loss curves nearly identical "
         f"(mean and max |difference| < {EQUIV_TOL})")
    if v := _need(runs, ["large_batch", "grad_accum"], e):
        return [v]
    eq = equivalence(runs.curve("large_batch"), runs.curve("grad_accum"))
    if eq is None:
        return [Verdict(e, "cannot tell: the two runs share no evaluation step", None)]
    mean, mx, at, n = eq
    ok = mx < EQUIV_TOL  # the max bounds the mean
    eff = {k: runs.row(k) for k in ("large_batch", "grad_accum")}
    shapes = [f"{r['batch_size']:.0f}×{r['gradient_accumulation_steps']:.0f}" for r in eff.values()]
    sizes = {r["batch_size"] * r["gradient_accumulation_steps"] for r in eff.values()}
    note = "" if len(sizes) == 1 else " — the effective batches differ, so this is not the chapter's check"
    obs = (f"{'PASS' if ok else 'FAIL'}: mean |Δ| {mean:.6f}, max |Δ| {mx:.6f} (step {at:.0f}) over {n} shared "
           f"evaluations; batch {shapes[0]} vs {shapes[1]}{note}")
    return [Verdict(e, obs, ok)]


# ----------------------------------------------------------------------------------------
# experiment 3


def _gap_at(curve: pd.DataFrame, it: float) -> float:
    r = curve[curve["iter"] == it].iloc[-1]
    return float(r["val_loss"] - r["train_loss"])


def _exp3(runs: Runs) -> list[Verdict]:
    out = []
    e = "without regularisation (overfit) the model overfits: final gap = val − train ≥ 0.1"
    if not (v := _need(runs, ["overfit"], e)):
        r, c = runs.row("overfit"), runs.curve("overfit")
        rebound = float(c["val_loss"].iloc[-1] - r["best_val_loss"])
        obs = (f"gap {r['final_gap']:.4f} at step {r['final_iter']:.0f} → {r['overfit_class']}; "
               f"val loss bottomed out at step {r['best_iter']:.0f} ({r['best_val_loss']:.4f})"
               + (f" and then rose by {rebound:.4f}" if rebound > 0 else ""))
        v = Verdict(e, obs + _diverged_note(r), r["overfit_class"] in ("slight", "moderate", "severe"))
    out.append(v)
    labels = {"dropout": "dropout", "weight_decay": "weight decay", "both": "dropout + weight decay"}
    for name, label in labels.items():
        e = f"{label} ({name}) narrows the gap compared with overfit"
        if not (v := _need(runs, ["overfit", name], e)):
            r = runs.row(name)
            end = common_end(runs.curve("overfit"), runs.curve(name))
            if end is None:
                v = Verdict(e, "cannot tell: no shared evaluation step", None)
            else:
                it = end[0]
                g_over, g = _gap_at(runs.curve("overfit"), it), _gap_at(runs.curve(name), it)
                v = Verdict(e, f"dropout {r['dropout']:g}, weight_decay {r['weight_decay']:g}: gap {g:.4f} vs "
                               f"{g_over:.4f} ({g - g_over:+.4f}) at step {it:.0f} → {overfit_class(g)}",
                            bool(g < g_over))
        out.append(v)
    return out


def _exp3_search(res: Results) -> list[Verdict]:
    """Without the named runs: does more of each regulariser go with a smaller gap across trials?"""
    t = res.trials[np.isfinite(res.trials["final_gap"].astype(float))]
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


# ----------------------------------------------------------------------------------------
# experiment 4


def schedule(res: Results, trial_id: str) -> np.ndarray:
    """The learning rate at every iteration 0..max_iters of a trial, from gptcore's own get_lr."""
    from gptcore.train import get_lr  # imports torch: only when a schedule is needed

    cfg = config_of(res, trial_id)
    return np.array([get_lr(it, cfg) for it in range(cfg.max_iters + 1)])


def _first_after_zero(c: pd.DataFrame) -> float | None:
    later = c[c["iter"] > 0]
    return float(later["iter"].iloc[0]) if len(later) else None


def _exp4(runs: Runs) -> list[Verdict]:
    out = []
    res = runs.res

    def same_schedule(a: str, b: str) -> bool:
        sa, sb = (schedule(res, runs.row(n)["trial_id"]) for n in (a, b))
        return len(sa) == len(sb) and bool(np.allclose(sa, sb))

    def pairwise(expectation: str, pairs: list[tuple[str, str]], at_start: bool) -> Verdict:
        checks, parts = [], []
        for treated, control in pairs:
            if why := runs.missing([treated, control]):
                parts.append(f"{treated} vs {control}: {why}")
                continue
            if same_schedule(treated, control):
                # nanoGPT's get_lr ignores warmup when decay_lr=False (the chapter's warmup_only command):
                # such a pair tests nothing
                why = (" (decay_lr=False turns warmup off in get_lr)"
                       if not (runs.row(treated)["decay_lr"] or runs.row(control)["decay_lr"]) else "")
                parts.append(f"{treated} vs {control}: identical learning-rate schedules{why}, not a test")
                continue
            ct, cc = runs.curve(treated), runs.curve(control)
            if at_start:
                it = _first_after_zero(ct)
                shared = it is not None and it in set(cc["iter"])
            else:
                end = common_end(ct, cc)
                it, shared = (end[0] if end else None), end is not None
            if not shared:
                parts.append(f"{treated} vs {control}: no shared evaluation step")
                continue
            vt = float(ct.loc[ct["iter"] == it, "val_loss"].iloc[-1])
            vc = float(cc.loc[cc["iter"] == it, "val_loss"].iloc[-1])
            checks.append(vt < vc)
            parts.append(f"{treated} {vt:.4f} vs {control} {vc:.4f} ({vt - vc:+.4f}) at step {it:.0f}")
        return Verdict(expectation, "; ".join(parts), all(checks) if checks else None)

    out.append(pairwise("warmup helps the start: lower val loss at the first evaluation after step 0",
                        [("warmup_only", "no_schedule"), ("full_schedule", "decay_only")], at_start=True))
    out.append(pairwise("decay helps the end: lower final val loss with cosine decay",
                        [("decay_only", "no_schedule"), ("full_schedule", "warmup_only")], at_start=False))

    e = "the full schedule (warmup + decay, the recommended one) ends lowest of the four"
    names = list(EXPERIMENTS["exp4"].runs)
    if not (v := _need(runs, names, e)):
        curves = {n: runs.curve(n) for n in names}
        common = set.intersection(*(set(c["iter"]) for c in curves.values()))
        if not common:
            v = Verdict(e, "cannot tell: the four runs share no evaluation step", None)
        else:
            it = max(common)
            vals = {n: float(c.loc[c["iter"] == it, "val_loss"].iloc[-1]) for n, c in curves.items()}
            best = min(vals, key=vals.get)
            v = Verdict(e, f"at step {it:.0f}: " + ", ".join(f"{n} {x:.4f}" for n, x in vals.items())
                        + f"; lowest: {best}", best == "full_schedule")
    out.append(v)
    return out


# ----------------------------------------------------------------------------------------
# experiment 5


def sizes(res: Results, names: tuple[str, ...] | None) -> pd.DataFrame:
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


def _exp5_common(tab: pd.DataFrame, named: bool) -> list[Verdict]:
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


def _exp5(runs: Runs) -> list[Verdict]:
    return _exp5_common(sizes(runs.res, EXPERIMENTS["exp5"].runs), named=True)


def _exp5_search(res: Results) -> list[Verdict]:
    return _exp5_common(sizes(res, None), named=False)


# ----------------------------------------------------------------------------------------

CHECKS: dict[str, Callable[[Runs], list[Verdict]]] = {"exp1": _exp1, "exp2": _exp2, "exp3": _exp3,
                                                      "exp4": _exp4, "exp5": _exp5}
SEARCH_CHECKS: dict[str, Callable[[Results], list[Verdict]]] = {"exp3": _exp3_search, "exp5": _exp5_search}


def verdicts(exp: str | None, res: Results) -> list[Verdict]:
    """The chapter's expectations for experiment `exp`, judged on `res` (empty for an unknown experiment).

    When none of the experiment's named runs is present (an Optuna search names its trials
    `optuna`), the first verdict says so and only what needs no named run follows.
    """
    spec = EXPERIMENTS.get(exp or "")
    if spec is None:
        return []
    runs = Runs(res)
    if not runs.names & set(spec.runs):
        found = res.trials["name"].value_counts()
        listed = ", ".join(f"{n} ×{c}" for n, c in found.items())
        head = Verdict(f"the chapter's {exp} runs ({', '.join(spec.runs)}) are compared",
                       f"none of them is in this sweep (trials: {listed}): the comparisons between named runs "
                       "are skipped; what can be computed follows", None)
        return [head] + SEARCH_CHECKS.get(exp, lambda r: [])(res)
    return CHECKS[exp](runs)


def best_trial(res: Results) -> pd.Series | None:
    """The trial with the lowest val loss at any evaluation, or None when no trial evaluated."""
    t = res.trials[np.isfinite(res.trials["best_val_loss"].astype(float))]
    return t.loc[t["best_val_loss"].astype(float).idxmin()] if len(t) else None
