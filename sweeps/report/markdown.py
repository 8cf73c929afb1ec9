"""`report.md` of a judged experiment (an `Analysis`, sweeps/report/analysis.py).

The report is Markdown that reads well on GitHub: tables, then the figures by relative link
(`plots/x.png`), so the experiment folder can be committed or copied as it is. Runs are summarised
over their seeds (mean ± std); every verdict shows its effect, its standard error, the seeds and
the step it was judged at. Nothing here judges: every figure comes from the Analysis.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sweeps.report.analysis import Analysis, order_trials
from sweeps.report.summary import (
    SUMMARY_HEADERS,
    count,
    effect_text,
    fmt,
    fmt_value,
    mean_std,
    outcome_text,
    secs,
    seeds_text,
    setting,
    stopped_runs,
    summary_rows,
)
from sweeps.report.tables import markdown_table, md_cell
from sweeps.results.frames import CONFIG_COLUMNS
from sweeps.results.metrics import Compute, overfit_class
from sweeps.results.trial import STATUS_NOTES
from sweeps.verdicts.family import FamilyRate, family_rate
from sweeps.verdicts.search import TOP
from sweeps.verdicts.stats import RULE, sample

SAMPLE_CHARS = 120


def _search_section(a: Analysis) -> list[str]:
    """The search's trials (the best TOP, every searched value, the step each reached), importance, confirm."""
    facts = a.search
    trials, params, step = facts.ranked, facts.params, facts.step
    info = a.info or {}
    lines = ["## Search", "", f"{len(trials)} trials, sampler {info.get('sampler') or '?'}, "
             f"scheduler {setting(info.get('scheduler'))}. The best {min(TOP, len(trials))}, those trained furthest "
             "first and then by val loss at their last evaluation (every trial is in `trials.csv`; the study is "
             "`optuna.journal`, for `optuna-dashboard` or `optuna.load_study`):", ""]
    values = {k: dict(zip(facts.trials["trial_id"], v)) for k, v in params.items()}
    rows = [[r["name"], r["status"], fmt(r["final_iter"], 0), fmt(r["final_val_loss"]), fmt(r["final_gap"])]
            + [fmt_value(values[k].get(r["trial_id"])) for k in params] for _, r in trials.head(TOP).iterrows()]
    lines += markdown_table(["trial", "status", "step", "val loss", "gap"] + list(params), rows) + [""]
    imp = facts.importance
    if imp:
        lines += [f"Parameter importance (Optuna's PED-ANOVA) of the val loss at step {step:.0f}, which "
                  "every judged trial reached:", ""]
        lines += markdown_table(["parameter", "importance"], [[k, f"{v:.3f}"] for k, v in imp.items()]) + [""]
    elif step is not None:
        lines += [f"Parameter importance: fewer than 5 trials at step {step:.0f}, not computed.", ""]
    table = facts.confirm
    if table:
        lines += ["### Searched against confirmed", "",
                  "The best of many noisy trials is optimistic (the winner's curse): each of the best configurations "
                  "and the reference run, trained again to the full budget over the seeds.", ""]
        lines += markdown_table(["configuration", "searched val loss (one seed)", "at step", "confirmed val loss",
                                 "searched − confirmed"],
                                [[c["name"], fmt(c["searched"]), fmt(c["searched_step"], 0), c["confirmed"].text(),
                                  fmt(c["curse"])] for c in table]) + [""]
    return lines


def compute_lines(c: Compute) -> list[str]:
    """The compute-accounting section: what ran, against every trial run to max_iters."""
    if not c.iters_planned:
        return ["No trial has a known max_iters, so there is nothing to account against."]

    def share(x: float) -> str:
        return f"{x / c.iters_planned:.1%}"

    rows = [["run", count(c.iters_run), count(c.tokens_run), share(c.iters_run)],
            ["every trial to max_iters", count(c.iters_planned), count(c.tokens_planned), "100%"],
            ["saved by early stopping", count(c.saved_by_stopping_iters), "", share(c.saved_by_stopping_iters)],
            ["ended by divergence", count(c.lost_to_divergence_iters), "", share(c.lost_to_divergence_iters)],
            ["lost to errors / interrupted / never started", count(c.other_iters), "", share(c.other_iters)]]
    lines = markdown_table(["", "iterations", "tokens", "share of full runs"], rows)
    lines.append("")
    extra = [f"Trial time in total: {secs(c.time_run_s)}."]
    if c.saved_by_stopping_iters:
        extra.append(f"Early stopping saved {share(c.saved_by_stopping_iters)} of the iterations a full run of every "
                     f"trial would have taken (≈ {secs(c.time_saved_est_s)} at each stopped trial's own pace).")
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


def _sizes_section(a: Analysis) -> list[str]:
    lines = ["## Model sizes", ""]
    runs, fit = a.runs, a.scaling
    names = [n for n in a.exp.run_names if n in runs.names]
    if names:
        rows = []
        for n in names:
            t = runs.trials(n)
            sample_text = next((x for x in t.sort_values("seed")["sample"] if x), "")
            rows.append([n, f"{float(t['n_params'].iloc[0]):,.0f}", mean_std(t["time_s"], 1, "s"),
                         mean_std(t["final_val_loss"]), mean_std(t["mem_mb"], 0, " MB"), _sample_cell(sample_text)])
        lines += markdown_table(["model", "parameters", "training time", "final val loss", "peak memory",
                                 "text sample (first seed)"], rows)
        lines.append("")
    elif fit is not None:  # a search: the best of each size, as fitted
        sizes = fit[0].to_json()["sizes"]
        lines += ["The best configuration of each size, as fitted:", ""]
        lines += markdown_table(["size", "parameters", "seeds", "val loss"],
                                [[z["label"], f"{z['params']:,.0f}", z["n_seeds"],
                                  f"{z['mean_val_loss']:.4f}" + (f" ± {z['std_val_loss']:.4f}"
                                                                 if z["std_val_loss"] is not None else "")]
                                 for z in sizes])
        lines.append("")
    if fit is None:
        return lines + ["Fewer than two sizes have results at a shared step: no scaling fit.", ""] + _lr_lines(a)
    j = fit[0].to_json()

    def ci(x) -> str:
        return f"[{x[0]:.4f}, {x[1]:.4f}]" if x else "(one seed: no interval)"

    pl, ch, nx = j["power_law"], j["chinchilla"], j["next_size"]
    draws = j["bootstrap"]["draws"]
    lines += [f"Fitted at step {j['step']:.0f}, every size at the same budget, on each seed's val loss "
              + (f"(95% intervals: bootstrap over seeds, {draws} draws):" if draws else
                 "(one seed per size: no intervals; confirm the best of each size over seeds for them):"), "",
              f"- power law: loss = {pl['a']:.3g} · N^(−α), α = {pl['alpha']:.4f} {ci(pl['alpha_ci'])}",
              f"- Chinchilla form: loss = E + A · N^(−α), E = {ch['E']:.4f} {ci(ch['E_ci'])}, A = {ch['A']:.3g}, "
              f"α = {ch['alpha']:.4f} {ci(ch['alpha_ci'])}",
              f"- the next size up, {nx['params']:,.0f} parameters: predicted val loss {nx['predicted_loss']:.4f} "
              f"{ci(nx['interval'])}", ""]
    if ch["E_ci"] and ch["E_ci"][0] <= 1e-9:
        lines += [f"E rests on its bound E ≥ 0 (interval {ci(ch['E_ci'])}): these sizes are far from the loss no size "
                  "can beat, so the data cannot place it and the Chinchilla form reduces to the power law. Larger "
                  "models (the full profile) would show the floor.", ""]
    return lines + _lr_lines(a) + ["In `scaling.json`.", ""]


def _lr_lines(a: Analysis) -> list[str]:
    """The best learning rate of each size against its parameter count (a search's `lr_scaling`)."""
    if a.lr_scaling is None:
        if a.exp is not None and a.exp.asks("lr_scaling") and a.search is not None:
            return ["### The best learning rate against size", "",
                    "The searched trials are too few for the model (or show no bowl in learning rate): no fit.", ""]
        return []
    j = a.lr_scaling.to_json()

    def ci(x) -> str:
        return f"[{x[0]:.3g}, {x[1]:.3g}]" if x else "(no interval)"

    cover = f"{100 * j['coverage']:.3g}%"
    loo = {o["label"]: o for o in j["leave_one_out"]["sizes"]}
    lines = ["### The best learning rate against size", "",
             "One model fitted to every searched trial at the search's judging step: loss = a_size + k · (log10 lr − "
             "log10 lr*(N))² with lr*(N) = c · N^(−β) (a level per size, one curvature). How well each size's best "
             f"rate is located is part of the fit; intervals ({cover}) are the fit's t intervals with {j['df']} "
             "degrees of freedom (docs/verdicts.md). A size whose best rate lies outside the rates it was searched "
             "at, or that had fewer than three, is *not bracketed*; the law is judged with three bracketed sizes or "
             "more.",
             "",
             f"- β = {j['beta']:.3f} {ci(j['beta_ci'])}, c = {j['c']:.3g}; curvature {j['curvature']:.3f} loss per "
             f"decade² of learning rate; residual sd {j['residual_sd']:.4f}",
             f"- the next size up, {j['next_size']['params']:,.0f} parameters: predicted best learning rate "
             f"{j['next_size']['predicted_lr']:.3g} {ci(j['next_size']['interval'])}",
             f"- leave one size out (the law fitted on the others predicts its best searched rate): median "
             f"|ln(predicted / best)| {j['leave_one_out']['median_abs_log_error']:.3f}", ""]
    rows = [[z["label"], f"{z['params']:,.0f}", f"{z['best_lr']:.3g}", f"{z['best_searched_lr']:.3g}",
             f"{z['n_trials']} ({z['rates']} rates)", "yes" if z["bracketed"] else "no",
             f"{loo[z['label']]['predicted_lr']:.3g}" if z["label"] in loo else "–",
             f"{loo[z['label']]['ratio']:.2f}×" if z["label"] in loo else "–"] for z in j["sizes"]]
    lines += markdown_table(["size", "parameters", "the law's best lr", "best searched lr", "trials", "bracketed",
                             "predicted leaving it out", "predicted / best searched"], rows)
    return lines + [""]


def render_report(a: Analysis, plots: list[tuple[str, Path]], exp_dir: Path) -> str:
    """The report as Markdown text; plot links are relative to exp_dir."""
    res, exp, vs, names, sweep_info = a.res, a.exp, a.verdicts, a.names, a.info
    trials = order_trials(res.trials, exp)
    counts = trials["status"].value_counts()
    lines = [f"# {a.title}", ""]
    source = "hand-made training logs" if res.source == "logs" else "the sweep's trial folders"
    lines.append(f"{len(names)} run(s), {len(trials)} trial(s): " + ", ".join(f"{n} {s}" for s, n in counts.items())
                 + f". Read from {source}.")
    if where := environment_text(res.envs):
        lines.append(where)
    if sweep_info:
        keys = [k for k in ("profile", "search", "scheduler", "num_samples", "seeds") if k in sweep_info]
        if keys:
            lines.append("Sweep: " + ", ".join(f"{k} {setting(sweep_info[k])}" for k in keys) + ".")
        if sweep_info.get("command"):
            cmd = sweep_info["command"]
            lines += ["", f"Command: `{' '.join(cmd) if isinstance(cmd, list) else cmd}`"]
    lines.append("")

    if a.search is not None:
        lines += _search_section(a)
    lines += ["## Summary", "", "The chapter's summary table, at each trial's last evaluation: mean ± std over a run's "
              "seeds.", ""]
    lines += markdown_table(SUMMARY_HEADERS, summary_rows(res, names))
    used = [s for s in STATUS_NOTES if s in counts and s != "completed"]
    if used:
        lines += [""] + [f"- *{s}*: {STATUS_NOTES[s]}." for s in used]
    lines.append("")

    lines += ["## Verdicts", ""]
    if vs:
        lines += [f"Each expectation of the chapter, measured. Outcome rule: {RULE}; a difference the seeds cannot "
                  "separate from zero is *within noise*, one seed is never decisive (*cannot tell*). The effect "
                  "is the difference the verdict rests on, ± its standard error over seeds; a within-noise "
                  "verdict gives the effect's interval from the same test, at the level it was judged at "
                  "(docs/verdicts.md). Also in `verdicts.json`.", ""]
        lines += markdown_table(["expectation", "outcome", "effect", "step", "seeds", "observed"],
                                [[v.expectation, outcome_text(v), effect_text(v), fmt(v.step, 0), seeds_text(v),
                                  v.observed] for v in vs])
        lines += ["", family_of(a).text()]
    else:
        lines.append(f"No chapter expectations for {exp.name if exp else 'an unnamed experiment'}: pass --exp "
                     "exp1 ... exp5 (or an experiment file with `verdicts:`) to check them.")
    lines += _seeds_section(a) + _stopping_section(a)
    if a.best is not None:
        name, step, val = a.best
        row = res.trials[res.trials["name"] == name].iloc[0]
        cfg = ", ".join(f"{k}={row[k]:g}" if isinstance(row[k], float) else f"{k}={row[k]}"
                        for k in CONFIG_COLUMNS if k in row and k not in ("seed", "max_iters", "block_size",
                                                                          "eval_interval"))
        lines += ["", f"Best run at the largest budget a whole run reached (step {step:.0f}; runs stopped earlier "
                      f"are not ranked by their last loss): **{md_cell(name)}**, val loss {val.text()} ({cfg})."]
    lines.append("")

    lines += ["## Overfitting", "",
              "Gap = val − train at the last evaluation: < 0.1 healthy, < 0.3 slight, < 0.5 moderate, else severe "
              "(the chapter's `calculate_overfitting`), classified by the mean over seeds. *Bottomed out* is the "
              "step of the lowest val loss (median over seeds).", ""]
    rows = []
    for n in names if names else []:
        t = trials[trials["name"] == n]
        gap = sample(t["final_gap"])
        rows.append([n, fmt(t["final_iter"].median(), 0), mean_std(t["final_gap"]), overfit_class(gap.mean),
                     mean_std(t["best_val_loss"]), fmt(t["best_iter"].median(), 0)])
    lines += markdown_table(["name", "final step", "gap", "class", "best val loss", "bottomed out at step"], rows)
    lines.append("")

    if exp is not None and exp.asks("scaling", "lr_scaling"):
        lines += _sizes_section(a)

    lines += ["## Compute", ""] + compute_lines(a.compute) + [""]

    lines += ["## Plots", ""]
    for caption, p in plots:
        lines += [f"### {caption}", "", f"![{caption}]({p.relative_to(exp_dir).as_posix()})", ""]

    notes = [f"{r['label']}: {r['status']}" + (f" — {r['error']}" if r["error"] else "")
             for _, r in trials.iterrows() if r["status"] in ("errored", "not started")]
    notes += res.notes
    if notes:
        lines += ["## Notes", ""] + [f"- {md_cell(n)}" for n in notes] + [""]
    return "\n".join(lines)


def environment_text(envs: dict[str, dict]) -> str:
    """Where the trials ran, from their config.json: `Ran on cpu in bfloat16 (24 trials), ...` (the figures
    depend on it: another dtype or processor gives other losses); '' when no trial recorded it."""
    known = [e for e in envs.values() if e.get("device")]
    if not known:
        return ""
    combos = Counter((e["device"], e.get("dtype", "?")) for e in known)
    hw = Counter(e.get("gpu") or (e.get("cpu", "") + (", bfloat16 in hardware" if e.get("cpu_bf16") else ""))
                 for e in known)
    threads = Counter(e.get("threads") for e in known if e.get("threads"))
    torch_v = sorted({str(e["torch"]) for e in known if e.get("torch")})
    text = "Ran on " + ", ".join(f"{d} in {t} ({n} trial(s))" for (d, t), n in combos.most_common())
    text += " · " + "; ".join(h for h, _ in hw.most_common() if h)
    if threads:
        text += " · " + ", ".join(f"{t} torch thread(s) a trial" for t, _ in threads.most_common())
    return text + (f" · torch {', '.join(torch_v)}" if torch_v else "") + "."


def family_of(a: Analysis) -> FamilyRate:
    """The sweep's family-wise figure (sweeps/verdicts/family.py): measured where the benchmark ran its design."""
    info = a.info or {}
    grid = info.get("search") == "grid"
    return family_rate(a.exp.name if a.exp is not None and grid else None, info.get("profile"),
                       info.get("seed_range"), info.get("family"), len(a.verdicts))


def _seeds_section(a: Analysis) -> list[str]:
    """With a range of seeds: how many each run ended with, and why."""
    if not a.seeding:
        return []
    info = (a.info or {}).get("seed_range") or {}
    looks = ", ".join(map(str, info.get("looks", [])))
    return ["", "### Seeds per run", "",
            f"Every run trained with {info.get('min')} seeds first; a verdict still within noise then had "
            f"{info.get('step')} more seeds trained for each run it rests on, and was judged again, up to "
            f"{info.get('max')} (looks at {looks} seeds). Each look uses the Pocock level in the rule above, so "
            "that without a true effect a decisive verdict comes out 5% of the time over all looks "
            "(docs/verdicts.md).", ""] + markdown_table(["run", "seeds", "why"],
                                                       [[r["run"], str(r["seeds"]), r["why"]] for r in a.seeding])


def _stopping_section(a: Analysis) -> list[str]:
    stopped = stopped_runs(a)
    if not stopped:
        return []
    rows = []
    for s in stopped:
        said = "; ".join(f"{v.check or v.expectation} {v.outcome}"
                         + (f" ({effect_text(v)})" if v.effect is not None else "")
                         for v in s["verdicts"]) or "none rests on it alone"
        rank = f"{s['rank']} of {s['of']}" if s["rank"] else "?"
        rows.append([s["run"], fmt(s["rung"], 0), rank, said])
    return ["", "### Runs stopped early", "",
            "Successive halving stops a run at a rung when its mean val loss ranks below the runs that continue, "
            "and only when every verdict resting on it is decided there (a verdict within noise keeps its run "
            "going). Its verdicts are judged at that rung:", ""] + markdown_table(
        ["run", "stopped at step", "rank there", "its verdicts, decided there"], rows)


