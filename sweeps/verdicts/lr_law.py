"""The best learning rate against model size (experiment 5's search): one model of loss over size and learning rate.

A search over learning rate and shape gives, at its judging step, each trial's val loss at one
(size, learning rate). Near its best, a model's loss is a bowl in log learning rate; the law says
where the bowl's bottom sits for each size. So one model is fitted to every searched trial at once:

    loss = a_size + k · (log10 lr − m_size)²,   m_size = μ − β · log10(N / N₀)

(a level per size, one curvature k shared by the sizes, and the best log learning rate falling
linearly in log N: lr* = c · N^(−β)). How well each size's best rate is located is then part of
the fit: a size searched at two learning rates pins its bottom down less than one searched at
six, and a size whose fitted bottom lies outside the rates it was searched at (the edge of the
range), or which had fewer than three distinct rates, is *not bracketed*. The fit is least
squares (variable projection: for given μ and β the rest is linear). β's interval is the profile
interval at the verdict's level: the βs whose refit (μ, the levels and k free) is worse than the
best fit by less than t² residual variances (n − p degrees of freedom). For a model linear in β
that is the t interval; for this one, with its handful of trials per size, the covariance's
straight-line interval covered the true β only about 87% of the time at a nominal 95% (the
calibration benchmark), the profile's keeps its promise. The law is judged only where at least
three sizes are bracketed (else `cannot tell`).

benchmarks/calibration.py measures the interval's coverage of the true β through this code
(β = 0, 0.3, 0.5). The next size's predicted best rate comes with its interval from the same fit;
leaving one size out at a time, the law fitted on the others predicts that size's best searched
rate: its error as a ratio, beside the interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import optimize

from sweeps.experiment.specs import shape_of
from sweeps.verdicts import scaling as loss_scaling
from sweeps.verdicts.search import judging_step, search_trials, values_at
from sweeps.verdicts.stats import HOLDS, NOISE, NOT, T1, UNKNOWN, Test, coverage, level, p_value, t_quantile
from sweeps.verdicts.verdict import Runs, Verdict, cannot_tell, measured, percent

if TYPE_CHECKING:
    from sweeps.experiment.files import VerdictSpec

MIN_SIZES = 3  # bracketed sizes the law needs
MIN_RATES = 3  # distinct learning rates a size needs to locate its best
MAX_BETA = 3.0  # how far from its estimate β's profile interval is sought before it is called unbounded
FAR_DECADES = 1.0  # how far outside the searched rates a size's fitted best may lie before the fit is refused


@dataclass
class LawFit:
    """The fitted model: its parameters, their covariance, and what it was fitted to."""

    mu: float  # the best log10 lr at N₀
    beta: float
    k: float  # the bowl's curvature, loss per decade² of lr
    levels: np.ndarray  # a_size, by size
    cov: np.ndarray  # covariance of (mu, beta)
    df: int
    sigma: float  # the residual standard deviation (loss)
    n0: float  # the reference size N₀ (the sizes' geometric mean)
    rss: float = math.nan  # the residual sum of squares at the optimum
    data: tuple = ()  # (z, size index, log10 lr, loss): what the profile refits

    def profile_rss(self, beta: float, mu0: float) -> tuple[float, float]:
        """The least residual sum of squares with β held at `beta` (μ, the levels and k refitted), and its μ."""
        z, idx, x, loss = self.data
        k_sizes = len(z)

        def resid(mu: np.ndarray) -> np.ndarray:
            d = _design(z, idx, x, float(mu[0]), beta, k_sizes)
            coef, *_ = np.linalg.lstsq(d, loss, rcond=None)
            return loss - d @ coef

        sol = optimize.least_squares(resid, np.array([mu0]), method="lm")
        r = resid(sol.x)
        return float(r @ r), float(sol.x[0])

    def beta_interval(self, lvl: float) -> tuple[float, float] | None:
        """β's profile interval at two-sided level `lvl`: the βs whose best fit is not worse than the optimum's by
        more than t² residual variances (for a linear model exactly the t interval; for this one it keeps its
        coverage where the covariance's straight-line picture does not). None where a side never closes within
        MAX_BETA of the estimate (the data do not bound β)."""
        if not self.data or not self.rss > 0:
            return None
        crit = t_quantile(1 - lvl / 2, self.df) ** 2 * self.rss / self.df
        step = max(math.sqrt(self.cov[1, 1]) / 4, 0.005)
        ends = []
        for sign in (-1, +1):
            mu, inside, outside, h = self.mu, self.beta, None, step
            while abs(inside - self.beta) < MAX_BETA:  # walk out until the refit is worse by crit
                b = inside + sign * h
                rss, mu_b = self.profile_rss(b, mu)
                if rss - self.rss >= crit:
                    outside = b
                    break
                inside, mu, h = b, mu_b, h * 1.3
            if outside is None:
                return None
            for _ in range(20):  # then halve the step in between (the outer end kept: the wider interval)
                mid = (inside + outside) / 2
                rss, mu_m = self.profile_rss(mid, mu)
                if rss - self.rss >= crit:
                    outside = mid
                else:
                    inside, mu = mid, mu_m
                if abs(outside - inside) < 1e-4:
                    break
            ends.append(outside)
        return ends[0], ends[1]

    def beta_p(self) -> float:
        """The profile test of β = 0: p of the F(1, df) statistic, as a two-sided t."""
        if not self.data or not self.rss > 0:
            return math.nan
        rss0, _ = self.profile_rss(0.0, self.mu)
        return p_value(math.sqrt(max(0.0, rss0 - self.rss) / (self.rss / self.df)), self.df)


def _design(z: np.ndarray, size_idx: np.ndarray, x: np.ndarray, mu: float, beta: float, k_sizes: int) -> np.ndarray:
    """The linear part's design for given (μ, β): a level per size and the shared curvature's column."""
    d = np.zeros((len(x), k_sizes + 1))
    d[np.arange(len(x)), size_idx] = 1.0
    d[:, -1] = (x - (mu - beta * z[size_idx])) ** 2
    return d


def fit_law(params: np.ndarray, lr: np.ndarray, loss: np.ndarray) -> LawFit | None:
    """The model of the module docstring fitted to trials (parameter count, learning rate, val loss); None when it
    cannot be fitted (too few trials for its parameters, no bowl)."""
    sizes, size_idx = np.unique(params, return_inverse=True)
    k_sizes = len(sizes)
    n, p = len(loss), k_sizes + 3
    if n - p < 1 or k_sizes < 2:
        return None
    n0 = float(np.exp(np.mean(np.log(sizes))))
    z = np.log10(sizes / n0)
    x = np.log10(lr)

    def inner(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = _design(z, size_idx, x, theta[0], theta[1], k_sizes)
        coef, *_ = np.linalg.lstsq(d, loss, rcond=None)
        return coef, loss - d @ coef

    # start from each size's best searched rate and a line through them
    best = np.array([x[size_idx == i][np.argmin(loss[size_idx == i])] for i in range(k_sizes)])
    slope, intercept = np.polyfit(z, best, 1) if k_sizes >= 2 else (0.0, float(best.mean()))
    starts = [np.array([intercept, -slope]), np.array([x.mean(), 0.0])]
    sol = min((optimize.least_squares(lambda t: inner(t)[1], s0, method="lm") for s0 in starts),
              key=lambda r: float(r.cost))
    coef, resid = inner(sol.x)
    k = float(coef[-1])
    if not k > 0:
        return None
    # the full model's Jacobian at the optimum (levels, k, mu, beta): the covariance of (mu, beta)
    mu, beta = sol.x
    # a bowl whose bottom lies decades away from every searched rate is no finding of where the best rate is
    tips = mu - beta * z
    if not (np.all(np.isfinite(sol.x)) and np.all(np.abs(tips - np.clip(tips, x.min(), x.max())) <= FAR_DECADES)):
        return None
    m = mu - beta * z[size_idx]
    j = np.zeros((n, p))
    j[np.arange(n), size_idx] = 1.0
    j[:, k_sizes] = (x - m) ** 2
    j[:, k_sizes + 1] = -2 * k * (x - m)
    j[:, k_sizes + 2] = 2 * k * (x - m) * z[size_idx]
    df = n - p
    sigma2 = float(resid @ resid) / df
    try:
        cov = np.linalg.inv(j.T @ j) * sigma2
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(cov[-2:, -2:])):
        return None
    return LawFit(mu=float(mu), beta=float(beta), k=k, levels=coef[:-1], cov=cov[-2:, -2:], df=df,
                  sigma=math.sqrt(sigma2), n0=n0, rss=float(resid @ resid), data=(z, size_idx, x, loss))


@dataclass
class LrScaling:
    """The law fitted to a search (module docstring); `to_json` is scaling.json's `learning_rate`."""

    step: float | None  # the search's judging step, where every trial is read
    sizes: pd.DataFrame  # per size: label, params, lr (the law's best), best_searched_lr, n_trials, rates, bracketed
    law: LawFit
    next_params: float
    loo: list[dict] = field(default_factory=list)
    _intervals: dict = field(default_factory=dict, repr=False)

    @property
    def beta(self) -> float:
        return self.law.beta

    @property
    def fit(self) -> tuple[float, float]:
        """(c, β) of lr* = c · N^(−β)."""
        return 10 ** (self.law.mu + self.law.beta * math.log10(self.law.n0)), self.law.beta

    @property
    def bracketed(self) -> int:
        return int(self.sizes["bracketed"].sum())

    def test(self) -> Test:
        """β, its standard error (from the covariance), and the profile test of β = 0."""
        se = math.sqrt(self.law.cov[1, 1])
        return Test(self.beta, se, self.law.df, self.law.beta_p(), (self.law.df + 1, self.law.df + 1), T1,
                    f"one model of loss over size and learning rate, {self.law.df} degrees of freedom")

    def interval(self) -> tuple[float, float] | None:
        """β's profile interval at the level judged now (cached per level: the check, the report and the json
        read it)."""
        lvl = level(T1)
        if lvl not in self._intervals:
            self._intervals[lvl] = self.law.beta_interval(lvl)
        return self._intervals[lvl]

    def outcome(self) -> str:
        iv = self.interval()
        return UNKNOWN if iv is None else HOLDS if iv[0] > 0 else NOT if iv[1] < 0 else NOISE

    def log_lr(self, params: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The law's best log10 learning rate at `params`, and its standard error."""
        z = np.log10(np.atleast_1d(params).astype(float) / self.law.n0)
        cov = self.law.cov
        se = np.sqrt(cov[0, 0] + z ** 2 * cov[1, 1] - 2 * z * cov[0, 1])
        return self.law.mu - self.law.beta * z, se

    def predict(self, params: float | np.ndarray, fits=None) -> np.ndarray:
        """The law's best learning rate at `params` (one row, as the plots read it)."""
        return 10 ** self.log_lr(params)[0][None, :]

    def band(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The law's interval at `params` (at the verdict's level), as learning rates."""
        m, se = self.log_lr(params)
        t = t_quantile(1 - level(T1) / 2, self.law.df)
        return 10 ** (m - t * se), 10 ** (m + t * se)

    def next_size(self) -> dict:
        lo, hi = self.band(np.array([self.next_params]))
        return {"params": self.next_params, "predicted_lr": float(self.predict(self.next_params)[0, 0]),
                "interval": [float(lo[0]), float(hi[0])]}

    @property
    def median_log_error(self) -> float:
        return float(np.median([abs(math.log(x["ratio"])) for x in self.loo])) if self.loo else math.nan

    def to_json(self) -> dict:
        c, beta = self.fit
        interval = self.interval()
        return {
            "law": "lr* = c · N^(−β), from loss = a_size + k · (log10 lr − log10 lr*(N))²",
            "step": self.step, "search_step": self.step,
            "c": c, "beta": beta, "beta_ci": list(interval) if interval else None, "coverage": coverage(T1),
            "curvature": self.law.k, "residual_sd": self.law.sigma, "df": self.law.df,
            "bracketed_sizes": self.bracketed,
            "sizes": [{"label": r["label"], "params": r["params"], "best_lr": r["lr"],
                       "best_searched_lr": r["best_searched_lr"], "n_trials": int(r["n_trials"]),
                       "n_seeds": int(r["n_trials"]), "rates": int(r["rates"]), "bracketed": bool(r["bracketed"]),
                       "near_ties": [r["best_searched_lr"]]} for _, r in self.sizes.iterrows()],
            "next_size": self.next_size(),
            "leave_one_out": {"sizes": self.loo, "median_abs_log_error": self.median_log_error},
            "interval": "profile: the βs whose refit is within t² residual variances of the best fit",
        }


def law_data(runs: Runs) -> tuple[pd.DataFrame, float | None]:
    """The searched trials at the search's judging step: label, params, lr, loss (finite ones)."""
    trials = search_trials(runs.res)
    step = judging_step(runs.res, trials)
    if step is None or "learning_rate" not in trials:
        return pd.DataFrame(columns=["label", "params", "lr", "loss"]), step
    y = values_at(runs.res, trials, step)
    t = trials.assign(loss=y, lr=trials["learning_rate"].astype(float))
    t = t[np.isfinite(t["loss"].astype(float)) & (t["lr"] > 0)]
    t = t.assign(label=[shape_of(r) for _, r in t.iterrows()])
    return t[["label", "params", "lr", "loss"]].reset_index(drop=True), step


def fit_lr_scaling(data: pd.DataFrame, step: float | None, next_params: float | None = None) -> LrScaling | None:
    """The law of `data` (label, params, lr, loss per searched trial); None when it cannot be fitted."""
    if data.empty or data["params"].nunique() < 2:
        return None
    law = fit_law(data["params"].to_numpy(float), data["lr"].to_numpy(float), data["loss"].to_numpy(float))
    if law is None:
        return None
    rows = []
    for p, g in data.groupby("params", sort=True):
        z = math.log10(p / law.n0)
        best_log = law.mu - law.beta * z
        logs = np.log10(g["lr"].to_numpy(float))
        rates = len(np.unique(np.round(logs, 6)))
        rows.append({"label": g["label"].iloc[0], "params": float(p), "lr": 10 ** best_log,
                     "best_searched_lr": float(g["lr"].iloc[int(np.argmin(g["loss"].to_numpy(float)))]),
                     "n_trials": len(g), "rates": rates,
                     "bracketed": bool(rates >= MIN_RATES and logs.min() <= best_log <= logs.max())})
    sizes = pd.DataFrame(rows)
    if next_params is None:
        ps = sizes["params"].to_numpy(float)
        next_params = float(ps[-1] ** 2 / ps[-2])
    out = LrScaling(step=step, sizes=sizes, law=law, next_params=next_params)
    for _, r in sizes.iterrows():  # leave one size out: the law on the others predicts its best searched rate
        rest = data[data["params"] != r["params"]]
        other = fit_law(rest["params"].to_numpy(float), rest["lr"].to_numpy(float), rest["loss"].to_numpy(float)) \
            if rest["params"].nunique() >= 2 else None
        if other is None:
            continue
        pred = 10 ** (other.mu - other.beta * math.log10(r["params"] / other.n0))
        out.loo.append({"label": r["label"], "params": r["params"], "best_lr": r["best_searched_lr"],
                        "predicted_lr": float(pred), "ratio": float(pred / r["best_searched_lr"])})
    return out


def no_fit_reason(data: pd.DataFrame) -> str:
    """Why the law could not be fitted, in words: the best rate at an edge of the searched range for most sizes
    (the loss still falls there: no bowl to locate), else too few trials for the model."""
    lo, hi, low_edge, high_edge = data["lr"].min(), data["lr"].max(), 0, 0
    for _, g in data.groupby("params"):
        best = g["lr"].iloc[int(np.argmin(g["loss"].to_numpy(float)))]
        high_edge += bool(best == g["lr"].max() and len(g) > 1)
        low_edge += bool(best == g["lr"].min() and len(g) > 1)
    k = data["params"].nunique()
    if high_edge * 2 > k:
        return (f"for {high_edge} of {k} sizes the lowest loss is at the highest rate searched (up to {hi:.3g}): the "
                "best learning rate lies above the searched range, nothing brackets it (widen the file's "
                "optuna.space learning_rate)")
    if low_edge * 2 > k:
        return (f"for {low_edge} of {k} sizes the lowest loss is at the lowest rate searched (from {lo:.3g}): the "
                "best learning rate lies below the searched range, nothing brackets it (widen the file's optuna.space "
                "learning_rate)")
    return ("too few for the model (a level per size, a shared curvature, μ and β), no bowl in learning rate, or a "
            f"bottom more than {FAR_DECADES:g} decade(s) outside the searched rates (not bracketed)")


def lr_fit_of(runs: Runs) -> LrScaling | None:
    """The law of this analysis's search, computed once for the check, the report and the plots."""
    def compute():
        data, step = law_data(runs)
        loss_fit = loss_scaling.fit_of(runs)
        return fit_lr_scaling(data, step, loss_fit[0].next_params if loss_fit is not None else None)

    return runs.once("lr_scaling", compute)


def _lr(x: float) -> str:
    return f"{x:.3g}"


def lr_scaling(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    """The best learning rate of each size against its parameter count: β's interval against 0."""
    e = "the best learning rate falls as the model grows: best lr = c · N^(−β) with β > 0"
    if search_trials(runs.res).empty:
        return [cannot_tell(e, "a best learning rate per size needs a search over learning rate and shape",
                            spec.check)]
    fit = lr_fit_of(runs)
    if fit is None:
        data, _ = law_data(runs)
        return [cannot_tell(e, f"{len(data)} searched trial(s) over {data['params'].nunique()} size(s): "
                               + no_fit_reason(data), spec.check)]
    test = fit.test()
    sizes = ", ".join(f"{r['label']} {_lr(r['lr'])}" + ("" if r["bracketed"] else " (not bracketed)")
                      for _, r in fit.sizes.iterrows())
    nx = fit.next_size()
    obs = (f"β = {fit.beta:.3f} ± {test.stderr:.3f} from {int(fit.sizes['n_trials'].sum())} searched trials at step "
           f"{fit.step:.0f} over {len(fit.sizes)} sizes (the law's best lr: {sizes}); the next size up, "
           f"{nx['params']:,.0f} parameters: best lr {_lr(nx['predicted_lr'])} "
           f"[{_lr(nx['interval'][0])}, {_lr(nx['interval'][1])}]"
           + (f"; leave one size out: median error a factor of {math.exp(fit.median_log_error):.2f}"
              if fit.loo else ""))
    seeds = {r["label"]: int(r["n_trials"]) for _, r in fit.sizes.iterrows()}
    if fit.bracketed < MIN_SIZES:
        v = measured(e, UNKNOWN, f"cannot tell: {len(fit.sizes)} size(s) searched, {fit.bracketed} with their best "
                                 f"rate bracketed (inside {MIN_RATES}+ searched rates), {MIN_SIZES} needed; " + obs,
                     test, seeds, fit.step, spec.check)
        return [v]
    iv = fit.interval()
    obs += (f"; β's {percent(coverage(T1))} profile interval {iv[0]:.3f} to {iv[1]:.3f}" if iv else
            f"; β's profile interval does not close within ±{MAX_BETA} of the estimate")
    return [Verdict(e, fit.outcome(), obs, fit.beta, test.stderr, seeds, fit.step,
                    rule=f"β's profile interval from {test.how} above 0", p_value=test.p, check=spec.check,
                    interval=iv, coverage=coverage(T1) if iv else None)]
