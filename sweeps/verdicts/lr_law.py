"""The best learning rate against model size (experiment 5's search): lr* = c · N^(−β), with a bootstrap.

A search over learning rate and shape whose confirm stage re-runs the best configuration of each
size over the seeds (`confirm_per: shape`) gives one best learning rate per size: the confirmed
best's (`scaling.confirmed_best`, the configurations the loss law is fitted to). The power law
lr* = c · N^(−β) is a straight line of log lr* against log N (least squares).

Its interval is a percentile bootstrap over what makes a size's best learning rate uncertain:
the seeds and the search's resolution. Each draw resamples the confirmed seeds of each size with
replacement, takes their standard deviation as that size's noise, and draws the size's best
learning rate uniformly among its searched trials whose val loss at the search's judging step is
within that noise of the size's best searched loss (a one-seed trial closer than one seed's
scatter to the best is as good a best as the winner); then it refits. Without confirmed seeds
there is no noise estimate and no interval.

The leave-one-size-out check fits the law on the other sizes and predicts each size's best
learning rate from them: its error as a ratio (predicted / best), and the median |ln ratio|.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sweeps.experiment.specs import shape_of
from sweeps.verdicts import scaling as loss_scaling
from sweeps.verdicts.search import judging_step, search_trials, values_at
from sweeps.verdicts.stats import HOLDS, NOISE, NOT, UNKNOWN
from sweeps.verdicts.verdict import Runs, Verdict, cannot_tell

if TYPE_CHECKING:
    from sweeps.experiment.files import VerdictSpec

MIN_SIZES = 3


def fit_lr(params: np.ndarray, lr: np.ndarray) -> tuple[float, float]:
    """(c, beta) of lr* = c * N^-beta by least squares in log-log space."""
    slope, intercept = np.polyfit(np.log(params), np.log(lr), 1)
    return float(math.exp(intercept)), float(-slope)


@dataclass
class LrScaling:
    """The fit, its bootstrap draws, the next size's prediction and the leave-one-size-out errors;
    `to_json` is scaling.json's `learning_rate`."""

    step: float | None  # the confirm stage's step (None without one)
    search_step: float | None  # the search's judging step, where its near-ties are read
    sizes: pd.DataFrame  # one row per size: label, params, lr, n_seeds, noise, near (the learning rates within it)
    fit: tuple[float, float]  # c, beta
    boot: np.ndarray  # (B, 2): c, beta per draw
    next_params: float
    loo: list[dict]

    @property
    def beta(self) -> float:
        return self.fit[1]

    def ci(self, values: np.ndarray) -> tuple[float, float] | None:
        if not len(values):
            return None
        lo, hi = np.percentile(values, [2.5, 97.5])
        return float(lo), float(hi)

    def predict(self, params: float | np.ndarray, fits: np.ndarray | None = None) -> np.ndarray:
        """The law at `params`, for the fit itself (one row) or for each bootstrap draw (one row each)."""
        c, beta = (fits.T if fits is not None else np.array(self.fit)[:, None])
        return c[:, None] * np.power(np.atleast_1d(params).astype(float)[None, :], -beta[:, None])

    def band(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The 95% band of the law over `params`, from the bootstrap draws."""
        if not len(self.boot):
            return None
        draws = self.predict(params, self.boot)
        return np.percentile(draws, 2.5, axis=0), np.percentile(draws, 97.5, axis=0)

    @property
    def median_log_error(self) -> float:
        return float(np.median([abs(math.log(x["ratio"])) for x in self.loo])) if self.loo else math.nan

    def to_json(self) -> dict:
        c, beta = self.fit
        return {
            "law": "lr* = c · N^(−β)",
            "step": self.step,
            "search_step": self.search_step,
            "c": c, "beta": beta, "beta_ci": self.ci(self.boot[:, 1]),
            "sizes": [{"label": r["label"], "params": r["params"], "best_lr": r["lr"], "n_seeds": int(r["n_seeds"]),
                       "noise": r["noise"], "near_ties": list(r["near"])} for _, r in self.sizes.iterrows()],
            "next_size": {"params": self.next_params, "predicted_lr": float(self.predict(self.next_params)[0, 0]),
                          "interval": self.ci(self.predict(self.next_params, self.boot)[:, 0])
                          if len(self.boot) else None},
            "leave_one_out": {"sizes": self.loo, "median_abs_log_error": self.median_log_error},
            "bootstrap": {"draws": int(len(self.boot)),
                          "resampled": "confirmed seeds within each size, and each size's best learning rate among "
                                       "its searched trials within that noise of its best"},
        }


def _near(runs: Runs, params: float) -> tuple[np.ndarray, np.ndarray]:
    """(learning rates, val losses) of the size's searched trials at the search's judging step."""
    trials = search_trials(runs.res)
    step = judging_step(runs.res, trials)
    if step is None:
        return np.array([]), np.array([])
    y = values_at(runs.res, trials, step).to_numpy()
    same = np.isclose(trials["params"].astype(float).to_numpy(), params) & np.isfinite(y)
    return trials["learning_rate"].astype(float).to_numpy()[same], y[same]


def best_lrs(runs: Runs) -> tuple[pd.DataFrame, float | None, list[tuple]]:
    """Per size: (label, params, lr, n_seeds, noise, near), the confirm step, and per size (confirmed seeds,
    searched learning rates, their losses, the confirmed learning rate) for the bootstrap. Without a confirm
    stage, the best searched trial of each size at the judging step (one seed)."""
    confirmed = loss_scaling.confirmed_best(runs)
    rows, material = [], []
    if confirmed is not None and len(confirmed[0]) >= MIN_SIZES:
        best, step = confirmed
        for p, name in best.items():
            seeds = np.array(runs.at(name, step).values)
            noise = float(np.std(seeds, ddof=1)) if len(seeds) > 1 else math.nan
            lrs, ys = _near(runs, p)
            lr = float(runs.row(name)["learning_rate"])
            near = sorted(set(lrs[ys <= ys.min() + noise].tolist()) | {lr}) if len(ys) and noise >= 0 else [lr]
            rows.append({"label": shape_of(runs.row(name)), "params": p, "lr": lr, "n_seeds": len(seeds),
                         "noise": noise, "near": near})
            material.append((seeds, lrs, ys, lr))
        return pd.DataFrame(rows), step, material
    trials = search_trials(runs.res)
    js = judging_step(runs.res, trials)
    if js is None:
        return pd.DataFrame(rows), None, material
    y = values_at(runs.res, trials, js)
    t = trials.assign(_y=y)[np.isfinite(y)].sort_values("_y", kind="stable").drop_duplicates("params")
    for _, r in t.sort_values("params").iterrows():
        rows.append({"label": shape_of(r), "params": float(r["params"]), "lr": float(r["learning_rate"]),
                     "n_seeds": 1, "noise": math.nan, "near": [float(r["learning_rate"])]})
    return pd.DataFrame(rows), None, material


def fit_lr_scaling(runs: Runs, n_boot: int, seed: int = 0) -> LrScaling | None:
    """The fit of this analysis's best learning rates (module docstring); None below MIN_SIZES sizes."""
    sizes, step, material = best_lrs(runs)
    if len(sizes) < MIN_SIZES:
        return None
    n, lr = sizes["params"].to_numpy(float), sizes["lr"].to_numpy(float)
    rng = np.random.default_rng(seed)
    boot = []
    if material and min(len(m[0]) for m in material) >= 2:
        for _ in range(n_boot):
            drawn = []
            for seeds, lrs, ys, winner in material:
                noise = float(np.std(seeds[rng.integers(0, len(seeds), len(seeds))], ddof=1))
                # the confirmed winner is always a candidate; each distinct learning rate counts once
                pool = np.unique(np.append(lrs[ys <= ys.min() + noise] if len(ys) else [], winner))
                drawn.append(pool[rng.integers(0, len(pool))])
            boot.append(fit_lr(n, np.array(drawn)))
    loo = []
    for i in range(len(sizes)):
        keep = np.arange(len(sizes)) != i
        c, beta = fit_lr(n[keep], lr[keep])
        pred = c * n[i] ** -beta
        loo.append({"label": sizes["label"].iloc[i], "params": float(n[i]), "best_lr": float(lr[i]),
                    "predicted_lr": float(pred), "ratio": float(pred / lr[i])})
    loss_fit = loss_scaling.fit_of(runs)
    next_params = loss_fit[0].next_params if loss_fit is not None else float(n[-1] ** 2 / n[-2])
    return LrScaling(step=step, search_step=judging_step(runs.res, search_trials(runs.res)), sizes=sizes,
                     fit=fit_lr(n, lr), boot=np.array(boot).reshape(-1, 2), next_params=next_params, loo=loo)


def lr_fit_of(runs: Runs) -> LrScaling | None:
    """The best-learning-rate fit of this analysis (a search's), computed once for the check, the report and
    the plots."""
    return runs.once("lr_scaling", lambda: fit_lr_scaling(runs, loss_scaling.N_BOOT)
                     if not search_trials(runs.res).empty else None)


def _lr(x: float) -> str:
    return f"{x:.3g}"


def lr_scaling(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    """The best learning rate of each size against its parameter count: β's bootstrap interval against 0."""
    e = "the best learning rate falls as the model grows: best lr = c · N^(−β) with β > 0"
    if search_trials(runs.res).empty:
        return [cannot_tell(e, "a best learning rate per size needs a search over learning rate and shape",
                            spec.check)]
    fit = lr_fit_of(runs)
    if fit is None:
        k = len(best_lrs(runs)[0])
        return [cannot_tell(e, f"{k} size(s) with a best learning rate, {MIN_SIZES} needed", spec.check)]
    ci = fit.ci(fit.boot[:, 1])
    outcome = UNKNOWN if ci is None else HOLDS if ci[0] > 0 else NOT if ci[1] < 0 else NOISE
    j = fit.to_json()
    nx = j["next_size"]
    points = ", ".join(f"{r['label']} {_lr(r['lr'])}" for _, r in fit.sizes.iterrows())
    obs = (f"β = {fit.beta:.3f}" + (f" (95% interval {ci[0]:.3f} to {ci[1]:.3f})" if ci else
                                    " (no confirmed seeds: no interval)")
           + f" over {len(fit.sizes)} sizes (best lr: {points}); the next size up, {nx['params']:,.0f} parameters: "
           f"best lr {_lr(nx['predicted_lr'])}"
           + (f" [{_lr(nx['interval'][0])}, {_lr(nx['interval'][1])}]" if nx["interval"] else "")
           + f"; leave one size out: median error a factor of {math.exp(fit.median_log_error):.2f}")
    if ci is None:
        obs = "cannot tell: one seed per size, no noise estimate; " + obs
    seeds = {r["label"]: int(r["n_seeds"]) for _, r in fit.sizes.iterrows()}
    return [Verdict(e, outcome, obs, fit.beta, float(np.std(fit.boot[:, 1])) if ci else None, seeds, fit.step,
                    rule="95% bootstrap interval of β (confirmed seeds and the search's near-ties resampled within "
                         "each size) above 0", check=spec.check, interval=ci)]
