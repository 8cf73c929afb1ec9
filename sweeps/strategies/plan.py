"""The plan of a sweep: which trials run, with what resources and scheduler, checked before Ray starts.

A `PlanRequest` is what the command line asks; `sweeps.strategies.make_plan` turns it and an
experiment file into a `Plan`, the strategy it names (grid.py, search.py) deciding the trials and
the sampling, and `sweeps.strategies.describe` is the dry run's text. Here: the plan's data and
what every strategy's plan shares. Nothing here imports Ray or Optuna.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from gptcore.config import build_config
from gptcore.record import estimated_params, flops_per_token
from sweeps.experiment.specs import EarlyStopping, Experiment, SeedRange, expand_shape
from sweeps.strategies.sampling import Confirm


@dataclass(frozen=True)
class PlanRequest:
    """What a sweep is asked to run: the command's options that shape the plan (same names, same defaults)."""

    exp: str
    search: str = "grid"  # a strategy of sweeps.strategies.STRATEGIES
    profile: str = "auto"  # "auto" or one of PROFILES
    scheduler: str = "auto"  # auto, asha or none
    num_samples: int | None = None  # a search's trials; None: the experiment file's
    sampler: str = "auto"
    confirm: int = 3
    seeds: SeedRange | None = None  # None: the profile's
    order: str = "auto"  # a grid's start order: auto, file or longest-first
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None  # None: 1 with GPUs, else 0
    max_concurrent: int | None = None
    family: str = "none"  # none, or holm: the sweep's verdicts share one 5% (sweeps.verdicts.judging.FAMILIES)
    search_batch: int = 4  # a search's B: trial i is sampled knowing trials 0 .. i − B (0: asynchronous)


@dataclass
class Plan:
    exp: Experiment
    profile: str
    search: str  # the strategy's name
    scheduler: EarlyStopping | None
    num_samples: int  # what Tune is told: every trial the sweep may have
    cpus: float
    gpus: float
    max_concurrent: int | None
    trials: list[dict]  # a grid: every run x seed in start order; a search: one representative (the profile base)
    planned_trials: int = 0  # the trials the sweep will have (sweep.json, the live view, `gptsweep ls`)
    order: str = "file"  # a grid's start order: file or longest-first
    notes: tuple[str, ...] = ()  # what the command should say about its choices
    seeds: tuple[int, ...] = (1337,)  # the first training seeds of every grid run (and of a search's confirm stage)
    seed_range: SeedRange = SeedRange(1, 1)  # a grid's seeds per run: the least, then more up to the most
    sampler: str = ""  # a search's Optuna sampler, and why it was chosen
    sampler_why: str = ""
    confirm: Confirm | None = None  # a search's confirm stage
    strategy: Any = None  # the Strategy named by `search` (sweeps.strategies.base)
    family: str | None = None  # "holm": the sweep's verdicts share one 5%; None: each verdict its own
    search_batch: int = 0  # a search's B (sweeps/strategies/study.py); 0: asynchronous, or a grid

    @property
    def max_iters(self) -> int:
        return max(t["max_iters"] for t in self.trials)


def trial_config(values: dict[str, Any], exp: Experiment) -> dict[str, Any]:
    """A trial's `name` and its full TrainConfig values, validated (a `shape` expanded)."""
    return {"name": values["name"], **build_config(expand_shape({k: v for k, v in values.items() if k != "name"},
                                                                exp.name), where=exp.name).as_dict()}


def estimated_flops(t: dict, vocab_size: int = 65) -> float:
    """Rough compute of one trial run to the end: training plus evaluations (gptcore's FLOPs per
    token with N ~ 12 L E^2 + V E; forward-only evaluation at a third of that)."""
    L, E, T = t["n_layer"], t["n_embd"], t["block_size"]
    per_token = flops_per_token(estimated_params(L, E) + vocab_size * E, L, E, T)
    train = t["max_iters"] * t["batch_size"] * t["gradient_accumulation_steps"] * T * per_token
    evals = t["max_iters"] // t["eval_interval"] + 1
    evaluate = evals * 2 * t["eval_iters"] * (t.get("eval_batch_size") or t["batch_size"]) * T * per_token / 3
    return train + evaluate


# a trial estimated below this much compute trains for seconds, about what a fresh actor's start costs
REUSE_BELOW_FLOPS = 1e12


def reuse_actors(plan: Plan) -> bool:
    """Whether trials take over the actor of a finished one (Tune's reuse_actors).

    A fresh actor costs seconds of imports (a smoke grid ran 2.3x as long without reuse; exp1's cpu
    profile, whose trials pause at rungs, 1.24x: benchmarks/sweep_overhead.py), which only short
    trials notice; but Ray names an actor on the dashboard once, when it starts, so a reused
    actor shows its first trial only. So: an actor per trial, named by it (trainable.trial_class),
    unless every trial is estimated under REUSE_BELOW_FLOPS (the smoke profile, tests' tiny
    experiments). GPTSWEEP_REUSE_ACTORS=0 or 1 decides instead. Each run measures its own time and
    peak memory (gptcore.train) either way.
    """
    said = os.environ.get("GPTSWEEP_REUSE_ACTORS", "").strip()
    if said in ("0", "1"):
        return said == "1"
    try:
        return max((estimated_flops(t) for t in plan.trials), default=0.0) < REUSE_BELOW_FLOPS
    except (KeyError, TypeError, ZeroDivisionError):  # a plan without whole trial configs
        return True


def value_text(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)
