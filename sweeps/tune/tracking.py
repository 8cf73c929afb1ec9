"""The trackers' Tune side: a Callback on the driver that feeds a sweep's trials to its tracker (sweeps/trackers/).

Everything is sent from the driver, so the nodes that train need no tracker package and no
credentials. Tune's hooks only queue the events; one thread of the callback sends them, in order,
so a slow tracker (a run made over the network, a database created) never holds up the sweep,
and a tracker that fails says so in one line and is dropped: the sweep goes on.

The tracker is this driver's, not the callback's: Tune pickles its callbacks into the sweep's state
(tuner.pkl), and `--resume` brings the callback back without one. The command gives the session's
tracker with `attach` before the sweep starts, a new one or a resumed one alike, and the callback
takes it up in `setup`.
"""

from __future__ import annotations

import queue
import sys
import threading
from typing import Any

from ray import tune
from ray.tune.experiment import Trial

from gptcore.errors import first_line
from sweeps.results.trial import ending, row_of
from sweeps.trackers import Tracker
from sweeps.trackers.base import trial_info

_ATTACHED: list[Tracker] = []  # the tracker of this driver's sweep (at most one)
_FEEDS: list[TrackerFeed] = []  # the callback sending to it, once the sweep started
_DRAIN_S = 300.0  # at the end, how long the sweep waits for the tracker to take what is queued


def attach(tracker: Tracker | None) -> None:
    """The tracker this process's sweep logs to (None: none)."""
    _ATTACHED.clear()
    if tracker is not None:
        _ATTACHED.append(tracker)


def drain() -> None:
    """Wait until the sweep's events are sent (after `tuner.fit()`, however it ended: a Ctrl-C skips Tune's
    on_experiment_end), so that the command may use the tracker itself."""
    while _FEEDS:
        _FEEDS.pop().drain()


class TrackerFeed(tune.Callback):
    """Queues each trial's start, report rows and ending for the attached tracker (module docstring)."""

    def __init__(self):
        self._setup_state()

    def _setup_state(self) -> None:
        self._tracker: Tracker | None = None
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._ended: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        return {}  # nothing of a session is kept: the next one attaches its own tracker

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._setup_state()

    # -- Tune's hooks ------------------------------------------------------------------

    def setup(self, **info) -> None:
        self._setup_state()
        self._tracker = _ATTACHED[0] if _ATTACHED else None
        if self._tracker is None:
            return
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._send, name="gptsweep-tracker", daemon=True)
        self._thread.start()
        _FEEDS.append(self)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._put("trial_started", trial_info(trial.trial_id, trial.config))

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self._put("trial_rows", trial.trial_id, [row_of(result)])

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._end(trial, ending(trial.last_result, over=True))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._end(trial, ending(trial.last_result, over=True, errored=True))

    def on_step_end(self, iteration, trials, **info) -> None:
        # a trial the scheduler stopped while it waited at a rung ends without on_trial_complete
        for trial in trials:
            if trial.status in (Trial.TERMINATED, Trial.ERROR) and trial.trial_id not in self._ended:
                self._end(trial, ending(trial.last_result, over=True, errored=trial.status == Trial.ERROR))

    def on_experiment_end(self, trials, **info) -> None:
        self.on_step_end(0, trials)
        self.drain()

    # -- ------------------------------------------------------------------------------

    def _end(self, trial, status: str) -> None:
        self._ended.add(trial.trial_id)
        self._put("trial_ended", trial.trial_id, status)

    def _put(self, event: str, *args: Any) -> None:
        if self._queue is not None:
            self._queue.put((event, args))

    def _send(self) -> None:
        """The thread that sends: one event at a time, in order; the first failure drops the tracker."""
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._tracker is None:
                continue
            event, args = item
            try:
                getattr(self._tracker, event)(*args)
            except Exception as e:  # a tracker's own errors are many; the sweep must not depend on them
                why = first_line(e)
                print(f"note: tracker {self._tracker.kind} failed ({why}); the sweep goes on without it: send it "
                      "later with gptsweep analyze RESULTS --tracker ...", file=sys.stderr, flush=True)
                self._tracker = None
                attach(None)

    def drain(self, timeout: float = _DRAIN_S) -> None:
        """Wait until everything queued is sent (the sweep's end, before its verdicts follow)."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None
