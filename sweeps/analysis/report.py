"""`report.md` for one experiment, and the same summary as plain text for the terminal.

The report is Markdown that reads well on GitHub: tables, then the figures by relative link
(`plots/x.png`), so the experiment folder can be committed or copied as it is.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..render import markdown_table, md_cell, text_table
from .load import CONFIG_COLUMNS, STATUS_NOTES, Results, read_json
from .metrics import Compute, compute_accounting, fit_power_law
from .plots import make_plots
from .verdicts import Runs, Verdict, best_trial, sizes, verdicts

if TYPE_CHECKING:
    from ..spaces import Experiment

SAMPLE_CHARS = 120


def order_trials(trials: pd.DataFrame, exp: Experiment | None) -> pd.DataFrame:
    """The experiment file's run order (each run's seeds together), then everything else by name and id."""
    rank = {n: i for i, n in enumerate(exp.run_names if exp else ())}
    key = trials["name"].map(lambda n: rank.get(n, len(rank)))
    return (trials.assign(_k=key).sort_values(["_k", "name", "seed", "trial_id"], kind="stable")
            .drop(columns="_k"))


# ----------------------------------------------------------------------------------------
# formatting


def _f(x: Any, digits: int = 4) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "N/A"
    return f"{v:.{digits}f}" if math.isfinite(v) else "N/A"


def _secs(x: Any) -> str:
    v = float(x) if x is not None else math.nan
    return f"{v:.1f}s" if math.isfinite(v) else "N/A"


def _count(x: float) -> str:
    if not math.isfinite(x):
        return "N/A"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.2f}{unit}"
    return f"{x:.0f}"


def _setting(value: Any) -> str:
    """A sweep.json value in words: a dict (the scheduler's settings) as key=value pairs."""
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k}={v}" for k, v in value.items()) + ")"
    return "none" if value is None else str(value)


def _holds(h: bool | None) -> str:
    return {True: "✅ yes", False: "❌ no", None: "– cannot tell"}[h]


def summary_rows(trials: pd.DataFrame) -> list[list[str]]:
    """The chapter's summary table (section 3.2): name, train loss, val loss, gap, training time, plus status."""
    return [[r["label"], _f(r["final_train_loss"]), _f(r["final_val_loss"]), _f(r["final_gap"]), _secs(r["time_s"]),
             r["status"]] for _, r in trials.iterrows()]


SUMMARY_HEADERS = ["name", "train loss", "val loss", "gap", "training time", "status"]


def compute_lines(c: Compute) -> list[str]:
    """The compute-accounting section: what ran, against every trial run to max_iters."""
    if not c.iters_planned:
        return ["No trial has a known max_iters, so there is nothing to account against."]

    def share(x: float) -> str:
        return f"{x / c.iters_planned:.1%}"

    rows = [["run", _count(c.iters_run), _count(c.tokens_run), share(c.iters_run)],
            ["every trial to max_iters", _count(c.iters_planned), _count(c.tokens_planned), "100%"],
            ["saved by early stopping", _count(c.saved_by_stopping_iters), "", share(c.saved_by_stopping_iters)],
            ["ended by divergence", _count(c.lost_to_divergence_iters), "", share(c.lost_to_divergence_iters)],
            ["lost to errors / interrupted / never started", _count(c.other_iters), "", share(c.other_iters)]]
    lines = markdown_table(["", "iterations", "tokens", "share of full runs"], rows)
    lines.append("")
    extra = [f"Trial time in total: {_secs(c.time_run_s)}."]
    if c.saved_by_stopping_iters:
        extra.append(f"Early stopping saved {share(c.saved_by_stopping_iters)} of the iterations a full run of every "
                     f"trial would have taken (≈ {_secs(c.time_saved_est_s)} at each stopped trial's own pace).")
    else:
        extra.append("No trial was stopped early, so early stopping saved nothing here.")
    if c.unknown:
        extra.append(f"{c.unknown} trial(s) with an unknown max_iters are left out.")
    if c.retried_rows:
        extra.append(f"Retries re-reported {c.retried_rows} evaluation(s) (de-duplicated above; their compute was "
                     "spent twice).")
    lines.append(" ".join(extra))
    return lines


def _sample_cell(text: str) -> str:
    t = text[:SAMPLE_CHARS]  # newlines become ↵ in the cell
    return f"{t}…" if len(text) > SAMPLE_CHARS else (t or "–")


# ----------------------------------------------------------------------------------------
# the report


def render_report(res: Results, exp: Experiment | None, vs: list[Verdict], plots: list[tuple[str, Path]],
                  exp_dir: Path, sweep_info: dict[str, Any] | None = None) -> str:
    """The report as Markdown text; plot links are relative to exp_dir."""
    trials = order_trials(res.trials, exp)
    counts = trials["status"].value_counts()
    heading = exp.title if exp else f"{(sweep_info or {}).get('exp') or 'Experiment'}: results"
    lines = [f"# {heading}", ""]
    source = "hand-made training logs" if res.source == "logs" else "the sweep's trial folders"
    lines.append(f"{len(trials)} trial(s): " + ", ".join(f"{n} {s}" for s, n in counts.items())
                 + f". Read from {source}.")
    if sweep_info:
        keys = [k for k in ("profile", "search", "scheduler", "num_samples", "seeds") if k in sweep_info]
        if keys:
            lines.append("Sweep: " + ", ".join(f"{k} {_setting(sweep_info[k])}" for k in keys) + ".")
        if sweep_info.get("command"):
            cmd = sweep_info["command"]
            lines += ["", f"Command: `{' '.join(cmd) if isinstance(cmd, list) else cmd}`"]
    lines.append("")

    lines += ["## Summary", "", "The chapter's summary table, at each trial's last evaluation.", ""]
    lines += markdown_table(SUMMARY_HEADERS, summary_rows(trials))
    used = [s for s in STATUS_NOTES if s in counts and s != "completed"]
    if used:
        lines += [""] + [f"- *{s}*: {STATUS_NOTES[s]}." for s in used]
    lines.append("")

    lines += ["## Verdicts", ""]
    if vs:
        lines += ["Each expectation of the chapter, checked against these results.", ""]
        lines += markdown_table(["expectation", "observed", "holds"],
                                [[v.expectation, v.observed, _holds(v.holds)] for v in vs])
    else:
        lines.append(f"No chapter expectations for {exp.name if exp else 'an unnamed experiment'}: pass --exp "
                     "exp1 ... exp5 (or an experiment file with `verdicts:`) to check them.")
    best = best_trial(res)
    if best is not None:
        cfg = ", ".join(f"{k}={best[k]:g}" if isinstance(best[k], float) else f"{k}={best[k]}"
                        for k in CONFIG_COLUMNS if k in best and k not in ("max_iters", "block_size", "eval_interval"))
        lines += ["", f"Best trial: **{md_cell(best['label'])}**, val loss {_f(best['best_val_loss'])} at step "
                      f"{best['best_iter']:.0f} ({cfg})."]
    lines.append("")

    lines += ["## Overfitting", "",
              "Gap = val − train at the last evaluation: < 0.1 healthy, < 0.3 slight, < 0.5 moderate, else severe "
              "(the chapter's `calculate_overfitting`). *Bottomed out* is the step of the lowest val loss.", ""]
    lines += markdown_table(["name", "final step", "gap", "class", "best val loss", "bottomed out at step"],
                            [[r["label"], _f(r["final_iter"], 0), _f(r["final_gap"]), r["overfit_class"],
                              _f(r["best_val_loss"]), _f(r["best_iter"], 0)] for _, r in trials.iterrows()])
    lines.append("")

    if exp is not None and exp.asks("scaling"):
        named = exp.run_names if Runs(res).names & set(exp.run_names) else None
        tab = sizes(res, named)
        lines += ["## Model sizes", ""]
        if len(tab):
            lines += markdown_table(
                ["model", "parameters", "training time", "final val loss", "peak memory", "text sample"],
                [[r["label"], f"{r['params']:,.0f}", _secs(r["time_s"]), _f(r["final_val_loss"]),
                  f"{r['mem_mb']:.0f} MB" if math.isfinite(r["mem_mb"]) else "N/A",
                  _sample_cell(r["sample"])] for _, r in tab.iterrows()])
            law = fit_power_law(tab["params"], tab["final_val_loss"])
            if law is not None:
                lines += ["", f"Fitted law: {law.describe()}; exponent α = {law.alpha:.4f}."]
        else:
            lines.append("No size has a finite final val loss.")
        lines.append("")

    lines += ["## Compute", ""] + compute_lines(compute_accounting(trials)) + [""]

    lines += ["## Plots", ""]
    per_trial = [(c, p) for c, p in plots if p.name.startswith("curves_")]
    for caption, p in plots:
        if p.name.startswith("curves_"):
            continue
        rel = p.relative_to(exp_dir).as_posix()
        lines += [f"### {caption}", "", f"![{caption}]({rel})", ""]
    if per_trial:
        lines += ["### Each trial", ""]
        if len(per_trial) <= 8:
            for caption, p in per_trial:
                lines += [f"![{caption}]({p.relative_to(exp_dir).as_posix()})", ""]
        else:  # a search with many trials: links, not a wall of images
            lines += [f"- [{md_cell(c)}]({p.relative_to(exp_dir).as_posix()})" for c, p in per_trial] + [""]

    notes = [f"{r['label']}: {r['status']}" + (f" — {r['error']}" if r["error"] else "")
             for _, r in trials.iterrows() if r["status"] in ("errored", "not started")]
    notes += res.notes
    if notes:
        lines += ["## Notes", ""] + [f"- {md_cell(n)}" for n in notes] + [""]
    return "\n".join(lines)


def summary_text(res: Results, exp: Experiment | None, vs: list[Verdict]) -> str:
    """The summary table and verdicts as plain text, for the terminal at the end of a sweep."""
    out = [text_table(SUMMARY_HEADERS, summary_rows(order_trials(res.trials, exp)), align="l" * 6)]
    for v in vs:
        mark = {True: "[ok]  ", False: "[no]  ", None: "[??]  "}[v.holds]
        out.append(f"{mark}{v.expectation}: {v.observed}")
    return "\n".join(out)


def write_outputs(res: Results, exp: Experiment | None, exp_dir: Path,
                  sweep_info: dict[str, Any] | None = None) -> tuple[Path, list[Verdict]]:
    """Write trials.csv, history.csv, plots/*.png and report.md into exp_dir; the report path and verdicts."""
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    res.trials.to_csv(exp_dir / "trials.csv", index=False)
    res.history.to_csv(exp_dir / "history.csv", index=False)
    vs = verdicts(exp, res)
    plots = make_plots(res, exp, exp_dir, order_trials(res.trials, exp))
    report = exp_dir / "report.md"
    report.write_text(render_report(res, exp, vs, plots, exp_dir, sweep_info) + "\n", encoding="utf-8")
    return report, vs


def read_sweep_info(exp_dir: Path) -> dict[str, Any] | None:
    """sweep.json (how the sweep was started), or None when absent or unreadable."""
    return read_json(Path(exp_dir) / "sweep.json")
