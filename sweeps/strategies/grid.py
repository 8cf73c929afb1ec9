"""The grid: the chapter's exact runs, each over a range of training seeds, with successive halving by run.

- plan: every run of the file x its least seeds, the costliest first (`--order`); with a range of
  seeds, the looks add more where a verdict is still within noise (seeds.py);
- Tune: `SeedSearcher` hands out the trials (and the seeds the looks add), `SeedGroupHalving`
  stops runs at rungs (halving.py), both sharing `--max-concurrent` as `Slots`;
- judging: the file's verdicts, look by look over the seeds (sweeps/verdicts/sequential.py).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import TYPE_CHECKING, Any

from sweeps.experiment.files import KNOBS
from sweeps.report.tables import text_table
from sweeps.strategies.base import Slots, Strategy, TuneParts, ViewSpec, decision_log
from sweeps.strategies.plan import estimated_flops, trial_config, value_text

if TYPE_CHECKING:
    from sweeps.experiment.specs import Experiment
    from sweeps.report.analysis import Analysis
    from sweeps.results.frames import Results
    from sweeps.strategies.plan import Plan, PlanRequest

ORDERS = ("auto", "file", "longest-first")


def _short(key: str) -> str:
    return {"learning_rate": "lr", "gradient_accumulation_steps": "accum"}.get(key, key)


class Grid(Strategy):
    name = "grid"

    # -- the plan ------------------------------------------------------------------------

    def plan(self, exp: Experiment, profile: str, ask: PlanRequest, common: dict[str, Any]) -> dict[str, Any]:
        runs = exp.grid_runs(profile)
        seed_range = common["seed_range"]
        # every run trains once per seed; the seeds follow the run's own (the config's) seed
        trials = [trial_config({**run, "seed": run.get("seed", exp.base_values.get("seed", 1337)) + i}, exp)
                  for run in runs for i in range(seed_range.least)]
        seeds = tuple(sorted({t["seed"] for t in trials}))
        # the start order changes no outcome (the scheduler decides on the values at its rungs), only how
        # well the trials fill the slots
        order = ask.order if ask.order != "auto" else "longest-first"
        if order == "longest-first":
            # Every trial runs to the end, so the sweep's wall time is set by whichever slot finishes last;
            # starting the costliest trials first leaves only short ones to fill in at the end (a stable
            # sort: equal costs keep the file's order).
            trials = sorted(trials, key=lambda t: -estimated_flops(t))
        # a range: up to `most` seeds for every run (the searcher adds them where a verdict is undecided)
        return {"trials": trials, "num_samples": len(runs) * seed_range.most, "planned_trials": len(trials),
                "order": order, "seeds": seeds}

    def scheduler_text(self, plan: Plan) -> str:
        return ("successive halving by run: a run's seeds continue or stop together, on their mean"
                + (f"; {plan.exp.reference} is never stopped" if plan.exp.reference else ""))

    def describe(self, plan: Plan) -> list[str]:
        base = plan.trials[0]
        lines = ["start order: " + ("the file's" if plan.order == "file" else
                                    "longest first by estimated compute (choose with --order file)")]
        varied = [k for k in KNOBS if len({value_text(t[k]) for t in plan.trials}) > 1]
        lines.append("shared by every trial: " + ", ".join(f"{k}={value_text(base[k])}" for k in KNOBS
                                                            if k not in varied))
        lines.append("")
        rows = [[t["name"]] + [value_text(t[k]) for k in varied]
                + [f"{t['batch_size'] * t['gradient_accumulation_steps'] * t['block_size']:,}",
                   f"{estimated_flops(t) / 1e12:.1f}"] for t in plan.trials]
        lines.append(text_table(["trial"] + [_short(k) for k in varied] + ["tokens/iter", "~TFLOP"], rows,
                                rule=False))
        total_iters = sum(t["max_iters"] for t in plan.trials)
        total_tokens = sum(t["max_iters"] * t["batch_size"] * t["gradient_accumulation_steps"] * t["block_size"]
                           for t in plan.trials)
        n_runs, n_seeds = len(plan.exp.run_names), len(plan.seeds)
        lines += ["", f"{n_runs} runs x {n_seeds} seed{'s' if n_seeds > 1 else ''} "
                      f"({', '.join(map(str, plan.seeds))}) = {len(plan.trials)} trials, {total_iters:,} iterations "
                      f"and {total_tokens:,} tokens in all if none stops early"]
        if not plan.seed_range.fixed:
            lines += _compute_range(plan, total_iters, total_tokens)
        return lines

    # -- on Tune -------------------------------------------------------------------------

    def _view(self, plan: Plan) -> ViewSpec:
        n = plan.seed_range.text()
        return ViewSpec(title=f"{plan.exp.name}: {len(plan.exp.run_names)} runs x {n} seed{'s' if n != '1' else ''}, "
                              f"profile {plan.profile}, {plan.max_iters} iterations each",
                        planned_trials=len(plan.trials),
                        planned_runs=dict(Counter(t["name"] for t in plan.trials)))

    def tune(self, plan: Plan, exp_path: str, seed: int) -> TuneParts:
        from sweeps.strategies.halving import SeedGroupHalving
        from sweeps.strategies.seeds import SeedSearcher, VerdictHold

        slots, concurrent = None, plan.max_concurrent
        if plan.scheduler is not None and concurrent is not None:
            # trials wait at rungs: Tune's limit would count them as running (base.Slots)
            slots, concurrent = Slots(concurrent), None
        # Tune lets a Searcher have one trial pending at a time (it waits for results to suggest the
        # next); a grid's trials are known: let them all wait for resources, as a plain grid would
        if "TUNE_MAX_PENDING_TRIALS_PG" not in os.environ:
            os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(max(16, plan.num_samples))
        from sweeps.verdicts.sequential import design

        # every verdict's design: the rungs where a run may stop, the looks at seeds (sweeps/verdicts/stats.py)
        how = design(plan.seed_range, plan.scheduler, plan.max_iters)
        # the grid's trials in order, then (a range of seeds) the seeds the looks add
        seeder = SeedSearcher(plan.trials, plan.exp, plan.seed_range, slots=slots, design=how, family=plan.family)
        seeder.log = decision_log(exp_path)
        scheduler = None
        if plan.scheduler is not None:
            scheduler = SeedGroupHalving(plan.scheduler.grace_period, plan.scheduler.reduction_factor, plan.max_iters,
                                         n_trials=len(plan.trials), protected=tuple(filter(None, [plan.exp.reference])),
                                         # no run stopped while a verdict resting on it is within noise
                                         hold=VerdictHold(plan.exp, how, plan.family) if plan.exp.verdicts else None,
                                         slots=slots)
            scheduler.log = seeder.log
        varied = sorted({k for t in plan.trials for k in t if len({str(u.get(k)) for u in plan.trials}) > 1}
                        - {"name"})
        return TuneParts(search_alg=seeder, scheduler=scheduler, max_concurrent=concurrent,
                         param_space=dict(plan.trials[0]), table_columns=varied,
                         shown=(scheduler, seeder if not plan.seed_range.fixed else None), view=self._view(plan))

    # -- the results (the analysis is imported here: a plan and a dry run need none of it) --

    def judge(self, res: Results, exp: Experiment | None, info: dict[str, Any] | None) -> Analysis:
        from sweeps.report.analysis import analysis, file_order
        from sweeps.verdicts.judging import file_verdicts
        from sweeps.verdicts.sequential import design_of, judge_looks, seed_reasons, seeds_of, sequential_verdicts
        from sweeps.verdicts.verdict import Runs, best_run

        runs = Runs(res, exp.run_names if exp else [])
        family = (info or {}).get("family")
        seeding = None
        if exp is not None and exp.verdicts and runs.names & set(exp.run_names):
            judged = judge_looks(exp, runs, design_of(info, res), family)
            verdicts = sequential_verdicts(judged)
            if (seeds := seeds_of(info)) is not None:
                seeding = seed_reasons(exp, res, judged, seeds)
        else:
            verdicts = file_verdicts(exp, runs, family)
        return analysis(res, exp, info, runs, file_order(res, exp), verdicts, best=best_run(res), seeding=seeding)

    def names(self, res: Results, exp: Experiment | None) -> list[str]:
        from sweeps.report.analysis import file_order

        return file_order(res, exp)

    def summary_table(self, res: Results, exp: Experiment | None) -> str:
        from sweeps.report.summary import runs_table

        return runs_table(res, self.names(res, exp))

    def worth_keeping(self, res: Results) -> set[str]:
        from sweeps.verdicts.verdict import best_run

        best = best_run(res)
        return {best[0]} if best else set()


def _compute_range(plan: Plan, first_iters: int, first_tokens: int) -> list[str]:
    """The least and the most a grid with a range of seeds can cost, for the dry run."""
    r = plan.seed_range
    per_seed = {}  # run -> (iterations, tokens) of one seed to the end
    for t in plan.trials:
        per_seed[t["name"]] = (t["max_iters"],
                               t["max_iters"] * t["batch_size"] * t["gradient_accumulation_steps"] * t["block_size"])
    most_iters = sum(i for i, _ in per_seed.values()) * r.most
    most_tokens = sum(k for _, k in per_seed.values()) * r.most
    least = first_iters
    if plan.scheduler is not None:  # every run but the reference stopped at the first rung
        rung = plan.scheduler.grace_period
        least = sum(i if n == plan.exp.reference else min(i, rung) for n, (i, _) in per_seed.items()) * r.least
    return [f"seeds {r.text()} per run: {r.least} first, then {r.step} more at a time (seeds at each look: "
            f"{', '.join(map(str, r.looks))}) for the runs whose verdicts are still within noise;",
            f"  least compute: {least:,} iterations"
            + (" (every run but the reference stopped at the first rung, no seed added)" if plan.scheduler
               else f" and {first_tokens:,} tokens (no seed added)"),
            f"  most compute: {len(per_seed) * r.most} trials, {most_iters:,} iterations and {most_tokens:,} tokens "
            f"(every run to the end with {r.most} seeds)"]
