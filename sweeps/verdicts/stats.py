"""The noise model of every verdict: per-seed samples, Welch's t-test, and the rule that turns them into an outcome.

A verdict compares quantities measured once per training seed (a run's val loss at one step,
its gap, its loss noise, ...). The rule, the same everywhere (docs/verdicts.md):

- the effect is the difference of the means (or the mean against a fixed threshold), its
  standard error comes from the seeds (Welch: sqrt(s_a^2/n_a + s_b^2/n_b));
- two-sided p < 0.05 (Welch's t-test, Welch-Satterthwaite degrees of freedom) and the sign the
  chapter expects: `holds`; p < 0.05 and the other sign: `does not hold`; otherwise
  `within noise`;
- the effect's 95% interval comes from the same test: effect ± t_{0.975, df} · se (`Test.interval`),
  so a `within noise` verdict says how small the effect may be;
- fewer than two seeds on a side leaves no noise estimate: `cannot tell`, whatever the
  difference (a one-seed verdict is never decisive).

With a range of seeds (`seeds: {min: 3, max: 8}`) a verdict may be looked at several times, with
more seeds each time (sweeps/verdicts/sequential.py). Each look then uses the lower nominal level
of a Pocock group-sequential boundary (`pocock_level`), so that over all the looks the chance of a
decisive verdict without a true effect stays at 5%. `at_level` sets the level of the tests judged
inside it; outcomes and intervals read it (`level()`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

ALPHA = 0.05
HOLDS, NOT, NOISE, UNKNOWN = "holds", "does not hold", "within noise", "cannot tell"
OUTCOMES = (HOLDS, NOT, NOISE, UNKNOWN)
RULE = "Welch's t-test over seeds, two-sided p < 0.05"
# the level of the tests being judged: ALPHA, or a sequential design's nominal level per look; a
# context variable, because every check builds its own tests and the level is the analysis's, not theirs
_LEVEL: contextvars.ContextVar[float] = contextvars.ContextVar("level", default=ALPHA)


def level() -> float:
    """The two-sided level of the tests judged now (ALPHA unless inside `at_level`)."""
    return _LEVEL.get()


@contextlib.contextmanager
def at_level(alpha: float) -> Iterator[None]:
    """Judge the tests inside at two-sided level `alpha` (their outcomes and their intervals)."""
    if not 0 < alpha <= ALPHA:
        raise ValueError(f"a test level must lie in (0, {ALPHA}], not {alpha}")
    token = _LEVEL.set(alpha)
    try:
        yield
    finally:
        _LEVEL.reset(token)


@functools.lru_cache(maxsize=64)
def pocock_level(looks: tuple[int, ...], alpha: float = ALPHA, draws: int = 40_000) -> float:
    """The nominal level of each look of a Pocock group-sequential design, for Welch's test at `looks` seeds a side.

    `looks` are the seeds on each side at each look (e.g. (3, 5, 7, 8)). The level is the same at
    every look and chosen so that, without a true effect, the chance that *any* look is decisive is
    `alpha`. With normal seed-to-seed noise that chance does not depend on the noise's size or the
    runs' common mean, so it is found once by simulation (a fixed random seed, `draws` sequences):
    the `alpha` quantile of the smallest p-value over the looks. One look: `alpha` itself.
    """
    looks = tuple(sorted(set(looks)))
    if len(looks) <= 1:
        return alpha
    if looks[0] < 2:
        raise ValueError(f"every look needs at least two seeds a side, not {looks}")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((draws, looks[-1]))
    b = rng.standard_normal((draws, looks[-1]))
    smallest = np.ones(draws)
    for n in looks:
        va, vb = a[:, :n].var(axis=1, ddof=1) / n, b[:, :n].var(axis=1, ddof=1) / n
        t = (a[:, :n].mean(axis=1) - b[:, :n].mean(axis=1)) / np.sqrt(va + vb)
        df = (va + vb) ** 2 / (va ** 2 / (n - 1) + vb ** 2 / (n - 1))
        smallest = np.minimum(smallest, 2 * sps.t.sf(np.abs(t), df))
    return float(np.quantile(smallest, alpha))


@dataclass(frozen=True)
class Sample:
    """One quantity measured once per seed."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if self.n >= 2 else math.nan

    @property
    def se(self) -> float:
        return self.std / math.sqrt(self.n) if self.n >= 2 else math.nan

    def text(self, digits: int = 4) -> str:
        spread = f" ± {self.std:.{digits}f}" if self.n >= 2 else ""
        return f"{self.mean:.{digits}f}{spread} (n={self.n})"


def sample(values) -> Sample:
    """The finite values, as a Sample."""
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    return Sample(tuple(v))


@dataclass(frozen=True)
class Test:
    """An effect (a difference of means, or a mean against a threshold) and what the seeds say of it."""

    effect: float
    stderr: float
    df: float
    p: float
    n: tuple[int, ...]

    def outcome(self, expect: int) -> str:
        """The rule of the module docstring; `expect` is the sign the chapter expects (-1 or +1)."""
        if min(self.n) < 2 or not math.isfinite(self.effect):
            return UNKNOWN
        if self.p < level():
            return HOLDS if math.copysign(1, self.effect) == expect else NOT
        return NOISE

    def interval(self) -> tuple[float, float] | None:
        """The effect's 95% interval, effect ± t_{0.975, df} · se (at a sequential level α: the 1 − α
        repeated interval, which covers the effect at every look 95% of the time); None without a noise estimate."""
        if min(self.n) < 2 or not (math.isfinite(self.effect) and math.isfinite(self.stderr)):
            return None
        return t_interval(self.effect, self.stderr, self.df)

    def text(self) -> str:
        if min(self.n) < 2:
            return f"effect {self.effect:+.4f} (one seed: no noise estimate)"
        return f"effect {self.effect:+.4f} ± {self.stderr:.4f} (p = {self.p:.2g})"


def _p_value(t: float, df: float) -> float:
    if not math.isfinite(t):
        return 0.0 if math.isinf(t) else 1.0
    return float(2 * sps.t.sf(abs(t), df))


def welch(a: Sample, b: Sample) -> Test:
    """mean(a) - mean(b), Welch's standard error and two-sided p."""
    effect = a.mean - b.mean
    if a.n < 2 or b.n < 2:
        return Test(effect, math.nan, math.nan, math.nan, (a.n, b.n))
    va, vb = a.std ** 2 / a.n, b.std ** 2 / b.n
    se = math.sqrt(va + vb)
    if se == 0:  # identical seeds on both sides: any difference is exact
        return Test(effect, 0.0, math.inf, 0.0 if effect else 1.0, (a.n, b.n))
    df = (va + vb) ** 2 / (va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1))
    return Test(effect, se, df, _p_value(effect / se, df), (a.n, b.n))


def against(a: Sample, threshold: float) -> Test:
    """mean(a) - threshold: a one-sample t-test."""
    effect = a.mean - threshold
    if a.n < 2:
        return Test(effect, math.nan, math.nan, math.nan, (a.n,))
    if a.se == 0:
        return Test(effect, 0.0, math.inf, 0.0 if effect else 1.0, (a.n,))
    return Test(effect, a.se, a.n - 1, _p_value(effect / a.se, a.n - 1), (a.n,))


def t_interval(effect: float, se: float, df: float) -> tuple[float, float] | None:
    """effect ± the two-sided (1 − level) quantile of Student's t with `df` degrees of freedom (normal at df = inf)
    times se."""
    if not (math.isfinite(effect) and math.isfinite(se)) or not df > 0:
        return None
    half = float(sps.t.ppf(1 - level() / 2, df)) * se if se > 0 else 0.0
    return effect - half, effect + half


def t_crit(n: int) -> float:
    """The two-sided (1 − level) quantile of Student's t with n - 1 degrees of freedom."""
    return float(sps.t.ppf(1 - level() / 2, n - 1)) if n >= 2 else math.inf


def all_of(outcomes: list[str]) -> str:
    """Outcome of an expectation that needs every part: one part that does not hold decides."""
    if NOT in outcomes:
        return NOT
    if outcomes and all(o == HOLDS for o in outcomes):
        return HOLDS
    return UNKNOWN if UNKNOWN in outcomes else NOISE


def any_of(outcomes: list[str]) -> str:
    """Outcome of an expectation that any part satisfies: one part that holds decides."""
    if HOLDS in outcomes:
        return HOLDS
    if outcomes and all(o == NOT for o in outcomes):
        return NOT
    return UNKNOWN if UNKNOWN in outcomes else NOISE


def grouped_history(history: pd.DataFrame) -> pd.DataFrame:
    """Per run and evaluation step: mean, std and n over seeds of train loss, val loss and gap."""
    h = history[np.isfinite(history["val_loss"].astype(float))]
    if h.empty:
        return pd.DataFrame(columns=["name", "iter", "n", "train_mean", "train_std", "val_mean", "val_std",
                                     "gap_mean", "gap_std"])
    g = h.groupby(["name", "iter"], sort=True)
    out = pd.DataFrame({
        "n": g["val_loss"].count(),
        "train_mean": g["train_loss"].mean(), "train_std": g["train_loss"].std(ddof=1),
        "val_mean": g["val_loss"].mean(), "val_std": g["val_loss"].std(ddof=1),
        "gap_mean": g["gap"].mean(), "gap_std": g["gap"].std(ddof=1),
    }).reset_index()
    return out
