"""The search: an Optuna study over the file's space, ASHA early stopping, then a confirm stage over seeds.

- plan: N sampled trials from the profile's base config (`--num-samples`), the sampler chosen
  by the space and the budget (sampling.py), then the confirm stage: the best K configurations
  (or the best of each value of `confirm_per`) and the reference, re-run over the seeds;
- Tune: `StudySearcher` asks and tells the study on disk (study.py); `SearchASHA` stops trials
  (asha.py); as many trials at once as the cluster holds, unless `--max-concurrent`;
- the live view: `SearchPanel`, the search's block above its running trials and the confirm stage;
- judging: the file's search verdicts at the search's judging step, and the confirm stage's
  verdict (sweeps/verdicts/search.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gptcore.errors import UserError
from sweeps.experiment.files import KNOBS
from sweeps.experiment.specs import TIME_ATTR, SeedRange
from sweeps.results.trial import CONFIRM, DIVERGED, ERRORED, SEARCH, STOPPED, of_stage
from sweeps.storage.local import driver_file
from sweeps.strategies.base import Strategy, TuneParts, ViewSpec, concurrency_now, decision_log
from sweeps.strategies.plan import trial_config, value_text
from sweeps.strategies.sampling import Confirm, choose_sampler
from sweeps.view.state import ENDED, RUNNING, WAITING, Panel, View
from sweeps.view.text import fmt_loss, fmt_value

if TYPE_CHECKING:
    from sweeps.experiment.specs import Experiment
    from sweeps.report.analysis import Analysis
    from sweeps.results.frames import Results
    from sweeps.strategies.plan import Plan, PlanRequest

SHAPE_KEYS = ("n_layer", "n_head", "n_embd")


def num_search(plan: Plan) -> int:
    """A search's own trials, before the confirm stage."""
    return plan.num_samples - (plan.confirm.n_trials if plan.confirm else 0)


def searched_keys(space: dict) -> set[str]:
    """The config keys a search sets: the space's, a `shape` as its three."""
    return set(space) | (set(SHAPE_KEYS) if "shape" in space else set())


class Search(Strategy):
    name = "optuna"

    # -- the plan ------------------------------------------------------------------------

    def plan(self, exp: Experiment, profile: str, ask: PlanRequest, common: dict[str, Any]) -> dict[str, Any]:
        if not exp.space(profile):
            raise UserError(f"{exp.name} has no search: {exp.no_search_reason or 'its file defines no optuna.space'}"
                            f"; run its grid (drop --search optuna)")
        trials = [trial_config({**exp.profile_base(profile), "name": "optuna"}, exp)]
        num_samples = ask.num_samples or exp.optuna_samples
        seed_range, notes = common["seed_range"], []
        n_seeds = seed_range.least
        if not seed_range.fixed:
            notes.append(f"seeds: a search's confirm stage trains with {n_seeds} (the range {seed_range.text()} "
                         "is for a grid's runs)")
            seed_range = SeedRange(n_seeds, n_seeds)
        sampler, why = choose_sampler(ask.sampler, exp.space(profile), num_samples)
        seeds = tuple(trials[0]["seed"] + i for i in range(n_seeds))
        confirm = None
        if ask.confirm:
            reference = None
            if exp.reference:
                run = next(r for r in exp.grid_runs(profile) if r["name"] == exp.reference)
                reference = trial_config(run, exp)
            per = exp.confirm_per
            k = len(exp.space(profile)[per].args) if per else min(ask.confirm, num_samples)
            confirm = Confirm(k, seeds, reference, per)
            num_samples += confirm.n_trials
        return {"trials": trials, "num_samples": num_samples, "planned_trials": num_samples, "order": "file",
                "notes": tuple(notes), "seeds": seeds, "seed_range": seed_range, "sampler": sampler,
                "sampler_why": why, "confirm": confirm}

    def scheduler_text(self, plan: Plan) -> str:
        return "asha, in trial order" if plan.search_batch else "asha (asynchronous)"

    def describe(self, plan: Plan) -> list[str]:
        base = plan.trials[0]
        lines = ["", f"{num_search(plan)} Optuna trials ({plan.sampler} sampler: {plan.sampler_why}) from the "
                     f"{plan.profile} base config over:"]
        space = plan.exp.space(plan.profile)
        lines += [f"  {k}: {d.kind} {list(d.args)}" for k, d in space.items()]
        searched = searched_keys(space)
        lines.append("fixed: " + ", ".join(f"{k}={value_text(base[k])}" for k in KNOBS if k not in searched))
        if plan.confirm:
            c = plan.confirm
            lines.append("then the confirm stage: "
                         + (f"the best configuration of each {c.per} ({c.k} values)" if c.per
                            else f"the best {c.k} configurations")
                         + (f" and the reference run {c.reference['name']}" if c.reference else "")
                         + f", each over {len(c.seeds)} seed(s) ({', '.join(map(str, c.seeds))}) to the full budget: "
                           f"{c.n_trials} trials (--confirm 0 to skip)")
        b = plan.search_batch
        lines.append(f"sampled in order: trial i knows trials 0 .. i-{b}, at most {b} at once; the same trials and "
                     "decisions at any concurrency (--search-batch)" if b
                     else "sampled asynchronously (--search-batch 0): the trials depend on the timing")
        lines.append(f"at most {plan.num_samples * base['max_iters']:,} iterations in all "
                     f"({base['max_iters']:,} per trial) if none stops early")
        return lines

    # -- on Tune -------------------------------------------------------------------------

    def _view(self, plan: Plan) -> ViewSpec:
        confirm = f" then the confirm stage ({plan.num_samples - num_search(plan)} trials)" if plan.confirm else ""
        return ViewSpec(title=f"{plan.exp.name}: Optuna search of {num_search(plan)} trials{confirm}, profile "
                              f"{plan.profile}",
                        planned_trials=plan.num_samples,
                        panel=SearchPanel(num_search(plan), plan.sampler,
                                          tuple(sorted(plan.exp.space(plan.profile)))))

    def tune(self, plan: Plan, exp_path: str, seed: int) -> TuneParts:
        from sweeps.strategies.asha import OrderedASHA, SearchASHA
        from sweeps.strategies.study import StudySearcher

        space = plan.exp.space(plan.profile)
        # the searcher holds the space; the param space keeps what every trial shares
        param_space = {k: v for k, v in plan.trials[0].items() if k not in searched_keys(space) | {"name"}}
        journal = driver_file(exp_path, "optuna.journal", "optuna")
        print(f"Optuna study: {journal} (live: optuna-dashboard {journal})")
        log = decision_log(exp_path)
        searcher = StudySearcher(space, journal, plan.exp.name, num_search(plan), plan.sampler, seed, plan.confirm,
                                 batch=plan.search_batch, log=log)
        scheduler = None
        if plan.scheduler is not None and plan.search_batch:
            scheduler = OrderedASHA(searcher, plan.scheduler.rungs(plan.max_iters), plan.scheduler.reduction_factor,
                                    log=log, time_attr=TIME_ATTR)
        elif plan.scheduler is not None:
            scheduler = SearchASHA(time_attr=TIME_ATTR, max_t=plan.max_iters, grace_period=plan.scheduler.grace_period,
                                   reduction_factor=plan.scheduler.reduction_factor)
        # a searcher needs the limit to run trials in parallel; the ordered design has at most B in flight
        concurrent = plan.max_concurrent or concurrency_now(plan.cpus, plan.gpus)
        if plan.search_batch and concurrent > plan.search_batch:
            print(f"note: at most {plan.search_batch} search trials at once (--search-batch {plan.search_batch}, "
                  f"which keeps the search the same at any concurrency); raise it to use {concurrent} slots")
            concurrent = plan.search_batch
        return TuneParts(search_alg=searcher, scheduler=scheduler, max_concurrent=concurrent,
                         param_space=param_space, table_columns=sorted(space), shown=(scheduler,),
                         view=self._view(plan))

    # -- the results (the analysis is imported here: a plan and a dry run need none of it) --

    def judge(self, res: Results, exp: Experiment | None, info: dict[str, Any] | None) -> Analysis:
        from sweeps.report.analysis import analysis, search_facts
        from sweeps.verdicts.judging import search_verdicts
        from sweeps.verdicts.verdict import Runs

        runs = Runs(res, exp.run_names if exp else [])
        verdicts = search_verdicts(exp, runs, (info or {}).get("family"))
        return analysis(res, exp, info, runs, self.names(res, exp), verdicts, search=search_facts(res))

    def names(self, res: Results, exp: Experiment | None) -> list[str]:
        """Every search trial is a run of its own: only the confirm stage's runs are listed (the search's trials
        have a section of their own, the best first)."""
        from sweeps.report.analysis import file_order

        confirmed = set(of_stage(res.trials, CONFIRM)["name"])
        return [n for n in file_order(res, exp) if n in confirmed]

    def summary_table(self, res: Results, exp: Experiment | None) -> str:
        from sweeps.report.summary import best_rows, runs_table
        from sweeps.verdicts.search import ranked, search_trials

        return runs_table(res, self.names(res, exp), best_rows(ranked(res)), len(search_trials(res)))

    def worth_keeping(self, res: Results) -> set[str]:
        from sweeps.verdicts.search import ranked

        top = ranked(res)["name"].head(1)
        return set(of_stage(res.trials, CONFIRM)["name"]) | set(top)


class SearchPanel(Panel):
    """The live view of a search: its block (trials done, pruned and running, the best so far), its running
    trials, and the confirm stage as a phase of its own.

    Args:
        num_search: the search's own trials (before the confirm stage).
        sampler: its Optuna sampler, shown in its block.
        searched: the config keys it varies (the best trial's values); default: those that differ.
    """

    def __init__(self, num_search: int, sampler: str = "", searched: tuple[str, ...] = ()):
        self.num_search, self.sampler, self.searched = num_search, sampler, tuple(searched)

    def best(self, view: View) -> tuple[str, float, int, dict[str, Any]] | None:
        """The search trial with the lowest val loss at the largest budget any search trial reached."""
        ts = [t for t in view.stage(SEARCH) if t.vals]
        if not ts:
            return None
        budget = max(max(t.vals) for t in ts)
        best = min((t for t in ts if budget in t.vals), key=lambda t: (t.vals[budget], t.name))
        keys = self.searched or tuple(k for k in best.config if k not in ("name", "stage", "seed")
                                      and len({repr(o.config.get(k)) for o in view.stage(SEARCH)}) > 1)
        return best.name, best.vals[budget], budget, {k: best.config[k] for k in keys if k in best.config}

    def lines(self, view: View) -> list[str]:
        ts = view.stage(SEARCH)
        if not ts and not self.num_search:
            return []
        ended = [t for t in ts if t.state == ENDED]
        pruned = sum(t.status == STOPPED for t in ended)
        failed = sum(t.status in (DIVERGED, ERRORED) for t in ended)
        running = sum(t.state in (RUNNING, WAITING) for t in ts)
        of = f" of {self.num_search}" if self.num_search else ""
        head = f"search{f' (sampler {self.sampler})' if self.sampler else ''}: {len(ended)}{of} trials done"
        head += f" ({pruned} pruned" + (f", {failed} diverged or errored" if failed else "") + f"), {running} running"
        best = self.best(view)
        if best is None:
            return [head, "best so far: —"]
        name, value, budget, values = best
        shown = ", ".join(f"{k}={fmt_value(v)}" for k, v in values.items())
        return [head, f"best so far: {name} val {fmt_loss(value)} at {budget}" + (f" ({shown})" if shown else "")]

    def sections(self, view: View) -> list[tuple[str | None, list[str], str]]:
        running, confirm = [], []
        for name, tids in view.runs.items():
            stage = view.trials[tids[0]].stage
            if stage == CONFIRM:
                confirm.append(name)
            elif stage != SEARCH or any(view.trials[u].state in (RUNNING, WAITING) for u in tids):
                running.append(name)
        return [(None, running, "trial"),
                ("confirm stage: the best configurations and the reference at the full budget, over the seeds",
                 confirm, "run")]

    def after(self, view: View) -> list[str]:
        started = any(view.trials[tids[0]].stage == CONFIRM for tids in view.runs.values())
        return ["confirm stage: after the search"] if self.num_search and view.stage(SEARCH) and not started else []

    def progress(self, view: View) -> str:
        best = self.best(view)
        return f" · best {best[0]} {fmt_loss(best[1])} at {best[2]}" if best is not None else ""

    def noun(self, view: View, name: str) -> str:
        tids = view.runs[name]
        return "trial" if len(tids) == 1 and view.trials[tids[0]].stage == SEARCH else "run"
