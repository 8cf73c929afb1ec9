"""The numbers behind the verdicts: overfitting classes, loss noise, compute saved.

Pure functions of arrays and DataFrames, so each can be tested on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gptcore import record
from sweeps.results.trial import ERRORED, STOPPED, UNFINISHED

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


def loss_noise(values: np.ndarray | list[float], tail: bool = True) -> float:
    """Step-to-step noise of a loss series: std of its first differences, / sqrt(2).

    First differences remove the slow downward trend; for white noise of std s on top of a
    smooth curve, std(diff) = s * sqrt(2), so the result estimates s. With `tail` only the
    second half counts, because in the first the trend itself (fast early learning) would
    dominate the differences; pass the window yourself with `tail=False`. NaN with fewer than 3 points.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if tail:
        v = v[len(v) // 2:]
    if len(v) < 3:
        return math.nan
    return float(np.std(np.diff(v), ddof=1) / math.sqrt(2))


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

    stopped = known["status"] == STOPPED
    spi = known["time_s"] / known["final_iter"].where(known["final_iter"] > 0)
    saved_time = float((left[stopped] * spi[stopped]).sum(min_count=1)) if stopped.any() else 0.0
    return Compute(
        iters_run=float(it_run.sum()),
        iters_planned=float(planned.sum()),
        tokens_run=float((it_run * known["tokens_per_iter"]).sum()),
        tokens_planned=float(known["tokens_planned"].sum()),
        saved_by_stopping_iters=left_where(stopped),
        lost_to_divergence_iters=left_where(known["status"] == record.DIVERGED),
        other_iters=left_where(known["status"].isin([ERRORED, *UNFINISHED])),
        time_run_s=float(trials["time_s"].sum(min_count=1)) if trials["time_s"].notna().any() else math.nan,
        time_saved_est_s=saved_time if saved_time == saved_time else math.nan,
        unknown=int(len(trials) - len(known)),
        retried_rows=int(trials["retried_rows"].sum()),
    )
