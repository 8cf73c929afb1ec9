"""The Optuna search, as a Ray Tune Searcher over a study kept on disk, told the truth about every trial.

Why not Ray's OptunaSearch: it tells Optuna every trial as COMPLETE with its last reported value,
so a trial that ASHA stopped at its first rung enters TPE as if that were its whole run, and it
reports intermediate values by Ray's report counter, not by the optimizer step. Here:

- the study lives in `results/<exp>/optuna.journal` (Optuna's JournalStorage, a file backend),
  written as the sweep runs: `optuna-dashboard results/exp1/optuna.journal` shows it live and
  `optuna.load_study` reads it afterwards; `--resume` reopens the same study;
- every evaluation is reported at its optimizer step (`iter`);
- as its record says (`gptcore.record`): a trial whose last report is `completed` is COMPLETE with
  its final val loss; a diverged or errored one is FAIL; one that ended while still `running` (Tune
  ends a trial early only on the scheduler's STOP) is PRUNED at its last value; a trial the sweep
  was interrupted in is left RUNNING and told when `--resume` finishes it;
- after the search's trials, the *confirm* stage re-runs the best K configurations and the
  experiment's reference run to the full budget over the sweep's seeds (the best of N noisy
  trials is optimistic: the winner's curse), in the same sweep, with `stage: confirm`.
  Confirm trials are not told to the study: they measure, they do not search.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search import Searcher

from gptcore.record import COMPLETED
from sweeps.experiment.specs import METRIC, MODE, Distribution
from sweeps.results.trial import CONFIRM, SEARCH, STOPPED, ending
from sweeps.strategies.sampling import SAMPLERS, Confirm

optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial is the live table's job


def optuna_distribution(d: Distribution) -> optuna.distributions.BaseDistribution:
    """An experiment file's range as Optuna's distribution (randint's high is inclusive, as in the file)."""
    if d.kind == "uniform":
        return optuna.distributions.FloatDistribution(float(d.args[0]), float(d.args[1]))
    if d.kind == "loguniform":
        return optuna.distributions.FloatDistribution(float(d.args[0]), float(d.args[1]), log=True)
    if d.kind == "randint":
        return optuna.distributions.IntDistribution(int(d.args[0]), int(d.args[1]))
    return optuna.distributions.CategoricalDistribution(list(d.args))


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        # constant_liar: trials running at once are not all sent to the same promising spot
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}: choose one of {', '.join(SAMPLERS[1:])}")


def open_study(journal: str | Path, name: str, sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    """The study in a journal file, created on first use."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(journal)))
    return optuna.create_study(study_name=name, storage=storage, sampler=sampler, direction="minimize",
                               load_if_exists=True)


@dataclass
class _State:
    asked: int = 0
    trials: dict[str, tuple[int, int]] = field(default_factory=dict)  # Ray trial id -> (number, storage id)
    told: set[str] = field(default_factory=set)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # Ray trial id -> searched values
    queue: list[dict[str, Any]] | None = None  # the confirm stage's configs, once known
    confirm_done: int = 0


class StudySearcher(Searcher):
    """Ask-and-tell on the study in `journal` (module docstring); `num_search` trials, then the confirm stage."""

    def __init__(self, space: dict[str, Distribution], journal: str, study_name: str, num_search: int,
                 sampler: str = "tpe", seed: int = 0, confirm: Confirm | None = None,
                 metric: str = METRIC, mode: str = MODE):
        super().__init__(metric=metric, mode=mode)
        self._space = dict(space)
        self._journal, self._study_name = str(journal), study_name
        self._sampler, self._seed = sampler, seed
        self._num_search = num_search
        self._confirm = confirm
        self._state = _State()
        self._study: optuna.Study | None = None

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            self._study = open_study(self._journal, self._study_name, make_sampler(self._sampler, self._seed))
        return self._study

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return metric in (None, self.metric) and mode in (None, self.mode)

    # -- suggestions -----------------------------------------------------------------

    def suggest(self, trial_id: str) -> dict | str | None:
        st = self._state
        if st.asked < self._num_search:
            trial = self.study.ask({k: optuna_distribution(d) for k, d in self._space.items()})
            st.asked += 1
            st.trials[trial_id] = (trial.number, trial._trial_id)
            st.configs[trial_id] = dict(trial.params)
            return {"name": f"t{trial.number:03d}", "stage": SEARCH, **trial.params}
        if self._confirm is None:
            return Searcher.FINISHED
        if len(st.told) < len(st.trials):
            return None  # the confirm stage picks from finished trials: wait for the last ones
        if st.queue is None:
            st.queue = self._confirm_configs()
        if not st.queue:
            return Searcher.FINISHED
        return st.queue.pop(0)

    def _confirm_configs(self) -> list[dict[str, Any]]:
        """The best k configurations (full budget first, then by val loss), or the best of each value of
        `per`, and the reference, each per seed."""
        done = [t for t in self.study.get_trials(deepcopy=False)
                if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]

        def rank(t: optuna.trial.FrozenTrial):
            step = max(t.intermediate_values, default=0)
            value = t.value if t.value is not None else t.intermediate_values.get(step, math.inf)
            return (-step, value if value is not None and math.isfinite(value) else math.inf, t.number)

        best = sorted(done, key=rank)
        if self._confirm.per:  # the first (the best) trial of each value
            first: dict[str, optuna.trial.FrozenTrial] = {}
            for t in best:
                first.setdefault(repr(t.params.get(self._confirm.per)), t)
            best = list(first.values())
        best = best[: self._confirm.k]
        out = []
        for t in best:
            for seed in self._confirm.seeds:
                out.append({"name": f"confirm_t{t.number:03d}", "stage": CONFIRM, "seed": seed, **t.params})
        if self._confirm.reference is not None:
            ref = self._confirm.reference
            for seed in self._confirm.seeds:
                out.append({**ref, "name": f"confirm_{ref['name']}", "stage": CONFIRM, "seed": seed})
        return out

    # -- what the trials did ---------------------------------------------------------

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        entry = self._state.trials.get(trial_id)
        value, step = result.get(self.metric), result.get("iter")
        if entry is None or not _finite(value) or not isinstance(step, (int, float)):
            return  # a diverged trial's last row holds no loss
        trial = optuna.trial.Trial(self.study, entry[1])  # the same trial, after a restore too
        if int(step) not in trial.storage.get_trial(entry[1]).intermediate_values:
            trial.report(float(value), int(step))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        st = self._state
        entry = st.trials.get(trial_id)
        if entry is None:  # a confirm trial
            st.confirm_done += 1
            return
        if trial_id in st.told:
            return
        State = optuna.trial.TrialState
        status = ending(result, over=True, errored=error)
        if status == COMPLETED and _finite((result or {}).get(self.metric)):
            self.on_trial_result(trial_id, result)
            self.study.tell(entry[0], float(result[self.metric]), state=State.COMPLETE)
        elif status == STOPPED:  # the scheduler ended it before max_iters
            if result:
                self.on_trial_result(trial_id, result)
            self.study.tell(entry[0], state=State.PRUNED)
        else:  # diverged or errored: no value to learn from
            self.study.tell(entry[0], state=State.FAIL)
        st.told.add(trial_id)

    # -- Tune saves the searcher with the experiment and restores it on --resume --------

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self._state, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self._state = pickle.load(f)
        self._study = None  # reopened from the journal on first use

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_study"] = None  # the storage holds a file lock; the journal is the study
        return state


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
