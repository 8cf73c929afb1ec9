"""A finished sweep to a tracker (`gptsweep analyze RESULTS --tracker ...`): the same runs a live sweep makes.

Each trial that ran becomes a tracker run from its folder (its Tune config, its evaluations from
history.csv's frame, its status from trials.csv's), then the sweep's run gets the verdicts and the
report. Sending the same sweep again continues the same runs and adds no step twice, so a sweep
that was tracked live, or sent before, is completed, never duplicated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sweeps.results.frames import Results
from sweeps.results.trial import NOT_STARTED
from sweeps.trackers.base import Tracker, trial_info


def send_finished(tracker: Tracker, res: Results, verdicts: list[dict[str, Any]], folder: Path) -> int:
    """Send every trial of `res` that ran, then the verdicts and the report in `folder`; the number of trials sent."""
    tracker.open()
    sent = 0
    try:
        for t in res.trials.to_dict("records"):
            if t["status"] == NOT_STARTED:  # a live sweep makes no run for a trial that never started either
                continue
            tid = str(t["trial_id"])
            config = res.params.get(tid) or {"name": t["name"], "seed": t.get("seed"), "stage": t.get("stage")}
            tracker.trial_started(trial_info(tid, config))
            tracker.trial_rows(tid, res.history[res.history["trial_id"] == tid].to_dict("records"))
            tracker.trial_ended(tid, str(t["status"]))
            sent += 1
        tracker.sweep_ended(verdicts, folder)
    finally:
        tracker.close()
    return sent
