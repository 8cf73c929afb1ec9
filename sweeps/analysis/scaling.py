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

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar, nnls

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
    """Both fits, their bootstrap draws, and the next size up; `to_json` is results/exp5/scaling.json."""

    step: float
    sizes: pd.DataFrame  # one row per size: label, params, n_seeds, mean, std
    power: tuple[float, float]  # a, alpha
    chinchilla: tuple[float, float, float]  # E, A, alpha
    slope: float  # loss change per 10x parameters
    boot_power: np.ndarray  # (B, 2)
    boot_chinchilla: np.ndarray  # (B, 3)
    boot_slope: np.ndarray  # (B,)
    next_params: float

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

    The same points give the same fit (the bootstrap's seed is fixed), so it is computed once per
    analysis: the verdicts, the report and the plot all ask for it.
    """
    rows = sorted(map(tuple, points[["params", "loss", "label"]].itertuples(index=False)))
    key = (tuple(rows), step, n_boot, seed)
    if key not in _CACHE:
        if len(_CACHE) > 8:
            _CACHE.clear()
        _CACHE[key] = _fit(points, step, n_boot, seed)
    return _CACHE[key]


_CACHE: dict[tuple, Scaling | None] = {}


def _fit(points: pd.DataFrame, step: float, n_boot: int, seed: int) -> Scaling | None:
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
    rng = np.random.default_rng(seed)
    boot_p, boot_c, boot_s = [], [], []
    if sizes["n_seeds"].min() >= 2:
        for _ in range(n_boot):
            draw = [g.iloc[rng.integers(0, len(g), len(g))] for g in groups]
            bn = np.concatenate([d["params"].to_numpy(float) for d in draw])
            by = np.concatenate([d["loss"].to_numpy(float) for d in draw])
            boot_p.append(fit_power(bn, by))
            boot_c.append(fit_chinchilla(bn, by))
            boot_s.append(_slope_per_decade(bn, by))
    params = sizes["params"].to_numpy()
    return Scaling(step=step, sizes=sizes, power=fit_power(n, y), chinchilla=fit_chinchilla(n, y),
                   slope=_slope_per_decade(n, y), boot_power=np.array(boot_p).reshape(-1, 2),
                   boot_chinchilla=np.array(boot_c).reshape(-1, 3), boot_slope=np.array(boot_s),
                   next_params=float(params[-1] ** 2 / params[-2]))
