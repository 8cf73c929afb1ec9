"""The report's figures: PNG files written with matplotlib's Agg backend (no display needed).

Each function writes one file and returns its path; `make_plots` writes all of an
experiment's figures into `<exp_dir>/plots/` and returns (caption, path) pairs for the report.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .load import Results, finite_curve
from .metrics import OVERFIT_CLASSES, PowerLaw, fit_power_law
from .verdicts import EQUIV_TOL, Runs, schedule, sizes

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..spaces import Experiment

DPI = 100


def slug(text: str) -> str:
    """A file-name-safe version of a trial label."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "trial"


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def _axes(title: str, xlabel: str = "step (optimizer iterations)", ylabel: str = "loss",
          size: tuple[float, float] = (8, 4.5)) -> tuple[Figure, Axes]:
    # a Figure of its own, not pyplot's global state: no backend to choose, nothing to close,
    # and safe in any process (Ray workers, headless machines)
    fig = Figure(figsize=size)
    ax = fig.subplots()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _legend(ax: Axes) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=9)


def trial_curves(res: Results, row: pd.Series, path: Path) -> Path:
    """Train and val loss of one trial, with its best val loss and, if any, where it diverged."""
    c = finite_curve(res, row["trial_id"])
    fig, ax = _axes(f"{row['label']}: train and val loss ({row['status']})")
    if len(c):
        ax.plot(c["iter"], c["train_loss"], marker="o", ms=3, label="train loss")
        ax.plot(c["iter"], c["val_loss"], marker="s", ms=3, label="val loss")
        if np.isfinite(row["best_val_loss"]):
            ax.scatter([row["best_iter"]], [row["best_val_loss"]], s=60, facecolors="none", edgecolors="k",
                       zorder=3, label=f"best val {row['best_val_loss']:.4f} (step {row['best_iter']:.0f})")
    else:
        ax.text(0.5, 0.5, "no evaluations", ha="center", va="center", transform=ax.transAxes)
    if row["status"] == "diverged":
        ax.axvline(row["diverged_at"], color="r", ls=":", label=f"diverged at step {row['diverged_at']:.0f}")
    _legend(ax)
    return _save(fig, path)


def val_comparison(res: Results, rows: pd.DataFrame, path: Path, title: str) -> Path:
    """Val loss of every trial in `rows` on one plot (the chapter's `plot_comparison`)."""
    fig, ax = _axes(title, ylabel="validation loss")
    for _, r in rows.iterrows():
        c = finite_curve(res, r["trial_id"])
        if len(c):
            ax.plot(c["iter"], c["val_loss"], marker="o", ms=3, label=r["label"])
    _legend(ax)
    return _save(fig, path)


def train_val(res: Results, rows: pd.DataFrame, path: Path, title: str) -> Path:
    """Train (dashed) and val (solid) loss of several trials, one colour per trial."""
    fig, ax = _axes(title)
    for i, (_, r) in enumerate(rows.iterrows()):
        c = finite_curve(res, r["trial_id"])
        if len(c):
            colour = f"C{i % 10}"
            ax.plot(c["iter"], c["val_loss"], color=colour, label=f"{r['label']} val")
            ax.plot(c["iter"], c["train_loss"], color=colour, ls="--", label=f"{r['label']} train")
    _legend(ax)
    return _save(fig, path)


def exp2_plots(res: Results, a: pd.Series, b: pd.Series, overlay: Path, difference: Path) -> list[Path]:
    """The two exp2 curves overlaid, and their absolute difference at shared steps against the 0.01 bound."""
    ca, cb = finite_curve(res, a["trial_id"]), finite_curve(res, b["trial_id"])
    fig, ax = _axes("Gradient accumulation vs large batch: val loss", ylabel="validation loss")
    for r, c, marker in ((a, ca, "o"), (b, cb, "s")):
        eff = f"{r['batch_size']:.0f}×{r['gradient_accumulation_steps']:.0f}"
        ax.plot(c["iter"], c["val_loss"], marker=marker, ms=4, label=f"{r['label']} (batch {eff})")
    _legend(ax)
    paths = [_save(fig, overlay)]
    m = ca[["iter", "val_loss"]].merge(cb[["iter", "val_loss"]], on="iter", suffixes=("_a", "_b"))
    fig, ax = _axes(f"|val loss difference|: {a['label']} vs {b['label']}", ylabel="|Δ validation loss|")
    ax.plot(m["iter"], (m["val_loss_a"] - m["val_loss_b"]).abs(), marker="o", label="|difference|")
    ax.axhline(EQUIV_TOL, color="r", ls="--", label=f"bound {EQUIV_TOL}")
    _legend(ax)
    paths.append(_save(fig, difference))
    return paths


def lr_schedules(res: Results, rows: pd.DataFrame, path: Path) -> Path:
    """Each trial's learning rate at every iteration, from gptcore.train.get_lr and its config."""
    fig, ax = _axes("Learning-rate schedules", ylabel="learning rate")
    styles = ["-", "--", "-.", ":"]
    for i, (_, r) in enumerate(rows.iterrows()):
        lr = schedule(res, r["trial_id"])
        # identical schedules would hide each other: vary the line style
        ax.plot(np.arange(len(lr)), lr, ls=styles[i % len(styles)], lw=2, label=r["label"])
    _legend(ax)
    return _save(fig, path)


def scaling(tab: pd.DataFrame, law: PowerLaw | None, path: Path) -> Path:
    """Final val loss against parameters (log x axis), with the fitted power law."""
    fig, ax = _axes("Val loss against model size", xlabel="parameters (non-embedding, log scale)",
                    ylabel="final validation loss")
    ax.set_xscale("log")
    ax.scatter(tab["params"], tab["final_val_loss"], zorder=3, label="trials")
    for _, r in tab.iterrows():
        ax.annotate(str(r["label"]), (r["params"], r["final_val_loss"]), textcoords="offset points", xytext=(5, 5),
                    fontsize=8)
    if law is not None:
        xs = np.geomspace(tab["params"].min() / 1.5, tab["params"].max() * 1.5, 100)
        ax.plot(xs, law(xs), "r--", label=f"fit: loss = {law.a:.3g}·N^({-law.alpha:.4f}), α = {law.alpha:.4f}")
    _legend(ax)
    return _save(fig, path)


def gaps(rows: pd.DataFrame, path: Path) -> Path:
    """Final gap (val − train) per trial as bars, with the chapter's class thresholds."""
    fig, ax = _axes("Overfitting: final gap = val − train", xlabel="trial", ylabel="gap")
    g = rows["final_gap"].astype(float).fillna(0.0)
    ax.bar(range(len(rows)), g, color=[f"C{i % 10}" for i in range(len(rows))])
    ax.set_xticks(range(len(rows)), [f"{lab}\n{cls}" for lab, cls in zip(rows["label"], rows["overfit_class"])],
                  fontsize=8)
    for (limit, name), colour in zip(OVERFIT_CLASSES, ("g", "orange", "r")):
        ax.axhline(limit, ls="--", color=colour, lw=1, label=f"{limit}: {name} below")
    _legend(ax)
    return _save(fig, path)


def make_plots(res: Results, exp: Experiment | None, exp_dir: Path, order: pd.DataFrame) -> list[tuple[str, Path]]:
    """Write every figure for this experiment into exp_dir/plots; (caption, path) pairs, comparisons first.

    Which comparison plots are drawn follows the checks the experiment file asks for.
    """
    out_dir = Path(exp_dir) / "plots"
    made: list[tuple[str, Path]] = []
    name = exp.title if exp else "experiment"
    with_results = order[order["n_evals"] > 0]
    if len(with_results):
        made.append(("Val loss of every trial",
                     val_comparison(res, with_results, out_dir / "val_loss_comparison.png",
                                    f"{name}: validation loss")))
    runs = Runs(res, exp.run_names if exp else [])
    for spec in exp.verdicts if exp else []:
        if spec.check == "same_curve" and not runs.missing([spec.against, spec.run]):
            a, b = runs.row(spec.against), runs.row(spec.run)
            p1, p2 = exp2_plots(res, a, b, out_dir / "exp2_overlay.png", out_dir / "exp2_difference.png")
            made += [(f"{spec.against} vs {spec.run}", p1), ("Their difference against 0.01", p2)]
    if exp is not None and exp.asks("overfits", "narrower_gap", "gap_trend") and len(with_results):
        made.append(("Train (dashed) vs val (solid)",
                     train_val(res, with_results, out_dir / "exp3_train_vs_val.png", f"{name}: train vs val")))
        made.append(("Final gaps and the overfitting classes", gaps(with_results, out_dir / "exp3_gaps.png")))
    if exp is not None and exp.asks("lower_at_start", "lower_at_end") and len(order):
        made.append(("Learning-rate schedules (gptcore.train.get_lr)",
                     lr_schedules(res, order, out_dir / "exp4_lr_schedules.png")))
        if len(with_results):
            made.append(("Loss under each schedule",
                         train_val(res, with_results, out_dir / "exp4_curves.png", f"{name}: loss curves")))
    if exp is not None and exp.asks("scaling"):
        tab = sizes(res, exp.run_names if runs.names & set(exp.run_names) else None)
        if len(tab):
            law = fit_power_law(tab["params"], tab["final_val_loss"])
            made.append(("Val loss against parameters, with the fitted power law",
                         scaling(tab, law, out_dir / "exp5_scaling.png")))
    for _, r in order.iterrows():
        made.append((f"{r['label']}: train and val", trial_curves(res, r, out_dir / f"curves_{slug(r['label'])}.png")))
    return made
