"""Early stopping for a search's trials: successive halving at rungs, decided in trial order.

Ray's ASHA compares a trial at a rung with whichever trials happen to have reported there first,
so the same search stops different trials at another concurrency. `OrderedASHA` makes the same
comparison, ASHA's rule, on what the ordered design knows: trial i at rung r is compared with the
trials 0 … i − B (B: the search's batch, `--search-batch`) that reached r, which have all ended by
the time trial i was asked (sweeps/strategies/study.py), so no decision waits and none depends
on the timing. ASHA's rule: the trial stops when its val loss is worse than the 1/η quantile of
theirs (η: the reduction factor; linear interpolation, as Ray's `nanpercentile`), and continues
when none of them reached the rung. Every decision goes to the decision log with its figures.

`SearchASHA` (Ray's own, asynchronous) stays for `--search-batch 0`: faster to fill a cluster,
not reproducible. Either way the confirm stage is never stopped: it re-measures the best
configurations at the full budget.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from sweeps.results.decisions import DecisionLog
from sweeps.results.trial import CONFIRM
from sweeps.strategies.study import first_at

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController

    from sweeps.strategies.study import StudySearcher


class SearchASHA(AsyncHyperBandScheduler):
    """Ray's ASHA for a search's trials (asynchronous: `--search-batch 0`); a confirm-stage trial is never
    stopped and never ranked."""

    def on_trial_result(self, tune_controller: TuneController, trial: Trial, result: dict) -> str:
        if trial.config.get("stage") == CONFIRM:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: TuneController, trial: Trial, result: dict) -> None:
        if trial.config.get("stage") == CONFIRM:
            self._trial_info.pop(trial.trial_id, None)
            return
        super().on_trial_complete(tune_controller, trial, result)


def cutoff(values: list[float], reduction_factor: float) -> float | None:
    """The val loss a trial must not exceed at a rung, given the earlier trials' values there (None: no one to
    compare with). ASHA's: the 1/η quantile of the lower-is-better values."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    return float(np.percentile(finite, 100.0 / reduction_factor))


class OrderedASHA(FIFOScheduler):
    """ASHA's rule at `rungs`, in trial order (module docstring).

    Args:
        searcher: the search's StudySearcher: it holds what every ended trial reported, and the batch B.
        rungs: the milestones (iterations) below the budget.
        reduction_factor: η.
        log: where the decisions go.
    """

    def __init__(self, searcher: StudySearcher, rungs: list[int], reduction_factor: float,
                 log: DecisionLog | None = None, metric: str = "val_loss", time_attr: str = "iter"):
        super().__init__()
        self.searcher, self.rungs, self.rf = searcher, sorted(rungs), float(reduction_factor)
        self.log = log or DecisionLog(None)
        self._metric, self._mode, self.time_attr = metric, "min", time_attr
        self._decided: dict[str, set[int]] = {}  # Ray trial id -> the rungs decided for it

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return metric in (None, self._metric) and mode in (None, "min")

    def on_trial_result(self, tune_controller: TuneController, trial: Trial, result: dict) -> str:
        name = str(trial.config.get("name", ""))
        if trial.config.get("stage") == CONFIRM or not (name[:1] == "t" and name[1:].isdigit()):
            return TrialScheduler.CONTINUE
        it = result.get(self.time_attr)
        if not isinstance(it, (int, float)):
            return TrialScheduler.CONTINUE
        number = int(name[1:])
        done = self._decided.setdefault(trial.trial_id, set())
        # the trial's own value at a rung is its first at or after it: the same after a restore (Tune tells the
        # scheduler before the searcher, so this result is added here)
        value = result.get(self._metric)
        reports = list(self.searcher.reports_of(number))
        if not reports or it > reports[-1][0]:
            reports.append((int(it), float(value) if isinstance(value, (int, float)) else math.nan))
        for rung in self.rungs:
            if it < rung or rung in done:
                continue
            done.add(rung)
            mine = first_at(reports, rung)
            own = mine if mine is not None and math.isfinite(mine) else math.inf
            among = self.searcher.rung_values(rung, number - self.searcher.batch + 1)
            cut = cutoff(list(among.values()), self.rf)
            stop = cut is not None and own > cut
            self.log.record("rung", [0, number, 1, rung], trial=name, step=rung, value=own, cutoff=cut,
                            among=[f"t{j:03d}" for j in sorted(among)], decision="stop" if stop else "continue")
            if stop:
                return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def on_trial_remove(self, tune_controller: TuneController, trial: Trial) -> None:
        self._decided.pop(trial.trial_id, None)

    def debug_string(self) -> str:
        return f"OrderedASHA: rungs {self.rungs}, reduction factor {self.rf:g}, in trial order"
