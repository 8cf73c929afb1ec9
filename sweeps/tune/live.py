"""The live view's Tune side: a Callback that turns Tune's hooks into `sweeps.view.state.View` events.

Trials come from on_trial_start / on_trial_result / on_trial_complete / on_trial_error, and from
the trial list at every step (a trial waiting at a rung is PAUSED there, or RUNNING and in the
scheduler's `in_place` when no other trial could use its slot; a trial the scheduler
stopped while it waited or before it started ends there); how each ended is
`sweeps.results.trial.ending`. Decisions come from the strategy's Tune parts that keep them (a
scheduler's `decisions`, a searcher's `looks`): the callback holds those objects and reads the new
entries at each step. Tune pickles the callbacks with the scheduler and the searcher (tuner.pkl),
so after `--resume` the restored callback still holds the restored ones.

The output is chosen when the sweep starts (`setup`), not when the callback is made: a resumed
sweep may run where the first did not (a terminal, then a pipe). Consoles and file handles are
left out of the pickle.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from typing import Any

from ray import tune
from ray.tune.experiment import Trial

from sweeps.results.trial import ending
from sweeps.view.outputs import PlainOutput, TerminalOutput
from sweeps.view.state import View

# the plain output's progress line: every this many seconds (GPTSWEEP_PROGRESS_S overrides it)
PROGRESS_S = 45.0


def dashboard_url() -> str | None:
    """Where this Ray instance's dashboard is (it may differ from the first session's after --resume)."""
    try:
        import ray

        url = ray._private.worker.get_dashboard_url()  # private; None when it changes
    except Exception:
        return None
    return f"http://{url}" if url and not str(url).startswith("http") else (url or None)


class LiveView(tune.Callback):
    """The live view of the sweep on this process's stdout (module docstring).

    Args:
        view: the View's arguments (title, planned_trials, max_iters, panel, results, log); the
            dashboard's URL is found when the sweep starts.
        shown: the strategy's objects whose `decisions` (a scheduler's rungs) and `looks` (a searcher's
            looks at more seeds, sweeps/strategies/seeds.py) are shown, where they have them.
        interval: seconds between the plain output's progress lines.
    """

    def __init__(self, view: dict[str, Any], shown: tuple[Any, ...] = (), interval: float | None = None):
        self._args = dict(view)
        self._shown = tuple(x for x in shown if x is not None)
        self._interval = interval
        self._view: View | None = None
        self._out: PlainOutput | TerminalOutput | None = None
        self._seen = self._looked = 0
        self._synced = False

    def __setstate__(self, state: dict[str, Any]) -> None:  # a callback pickled by an earlier version
        if "_shown" not in state:
            state["_shown"] = tuple(x for x in (state.pop("_scheduler", None), state.pop("_searcher", None)) if x)
        self.__dict__.update(state)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_view=None, _out=None, _seen=0, _synced=False, _looked=0)
        return state

    # -- Tune's hooks ------------------------------------------------------------------

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info) -> None:
        now = time.time()
        args = dict(self._args)
        if not args.get("planned_trials") and total_num_samples:
            args["planned_trials"] = total_num_samples
        self._view = View(dashboard=dashboard_url(), **args)
        self._view.start(now)
        self._seen, self._synced, self._looked = 0, False, 0
        interval = self._interval or float(os.environ.get("GPTSWEEP_PROGRESS_S", PROGRESS_S))
        if sys.stdout.isatty():
            self._out = TerminalOutput(self._view, file=sys.stdout)
            atexit.register(self._close)
        else:
            self._out = PlainOutput(self._view, lambda line: print(line, flush=True), interval)
            self._out.begin()

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        if self._view is not None:
            self._view.trial_started(trial.trial_id, trial.config, time.time())

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if self._view is not None:
            self._view.trial_result(trial.trial_id, result, time.time())

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        if self._view is not None:
            self._decisions()  # the decision that stopped it (taken on its last result) comes first
            self._view.trial_ended(trial.trial_id, ending(trial.last_result, over=True), time.time())

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        if self._view is not None:
            self._decisions()
            self._view.trial_ended(trial.trial_id, ending(trial.last_result, over=True, errored=True), time.time())

    def on_step_end(self, iteration, trials, **info) -> None:
        if self._view is None:
            return
        self._sync(trials)
        self._out.update(time.time())

    def on_experiment_end(self, trials, **info) -> None:
        if self._view is None:
            return
        self._sync(trials)
        self._close()

    # -- ------------------------------------------------------------------------------

    def _sync(self, trials) -> None:
        """What the trial list and the scheduler say that no hook did: new trials, waits, stops, decisions."""
        view, now = self._view, time.time()
        self._decisions()  # before the stops they cause
        # a trial waits at a rung PAUSED, or RUNNING in its actor when no other trial could use the slot
        in_place = set().union(*(getattr(x, "in_place", ()) for x in self._shown))
        for trial in trials:
            tid = trial.trial_id
            if tid not in view.trials:  # a pending trial, or one restored by --resume (maybe over already)
                over = trial.status in (Trial.TERMINATED, Trial.ERROR) and not self._synced
                ended = ending(trial.last_result, over=True, errored=trial.status == Trial.ERROR) if over else None
                view.trial_added(tid, trial.config, trial.last_result, ended=ended)
            known = view.trials[tid]
            if (trial.status == Trial.PAUSED or tid in in_place) and known.state == "running":
                view.trial_waiting(tid, now)
            elif trial.status == Trial.TERMINATED and known.state != "ended":
                view.trial_ended(tid, ending(trial.last_result, over=True), now)
            elif trial.status == Trial.ERROR and known.state != "ended":
                view.trial_ended(tid, ending(trial.last_result, over=True, errored=True), now)
        self._synced = True  # after the first look, a trial first seen over ended in this session

    def _decisions(self) -> None:
        """The decisions and looks not shown yet."""
        decisions = [d for x in self._shown for d in getattr(x, "decisions", None) or []]
        for d in decisions[self._seen:]:
            self._view.decision(d, time.time())
        self._seen = len(decisions)
        looks = [d for x in self._shown for d in getattr(x, "looks", None) or []]
        for d in looks[self._looked:]:
            self._view.look(d, time.time())
        self._looked = len(looks)

    def _close(self) -> None:
        out, self._out = self._out, None
        if out is not None:
            out.finish(time.time())
