"""What the report says, computed once from the results: an `Analysis`.

An Analysis holds the verdicts, the scaling fit (1,000 bootstrap draws) and a search's fit of the
best learning rate against size, a search's facts (its ranking, judging step, parameter importance
and confirm stage), the compute accounting and a grid's best run. Each strategy judges its results
into one (`Strategy.judge`, sweeps/strategies/); the report, the terminal summary and the plots are
functions of it (markdown.py, summary.py, plots.py); nothing there judges again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from sweeps.results.frames import Results
from sweeps.results.metrics import Compute, compute_accounting
from sweeps.verdicts import search
from sweeps.verdicts.lr_law import LrScaling, lr_fit_of
from sweeps.verdicts.scaling import Scaling, fit_of
from sweeps.verdicts.stats import Sample, grouped_history
from sweeps.verdicts.verdict import Runs, Verdict

if TYPE_CHECKING:
    from sweeps.experiment.specs import Experiment


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
    compute: Compute
    search: SearchFacts | None = None  # a search's facts
    best: tuple[str, float, Sample] | None = None  # a grid's best run at the largest budget a whole run reached
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


def file_order(res: Results, exp: Experiment | None) -> list[str]:
    """The runs of these results: the file's order first, then any other names."""
    return list(dict.fromkeys(order_trials(res.trials, exp)["name"]))


def search_facts(res: Results) -> SearchFacts:
    """What a search found (SearchFacts), from its trials."""
    trials = search.search_trials(res)
    importance, step = search.importance(res)
    return SearchFacts(trials=trials, ranked=search.ranked(res), step=step, params=search.searched(res),
                       importance=importance, confirm=search.confirm_table(res))


def analysis(res: Results, exp: Experiment | None, info: dict[str, Any] | None, runs: Runs, names: list[str],
             verdicts: list[Verdict], **rest: Any) -> Analysis:
    """An Analysis of what every sweep has: the curves over seeds, the fits the file asks for, the compute;
    `rest` is what the strategy judged besides (a search's facts, a grid's best run and seeds)."""
    return Analysis(res=res, exp=exp, info=info, runs=runs, names=names, grouped=grouped_history(res.history),
                    verdicts=verdicts, scaling=fit_of(runs) if exp is not None and exp.asks("scaling") else None,
                    lr_scaling=lr_fit_of(runs) if exp is not None and exp.asks("lr_scaling") else None,
                    compute=compute_accounting(res.trials), **rest)
