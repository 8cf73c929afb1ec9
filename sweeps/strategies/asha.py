"""ASHA for a search's trials: Ray's asynchronous successive halving, with the confirm stage left alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from sweeps.results.trial import CONFIRM

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController


class SearchASHA(AsyncHyperBandScheduler):
    """Ray's ASHA for a search's trials; a confirm-stage trial is never stopped and never ranked.

    A search proposes one configuration at a time, so there are no groups to wait for: ASHA's
    asynchronous rungs are the right tool there. The confirm stage re-measures the best
    configurations at the full budget, so it must not be cut short.
    """

    def on_trial_result(self, tune_controller: TuneController, trial: Trial, result: dict) -> str:
        if trial.config.get("stage") == CONFIRM:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: TuneController, trial: Trial, result: dict) -> None:
        if trial.config.get("stage") == CONFIRM:
            self._trial_info.pop(trial.trial_id, None)
            return
        super().on_trial_complete(tune_controller, trial, result)
