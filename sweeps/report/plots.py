"""The report's figures: PNG files, each a matplotlib Figure of its own (no display, no pyplot state).

Curves are drawn per run: the mean over its seeds, with a band of one standard deviation (each
seed as a thin line when there are few). `make_plots` draws a judged experiment (`judgement.Analysis`)
into `<exp_dir>/plots/` and returns (caption, path) pairs for the report; which comparison figures
it draws follows the checks the experiment file asks for. Nothing here judges or fits.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from sweeps.experiment.specs import EQUIV_TOL
from sweeps.report.analysis import Analysis
from sweeps.results.frames import Results, lr_schedule
from sweeps.results.metrics import OVERFIT_CLASSES, overfit_class
from sweeps.verdicts import search
from sweeps.verdicts.lr_law import LrScaling
from sweeps.verdicts.scaling import Scaling
from sweeps.verdicts.verdict import Runs

if TYPE_CHECKING:
    from matplotlib.axes import Axes

DPI = 100
MAX_LEGEND = 12  # more curves than this: no legend over the plot (the report's tables name them)


def slug(text: str) -> str:
    """A file-name-safe version of a run's label."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "run"


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def _axes(title: str, xlabel: str = "step (optimizer iterations)", ylabel: str = "loss",
          size: tuple[float, float] = (8, 4.5)) -> tuple[Figure, Axes]:
    fig = Figure(figsize=size)
    ax = fig.subplots()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _legend(ax: Axes) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles and len(handles) <= MAX_LEGEND:
        ax.legend(fontsize=9)


def _band(ax: Axes, g: pd.DataFrame, column: str, colour: str, label: str | None, ls: str = "-") -> None:
    """The mean over seeds, and mean ± std where there are two seeds or more."""
    ax.plot(g["iter"], g[f"{column}_mean"], color=colour, ls=ls, marker="o" if ls == "-" else None, ms=3, label=label)
    std = g[f"{column}_std"].fillna(0.0)
    if (g["n"] > 1).any():
        ax.fill_between(g["iter"], g[f"{column}_mean"] - std, g[f"{column}_mean"] + std, color=colour, alpha=0.18,
                        lw=0)


def _label(name: str, grouped: pd.DataFrame) -> str:
    n = int(grouped.loc[grouped["name"] == name, "n"].max()) if (grouped["name"] == name).any() else 0
    return f"{name} (mean of {n} seeds)" if n > 1 else name


def run_curves(runs: Runs, name: str, grouped: pd.DataFrame, path: Path) -> Path:
    """Train and val loss of one run: every seed thin, the mean thick with its band."""
    fig, ax = _axes(f"{name}: train and val loss ({', '.join(sorted(set(runs.trials(name)['status'])))})")
    g = grouped[grouped["name"] == name]
    for c in runs.curves(name):
        ax.plot(c["iter"], c["train_loss"], color="C0", lw=0.6, alpha=0.5)
        ax.plot(c["iter"], c["val_loss"], color="C1", lw=0.6, alpha=0.5)
    if len(g):
        _band(ax, g, "train", "C0", "train loss")
        _band(ax, g, "val", "C1", "val loss")
    else:
        ax.text(0.5, 0.5, "no evaluations", ha="center", va="center", transform=ax.transAxes)
    for _, r in runs.trials(name).iterrows():
        if r["status"] == "diverged":
            ax.axvline(r["diverged_at"], color="r", ls=":",
                       label=f"seed {r['seed']} diverged at {r['diverged_at']:.0f}")
    _legend(ax)
    return _save(fig, path)


def val_comparison(grouped: pd.DataFrame, names: list[str], path: Path, title: str) -> Path:
    """Val loss of every run on one plot (the chapter's `plot_comparison`), mean and band over seeds."""
    fig, ax = _axes(title, ylabel="validation loss")
    for i, n in enumerate(names):
        g = grouped[grouped["name"] == n]
        if len(g):
            _band(ax, g, "val", f"C{i % 10}", _label(n, grouped))
    _legend(ax)
    return _save(fig, path)


def train_val(grouped: pd.DataFrame, names: list[str], path: Path, title: str) -> Path:
    """Train (dashed) and val (solid) loss of several runs, one colour per run."""
    fig, ax = _axes(title)
    for i, n in enumerate(names):
        g = grouped[grouped["name"] == n]
        if len(g):
            _band(ax, g, "val", f"C{i % 10}", f"{n} val")
            _band(ax, g, "train", f"C{i % 10}", f"{n} train", ls="--")
    _legend(ax)
    return _save(fig, path)


def iteration_noise(runs: Runs, names: list[str], path: Path) -> Path:
    """The logged training loss at every iteration of each seed: how noisy each run's training is."""
    fig, ax = _axes("Training loss per iteration (each seed)", ylabel="training loss (one step)")
    iters = runs.res.iters
    for i, n in enumerate(names):
        for k, tid in enumerate(runs.trials(n).sort_values("seed", kind="stable")["trial_id"]):
            x = iters[iters["trial_id"] == tid].sort_values("iter")
            ax.plot(x["iter"], x["loss"], color=f"C{i % 10}", lw=0.7, alpha=0.7,
                    label=f"{n} (batch {runs.row(n)['batch_size']:.0f})" if k == 0 else None)
    _legend(ax)
    return _save(fig, path)


def exp2_plots(runs: Runs, grouped: pd.DataFrame, ref: str, name: str, overlay: Path, difference: Path) -> list[Path]:
    """The two curves overlaid, and each seed's |val difference| at the shared steps against the 0.01 bound."""
    fig, ax = _axes(f"{name} vs {ref}: val loss", ylabel="validation loss")
    for i, n in enumerate((ref, name)):
        r = runs.row(n)
        _band(ax, grouped[grouped["name"] == n], "val", f"C{i}",
              f"{n} (batch {r['batch_size']:.0f}×{r['gradient_accumulation_steps']:.0f})")
    _legend(ax)
    paths = [_save(fig, overlay)]
    fig, ax = _axes(f"|val loss difference|: {name} vs {ref}, seed by seed", ylabel="|Δ validation loss|")
    for (_, seed), ca, cb in zip(runs.trials(name).sort_values("seed", kind="stable")["seed"].items(),
                                 runs.curves(name), runs.curves(ref)):
        m = ca[["iter", "val_loss"]].merge(cb[["iter", "val_loss"]], on="iter", suffixes=("_a", "_b"))
        ax.plot(m["iter"], (m["val_loss_a"] - m["val_loss_b"]).abs(), marker="o", ms=3, label=f"seed {seed}")
    ax.axhline(EQUIV_TOL, color="r", ls="--", label=f"bound {EQUIV_TOL}")
    _legend(ax)
    paths.append(_save(fig, difference))
    return paths


def lr_schedules(res: Results, runs: Runs, names: list[str], path: Path) -> Path:
    """Each run's learning rate at every iteration, from gptcore.train.get_lr and its config."""
    fig, ax = _axes("Learning-rate schedules", ylabel="learning rate")
    styles = ["-", "--", "-.", ":"]
    for i, n in enumerate(names):
        lr = lr_schedule(res, runs.row(n)["trial_id"])
        # identical schedules would hide each other: vary the line style
        ax.plot(np.arange(len(lr)), lr, ls=styles[i % len(styles)], lw=2, label=n)
    _legend(ax)
    return _save(fig, path)


def scaling_plot(fit: Scaling, points: pd.DataFrame, path: Path) -> Path:
    """Val loss against parameters (log x axis): each seed, both fitted laws, the bootstrap band and the next size."""
    fig, ax = _axes(f"Val loss against model size (step {fit.step:.0f})",
                    xlabel="parameters (non-embedding, log scale)", ylabel="validation loss")
    ax.set_xscale("log")
    ax.scatter(points["params"], points["loss"], s=14, alpha=0.6, label="each seed")
    ax.errorbar(fit.sizes["params"], fit.sizes["mean"], yerr=fit.sizes["std"].fillna(0), fmt="o", color="k",
                capsize=3, label="mean ± std")
    for _, r in fit.sizes.iterrows():
        ax.annotate(str(r["label"]), (r["params"], r["mean"]), textcoords="offset points", xytext=(5, 5), fontsize=8)
    xs = np.geomspace(fit.sizes["params"].min() / 1.5, fit.next_params * 1.2, 100)
    a, alpha = fit.power
    ax.plot(xs, a * xs ** -alpha, "b:", label=f"power law a·N^(−{alpha:.3f})")
    e, big_a, c_alpha = fit.chinchilla
    ax.plot(xs, fit.predict(xs)[0], "r--", label=f"{e:.3f} + A·N^(−{c_alpha:.3f})")
    if (band := fit.band(xs)) is not None:
        ax.fill_between(xs, band[0], band[1], color="r", alpha=0.15, lw=0, label="95% band (bootstrap over seeds)")
    ax.axvline(fit.next_params, color="grey", ls=":", lw=1, label=f"next size up ({fit.next_params:,.0f})")
    _legend(ax)
    return _save(fig, path)


def lr_scaling_plot(fit: LrScaling, path: Path) -> Path:
    """The best learning rate of each size against parameters (log-log): each size's best searched rate, the law's,
    its band at the verdict's level and the next size's prediction."""
    fig, ax = _axes("Best learning rate against model size", xlabel="parameters (non-embedding, log scale)",
                    ylabel="best learning rate (log scale)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    s = fit.sizes
    ax.scatter(s["params"], s["best_searched_lr"], s=16, alpha=0.5, color="grey", label="best searched trial")
    ax.scatter(s["params"], s["lr"], s=36, color="k", zorder=3, label="the law's best (fitted to every trial)")
    for _, r in s.iterrows():
        ax.annotate(str(r["label"]) + ("" if r["bracketed"] else " (not bracketed)"), (r["params"], r["lr"]),
                    textcoords="offset points", xytext=(5, 5), fontsize=8)
    xs = np.geomspace(s["params"].min() / 1.5, fit.next_params * 1.2, 100)
    c, beta = fit.fit
    ax.plot(xs, fit.predict(xs)[0], "r--", label=f"{c:.3g}·N^(−{beta:.3f})")
    if (band := fit.band(xs)) is not None:
        ax.fill_between(xs, band[0], band[1], color="r", alpha=0.15, lw=0, label="the law's interval")
    nx = fit.to_json()["next_size"]
    err = None
    if nx["interval"]:
        err = [[nx["predicted_lr"] - nx["interval"][0]], [nx["interval"][1] - nx["predicted_lr"]]]
    ax.errorbar([nx["params"]], [nx["predicted_lr"]], yerr=err, fmt="D", color="r", capsize=3,
                label=f"next size up ({nx['params']:,.0f}): {nx['predicted_lr']:.3g}")
    _legend(ax)
    return _save(fig, path)


def gaps(runs: Runs, names: list[str], path: Path) -> Path:
    """Final gap (val − train) per run as bars with the seeds' std, and the chapter's class thresholds."""
    fig, ax = _axes("Overfitting: final gap = val − train", xlabel="run", ylabel="gap")
    means, stds, ticks = [], [], []
    for n in names:
        steps = runs.steps(n)
        g = runs.at(n, steps[-1], "gap") if steps else None
        means.append(g.mean if g and g.n else 0.0)
        stds.append(g.std if g and g.n > 1 else 0.0)
        ticks.append(f"{n}\n{overfit_class(means[-1])}")
    ax.bar(range(len(names)), means, yerr=stds, capsize=4, color=[f"C{i % 10}" for i in range(len(names))])
    ax.set_xticks(range(len(names)), ticks, fontsize=8)
    for (limit, name), colour in zip(OVERFIT_CLASSES, ("g", "orange", "r")):
        ax.axhline(limit, ls="--", color=colour, lw=1, label=f"{limit}: {name} below")
    _legend(ax)
    return _save(fig, path)


def make_plots(a: Analysis, exp_dir: Path) -> list[tuple[str, Path]]:
    """Write every figure of this analysis into exp_dir/plots; (caption, path) pairs, comparisons first."""
    out_dir = Path(exp_dir) / "plots"
    made: list[tuple[str, Path]] = []
    res, exp, names, runs, grouped, fit = a.res, a.exp, a.names, a.runs, a.grouped, a.scaling
    title = exp.title if exp else "experiment"
    if a.search is not None:
        return _search_plots(a, out_dir, title)
    with_results = [n for n in names if not runs.missing([n])]
    if with_results:
        made.append(("Val loss of every run", val_comparison(grouped, with_results, out_dir / "val_loss_comparison.png",
                                                             f"{title}: validation loss")))
    for spec in exp.verdicts if exp else []:
        if spec.check == "noisier" and not runs.missing([spec.run, spec.against]):
            made.append((f"Training loss per iteration: {spec.run} against {spec.against}",
                         iteration_noise(runs, [spec.against, spec.run], out_dir / "noise.png")))
        if spec.check == "same_curve" and not runs.missing([spec.against, spec.run]):
            p1, p2 = exp2_plots(runs, grouped, spec.against, spec.run, out_dir / "exp2_overlay.png",
                                out_dir / "exp2_difference.png")
            made += [(f"{spec.against} vs {spec.run}", p1), ("Their difference against 0.01, seed by seed", p2)]
    if exp is not None and exp.asks("overfits", "narrower_gap") and with_results:
        made.append(("Train (dashed) vs val (solid)",
                     train_val(grouped, with_results, out_dir / "exp3_train_vs_val.png", f"{title}: train vs val")))
        made.append(("Final gaps and the overfitting classes", gaps(runs, with_results, out_dir / "exp3_gaps.png")))
    if exp is not None and exp.asks("lower_at_start", "lower_at_end") and names:
        made.append(("Learning-rate schedules (gptcore.train.get_lr)",
                     lr_schedules(res, runs, [n for n in names if runs.row(n) is not None],
                                  out_dir / "exp4_lr_schedules.png")))
        if with_results:
            made.append(("Loss under each schedule",
                         train_val(grouped, with_results, out_dir / "exp4_curves.png", f"{title}: loss curves")))
    if fit is not None:
        made.append(("Val loss against parameters, with both fitted laws",
                     scaling_plot(fit[0], fit[1], out_dir / "exp5_scaling.png")))
    for n in names:
        made.append((f"{n}: train and val", run_curves(runs, n, grouped, out_dir / f"curves_{slug(n)}.png")))
    return made


# ----------------------------------------------------------------------------------------
# a search


def _axis_values(values: list) -> tuple[np.ndarray, list[str] | None, bool]:
    """Values as positions on an axis: numbers as they are (log where they span 4x), choices (and a few
    whole numbers, such as batch sizes) as 0, 1, ..."""
    numbers = search.numeric(values)
    if numbers and search.as_choices(values):
        labels = [str(int(v)) for v in sorted(set(values))]
        return np.array([labels.index(str(int(v))) for v in values], dtype=float), labels, False
    if numbers:
        x = np.array(values, dtype=float)
        return x, None, bool(len(x) and np.all(x > 0) and x.max() / x.min() >= 4)
    labels = sorted({str(v) for v in values})
    return np.array([labels.index(str(v)) for v in values], dtype=float), labels, False


def slices(params: dict[str, list], y: np.ndarray, completed: np.ndarray, step: float, path: Path) -> Path:
    """Val loss at the judging step against each searched value; trials run to the end and stopped ones apart."""
    fig = Figure(figsize=(4 * max(1, len(params)), 4))
    axes = np.atleast_1d(fig.subplots(1, max(1, len(params)), sharey=True))
    for ax, (name, values) in zip(axes, params.items()):
        x, labels, log = _axis_values(values)
        ax.scatter(x[completed], y[completed], s=18, label="trained to the end")
        ax.scatter(x[~completed], y[~completed], s=18, marker="x", color="C3", label="stopped early")
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # the decade labels only: minor ones overlap
        if labels:
            ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlabel(name)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(f"val loss at step {step:.0f}")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Slices: val loss against each searched value ({int(np.isfinite(y).sum())} of {len(y)} trials "
                 f"reached step {step:.0f})")
    return _save(fig, path)


def parallel(params: dict[str, list], y: np.ndarray, path: Path) -> Path:
    """Parallel coordinates: every trial a line across the searched values, coloured by its val loss."""
    fig, ax = _axes("Parallel coordinates (colour: val loss, darker is lower)", xlabel="", ylabel="scaled value")
    names = list(params)
    cols = []
    for n in names:
        x, _, log = _axis_values(params[n])
        x = np.log(x) if log else x
        span = x.max() - x.min()
        cols.append((x - x.min()) / span if span else np.zeros_like(x))
    grid = np.column_stack(cols + [(y - np.nanmin(y)) / (np.nanmax(y) - np.nanmin(y) or 1)])
    order = np.argsort(-np.nan_to_num(y, nan=np.inf))  # the best drawn last, on top
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    for i in order:
        if np.isfinite(y[i]):
            ax.plot(range(len(names) + 1), grid[i], color=cmap(grid[i, -1]), alpha=0.6, lw=1)
    ax.set_xticks(range(len(names) + 1), names + ["val loss"], fontsize=9)
    return _save(fig, path)


def importance_bars(importances: dict[str, float], step: float, path: Path) -> Path:
    """Optuna's parameter importance, one bar per searched parameter."""
    fig, ax = _axes(f"Parameter importance (PED-ANOVA, val loss at step {step:.0f})", xlabel="importance",
                    ylabel="", size=(7, 1 + 0.5 * len(importances)))
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names])
    return _save(fig, path)


def top_curves(runs: Runs, names: list[str], path: Path, title: str) -> Path:
    """Val loss of the best trials of a search (one seed each), with where each stopped."""
    fig, ax = _axes(title, ylabel="validation loss")
    for i, n in enumerate(names):
        for c in runs.curves(n):
            ax.plot(c["iter"], c["val_loss"], color=f"C{i % 10}", marker="o", ms=2, label=n)
    _legend(ax)
    return _save(fig, path)


TOP_CURVES = 8  # a search's best trials drawn in one figure


def _search_plots(a: Analysis, out_dir: Path, title: str) -> list[tuple[str, Path]]:
    """A search's figures, a fixed number whatever its size: the best trials, slices, parallel coordinates,
    importance, the confirm stage, the scaling fit, and one figure per confirmed configuration."""
    made: list[tuple[str, Path]] = []
    res, runs, grouped, names, fit, facts = a.res, a.runs, a.grouped, a.names, a.scaling, a.search
    best = list(facts.ranked["name"][:TOP_CURVES])
    if best:
        made.append((f"Val loss of the {len(best)} best trials", top_curves(runs, best, out_dir / "search_best.png",
                                                                             f"{title}: the best trials")))
    trials, step, params = facts.trials, facts.step, facts.params
    if step is not None and params:
        y = search.values_at(res, trials, step).to_numpy()
        completed = (trials["status"] == "completed").to_numpy()
        made.append((f"Slices at step {step:.0f}", slices(params, y, completed, step, out_dir / "search_slices.png")))
        made.append(("Parallel coordinates", parallel(params, y, out_dir / "search_parallel.png")))
        imp = facts.importance
        if imp:
            made.append(("Parameter importance", importance_bars(imp, step, out_dir / "search_importance.png")))
    confirmed = [n for n in names if n.startswith("confirm_")]
    if confirmed:
        made.append(("The confirm stage: each configuration over its seeds",
                     val_comparison(grouped, confirmed, out_dir / "confirm.png", f"{title}: confirmed")))
    if fit is not None:
        made.append(("Val loss against parameters, with both fitted laws",
                     scaling_plot(fit[0], fit[1], out_dir / "exp5_scaling.png")))
    if a.lr_scaling is not None:
        made.append(("The best learning rate against parameters",
                     lr_scaling_plot(a.lr_scaling, out_dir / "exp5_lr_scaling.png")))
    for n in confirmed:
        made.append((f"{n}: train and val", run_curves(runs, n, grouped, out_dir / f"curves_{slug(n)}.png")))
    return made
