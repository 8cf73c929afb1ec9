"""The noise model of every verdict: per-seed samples, the tests, the design's levels, and the outcome rule.

A verdict compares quantities measured once per training seed (a run's val loss at one step, its
gap, its loss noise, ...). The rule, the same everywhere (docs/verdicts.md):

- the effect is a difference of means (or a mean against a fixed threshold), judged by the test
  the data allow: **paired by seed** where both runs trained the same seeds (a one-sample t-test
  of the per-seed differences: every grid run trains with seeds 1337, 1338, ..., the same data
  order and, for equal shapes, the same initialisation), **Welch** where they did not, a
  **one-sample** t-test against a threshold;
- two-sided p below the verdict's level and the sign the chapter expects: `holds`; the other
  sign: `does not hold`; otherwise `within noise`, with the effect's interval at the same level;
- fewer than two seeds on a side, or seeds that gave identical values: no noise estimate,
  `cannot tell` (a one-seed verdict is never decisive, and a zero spread is not certainty).

**The level is the design's**, not 0.05 per test. A `Design` says how often a verdict is looked
at: at the rungs where early stopping may stop one of its runs, and at each look over more seeds
(sweeps/verdicts/sequential.py). Its error budget `alpha` (5%) is spent so that the chance of a
decisive outcome without a true effect, over every look, stays within it: a fixed share at the
rungs, split evenly between them (a union bound: the rungs see the same seeds at successive
steps), the rest over the looks at one Pocock level found by simulation for the test's own null
distribution (`pocock_level`: one-sample t, or Welch at the worst of several variance ratios).
An expectation made of several tests gives each its share (`share`): a union bound again.
Judging happens inside `judging(design, phase)`; the tests read their level there (`level`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import special
from scipy import stats as sps

ALPHA = 0.05
HOLDS, NOT, NOISE, UNKNOWN = "holds", "does not hold", "within noise", "cannot tell"
OUTCOMES = (HOLDS, NOT, NOISE, UNKNOWN)
RULE = ("paired t-test over the seeds both runs trained (Welch's where they differ; a one-sample t-test against a "
        "threshold), two-sided p below the design's level: 5% over every look")
T1, WELCH = "t", "welch"  # the tests' kinds: a t-test of one sample (paired differences too), Welch's two samples
RUNG_SHARE = 0.2  # of a verdict's alpha, what the early stopping's rung decisions may spend


@functools.lru_cache(maxsize=256)
def pocock_level(looks: tuple[int, ...], alpha: float = ALPHA, kind: str = WELCH, draws: int = 40_000) -> float:
    """The nominal level of each look of a Pocock group-sequential design at `looks` seeds (a side).

    Chosen so that, without a true effect, the chance that *any* look is decisive is `alpha`. With
    normal seed-to-seed noise that chance does not depend on the noise's size or the common mean, so
    the level is found once by simulation (a fixed random seed, `draws` sequences): the `alpha`
    quantile of the smallest p-value over the looks. `kind` is the test: a one-sample t-test (T1,
    paired differences too), or Welch's, whose null distribution depends on the two sides' variance
    ratio: the level is the smallest over ratios 1, 2 and 4 (each way). One look: `alpha` itself.
    """
    looks = tuple(sorted(set(looks)))
    if len(looks) <= 1:
        return alpha
    if looks[0] < 2:
        raise ValueError(f"every look needs at least two seeds a side, not {looks}")
    rng = np.random.default_rng(0)
    top = looks[-1]
    if kind == T1:
        x = rng.standard_normal((draws, top))
        smallest = np.ones(draws)
        for n in looks:
            t = x[:, :n].mean(axis=1) / (x[:, :n].std(axis=1, ddof=1) / math.sqrt(n))
            smallest = np.minimum(smallest, 2 * sps.t.sf(np.abs(t), n - 1))
        return float(np.quantile(smallest, alpha))
    a, b = rng.standard_normal((draws, top)), rng.standard_normal((draws, top))
    levels = []
    for ratio in (1.0, 2.0, 4.0):
        smallest = np.ones(draws)
        for n in looks:
            xa, xb = a[:, :n] * ratio, b[:, :n]
            va, vb = xa.var(axis=1, ddof=1) / n, xb.var(axis=1, ddof=1) / n
            t = (xa.mean(axis=1) - xb.mean(axis=1)) / np.sqrt(va + vb)
            df = (va + vb) ** 2 / (va ** 2 / (n - 1) + vb ** 2 / (n - 1))
            smallest = np.minimum(smallest, 2 * sps.t.sf(np.abs(t), df))
        levels.append(float(np.quantile(smallest, alpha)))
    return min(levels)


@dataclass(frozen=True)
class Design:
    """How a verdict is looked at, and its error budget (module docstring).

    `looks`: the seeds a side at each look over seeds (one entry: a single look); `rungs`: how many
    rungs early stopping may stop one of its runs at before that (0: none); `alpha`: the chance of a
    decisive outcome without a true effect over all of them.
    """

    looks: tuple[int, ...] = (3,)
    rungs: int = 0
    alpha: float = ALPHA

    @property
    def rung_alpha(self) -> float:
        return self.alpha * RUNG_SHARE if self.rungs else 0.0

    def level(self, kind: str, phase: str = "look") -> float:
        """The two-sided level of one test of `kind` at a rung (`phase` "rung") or at each look over seeds."""
        if phase == "rung":  # (a hold asked of a design that counted no rung: as if it had one)
            return self.alpha * RUNG_SHARE / max(1, self.rungs)
        return pocock_level(tuple(self.looks), self.alpha - self.rung_alpha, kind)

    def split(self, k: int) -> Design:
        """The design of one of `k` tests that share this one's budget."""
        return replace(self, alpha=self.alpha / k)

    def text(self) -> str:
        """The design in words, for a verdict's rule."""
        parts = []
        if self.rungs:
            parts.append(f"{self.rung_alpha:.3g} at the {self.rungs} rung(s) where early stopping may stop a run")
        looks = ", ".join(map(str, self.looks))
        if len(self.looks) > 1:
            parts.append(f"{self.alpha - self.rung_alpha:.3g} over the looks at {looks} seeds (Pocock: "
                         f"p < {self.level(T1):.4g} at each, paired or one-sample)")
        else:
            parts.append(f"p < {self.alpha - self.rung_alpha:.3g} at the end")
        return f"{self.alpha:.3g} in all: " + "; ".join(parts)


# the design and phase of the tests being judged, and their share of its budget: a context variable,
# because every check builds its own tests and the level is the analysis's, not theirs
_JUDGING: contextvars.ContextVar[tuple[Design, str]] = contextvars.ContextVar("judging", default=(Design((0,)), "look"))


def level(kind: str = T1) -> float:
    """The two-sided level of a test of `kind` judged now (0.05 outside `judging`)."""
    design, phase = _JUDGING.get()
    return design.level(kind, phase)


def current() -> tuple[Design, str]:
    return _JUDGING.get()


@contextlib.contextmanager
def judging(design: Design, phase: str = "look") -> Iterator[None]:
    """Judge the tests inside by `design` at `phase` ("look" or "rung")."""
    if not 0 < design.alpha <= ALPHA:
        raise ValueError(f"a design's alpha must lie in (0, {ALPHA}], not {design.alpha}")
    token = _JUDGING.set((design, phase))
    try:
        yield
    finally:
        _JUDGING.reset(token)


@contextlib.contextmanager
def share(k: int) -> Iterator[None]:
    """Judge the tests inside as one of `k` parts of an expectation: each with 1/k of its budget."""
    design, phase = _JUDGING.get()
    token = _JUDGING.set((design.split(max(1, k)), phase))
    try:
        yield
    finally:
        _JUDGING.reset(token)


def at_level(alpha: float):
    """Judge the tests inside at one look of two-sided level `alpha`."""
    return judging(Design((0,), alpha=alpha))


@dataclass(frozen=True)
class Sample:
    """One quantity measured once per seed; `seeds` names them (the training seed of each value), where known."""

    values: tuple[float, ...]
    seeds: tuple = ()

    @property
    def n(self) -> int:
        return len(self.values)

    @functools.cached_property
    def mean(self) -> float:
        return math.fsum(self.values) / len(self.values) if self.values else math.nan

    @functools.cached_property
    def std(self) -> float:
        if self.n < 2:
            return math.nan
        m = self.mean
        return math.sqrt(math.fsum((x - m) ** 2 for x in self.values) / (self.n - 1))

    @property
    def se(self) -> float:
        return self.std / math.sqrt(self.n) if self.n >= 2 else math.nan

    def text(self, digits: int = 4) -> str:
        spread = f" ± {self.std:.{digits}f}" if self.n >= 2 else ""
        return f"{self.mean:.{digits}f}{spread} (n={self.n})"

    def by_seed(self) -> dict:
        return dict(zip(self.seeds, self.values)) if len(self.seeds) == self.n else {}


def sample(values, seeds=()) -> Sample:
    """The finite values (and their seeds), as a Sample."""
    values, seeds = list(values), list(seeds)
    keep = [i for i, x in enumerate(values) if x is not None and math.isfinite(float(x))]
    return Sample(tuple(float(values[i]) for i in keep), tuple(seeds[i] for i in keep) if seeds else ())


@dataclass(frozen=True)
class Test:
    """An effect (a difference of means, or a mean against a threshold) and what the seeds say of it.

    `kind` is the test's null distribution (T1 or WELCH), which sets its level in the design; `how`
    says which test it was, in words.
    """

    effect: float
    stderr: float
    df: float
    p: float
    n: tuple[int, ...]
    kind: str = T1
    how: str = ""

    @property
    def estimable(self) -> bool:
        """Whether the seeds give a noise estimate: two or more a side, and some spread between them."""
        return min(self.n) >= 2 and math.isfinite(self.effect) and math.isfinite(self.stderr) and self.stderr > 0

    def outcome(self, expect: int) -> str:
        """The rule of the module docstring; `expect` is the sign the chapter expects (-1 or +1). Seeds that gave
        identical values tell nothing of the noise: `cannot tell`, unless they show no difference at all (every
        run alike at step 0, say), which is no evidence of an effect: `within noise`."""
        if min(self.n) >= 2 and self.stderr == 0 and self.effect == 0:
            return NOISE
        if not self.estimable:
            return UNKNOWN
        if self.p < level(self.kind):
            return HOLDS if math.copysign(1, self.effect) == expect else NOT
        return NOISE

    def interval(self) -> tuple[float, float] | None:
        """The effect's interval at the test's level (at a look of a sequential design: the repeated interval,
        which covers the effect at every look with the design's probability); None without a noise estimate."""
        if not self.estimable:
            return None
        return t_interval(self.effect, self.stderr, self.df, self.kind)

    def text(self) -> str:
        if min(self.n) < 2:
            return f"effect {self.effect:+.4f} (one seed: no noise estimate)"
        if not self.estimable:
            return f"effect {self.effect:+.4f} (the seeds gave identical values: no noise estimate)"
        return f"effect {self.effect:+.4f} ± {self.stderr:.4f} (p = {self.p:.2g}{', ' + self.how if self.how else ''})"


def p_value(t: float, df: float) -> float:
    """Two-sided p of Student's t with `df` degrees of freedom (scipy.special's, which is scipy.stats' without its
    per-call checks: these run hundreds of thousands of times in benchmarks/calibration.py)."""
    if not math.isfinite(t):
        return math.nan
    return float(2 * special.stdtr(df, -abs(t)))


def t_quantile(q: float, df: float) -> float:
    """The q-quantile of Student's t with `df` degrees of freedom."""
    return float(special.stdtrit(df, q)) if math.isfinite(df) else float(special.ndtri(q))


def welch(a: Sample, b: Sample) -> Test:
    """mean(a) - mean(b), Welch's standard error and two-sided p."""
    effect = a.mean - b.mean
    if a.n < 2 or b.n < 2:
        return Test(effect, math.nan, math.nan, math.nan, (a.n, b.n), WELCH, "Welch")
    va, vb = a.std ** 2 / a.n, b.std ** 2 / b.n
    se = math.sqrt(va + vb)
    if se == 0:  # identical seeds on both sides: no noise estimate, not certainty
        return Test(effect, 0.0, math.nan, math.nan, (a.n, b.n), WELCH, "Welch")
    df = (va + vb) ** 2 / (va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1))
    return Test(effect, se, df, p_value(effect / se, df), (a.n, b.n), WELCH, "Welch")


def against(a: Sample, threshold: float, how: str = "") -> Test:
    """mean(a) - threshold: a one-sample t-test."""
    effect = a.mean - threshold
    if a.n < 2:
        return Test(effect, math.nan, math.nan, math.nan, (a.n,), T1, how)
    if a.se == 0:
        return Test(effect, 0.0, math.nan, math.nan, (a.n,), T1, how)
    return Test(effect, a.se, a.n - 1, p_value(effect / a.se, a.n - 1), (a.n,), T1, how)


def paired(a: Sample, b: Sample) -> Test:
    """mean(a - b) over the seeds both sides have: a one-sample t-test of the per-seed differences."""
    sa, sb = a.by_seed(), b.by_seed()
    both = [s for s in sa if s in sb]
    diff = sample([sa[s] - sb[s] for s in both], both)
    t = against(diff, 0.0, f"paired over {diff.n} seeds")
    return Test(t.effect, t.stderr, t.df, t.p, (diff.n, diff.n), T1, t.how)


def compare(a: Sample, b: Sample) -> Test:
    """mean(a) - mean(b) by the test the data allow: paired by seed where both sides trained the same seeds
    (two or more), else Welch's."""
    sa, sb = a.by_seed(), b.by_seed()
    if sa and sb and set(sa) == set(sb) and len(sa) >= 2:
        return paired(a, b)
    return welch(a, b)


def t_interval(effect: float, se: float, df: float, kind: str = T1) -> tuple[float, float] | None:
    """effect ± the two-sided quantile of Student's t at the level of a test of `kind` (df degrees of freedom)
    times se."""
    if not (math.isfinite(effect) and math.isfinite(se)) or not df > 0:
        return None
    half = t_quantile(1 - level(kind) / 2, df) * se if se > 0 else 0.0
    return effect - half, effect + half


def coverage(kind: str = T1) -> float:
    """What an interval judged now covers: 1 − the level of a test of `kind`."""
    return 1 - level(kind)


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
