"""Loss against model size (experiment 5): a power law and the Chinchilla form, with bootstrap intervals over seeds.

Two laws are fitted to the final val loss of every (size, seed), all at one training budget:

- the pure power law L = a * N^-alpha, a straight line in log-log space;
- the Chinchilla form L = E + A * N^-alpha (Hoffmann et al. 2022, with the data term left out:
  every size trains on the same tokens), where E is the loss no size can beat. It is fitted by
  variable projection: for a given alpha, E >= 0 and A >= 0 follow by non-negative least
  squares; alpha itself minimises a Huber loss of the log residuals (delta 0.02), so one odd
  seed cannot pull the fit, and a bounded search over alpha in [0, 2] cannot run away.

The intervals are percentile bootstraps (2.5%, 97.5%): the seeds of each size are drawn again
with replacement, 1,000 times (a fixed random seed, so the same results give the same report),
and both laws refitted. With one seed per size there is nothing to resample and no interval.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar, nnls

from gptcore.record import estimated_params
from sweeps.experiment.specs import shape_of
from sweeps.verdicts.search import search_trials
from sweeps.verdicts.stats import (
    HOLDS,
    NOISE,
    NOT,
    T1,
    UNKNOWN,
    Test,
    all_of,
    compare,
    coverage,
    p_value,
    share,
    t_interval,
)
from sweeps.verdicts.verdict import Runs, Verdict, cannot_tell, measured, n_seeds, percent

if TYPE_CHECKING:
    from sweeps.experiment.files import VerdictSpec

DECADE_DROP = (0.1, 0.3)  # "10x parameters -> loss about 0.2 lower", accepted range

N_BOOT = 1000
HUBER_DELTA = 0.02
ALPHA_BOUNDS = (0.0, 2.0)


def fit_power(n: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(a, alpha) of L = a * N^-alpha by least squares in log-log space."""
    slope, intercept = np.polyfit(np.log(n), np.log(y), 1)
    return float(math.exp(intercept)), float(-slope)


def _huber(r: np.ndarray, delta: float = HUBER_DELTA) -> float:
    a = np.abs(r)
    return float(np.sum(np.where(a <= delta, 0.5 * r ** 2, delta * (a - 0.5 * delta))))


def _project(alpha: float, n: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(E, A, loss) for a given alpha: E and A by non-negative least squares, loss = Huber of log residuals."""
    x = n ** -alpha
    (e, a), _ = nnls(np.column_stack([np.ones_like(x), x]), y)
    pred = np.maximum(e + a * x, 1e-12)
    return float(e), float(a), _huber(np.log(pred) - np.log(y))


def fit_chinchilla(n: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(E, A, alpha) of L = E + A * N^-alpha (module docstring)."""
    grid = np.linspace(*ALPHA_BOUNDS, 41)
    losses = [_project(a, n, y)[2] for a in grid]
    i = int(np.argmin(losses))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    best = minimize_scalar(lambda a: _project(a, n, y)[2], bounds=(lo, hi), method="bounded",
                           options={"xatol": 1e-4})
    alpha = float(best.x) if best.fun <= losses[i] else float(grid[i])
    e, a, _ = _project(alpha, n, y)
    return e, a, alpha


def _slope_per_decade(n: np.ndarray, y: np.ndarray) -> float:
    """Loss change per 10x parameters: the slope of a straight line of loss against log10 N."""
    return float(np.polyfit(np.log10(n), y, 1)[0])


@dataclass
class Scaling:
    """Both fits, their bootstrap draws, and the next size up; `to_json` is results/exp5/scaling.json.

    The bootstrap (for the report's intervals and band) is drawn on first use: the verdicts need none of it.
    """

    step: float
    sizes: pd.DataFrame  # one row per size: label, params, n_seeds, mean, std
    power: tuple[float, float]  # a, alpha
    slope: float  # loss change per 10x parameters
    next_params: float
    points: pd.DataFrame | None = None  # what was fitted, for the bootstrap
    n_boot: int = N_BOOT
    seed: int = 0

    @functools.cached_property
    def chinchilla(self) -> tuple[float, float, float]:
        """E, A, alpha of the Chinchilla form (fitted on first use: the report's, not the verdicts')."""
        return fit_chinchilla(self.points["params"].to_numpy(float), self.points["loss"].to_numpy(float))

    @functools.cached_property
    def _boot(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        groups = [g for _, g in self.points.groupby("params", sort=True)] if self.points is not None else []
        rng = np.random.default_rng(self.seed)
        boot_p, boot_c, boot_s = [], [], []
        if groups and self.min_seeds >= 2:
            for _ in range(self.n_boot):
                draw = [g.iloc[rng.integers(0, len(g), len(g))] for g in groups]
                bn = np.concatenate([d["params"].to_numpy(float) for d in draw])
                by = np.concatenate([d["loss"].to_numpy(float) for d in draw])
                boot_p.append(fit_power(bn, by))
                boot_c.append(fit_chinchilla(bn, by))
                boot_s.append(_slope_per_decade(bn, by))
        return np.array(boot_p).reshape(-1, 2), np.array(boot_c).reshape(-1, 3), np.array(boot_s)

    @property
    def boot_power(self) -> np.ndarray:  # (B, 2)
        return self._boot[0]

    @property
    def boot_chinchilla(self) -> np.ndarray:  # (B, 3)
        return self._boot[1]

    @property
    def boot_slope(self) -> np.ndarray:  # (B,)
        return self._boot[2]

    @property
    def min_seeds(self) -> int:
        return int(self.sizes["n_seeds"].min())

    def ci(self, values: np.ndarray) -> tuple[float, float] | None:
        if self.min_seeds < 2 or not len(values):
            return None
        lo, hi = np.percentile(values, [2.5, 97.5])
        return float(lo), float(hi)

    def predict(self, params: float | np.ndarray, fits: np.ndarray | None = None) -> np.ndarray:
        """The Chinchilla law at `params`, for the fit itself or for each bootstrap draw."""
        e, a, alpha = (fits.T if fits is not None else np.array(self.chinchilla)[:, None])
        return e[:, None] + a[:, None] * np.power(np.atleast_1d(params)[None, :], -alpha[:, None])

    def band(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The 95% band of the Chinchilla law over `params`, from the bootstrap draws."""
        if self.min_seeds < 2:
            return None
        draws = self.predict(params, self.boot_chinchilla)
        return np.percentile(draws, 2.5, axis=0), np.percentile(draws, 97.5, axis=0)

    def to_json(self) -> dict:
        a, alpha = self.power
        e, big_a, c_alpha = self.chinchilla
        pred = self.predict(self.next_params)[0, 0]
        interval = self.ci(self.predict(self.next_params, self.boot_chinchilla)[:, 0])
        return {
            "step": self.step,
            "sizes": [{"label": r["label"], "params": r["params"], "n_seeds": int(r["n_seeds"]),
                       "mean_val_loss": r["mean"], "std_val_loss": r["std"]} for _, r in self.sizes.iterrows()],
            "power_law": {"a": a, "alpha": alpha, "alpha_ci": self.ci(self.boot_power[:, 1])},
            "chinchilla": {"E": e, "A": big_a, "alpha": c_alpha, "alpha_ci": self.ci(self.boot_chinchilla[:, 2]),
                           "E_ci": self.ci(self.boot_chinchilla[:, 0])},
            "per_decade": {"change": self.slope, "ci": self.ci(self.boot_slope)},
            "next_size": {"params": self.next_params, "predicted_loss": float(pred), "interval": interval},
            "bootstrap": {"draws": int(len(self.boot_slope)), "resampled": "seeds within each size"},
        }


def fit_scaling(points: pd.DataFrame, step: float, n_boot: int = N_BOOT, seed: int = 0) -> Scaling | None:
    """Fit both laws to `points` (columns label, params, loss: one row per size and seed); None below 2 sizes.

    The same points give the same fit, whatever their order: the bootstrap's seed is fixed.
    """
    # the order of the rows must not change the bootstrap's draws
    points = points.sort_values(["params", "loss"], kind="stable").reset_index(drop=True)
    points = points[np.isfinite(points["loss"].astype(float)) & (points["params"] > 0)]
    groups = [g for _, g in points.groupby("params", sort=True)]
    if len(groups) < 2:
        return None
    sizes = pd.DataFrame([{"label": g["label"].iloc[0], "params": float(g["params"].iloc[0]), "n_seeds": len(g),
                           "mean": float(g["loss"].mean()),
                           "std": float(g["loss"].std(ddof=1)) if len(g) > 1 else math.nan} for g in groups])
    n = points["params"].to_numpy(float)
    y = points["loss"].to_numpy(float)
    params = sizes["params"].to_numpy()
    return Scaling(step=step, sizes=sizes, power=fit_power(n, y),
                   slope=_slope_per_decade(n, y), next_params=float(params[-1] ** 2 / params[-2]), points=points,
                   n_boot=n_boot, seed=seed)


# ----------------------------------------------------------------------------------------
# the check (verdicts.CHECKS["scaling"])


def _params(row: pd.Series) -> float:
    """A trial's reported parameter count, else nanoGPT's non-embedding estimate."""
    n = float(row["n_params"])
    return n if math.isfinite(n) else estimated_params(float(row["n_layer"]), float(row["n_embd"]))


def fit_of(runs: Runs) -> tuple[Scaling, pd.DataFrame] | None:
    """(fit, points) of loss against size for this analysis, where two sizes have results; computed once
    (1,000 bootstrap draws) however many of the checks, the report and the plots ask for it."""
    def compute():
        points, step = size_points(runs, bool(runs.names & set(runs.order)))
        fit = fit_scaling(points, step, n_boot=N_BOOT) if len(points) else None
        return (fit, points) if fit is not None else None

    return runs.once("scaling", compute)


def size_points(runs: Runs, named: bool) -> tuple[pd.DataFrame, float | None]:
    """(label, params, loss) per size and seed at one budget, and that step.

    A grid: the file's runs at the last step every seed of every size reached. A search with a
    confirm stage: per size, its best confirmed configuration over the seeds (the file's
    `confirm_per: shape` confirms the best of each size). Otherwise, per size, the best of the
    search's trials that reached the largest budget any trial reached (one seed: no interval;
    a trial stopped early is not fitted by its last loss).
    """
    if named:
        names = [n for n in runs.order if not runs.missing([n])]
        return _points(runs, names)
    confirmed = confirmed_best(runs)
    if confirmed is not None:
        best, step = confirmed
        if len(best) >= 3:  # else the search's own best of each size
            rows = [{"label": shape_of(runs.row(n)), "params": p, "loss": v}
                    for p, n in best.items() for v in runs.at(n, step).values]
            return pd.DataFrame(rows).sort_values("params", kind="stable").reset_index(drop=True), step
    t = search_trials(runs.res)  # the search's trials: the confirm stage re-runs some of them
    done = t[np.isfinite(t["final_val_loss"].astype(float))]
    if done.empty:
        return pd.DataFrame(columns=["label", "params", "loss"]), None
    step = float(done["final_iter"].max())
    full = done[done["final_iter"] >= step].sort_values("final_val_loss").drop_duplicates("params")
    rows = [{"label": shape_of(r), "params": r["params"], "loss": r["final_val_loss"]} for _, r in full.iterrows()]
    return pd.DataFrame(rows), step


def confirmed_best(runs: Runs) -> tuple[dict[float, str], float] | None:
    """Per size (parameter count), the confirmed configuration with the lowest mean val loss over its seeds at
    the last step every confirmed run reached, and that step; None without a confirm stage."""
    confirmed = [n for n in sorted(runs.names) if n.startswith("confirm_") and not runs.missing([n])]
    steps = runs.steps(*confirmed) if confirmed else []
    if not steps:
        return None
    step = steps[-1]
    best: dict[float, str] = {}
    for n in sorted(confirmed, key=lambda n: runs.at(n, step).mean):
        best.setdefault(_params(runs.row(n)), n)
    return dict(sorted(best.items())), step


def _points(runs: Runs, names: list[str]) -> tuple[pd.DataFrame, float | None]:
    """Every seed's val loss of these runs at the last step all of them reached."""
    steps = runs.steps(*names)
    if not steps:
        return pd.DataFrame(columns=["label", "params", "loss"]), None
    step = steps[-1]
    rows = [{"label": n, "params": _params(runs.row(n)), "loss": v} for n in names for v in runs.at(n, step).values]
    return pd.DataFrame(rows), step


def size_line(points: pd.DataFrame, y: str = "loss", log_y: bool = False) -> tuple[float, float, int] | None:
    """(slope, its standard error, degrees of freedom) of a straight line through the sizes' means of `y`
    (of log y with `log_y`) against log10 N: each size one point, its seeds averaged, so the line's noise is the
    sizes' scatter about it (k sizes, k − 2 degrees of freedom); None below three sizes."""
    n, v = points["params"].to_numpy(float), points[y].to_numpy(float)
    ok = np.isfinite(v) & (n > 0) & ((v > 0) if log_y else True)
    n, v = n[ok], (np.log(v[ok]) if log_y else v[ok])
    sizes = np.unique(n)
    if len(sizes) < 3:
        return None
    x = np.log10(sizes)
    m = np.array([v[n == s].mean() for s in sizes])
    slope, intercept = np.polyfit(x, m, 1)
    resid = m - (slope * x + intercept)
    df = len(m) - 2
    se = math.sqrt(float(resid @ resid) / df / float(((x - x.mean()) ** 2).sum()))
    return float(slope), se, df


def scaling(runs: Runs, spec: VerdictSpec) -> list[Verdict]:
    """Loss against model size at one budget: ordered sizes, the power law's α, 10× ≈ −0.2, time and memory.

    Each larger size against the one before (paired by seed): every pair to hold, one to fail, each pair at
    1/(k − 1) of the level. The exponent and the drop per 10× from a line through the sizes' means (t with k − 2
    degrees of freedom: the sizes' scatter about the line is the noise, not only the seeds').
    """
    named = bool(runs.names & set(runs.order))
    points, step = size_points(runs, named)
    fitted = fit_of(runs)
    fit = fitted[0] if fitted else None
    out = []
    sizes = [n for n in runs.order if named and not runs.missing([n])]
    if named:
        e = "each larger model reaches a lower val loss"
        pairs = list(zip(sizes, sizes[1:]))
        if not pairs or step is None:
            out.append(cannot_tell(e, f"{len(sizes)} size(s) with results", spec.check))
        else:
            with share(len(pairs)):
                tests = [(b, a, compare(runs.at(b, step), runs.at(a, step))) for a, b in pairs]
                outcomes = [t.outcome(-1) for _, _, t in tests]
                weakest = max(tests, key=lambda x: x[2].effect)
                obs = (f"at step {step:.0f}: " + " > ".join(f"{n} {runs.at(n, step).text()}" for n in sizes)
                       + f"; the smallest gain, {weakest[0]} vs {weakest[1]}: {weakest[2].text()}")
                out.append(measured(e, all_of(outcomes), obs, weakest[2], n_seeds(runs, *sizes), step, spec.check,
                                    rule=f"each size against the one before, {weakest[2].how}, each pair at "
                                         f"1/{len(pairs)} of the level"))
    e = "the loss falls as a power of the parameter count: loss = a · N^(−α) with α > 0"
    line = size_line(points, log_y=True) if len(points) else None
    if fit is None or line is None:
        k = points["params"].nunique() if len(points) else 0
        out.append(cannot_tell(e, f"{k} distinct size(s), 3 needed for a line and its noise", spec.check))
    elif fit.min_seeds < 2:  # a search's best trial of each size: one seed, and chosen as the lowest of several
        out.append(cannot_tell(e, "one seed per size (the best searched trial of each): no noise estimate; confirm "
                                  "the best of each size over seeds", spec.check))
    else:
        seeds = {r["label"]: int(r["n_seeds"]) for _, r in fit.sizes.iterrows()}
        slope, se, df = line
        alpha = -slope / math.log(10)  # the line is ln loss per decade of N: α is per e-fold of N
        se_alpha = se / math.log(10)
        test = Test(alpha, se_alpha, df, p_value(alpha / se_alpha, df) if se else math.nan, (len(fit.sizes),) * 2,
                    T1, f"a line through the {len(fit.sizes)} sizes' mean log loss")
        interval = test.interval()
        obs = (f"α = {alpha:.4f} ± {test.stderr:.4f}"
               + (f" ({percent(coverage())} interval {interval[0]:.4f} to {interval[1]:.4f})" if interval else "")
               + f" over {len(fit.sizes)} sizes at step {fit.step:.0f} (the fit on every seed: {fit.power[1]:.4f}; the "
                 "Chinchilla form with an irreducible term is in the report's Model sizes)")
        out.append(measured(e, test.outcome(+1), obs, test, seeds, fit.step, spec.check,
                            rule=f"{test.how} against log N, two-sided t-test with {df} degrees of freedom"))
        e = f"10× more parameters lowers the loss by about 0.2 (accepted {DECADE_DROP[0]} to {DECADE_DROP[1]})"
        drop_line = size_line(points)
        slope, se, df = drop_line
        drop = -slope
        interval = t_interval(drop, se, df)
        lo, hi = DECADE_DROP
        outcome = UNKNOWN if interval is None else HOLDS if lo <= interval[0] and interval[1] <= hi else \
            NOT if interval[1] < lo or interval[0] > hi else NOISE
        obs = (f"{drop:.3f} ± {se:.3f} lower per 10× (a line through the sizes' mean loss against log10 N)"
               + (f", interval {interval[0]:.3f} to {interval[1]:.3f}" if interval else ""))
        out.append(Verdict(e, outcome, obs, drop, se, seeds, fit.step,
                           rule=f"the drop per 10×'s t interval (k − 2 = {df} degrees of freedom) inside [{lo}, {hi}]",
                           check=spec.check, interval=interval, coverage=coverage() if interval else None))
    if named and len(sizes) >= 2:
        for col, e, unit in (("time_s", "larger models take longer to train", "s"),
                             ("mem_mb", "larger models need more memory", " MB")):
            samples = {n: runs.per_seed(n, col) for n in sizes}
            if any(s.n == 0 for s in samples.values()):
                out.append(cannot_tell(e, f"{col} not recorded for every size", spec.check, n_seeds(runs, *sizes)))
                continue
            with share(len(sizes) - 1):
                tests = [compare(samples[b], samples[a]) for a, b in zip(sizes, sizes[1:])]
                weakest = min(tests, key=lambda t: t.effect)
                obs = (" < ".join(f"{n} {s.mean:.0f}{unit}" for n, s in samples.items())
                       + f"; smallest step: {weakest.text()}")
                out.append(measured(e, all_of([t.outcome(+1) for t in tests]), obs, weakest, n_seeds(runs, *sizes),
                                    None, spec.check, rule=f"each size against the one before, {weakest.how}, each "
                                                           f"pair at 1/{len(sizes) - 1} of the level"))
    return out
