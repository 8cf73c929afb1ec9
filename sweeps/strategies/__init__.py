"""The strategies: the two ways of running an experiment, behind one registry.

`grid` (grid.py) runs the chapter's exact runs over seeds, with successive halving by run
(halving.py) and seeds added where a verdict is still open (seeds.py); `optuna` (search.py)
searches the file's space with an Optuna study (study.py), ASHA (asha.py) and a confirm stage
(sampling.py). Each strategy makes its part of the plan (plan.py), its Tune searcher, scheduler
and concurrency, what the live view shows, and how its results are judged; shared parts are
base.py. Nothing outside this package asks which strategy runs.

May import: the experiment, results, verdicts, report, storage and view layers (and gptcore).
Ray and Optuna are imported only when a strategy builds its Tune parts, so a plan and a dry run
start neither, and the analysis judges with the strategies without them.
"""

from __future__ import annotations

from typing import Any

from gptcore.errors import UserError
from sweeps.experiment.files import PROFILES, load_experiment
from sweeps.experiment.specs import TIME_ATTR, EarlyStopping, Experiment
from sweeps.results.trial import SEARCH
from sweeps.strategies.base import Strategy
from sweeps.strategies.grid import Grid
from sweeps.strategies.plan import Plan, PlanRequest, reuse_actors
from sweeps.strategies.search import Search

STRATEGIES: dict[str, Strategy] = {s.name: s for s in (Grid(), Search())}


def strategy(name: str) -> Strategy:
    """The strategy of this name; an unknown name is an error listing the valid ones."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UserError(f"unknown strategy {name!r}: choose one of {', '.join(sorted(STRATEGIES))}") from None


def strategy_for(res: Any, info: dict[str, Any] | None = None) -> Strategy:
    """The strategy that made these results: as sweep.json says, else a search where trials were searched
    (hand-made logs and older sweeps are grids)."""
    name = (info or {}).get("search")
    if name in STRATEGIES:
        return STRATEGIES[name]
    stage = res.trials.get("stage")
    return STRATEGIES["optuna" if stage is not None and (stage == SEARCH).any() else "grid"]


def choose_profile(requested: str, gpus_available: int) -> tuple[str, str | None]:
    """The profile to run, and a note when it was chosen for the user (`auto`)."""
    if requested != "auto":
        return requested, None
    profile = "full" if gpus_available else "cpu"
    why = "GPUs found" if gpus_available else "no GPU here"
    return profile, f"profile: {profile} ({why}; choose with --profile {'|'.join(PROFILES)})"


def choose_scheduler(exp: Experiment, profile: str, requested: str) -> tuple[EarlyStopping | None, str | None]:
    stopping = exp.early_stopping(profile)
    if requested == "none":
        return None, None
    if requested == "asha" and stopping is None:
        base = exp.profile_base(profile)
        note = (f"note: {exp.name} runs without early stopping by design ({exp.no_early_stopping_reason}); "
                "--scheduler asha overrides that")
        return EarlyStopping(grace_period=max(1, base["max_iters"] // 8), reduction_factor=2), note
    return stopping, None


def make_plan(ask: PlanRequest, gpus_available: int) -> Plan:
    """The sweep that `ask` asks for; every trial config validated."""
    how = strategy(ask.search)
    exp = load_experiment(ask.exp)
    profile, note = choose_profile(ask.profile, gpus_available)
    scheduler, sched_note = choose_scheduler(exp, profile, ask.scheduler)
    gpus = ask.gpus_per_trial if ask.gpus_per_trial is not None else (1.0 if gpus_available else 0.0)
    common = {"exp": exp, "profile": profile, "search": how.name, "strategy": how, "scheduler": scheduler,
              "family": ask.family if ask.family != "none" else None, "cpus": ask.cpus_per_trial,
              "search_batch": ask.search_batch if how.name == "optuna" else 0,
              "gpus": gpus, "max_concurrent": ask.max_concurrent, "seed_range": ask.seeds or exp.seeds(profile)}
    fields_ = how.plan(exp, profile, ask, common)
    plan = Plan(**{**common, **fields_})
    plan.notes = tuple(n for n in (note, sched_note, *plan.notes) if n)
    return plan


def describe(plan: Plan) -> str:
    """The dry run: every trial, its resources, and the total work."""
    exp = plan.exp
    if plan.scheduler is None:
        sched = f"none ({exp.no_early_stopping_reason or 'chosen on the command line'})"
    else:
        sched = (f"{plan.strategy.scheduler_text(plan)} (time attribute {TIME_ATTR}, grace period "
                 f"{plan.scheduler.grace_period}, reduction factor {plan.scheduler.reduction_factor}, max_t "
                 f"{plan.max_iters})")
    lines = [f"{exp.name}: {exp.description}",
             f"profile {plan.profile}" + (f" ({exp.note(plan.profile)})" if exp.note(plan.profile) else ""),
             f"searcher {plan.search}, scheduler {sched}",
             f"resources per trial: {plan.cpus:g} CPU, {plan.gpus:g} GPU"
             + (f"; at most {plan.max_concurrent} at once" if plan.max_concurrent else ""),
             ("actors: reused, each named on the dashboard by its first trial (GPTSWEEP_REUSE_ACTORS=0: one per "
              "trial)" if reuse_actors(plan) else
              "actors: one per trial, named on the dashboard (GPTSWEEP_REUSE_ACTORS=1 reuses them: seconds less "
              "per trial and per pause at a rung, but each is named by its first trial)")]
    return "\n".join(lines + plan.strategy.describe(plan))
