"""The judge step of the analysis: everything the report says, computed once from the results.

`judge(res, exp, info)` returns an `Analysis`: the verdicts, the scaling fit (1,000 bootstrap
draws) and a search's fit of the best learning rate against size, a search's facts (its ranking,
judging step, parameter importance and confirm stage), the compute accounting and the best run.
The report, the terminal summary and the plots are functions of it (sweeps/analysis/report.py,
plots.py); nothing there judges again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import search
from .judge import Runs, Verdict
from .lr_scaling import LrScaling, lr_fit_of
from .metrics import Compute, compute_accounting
from .results import Results
from .scaling import Scaling, fit_of
from .sequential import judge_looks, seed_reasons, seeds_of, sequential_verdicts
from .stats import Sample, grouped_history
from .verdicts import best_run, verdicts

if TYPE_CHECKING:
    from ..specs import Experiment


@dataclass
class SearchFacts:
    """What a search found: its trials ranked, the step its verdicts are judged at, the searched values,
    Optuna's parameter importance there, and the confirm stage against the searched losses."""

    trials: pd.DataFrame
    ranked: pd.DataFrame
    step: float | None
    params: dict[str, list]
    importance: dict[str, float]
    confirm: list[dict]


@dataclass
class Analysis:
    """One experiment, judged (module docstring)."""

    res: Results
    exp: Experiment | None
    info: dict[str, Any] | None  # sweep.json: how the sweep was started (None for hand-made logs)
    runs: Runs
    names: list[str]  # the runs the report shows, in the file's order
    grouped: pd.DataFrame  # per run and step: mean, std and n over seeds (curves.csv)
    verdicts: list[Verdict]
    scaling: tuple[Scaling, pd.DataFrame] | None  # the fit and its points, where the file asks for one
    lr_scaling: LrScaling | None  # a search's best learning rate against size, where the file asks for it
    search: SearchFacts | None
    compute: Compute
    best: tuple[str, float, Sample] | None  # a grid's best run at the largest budget a whole run reached
    seeding: list[dict] | None = None  # with a range of seeds: each run's seeds and why (sequential.seed_reasons)

    @property
    def title(self) -> str:
        return self.exp.title if self.exp else f"{(self.info or {}).get('exp') or 'Experiment'}: results"


def order_trials(trials: pd.DataFrame, exp: Experiment | None) -> pd.DataFrame:
    """The experiment file's run order (each run's seeds together), then everything else by name and id."""
    rank = {n: i for i, n in enumerate(exp.run_names if exp else ())}
    key = trials["name"].map(lambda n: rank.get(n, len(rank)))
    return (trials.assign(_k=key).sort_values(["_k", "name", "seed", "trial_id"], kind="stable")
            .drop(columns="_k"))


def run_names(res: Results, exp: Experiment | None) -> list[str]:
    """The runs of these results: the file's order first, then any other names.

    In a search every trial is a run of its own: only the confirm stage's runs are listed (the
    search's trials have a section of their own, its best first).
    """
    names = list(dict.fromkeys(order_trials(res.trials, exp)["name"]))
    if search.is_search(res):
        names = [n for n in names if n.startswith("confirm_")]
    return names


def _search_facts(res: Results) -> SearchFacts:
    trials = search.search_trials(res)
    importance, step = search.importance(res)
    return SearchFacts(trials=trials, ranked=search.ranked(res), step=step, params=search.searched(res),
                       importance=importance, confirm=search.confirm_table(res))


def judge(res: Results, exp: Experiment | None, info: dict[str, Any] | None = None) -> Analysis:
    """Judge the results against the experiment file (module docstring)."""
    runs = Runs(res, exp.run_names if exp else [])
    is_search = search.is_search(res)
    seeds = seeds_of(info) if exp is not None and not is_search else None
    seeding = None
    if seeds is not None and exp.verdicts and runs.names & set(exp.run_names):
        judged = judge_looks(exp, res, seeds)
        vs, seeding = sequential_verdicts(judged, seeds), seed_reasons(exp, res, judged, seeds)
    else:
        vs = verdicts(exp, res, runs)
    scaling = fit_of(runs) if exp is not None and exp.asks("scaling") else None
    return Analysis(res=res, exp=exp, info=info, runs=runs, names=run_names(res, exp),
                    grouped=grouped_history(res.history), verdicts=vs, scaling=scaling,
                    lr_scaling=lr_fit_of(runs) if exp is not None and exp.asks("lr_scaling") else None,
                    search=_search_facts(res) if is_search else None, compute=compute_accounting(res.trials),
                    best=None if is_search else best_run(res), seeding=seeding)
