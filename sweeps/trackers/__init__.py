"""The trackers layer: a sweep's trials and verdicts as runs of an experiment tracker (W&B or MLflow).

`base.py` is what every tracker is given and does: `--tracker` parsed (`TrackerSpec`), the sweep
it logs (`SweepRef`: experiment, folder, start, the tag that names it), a trial as a tracker run
(`TrialInfo`: its name, seed, stage and config) and the `Tracker` every kind implements, with
the shape they share: one tracker run per trial (named by run and seed, grouped by run, tagged with
the experiment, run, seed, stage and sweep), its config as parameters, its losses by step, its
ending, and one sweep-level run (an MLflow parent, a W&B run in the sweep's group) holding every
verdict and the report with its plots. A tracker resumes runs it already holds (the same sweep and
trial id) and never logs a step twice. `mlflow_runs.py` and `wandb_runs.py` are the two kinds;
`finished.py` sends a finished sweep (`gptsweep analyze RESULTS --tracker ...`) in the same shape
as a live one, whose trials arrive through Tune's callback (sweeps/tune/tracking.py).

Everything is sent from the driver (the machine that runs the sweep), so the nodes need no
tracker credentials. The trackers are optional packages, imported only when one is asked for;
each check before a sweep (`Tracker.check`) is one line naming what is wrong and its fix.

May import: storage, report, verdicts, results, experiment (and gptcore). Never Ray or torch.
"""

from __future__ import annotations

from sweeps.trackers.base import TRACKERS, SweepRef, Tracker, TrackerSpec, TrialInfo, parse_tracker


def make_tracker(spec: TrackerSpec, exp: str, exp_path: str) -> Tracker:
    """The tracker `spec` names, for the sweep of experiment `exp` in `exp_path` (not opened yet)."""
    if spec.kind == "mlflow":
        from sweeps.trackers.mlflow_runs import MlflowTracker

        return MlflowTracker(spec, exp, exp_path)
    from sweeps.trackers.wandb_runs import WandbTracker

    return WandbTracker(spec, exp, exp_path)


__all__ = ["TRACKERS", "SweepRef", "Tracker", "TrackerSpec", "TrialInfo", "make_tracker", "parse_tracker"]
