"""The numbers behind the verdicts: overfitting classes, loss noise, power-law fits, compute saved.

Pure functions of arrays and DataFrames, so each can be tested on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

# the chapter's thresholds on gap = val - train (section 2.3, `calculate_overfitting`)
OVERFIT_CLASSES = ((0.1, "healthy"), (0.3, "slight"), (0.5, "moderate"))
SEVERE = "severe"


def overfit_class(gap: float) -> str:
    """The chapter's class for a final gap: < 0.1 healthy, < 0.3 slight, < 0.5 moderate, else severe.

    A boundary belongs to the worse class (0.1 is slight), as in the chapter's `if gap < 0.1`.
    """
    if gap is None or not math.isfinite(gap):
        return "n/a"
    # losses are logged with 4 decimals: 1.2 - 1.1 is 0.0999999... in floating point, yet the
    # reader sees a gap of 0.1, so classify the gap as printed, not its binary residue
    g = round(gap, 6)
    for limit, name in OVERFIT_CLASSES:
        if g < limit:
            return name
    return SEVERE


def loss_noise(values: np.ndarray | list[float]) -> float:
    """Step-to-step noise of a loss series: std of its first differences over the second half, / sqrt(2).

    First differences remove the slow downward trend; for white noise of std s on top of a
    smooth curve, std(diff) = s * sqrt(2), so the result estimates s. The first half is left
    out because there the trend itself (fast early learning) would dominate the differences.
    NaN with fewer than 3 points in the second half.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    tail = v[len(v) // 2:]
    if len(tail) < 3:
        return math.nan
    return float(np.std(np.diff(tail), ddof=1) / math.sqrt(2))


@dataclass
class PowerLaw:
    """loss = a * N^(-alpha) + c, fitted over `n_points` model sizes."""

    a: float
    alpha: float
    c: float
    r2: float
    n_points: int

    def __call__(self, n: np.ndarray | float) -> np.ndarray:
        return self.a * np.power(np.asarray(n, dtype=float), -self.alpha) + self.c

    def describe(self) -> str:
        tail = f" + {self.c:.3f}" if self.c else ""
        return f"loss = {self.a:.3g} · N^({-self.alpha:.4f}){tail}  (R² {self.r2:.3f}, {self.n_points} sizes)"


def _loglog_fit(n: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    slope, intercept = np.polyfit(np.log(n), np.log(y), 1)
    return float(math.exp(intercept)), float(-slope)


def fit_power_law(n_params: np.ndarray | list[float], loss: np.ndarray | list[float],
                  offset: bool = False) -> PowerLaw | None:
    """Fit loss = a * N^(-alpha) (+ c with `offset`) by least squares in log-log space.

    Without an offset it is a straight line through (log N, log loss). With one, c (the
    irreducible loss) is searched on a grid below the smallest loss, each candidate fitted in
    log space, and the one with the least squared error in loss wins; it needs 4 or more sizes,
    since 3 parameters through 3 points always fit. None with fewer than 2 usable points.
    """
    n = np.asarray(n_params, dtype=float)
    y = np.asarray(loss, dtype=float)
    ok = np.isfinite(n) & np.isfinite(y) & (n > 0) & (y > 0)
    n, y = n[ok], y[ok]
    if len(np.unique(n)) < 2:
        return None
    best_c, (a, alpha) = 0.0, _loglog_fit(n, y)
    if offset and len(n) >= 4:
        best_err = float(np.sum((a * n ** -alpha - y) ** 2))
        for c in np.linspace(0.0, 0.999 * y.min(), 400)[1:]:
            a_c, alpha_c = _loglog_fit(n, y - c)
            err = float(np.sum((a_c * n ** -alpha_c + c - y) ** 2))
            if err < best_err:
                best_err, best_c, a, alpha = err, float(c), a_c, alpha_c
    pred = a * n ** -alpha + best_c
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum((y - pred) ** 2)) / ss_tot if ss_tot > 0 else 1.0
    return PowerLaw(a=a, alpha=alpha, c=best_c, r2=r2, n_points=len(n))


def rises(val: np.ndarray, tol: float) -> tuple[float, int]:
    """(largest increase, index after it) between consecutive values; (0, -1) if it never rises by more than tol."""
    v = np.asarray(val, dtype=float)
    if len(v) < 2:
        return 0.0, -1
    d = np.diff(v)
    i = int(np.argmax(d))
    return (float(d[i]), i + 1) if d[i] > tol else (0.0, -1)


@dataclass
class Compute:
    """Iterations and tokens run against a full run of every trial, and where the rest went."""

    iters_run: float
    iters_planned: float
    tokens_run: float
    tokens_planned: float
    saved_by_stopping_iters: float  # ASHA (or another scheduler) stopped the trial
    lost_to_divergence_iters: float
    other_iters: float  # errored, interrupted or never started
    time_run_s: float
    time_saved_est_s: float  # the stopped trials' own seconds per iteration times the iterations skipped
    unknown: int  # trials whose max_iters is unknown (hand-made logs): left out
    retried_rows: int

    @property
    def saved_share(self) -> float:
        return self.saved_by_stopping_iters / self.iters_planned if self.iters_planned else math.nan

    @property
    def run_share(self) -> float:
        return self.iters_run / self.iters_planned if self.iters_planned else math.nan


def compute_accounting(trials: pd.DataFrame) -> Compute:
    """Sum what the trials ran against what running each to its max_iters would have used.

    Iterations are weighted by nothing (an iteration of a tiny model counts as one of a large
    one); tokens weight them by batch x accumulation x context. Shares are of iterations.
    """
    known = trials[trials["max_iters"].notna() & trials["tokens_planned"].notna()]
    it_run = known["final_iter"].clip(upper=known["max_iters"].astype(float))
    planned = known["max_iters"].astype(float)
    left = planned - it_run

    def left_where(mask: pd.Series) -> float:
        return float(left[mask].sum())

    stopped = known["status"] == "stopped early"
    spi = known["time_s"] / known["final_iter"].where(known["final_iter"] > 0)
    saved_time = float((left[stopped] * spi[stopped]).sum(min_count=1)) if stopped.any() else 0.0
    return Compute(
        iters_run=float(it_run.sum()),
        iters_planned=float(planned.sum()),
        tokens_run=float((it_run * known["tokens_per_iter"]).sum()),
        tokens_planned=float(known["tokens_planned"].sum()),
        saved_by_stopping_iters=left_where(stopped),
        lost_to_divergence_iters=left_where(known["status"] == "diverged"),
        other_iters=left_where(known["status"].isin(["errored", "interrupted", "not started"])),
        time_run_s=float(trials["time_s"].sum(min_count=1)) if trials["time_s"].notna().any() else math.nan,
        time_saved_est_s=saved_time if saved_time == saved_time else math.nan,
        unknown=int(len(trials) - len(known)),
        retried_rows=int(trials["retried_rows"].sum()),
    )
