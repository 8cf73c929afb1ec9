"""Early stopping for a grid with seeds: synchronous successive halving over runs, on Ray's TrialScheduler API.

Why not Ray's ASHA: it is asynchronous. A trial is judged against whatever trials reached the
rung before it, so which trials it stops depends on timing (two runs of one command stopped
different trials), the first trials at a rung are never stopped, the reference run of a
comparison can be stopped, and the seeds of one run are judged one by one. Ray's Repeater,
which groups seeds, is documented as not meant for early-stopping schedulers.

Here a *group* is one run of the grid (its trials are its seeds). At each rung (grace_period *
reduction_factor**k iterations, below max_t) a trial that reaches the rung waits until every run
still in the race has all its seeds there: paused (Tune's PAUSE, which keeps its checkpoint and
frees its slot) while another trial could use the slot, else in place (Tune's NOOP: its actor
stays, asked for nothing; the decision asks it for more or stops it). The protected runs' trials,
which no rung stops, note their value there and go on. (A pause costs a trial that continues a
fresh actor: seconds of imports, as long as 100 steps of the cpu profile.) Then the runs are
ranked by the mean of their seeds' val loss at the rung (ties by name), the best
ceil(n / reduction_factor) continue, and so do the protected runs (the reference of the
experiment's comparisons); the seeds of every other run are stopped together, at that rung. The
decisions depend only on the values at the rungs, so the same command gives the same stops
whatever the number of trials at once, the start order or the machine's speed.

No run is stopped with its question open: with a `hold` (sweeps/strategies/seeds.py `VerdictHold`), the
runs below the cut are judged on what every trial reported up to the rung, and a run with a
verdict still within noise there continues as if it had ranked in the upper part. A stopped run's
verdicts are thus all decided at the rung it stopped at (the report judges them there).

After `--resume` the scheduler rebuilds its state from the restored trials' last results:
a trial that is past a rung shows that the rung was decided, and a trial waiting at a rung
carries its value there.

`SeedGroupHalving.decisions` lists the rungs decided, in order, for whoever shows them (the live
view, sweeps/view/state.py); each is a plain dict:

    {"rung": 10, "inferred": False, "reference": "baseline" or None,
     "runs": [{"name": ..., "mean": ..., "std": ... or None, "n": ..., "rank": 1, "continues": True,
               "held": [texts], "decided": [texts]}, ...],
     "continued": [names], "stopped": [names], "held": [names]}

`runs` is in rank order (best first); `mean` and `std` are the metric over the run's seeds at the
rung (inf when a seed diverged; std None below two seeds), `n` how many seeds it had there.
`reference` is the protected run in the race, if any. `held` lists the runs that ranked below the
cut but continue because a verdict resting on them is within noise at the rung (a run's `held`:
those verdicts); a stopped run's `decided` lists its verdicts there. A rung rebuilt after
`--resume` is `inferred`: its figures are those the restored trials still carry (often none, n 0).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from sweeps.experiment.specs import METRIC, MODE, TIME_ATTR, EarlyStopping
from sweeps.results.decisions import DecisionLog
from sweeps.strategies.base import Slots, TrialRows, ask_for_more, stop_waiting

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController


def rungs(grace_period: int, reduction_factor: int, max_t: int) -> list[int]:
    """The milestones below max_t: grace_period * reduction_factor**k."""
    return EarlyStopping(grace_period, reduction_factor).rungs(max_t)


def survivors(scores: dict[str, float], reduction_factor: int, protected: set[str]) -> set[str]:
    """The groups that continue past a rung: the best ceil(n / rf) by score (ties by name), plus the protected."""
    ranked = sorted(scores, key=lambda g: (scores[g], g))
    keep = max(1, math.ceil(len(ranked) / reduction_factor))
    return set(ranked[:keep]) | (protected & set(scores))


class SeedGroupHalving(TrialScheduler):
    """Synchronous successive halving in which a run's seeds continue or stop together (module docstring).

    Args:
        grace_period: the first rung, in units of `time_attr`.
        reduction_factor: 1 / the share of runs that continue at each rung.
        max_t: the trials' full budget (their max_iters); no rung at or above it.
        n_trials: how many trials the grid has, so no rung is decided before all of them exist.
        protected: run names that are never stopped (the reference of the comparisons).
        metric, mode: what ranks the runs at a rung (lower is better with mode "min").
        time_attr: the reported clock; gptcore's `iter` (optimizer steps).
        group_key: the config key that names a trial's run.
        hold: judges the runs at a rung: called with the rung and (trial id, config, report rows) of
            every trial, it returns per run {"open": [texts], "decided": [texts]}; a run with an open
            verdict is not stopped there. None: ranks alone decide.
        slots: the grid's `--max-concurrent` (`Slots`), shared with its searcher; None: no limit.
    """

    def __init__(self, grace_period: int, reduction_factor: int, max_t: int, n_trials: int,
                 protected: tuple[str, ...] = (), metric: str = METRIC, mode: str = MODE,
                 time_attr: str = TIME_ATTR, group_key: str = "name",
                 hold: Callable[[int, list[tuple[str, dict, list[dict]]]], dict[str, dict[str, list[str]]]] | None
                 = None, slots: Slots | None = None):
        super().__init__()
        if reduction_factor < 2 or grace_period < 1:
            raise ValueError(f"reduction_factor {reduction_factor} must be >= 2 and grace_period {grace_period} >= 1")
        self._metric, self._mode, self._time_attr, self._group_key = metric, mode, time_attr, group_key
        self._rf, self._n_trials = reduction_factor, n_trials
        self._rungs = rungs(grace_period, reduction_factor, max_t)
        self._max_t = max_t
        self._protected = set(protected)
        self._trials: dict[str, Trial] = {}
        self._group: dict[str, str] = {}  # trial id -> group
        self._members: dict[str, list[str]] = defaultdict(list)  # group -> trial ids, in order of arrival
        self._at: dict[tuple[str, int], float] = {}  # (trial id, rung) -> metric there
        self._last: dict[str, float] = {}  # trial id -> last reported time_attr
        self._cleared: dict[str, int] = defaultdict(int)  # trial id -> how many rungs it may pass
        self._ended: set[str] = set()
        self._decided: dict[int, set[str]] = {}  # rung -> groups that continue past it
        self._stopped: dict[str, int] = {}  # group -> the rung it was stopped at
        self._waiting: set[str] = set()  # trials paused at a rung until it is decided
        self._release: set[str] = set()  # paused trials whose rung let them continue
        self._in_place: set[str] = set()  # trials waiting at a rung in their running actor (nothing else could run)
        self._restored = False
        self._hold = hold
        self._slots = slots
        self._rows = TrialRows()  # what every trial reported, for the hold
        self.decisions: list[dict] = []  # the rungs decided, in order (module docstring); only ever appended
        self.log = DecisionLog(None)  # the sweep's decision log (sweeps/results/decisions.py), set by the grid

    def __setstate__(self, state: dict) -> None:  # a scheduler pickled before `decisions` existed
        self.__dict__.update(state)
        self.__dict__.setdefault("_in_place", set())
        self.__dict__.setdefault("decisions", [])
        self.__dict__.setdefault("log", DecisionLog(None))
        self.__dict__.setdefault("_hold", None)
        self.__dict__.setdefault("_slots", None)
        rows = self.__dict__.get("_rows")
        if not isinstance(rows, TrialRows):  # an earlier version's: trial id -> rows
            self._rows = TrialRows()
            self._rows.rows = {k: list(v) for k, v in (rows or {}).items()}

    # -- Ray's TrialScheduler API ------------------------------------------------------

    def set_search_properties(self, metric, mode, **spec) -> bool:
        # metric and mode come from TuneConfig; ours were given at construction and must agree
        return (metric in (None, self._metric)) and (mode in (None, self._mode))

    def on_trial_add(self, tune_controller: TuneController, trial: Trial) -> None:
        tid = trial.trial_id
        self._trials[tid] = trial
        group = str(trial.config.get(self._group_key, tid))
        self._group[tid] = group
        self._members[group].append(tid)
        last = trial.last_result or {}
        if self._time_attr in last:  # a trial restored by --resume
            self._restored = True
            self._rows.restore(tid, trial)
            if group in self._protected:  # it may have passed rungs still undecided: its values there
                for row in self._rows.of(tid):
                    self._record(tid, row, keep_row=False)
            self._record(tid, last, exact=True)
            if trial.status in (Trial.TERMINATED, Trial.ERROR):
                self._ended.add(tid)

    def on_trial_result(self, tune_controller: TuneController, trial: Trial, result: dict) -> str:
        decision = self._on_result(tune_controller, trial, result)
        if self._slots is not None:  # Tune may not ask choose_trial_to_run again before the searcher
            leaving = decision in (TrialScheduler.PAUSE, TrialScheduler.STOP)  # a trial waiting in place keeps its slot
            self._slots.count(tune_controller, leaving=trial if leaving else None)
        return decision

    @property
    def in_place(self) -> frozenset[str]:
        """The trials waiting at a rung in their running actor (Tune shows them RUNNING): for the live view."""
        return frozenset(self._in_place)

    def _on_result(self, tune_controller: TuneController, trial: Trial, result: dict) -> str:
        if self._restored:
            self._infer_decisions()
        tid = trial.trial_id
        group = self._group[tid]
        self._release.discard(tid)
        self._waiting.discard(tid)
        self._in_place.discard(tid)
        self._record(tid, result)
        if group in self._stopped:
            # a seed added after the rungs were decided (sweeps/strategies/seeds.py) runs to where its run stopped
            going = self._late(tid) and self._last[tid] < self._stopped[group]
            return TrialScheduler.CONTINUE if going else TrialScheduler.STOP
        # every rung the trial has reached and not yet been let past (after --resume that includes
        # the rung it was waiting at, though its first report comes from beyond it)
        for rung in self._rungs[self._cleared[tid]:]:
            if rung > self._last[tid]:
                break
            if rung not in self._decided and not self._maybe_decide(rung, tune_controller, current=tid):
                if group in self._protected:
                    break  # never stopped, so it need not wait: its value there is noted, it goes on
                self._waiting.add(tid)
                if self._nothing_else_to_run(tune_controller, tid):
                    # a pause would free a slot no trial can use, and cost this one a fresh actor to go
                    # on: it waits where it is (Tune asks it for nothing until the rung is decided)
                    self._in_place.add(tid)
                    return TrialScheduler.NOOP
                return TrialScheduler.PAUSE
            if group not in self._decided[rung]:
                return TrialScheduler.STOP
            self._cleared[tid] += 1
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: TuneController, trial: Trial, result: dict) -> None:
        self._end(tune_controller, trial)

    def on_trial_error(self, tune_controller: TuneController, trial: Trial) -> None:
        self._end(tune_controller, trial)

    def on_trial_remove(self, tune_controller: TuneController, trial: Trial) -> None:
        self._end(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller: TuneController) -> Trial | None:
        # new trials first (the file's order), then paused ones whose rung let them continue;
        # a trial paused at an undecided rung waits; one let past waits for a free slot (`Slots`)
        if self._slots is not None:
            self._slots.count(tune_controller)
        trials = tune_controller.get_trials()
        for trial in trials:
            if trial.status == Trial.PENDING and self._may_start(trial):
                return trial
        for trial in trials:
            if trial.status == Trial.PAUSED and self._may_start(trial):
                return trial if self._slots is None or self._slots.take() else None
        return None

    def _may_start(self, trial: Trial) -> bool:
        """Whether the scheduler would start `trial` now: a new trial of a run not stopped (or a seed added
        late), or a paused one whose rung let it continue."""
        tid = trial.trial_id
        if trial.status == Trial.PENDING:
            return self._group.get(tid) not in self._stopped or self._late(tid)
        return trial.status == Trial.PAUSED and tid in self._release

    def _nothing_else_to_run(self, tc: TuneController, tid: str) -> bool:
        """No trial but `tid` could start now, nor later before this rung is decided: every trial of the grid
        exists and none other may start."""
        return len(self._trials) >= self._n_trials and not any(
            t.trial_id != tid and self._may_start(t) for t in tc.get_trials())

    def debug_string(self) -> str:
        decided = ", ".join(f"{r}: {len(g)} continue" for r, g in sorted(self._decided.items()))
        return (f"Successive halving by run (rungs {self._rungs}, reduction factor {self._rf}); "
                f"decided {decided or 'nothing yet'}; {len(self._waiting)} waiting at a rung")

    # -- decisions ---------------------------------------------------------------------

    def _first_wave(self) -> int:
        """How many of a run's trials the grid started with (its seeds before any was added)."""
        return max(1, round(self._n_trials / max(1, len(self._members))))

    def _late(self, tid: str) -> bool:
        group = self._group[tid]
        return self._members[group].index(tid) >= self._first_wave()

    def _record(self, tid: str, result: dict, exact: bool = False, keep_row: bool = True) -> None:
        """Note a trial's report: its clock, and its value at every rung it reaches with this report.

        The first report at or past a rung is the trial's value there (rungs sit on evaluations);
        `exact` (a restored trial's last result) counts only a report exactly at a rung.
        """
        t = float(result.get(self._time_attr, 0))
        value = result.get(self._metric)
        # a diverged seed reports no loss (NaN): it drags its run to the bottom
        score = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.inf
        if self._mode == "max":
            score = -score
        for rung in self._rungs:
            reached = rung == t if exact else self._last.get(tid, -math.inf) < rung <= t
            if reached and (tid, rung) not in self._at:
                self._at[(tid, rung)] = score
        self._last[tid] = max(t, self._last.get(tid, -math.inf))
        if not exact and keep_row and self._hold is not None:
            self._rows.add(tid, result)

    def _alive(self, rung: int) -> list[str]:
        """The groups still in the race at a rung: not stopped before it, not all ended short of it."""
        out = []
        for group, tids in self._members.items():
            if self._stopped.get(group, math.inf) < rung:
                continue
            if all(t in self._ended and (t, rung) not in self._at for t in tids):
                continue  # every seed finished (diverged, errored) before the rung
            out.append(group)
        return out

    def _maybe_decide(self, rung: int, tc: TuneController, current: str | None = None) -> bool:
        """Decide `rung` if every seed of every run in the race is there (or ended); whether it is decided."""
        if len(self._trials) < self._n_trials or any(r not in self._decided for r in self._rungs if r < rung):
            return False
        groups = self._alive(rung)
        for group in groups:
            for tid in self._members[group]:
                # a protected trial restored past the rung without its value there (its result.json unread)
                # is counted out, as an ended one: nothing else would bring that value
                passed = group in self._protected and self._last.get(tid, -math.inf) > rung
                if (tid, rung) not in self._at and tid not in self._ended and not passed:
                    return False
        scores = {}
        for group in groups:
            values = [self._at[(t, rung)] for t in self._members[group] if (t, rung) in self._at]
            scores[group] = sum(values) / len(values) if values else math.inf
        keep = survivors(scores, self._rf, self._protected)
        judged = self._judge(rung, groups) if set(groups) - keep else {}
        keep |= {g for g in groups if judged.get(g, {}).get("open")}
        self._decided[rung] = keep
        self.decisions.append(self._decision(rung, groups, keep, inferred=False, judged=judged))
        self._log(self.decisions[-1])
        for group in sorted(set(groups) - keep):
            self._stopped[group] = rung
        in_place = self._in_place - {current}  # they wait for this decision; `current` is still reporting
        self._in_place &= {current}
        self._release |= {t for t in self._waiting if t != current and self._group[t] in keep and t not in in_place}
        self._waiting -= {t for t in self._waiting if t != current}
        for group in sorted(set(groups) - keep):  # its seeds stop together: waiting, saving or not started
            for tid in self._members[group]:
                trial = self._trials[tid]
                if tid != current and (trial.status in (Trial.PAUSED, Trial.PENDING) or trial.is_saving
                                       or tid in in_place):
                    stop_waiting(tc, trial)
        for tid in sorted(in_place):
            if self._group[tid] in keep and not ask_for_more(tc, self._trials[tid]):
                self._release.add(tid)  # paused instead (another Ray): it runs again as a paused one
        # the next rung may be decidable at once (every continuing trial already waits there)
        later = [r for r in self._rungs if r > rung and r not in self._decided]
        if later:
            self._maybe_decide(later[0], tc, current)
        return True

    def _end(self, tc: TuneController, trial: Trial) -> None:
        if self._slots is not None:
            self._slots.count(tc, leaving=trial)
        self._ended.add(trial.trial_id)
        self._waiting.discard(trial.trial_id)
        self._release.discard(trial.trial_id)
        self._in_place.discard(trial.trial_id)
        pending = [r for r in self._rungs if r not in self._decided]
        if pending:
            self._maybe_decide(pending[0], tc)

    def _infer_decisions(self) -> None:
        """After --resume: the rungs some trial is already past were decided; rebuild who continued."""
        self._restored = False
        for rung in self._rungs:
            # a protected run passes rungs undecided: only the others show that a rung was decided
            past = [t for tid, t in self._last.items() if self._group.get(tid) not in self._protected]
            if rung in self._decided or not any(t > rung for t in past):
                continue
            groups = self._alive(rung)
            keep = {g for g in groups
                    if any(t not in self._ended or self._last.get(t, 0) > rung for t in self._members[g])}
            self._decided[rung] = keep
            self.decisions.append(self._decision(rung, groups, keep, inferred=True))
            self._log(self.decisions[-1])
            for group in set(groups) - keep:
                self._stopped[group] = rung

    def _judge(self, rung: int, groups: list[str]) -> dict[str, dict[str, list[str]]]:
        """The hold's verdicts per run at `rung`, from every trial's rows up to it ({} without a hold)."""
        if self._hold is None:
            return {}
        entries = [(tid, dict(self._trials[tid].config), self._rows.of(tid))
                   for tids in self._members.values() for tid in tids]
        return self._hold(rung, entries)

    def _log(self, d: dict) -> None:
        """A rung decision into the decision log: what each run had there and whether it goes on (an inferred one,
        after a resume, is the same decision: the log keeps the first)."""
        self.log.record("rung", [1, d["rung"]], step=d["rung"], stopped=d["stopped"], continued=d["continued"],
                        held=d["held"], runs={r["name"]: [r["mean"], r["n"], r["rank"]] for r in d["runs"]})

    def _decision(self, rung: int, groups: list[str], keep: set[str], inferred: bool,
                  judged: dict[str, dict[str, list[str]]] | None = None) -> dict:
        """What was decided at `rung`, with each run's figures there (the module docstring's dict)."""
        sign = -1.0 if self._mode == "max" else 1.0
        figures = {}
        for group in groups:
            values = [sign * self._at[(t, rung)] for t in self._members[group] if (t, rung) in self._at]
            n = len(values)
            mean = sum(values) / n if n else math.inf
            std = (math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
                   if n > 1 and math.isfinite(mean) else None)
            figures[group] = (mean if n else None, std, n)
        order = sorted(groups, key=lambda g: (math.inf if figures[g][0] is None else sign * figures[g][0], g))
        judged = judged or {}
        runs = [{"name": g, "mean": figures[g][0], "std": figures[g][1], "n": figures[g][2], "rank": i + 1,
                 "continues": g in keep, "held": list(judged.get(g, {}).get("open", [])),
                 "decided": list(judged.get(g, {}).get("decided", []))} for i, g in enumerate(order)]
        reference = next((g for g in order if g in self._protected), None)
        cut = survivors({r["name"]: r["rank"] for r in runs}, self._rf, self._protected)
        return {"rung": rung, "inferred": inferred, "reference": reference, "runs": runs,
                "continued": [r["name"] for r in runs if r["continues"]],
                "stopped": [r["name"] for r in runs if not r["continues"]],
                "held": [] if inferred else [r["name"] for r in runs if r["continues"] and r["name"] not in cut]}
