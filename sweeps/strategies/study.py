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
- **the ordered design** (`--search-batch B`, default 4): trial i is asked only once trials
  0 … i − B have ended, and the study is told those, in trial-number order with every value each
  reported, just before it is asked: the sampler sees trials 0 … i − B as finished and
  i − B + 1 … i − 1 as running (TPE's constant liar), whatever the timing. So the same `--seed`
  gives the same trials at any `--max-concurrent`, and after `--resume` (this state is saved with
  the experiment; the sampler is seeded afresh for each trial, from `--seed` and the trial's
  number, so a resumed driver draws what the first one would have). At most B trials run at
  once. The price: the study learns of a trial B − 1 trials later than it could (the cost is
  measured in benchmarks/search_order.py), and the live journal lags by as much.
  `--search-batch 0` is the asynchronous search (told as trials end: it fills a cluster, and
  depends on the timing). The early stopping decides on the same knowledge
  (sweeps/strategies/asha.py);
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
from sweeps.results.decisions import DecisionLog
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
    # the ordered design (module docstring): what each trial reported, (iter, value) in order, and how it ended
    # (its status and last result), by trial number; the study is told them in trial order, at the gate
    reports: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    ended: dict[int, tuple[str, dict | None]] = field(default_factory=dict)
    told_upto: int = 0  # trials 0 .. told_upto - 1 are told
    ids: dict[int, str] = field(default_factory=dict)  # trial number -> Ray trial id

    def __setstate__(self, state: dict) -> None:  # a state saved by an older version: the new fields' defaults
        self.__dict__.update({**{f: v for f, v in _State().__dict__.items()}, **state})


class StudySearcher(Searcher):
    """Ask-and-tell on the study in `journal` (module docstring); `num_search` trials, then the confirm stage."""

    def __init__(self, space: dict[str, Distribution], journal: str, study_name: str, num_search: int,
                 sampler: str = "tpe", seed: int = 0, confirm: Confirm | None = None,
                 metric: str = METRIC, mode: str = MODE, batch: int = 0, log: DecisionLog | None = None):
        super().__init__(metric=metric, mode=mode)
        self._space = dict(space)
        self._journal, self._study_name = str(journal), study_name
        self._sampler, self._seed = sampler, seed
        self._num_search = num_search
        self._confirm = confirm
        self.batch = batch  # B of the ordered design; 0: asynchronous (told as trials end)
        self.log = log or DecisionLog(None)
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
            i = st.asked
            if self.batch:
                gate = i - self.batch + 1  # trial i is asked knowing trials 0 .. i − B, and only those
                if any(j not in st.ended for j in range(st.told_upto, gate)):
                    return None  # Tune asks again when a trial ends
                self._tell_upto(gate)
            # a sampler seeded for this trial: its draws depend on the trial's number and what the study holds,
            # not on how many asks this process made before (a resumed driver starts a new sampler)
            self.study.sampler = make_sampler(self._sampler, (self._seed * 1_000_003 + i) % 2**32)
            trial = self.study.ask({k: optuna_distribution(d) for k, d in self._space.items()})
            st.asked += 1
            st.trials[trial_id] = (trial.number, trial._trial_id)
            st.ids[trial.number] = trial_id
            st.configs[trial_id] = dict(trial.params)
            name = f"t{trial.number:03d}"
            self.log.record("ask", [0, trial.number, 0, 0], trial=name, config=dict(trial.params),
                            knew=st.told_upto if self.batch else None)
            return {"name": name, "stage": SEARCH, **trial.params}
        if self._confirm is None:
            return Searcher.FINISHED
        if len(st.ended) < st.asked if self.batch else len(st.told) < len(st.trials):
            return None  # the confirm stage picks from finished trials: wait for the last ones
        if st.queue is None:
            self._tell_upto(st.asked)
            st.queue = self._confirm_configs()
            for k, c in enumerate(st.queue):
                self.log.record("ask", [1, k, 0, 0], trial=f"{c['name']} seed {c['seed']}",
                                config={x: c[x] for x in sorted(c) if x not in ("name", "stage")})
        if not st.queue:
            return Searcher.FINISHED
        return st.queue.pop(0)

    def reports_of(self, number: int) -> list[tuple[int, float]]:
        """What trial `number` reported so far: (iter, val loss), in order."""
        return self._state.reports.get(number, [])

    def rung_values(self, step: int, below: int) -> dict[int, float]:
        """The ordered design's knowledge at a rung: each trial numbered below `below` that reached `step`, with
        its first value at or after it (all of them ended: a trial is asked only once they have)."""
        out = {}
        for j in range(min(below, self._state.told_upto if self.batch else below)):
            v = first_at(self._state.reports.get(j, []), step)
            if v is not None:
                out[j] = v
        return out

    def _tell_upto(self, upto: int) -> None:
        """Tell the study trials told_upto .. upto − 1, in trial order, each with every value it reported."""
        st = self._state
        while st.told_upto < upto and st.told_upto in st.ended:
            j = st.told_upto
            status, result = st.ended[j]
            tid = st.ids.get(j)
            if tid is not None and tid not in st.told:
                for step, value in st.reports.get(j, []):
                    self._report(tid, step, value)
                self._tell(tid, status, result)
            st.told_upto += 1

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
        reports = self._state.reports.setdefault(entry[0], [])
        if not reports or int(step) > reports[-1][0]:  # a restored trial reports its steps again
            reports.append((int(step), float(value)))
        if not self.batch:  # asynchronous: the study sees it now (the ordered design tells it at the gate)
            self._report(trial_id, int(step), float(value))

    def _report(self, trial_id: str, step: int, value: float) -> None:
        entry = self._state.trials[trial_id]
        trial = optuna.trial.Trial(self.study, entry[1])  # the same trial, after a restore too
        if step not in trial.storage.get_trial(entry[1]).intermediate_values:
            trial.report(value, step)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        st = self._state
        entry = st.trials.get(trial_id)
        if entry is None:  # a confirm trial
            st.confirm_done += 1
            return
        if trial_id in st.told or entry[0] in st.ended:
            return
        if result:
            self.on_trial_result(trial_id, result)
        status = ending(result, over=True, errored=error)
        st.ended[entry[0]] = (status, dict(result) if result else None)
        last = st.reports.get(entry[0], [])
        self.log.record("end", [0, entry[0], 2, 0], trial=f"t{entry[0]:03d}", status=status,
                        iter=last[-1][0] if last else None, val_loss=last[-1][1] if last else None)
        if not self.batch:
            self._tell(trial_id, status, result)
        elif st.asked >= self._num_search:  # nothing left to ask: what ends is told, still in trial order
            self._tell_upto(st.asked)

    def _tell(self, trial_id: str, status: str, result: dict | None) -> None:
        entry = self._state.trials[trial_id]
        State = optuna.trial.TrialState
        if status == COMPLETED and _finite((result or {}).get(self.metric)):
            self.study.tell(entry[0], float(result[self.metric]), state=State.COMPLETE)
        elif status == STOPPED:  # the scheduler ended it before max_iters
            self.study.tell(entry[0], state=State.PRUNED)
        else:  # diverged or errored: no value to learn from
            self.study.tell(entry[0], state=State.FAIL)
        self._state.told.add(trial_id)

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

    def __setstate__(self, state: dict) -> None:  # a searcher pickled by an older version: asynchronous, no log
        self.__dict__.update({"batch": 0, "log": DecisionLog(None), **state})


def first_at(reports: list[tuple[int, float]], step: int) -> float | None:
    """A trial's first reported value at or after `step` (what a rung reads), None if it never got there."""
    return next((v for it, v in reports if it >= step), None)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
