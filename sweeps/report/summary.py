"""The terminal's view of a judged experiment, and the formatting the report shares with it.

`summary_text` is what the sweep command prints at the end (the chapter's summary table, each
verdict in a line, the runs early stopping ended, the seeds each run got); `runs_table` is the
summary table alone, for a sweep that did not finish (nothing judged). The small formatters
(`fmt`, `mean_std`, ...) are the report's too (markdown.py).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from sweeps.report.tables import text_table
from sweeps.verdicts.stats import sample
from sweeps.verdicts.verdict import Verdict

if TYPE_CHECKING:
    from sweeps.report.analysis import Analysis
    from sweeps.results.frames import Results

SUMMARY_HEADERS = ["name", "seeds", "train loss", "val loss", "gap", "training time", "status"]


def fmt_value(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def fmt(x: Any, digits: int = 4) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "N/A"
    return f"{v:.{digits}f}" if math.isfinite(v) else "N/A"


def mean_std(values, digits: int = 4, unit: str = "") -> str:
    """mean ± std over seeds ('N/A' with none; the value alone with one)."""
    s = sample(values)
    if not s.n:
        return "N/A"
    return f"{s.mean:.{digits}f}{unit}" + (f" ± {s.std:.{digits}f}{unit}" if s.n > 1 else "")


def secs(x: Any) -> str:
    v = float(x) if x is not None else math.nan
    return f"{v:.1f}s" if math.isfinite(v) else "N/A"


def count(x: float) -> str:
    if not math.isfinite(x):
        return "N/A"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.2f}{unit}"
    return f"{x:.0f}"


def setting(value: Any) -> str:
    """A sweep.json value in words: a dict (the scheduler's settings) as key=value pairs, a list joined."""
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k}={v}" for k, v in value.items()) + ")"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return "none" if value is None else str(value)


def status_text(t: pd.DataFrame) -> str:
    """How a run's seeds ended, e.g. `3 completed` or `2 stopped early at 100, 1 diverged`."""
    parts = []
    for status, g in t.groupby("status", sort=False):
        at = sorted({int(x) for x in g["final_iter"]})
        where = f" at {', '.join(map(str, at))}" if status in ("stopped early", "interrupted", "diverged") else ""
        parts.append(f"{len(g)} {status}{where}" if len(t) > 1 else f"{status}{where}")
    return ", ".join(parts)


def summary_rows(res: Results, names: list[str]) -> list[list[str]]:
    """The chapter's summary table (section 3.2), one row per run: its seeds' last evaluations, mean ± std."""
    rows = []
    for n in names:
        t = res.trials[res.trials["name"] == n]
        rows.append([n, str(len(t)), mean_std(t["final_train_loss"]), mean_std(t["final_val_loss"]),
                     mean_std(t["final_gap"]), mean_std(t["time_s"], 1, "s"), status_text(t)])
    return rows


def effect_text(v: Verdict) -> str:
    if v.effect is None or not math.isfinite(v.effect):
        return "–"
    return f"{v.effect:+.4f}" + (f" ± {v.stderr:.4f}" if v.stderr is not None and math.isfinite(v.stderr) else "")


def outcome_text(v: Verdict) -> str:
    """The outcome in bold; a within-noise one with the effect's 95% interval."""
    return f"**{v.outcome}**" + (f": {v.noise_text().removeprefix('within noise: ')}" if v.noise_text() else "")


def seeds_text(v: Verdict) -> str:
    return ", ".join(f"{k} {n}" for k, n in v.n_seeds.items()) or "–"


def stopped_runs(a: Analysis) -> list[dict]:
    """Each run early stopping ended: where, its rank there by mean val loss, and its verdicts decided there."""
    t = a.res.trials
    out = []
    for name in a.names:
        mine = t[t["name"] == name]
        if mine.empty or not (mine["status"] == "stopped early").all():
            continue
        rung = float(mine["final_iter"].max())
        there = {}
        for other in a.names:  # the runs whose every seed reached the rung, ranked by their mean there
            if other == name or rung in a.runs.steps(other):
                val = a.runs.at(other, rung)
                if val.n:
                    there[other] = val.mean
        ranked = sorted(there, key=lambda n: (there[n], n))
        decided = [v for v in a.verdicts if next(iter(v.n_seeds), None) == name]
        out.append({"run": name, "rung": rung, "rank": ranked.index(name) + 1 if name in there else None,
                    "of": len(ranked), "verdicts": decided})
    return out


def runs_table(res: Results, names: list[str], best: list[list[str]] | None = None, searched: int = 0) -> str:
    """The summary table of `names` alone, nothing judged: for a sweep that did not finish, or --no-analyze.
    `best`: rows (trial, status, step, val loss) of a search's best trials, shown first, of `searched`."""
    out = []
    if best:
        out.append(text_table(["trial", "status", "step", "val loss"], best))
        out.append(f"(the best {len(best)} of {searched} searched trials; all in trials.csv)")
    if names:
        out.append(text_table(SUMMARY_HEADERS, summary_rows(res, names), align="l" * len(SUMMARY_HEADERS)))
    return "\n".join(out)


def best_rows(ranked: pd.DataFrame, k: int = 10) -> list[list[str]]:
    """Rows (trial, status, step, val loss) of the first `k` of a search's ranked trials."""
    return [[r["name"], r["status"], fmt(r["final_iter"], 0), fmt(r["final_val_loss"])]
            for _, r in ranked.head(k).iterrows()]


def summary_text(a: Analysis) -> str:
    """The summary table and the verdicts as plain text, for the terminal."""
    ranked = a.search.ranked if a.search is not None else None
    best = best_rows(ranked) if ranked is not None else None
    out = [runs_table(a.res, a.names, best, len(ranked) if ranked is not None else 0)] if len(a.res.trials) else []
    for v in a.verdicts:
        effect = f" ({effect_text(v)} at step {v.step:.0f})" if v.effect is not None and v.step is not None else ""
        noise = f"; {v.noise_text()}" if v.noise_text() else ""
        out.append(f"[{v.outcome}] {v.expectation}{effect}: {v.observed}{noise}")
    for s in stopped_runs(a):
        rank = f", rank {s['rank']} of {s['of']}" if s["rank"] else ""
        said = ", ".join(f"{v.check} {v.outcome}" for v in s["verdicts"]) or "none of its own"
        out.append(f"stopped early: {s['run']} at step {s['rung']:.0f}{rank}; its verdicts decided there: {said}")
    for r in a.seeding or []:
        out.append(f"seeds: {r['run']} {r['seeds']} ({r['why']})")
    return "\n".join(o for o in out if o)
