"""What every strategy is, and what its Tune parts share: `Strategy`, `Slots`, `TrialRows`, and the two calls
into Tune's controller that its public API lacks (`stop_waiting`, `ask_for_more`).

A strategy is one way of running an experiment (sweeps/strategies/__init__.py has the registry).
It decides, once, everything that differs between a grid and a search: the trials of the plan and
how the dry run shows them, its searcher, scheduler and concurrency on Tune, what the live view
shows, and how its results are judged. Nothing outside the strategies asks which one it runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeps.results.decisions import FILE as DECISIONS
from sweeps.results.decisions import DecisionLog
from sweeps.results.trial import row_of

if TYPE_CHECKING:
    from sweeps.experiment.specs import Experiment
    from sweeps.report.analysis import Analysis
    from sweeps.results.frames import Results
    from sweeps.strategies.plan import Plan, PlanRequest


@dataclass
class ViewSpec:
    """What the live view shows of a sweep: its title, the trials planned, and the strategy's panel."""

    title: str
    planned_trials: int
    panel: Any = None  # a sweeps.view panel; None: every run as a line
    planned_runs: dict[str, int] | None = None  # run -> its trials planned from the start (a grid's first seeds)


@dataclass
class TuneParts:
    """What a strategy gives the Tuner: its searcher and scheduler, the trials at once (None: Tune's default),
    the param space every trial shares, the columns of Tune's own table (--verbose), the objects whose
    `decisions` and `looks` the live view shows, and what else the view shows (`ViewSpec`)."""

    search_alg: Any
    scheduler: Any
    max_concurrent: int | None
    param_space: dict[str, Any]
    table_columns: list[str] = field(default_factory=list)
    shown: tuple[Any, ...] = ()
    view: ViewSpec | None = None


class Strategy:
    """One way to run an experiment: a grid of the file's runs, or a search (sweeps/strategies/grid.py, search.py)."""

    name = ""

    def plan(self, exp: Experiment, profile: str, ask: PlanRequest, common: dict[str, Any]) -> dict[str, Any]:
        """The plan's strategy-specific fields (trials, num_samples, seeds, ...), given the shared ones."""
        raise NotImplementedError

    def describe(self, plan: Plan) -> list[str]:
        """The dry run's lines after the header: the trials and the total work."""
        raise NotImplementedError

    def scheduler_text(self, plan: Plan) -> str:
        """How early stopping works here, in a few words (the dry run's header)."""
        raise NotImplementedError

    def tune(self, plan: Plan, exp_path: str, seed: int) -> TuneParts:
        """The Tune objects that run the plan, and what the live view shows of it (this imports Ray and, for a
        search, Optuna)."""
        raise NotImplementedError

    def judge(self, res: Results, exp: Experiment | None, info: dict[str, Any] | None) -> Analysis:
        """The results judged against the experiment file (sweeps/report/analysis.py's Analysis)."""
        raise NotImplementedError

    def worth_keeping(self, res: Results) -> set[str]:
        """The runs whose checkpoints `--keep-checkpoints best` keeps."""
        raise NotImplementedError

    def summary_table(self, res: Results, exp: Experiment | None) -> str:
        """The summary table alone, nothing judged (a sweep that did not finish, or --no-analyze)."""
        raise NotImplementedError

    def names(self, res: Results, exp: Experiment | None) -> list[str]:
        """The runs the summary table and the report show, in the file's order."""
        raise NotImplementedError


def decision_log(exp_path: str) -> DecisionLog:
    """The sweep's decision log (sweeps/results/decisions.py), on the driver's disk (beside the trials when they
    are local; the report's outputs carry it to a bucket)."""
    from sweeps.storage.local import driver_file

    return DecisionLog(driver_file(exp_path, DECISIONS, "decisions"))


def concurrency_now(cpus: float, gpus: float) -> int:
    """As many trials as the cluster's CPUs (and GPUs) hold now; at least 1.

    An autoscaling cluster may show no workers yet: pass --max-concurrent there.
    """
    import ray

    res = ray.cluster_resources()
    slots = res.get("CPU", 0) / cpus
    if gpus:
        slots = min(slots, res.get("GPU", 0) / gpus)
    return max(1, int(slots))


class Slots:
    """`--max-concurrent` for trials that wait at rungs: how many more trials may run now.

    Tune's own limit (`max_concurrent_trials`, a ConcurrencyLimiter) counts a trial paused at a rung
    as running, so with fewer slots than trials a sweep whose early stopping pauses trials would wait
    for ever for trials that are never started. Here the scheduler counts the trials that hold a
    slot (running or about to start) at every step of Tune's loop, and both the searcher (new trials)
    and the scheduler (trials let past a rung) take a slot before starting one. limit None: no limit.
    """

    def __init__(self, limit: int | None):
        self.limit = limit
        self.free = limit if limit is not None else 0

    def count(self, tc: Any, leaving: Any = None) -> None:
        """Free slots: the limit less the trials running or pending (a paused one holds none); `leaving`, a
        trial that is pausing or ending now (Tune changes its status after asking the scheduler), holds none."""
        if self.limit is not None:
            from ray.tune.experiment import Trial

            busy = sum(1 for t in tc.get_trials() if t.status in (Trial.RUNNING, Trial.PENDING) and t is not leaving)
            self.free = self.limit - busy

    def take(self) -> bool:
        """Take a slot if one is free (always, without a limit)."""
        if self.limit is None:
            return True
        if self.free <= 0:
            return False
        self.free -= 1
        return True


class TrialRows:
    """The report rows of the trials of a sweep that is running (`sweeps.results.trial.report_row`s), by trial id.

    Whatever judges the trials while they run (the early stopping's hold, the looks that add seeds)
    keeps their rows here: `add` takes a result as Tune hands it over (a repeat of the last row, as
    Tune sends again at a trial's end, is not added twice); `restore` reads back what a trial of a
    resumed sweep reported before.
    """

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}

    def add(self, trial_id: str, result: dict[str, Any]) -> None:
        rows = self.rows.setdefault(trial_id, [])
        row = row_of(result)
        if not rows or rows[-1].get("iter") != row.get("iter") or rows[-1].get("status") != row.get("status"):
            rows.append(row)

    def of(self, trial_id: str) -> list[dict[str, Any]]:
        return self.rows.get(trial_id, [])

    def restore(self, trial_id: str, trial: Any) -> None:
        """A restored trial's rows, from its result.json on the driver (nothing when it cannot be read)."""
        try:
            path = Path(trial.local_path) / "result.json"
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, ValueError, AttributeError, TypeError):
            return
        self.rows[trial_id] = [row_of(r) for r in rows if isinstance(r, dict)]


def _controller(tc: Any) -> Any:
    """Tune's controller behind what a scheduler is handed (itself, in Ray 2.60)."""
    return getattr(tc, "_tune_controller", tc)


def stop_waiting(tc: Any, trial: Any) -> None:
    """Stop a trial that waits (paused, pending, or running but asked for nothing), and make Ray write its new
    status down.

    Ray 2.60 refreshes the saved state of a trial (experiment_state-*.json) only when the trial
    reports or starts; stopping a paused one does neither, so its record would keep PAUSED and
    `--resume`, ExperimentAnalysis and our loader would take it for unfinished. The controller's
    `_mark_trial_to_checkpoint` is private; without it (another Ray) the record stays stale.
    """
    tc.stop_trial(trial)
    mark = getattr(_controller(tc), "_mark_trial_to_checkpoint", None)
    if mark is not None:
        mark(trial)


def ask_for_more(tc: Any, trial: Any) -> bool:
    """Ask a running trial that a scheduler told to wait (Tune's NOOP) for its next result: the controller's
    `_schedule_trial_train`, private. Without it (another Ray) the trial is paused instead (False): whoever
    waits on it must start it again as a paused trial."""
    from ray.tune.experiment import Trial

    train = getattr(_controller(tc), "_schedule_trial_train", None)
    if train is not None and trial.status == Trial.RUNNING:
        train(trial)
        return True
    if trial.status == Trial.RUNNING:
        tc.pause_trial(trial)
    return False
