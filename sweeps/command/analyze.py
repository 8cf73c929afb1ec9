"""Analyse an experiment: tables, plots, verdicts and report.md.

    gptsweep analyze exp1                      # results/exp1/ (a sweep's folder)
    gptsweep analyze exp1 --results runs       # runs/exp1/
    gptsweep analyze path/to/exp_dir           # any experiment folder
    gptsweep analyze s3://bucket/prefix/exp1   # a sweep in S3 (also: exp1 --results s3://bucket/prefix)
    gptsweep analyze --logs experiments/exp1_*.log [--exp exp1] [--out DIR]
    gptsweep analyze exp1 --tracker mlflow     # also send the sweep's trials and verdicts to MLflow (or wandb)

(`python sweeps/analyze.py ...` is the same command.) A sweep's folder gets trials.csv,
history.csv, plots/ and report.md beside the trial folders. Hand-made logs (the chapter's
`... | tee experiments/exp1_baseline.log`) are named by file: `exp1_large_lr.log` is run
`large_lr` of `exp1`; their report goes to `<log folder>/<exp>_report/` unless --out says
otherwise. A sweep in S3 is copied to a local cache without its checkpoints (`sweeps/s3/...` under
$GPTCORE_CACHE, by default ~/.cache/gptcore), analysed there, and the outputs are copied back beside it.
`--tracker wandb[=PROJECT]|mlflow[=URI]` sends a finished sweep to a tracker as a live sweep does (one
run per trial, the verdicts and the report in the sweep's own run; MLflow's default is mlflow.db in the
sweep's folder); sending it again adds nothing twice. Mistakes end with a one-line `error: ...` and exit
status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from gptcore.errors import UserError, first_line
from sweeps.command.pipeline import analyse_logs, analyse_remote, analyse_sweep
from sweeps.experiment.files import experiment_names
from sweeps.report.summary import summary_text
from sweeps.results.load import load_sweep, read_sweep_info
from sweeps.storage.local import is_remote
from sweeps.trackers import Tracker, TrackerSpec, make_tracker, parse_tracker
from sweeps.trackers.finished import send_finished

USAGE = __doc__.split("\n\n")[1]


def load_results(exp_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, history) of a sweep's experiment folder, read from the raw files (no Ray needed).

    trials has one row per trial, history one row per evaluation; see sweeps/results/frames.py
    for the columns. Raises UserError when the folder is missing or holds no trials.
    """
    res = load_sweep(Path(exp_dir))
    return res.trials, res.history


def analyze(exp_dir: Path, exp: str | None = None) -> Path:
    """Analyse a sweep's experiment folder in place; returns the path of its report.md.

    Writes trials.csv, history.csv, plots/*.png and report.md into exp_dir. `exp` (exp1 ...
    exp5, or an experiment file) selects the verdicts; by default the sweep's own copy.
    Raises UserError when the folder is missing or holds no trials.
    """
    return analyse_sweep(Path(exp_dir), exp)[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gptsweep analyze", description=USAGE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("exp", nargs="?", help="experiment name under --results (exp1 ... exp5), or an experiment folder")
    p.add_argument("--results", default="results", help="folder that holds the experiments (default: results)")
    p.add_argument("--logs", nargs="+", metavar="FILE", help="analyse hand-made nanoGPT-style log files instead")
    p.add_argument("--exp", dest="exp_name", choices=experiment_names(),
                   help="which chapter experiment to check (default: from sweep.json, the folder or the log names)")
    p.add_argument("--out", help="with --logs: where to write the report (default: <log folder>/<exp>_report)")
    p.add_argument("--tracker", metavar="wandb[=PROJECT]|mlflow[=URI]",
                   help="send the sweep's trials, verdicts and report to W&B or MLflow, in the shape of a live sweep")
    a = p.parse_args(argv)
    try:
        spec = parse_tracker(a.tracker) if a.tracker else None
        if spec is not None and a.logs:
            raise UserError("--tracker sends a sweep's folder (its trials by id): give the folder, not --logs")
        if a.logs:
            if a.exp:
                raise UserError(f"give either an experiment ({a.exp}) or --logs, not both")
            analysis, report = analyse_logs([Path(f) for f in a.logs], a.exp_name, a.out)
        else:
            if not a.exp:
                raise UserError("name an experiment (e.g. exp1) or an experiment folder, or pass --logs FILE...")
            if is_remote(a.exp) or is_remote(a.results):
                uri = a.exp if is_remote(a.exp) else f"{a.results.rstrip('/')}/{a.exp}"
                tracker = checked_tracker(spec, uri)  # a sweep in a bucket: its tracker runs are the live sweep's
                analysis, report, remote_report = analyse_remote(uri, a.exp_name)
                print(summary_text(analysis))
                print(f"report: {remote_report} (local copy: {report})")
                send(tracker, analysis, report.parent)
                return 0
            exp_dir = Path(a.results) / a.exp
            if not exp_dir.is_dir() and Path(a.exp).is_dir():
                exp_dir = Path(a.exp)  # a direct path to an experiment folder
            tracker = checked_tracker(spec, str(exp_dir.absolute()))  # bad settings: one line before the analysis
            analysis, report = analyse_sweep(exp_dir, a.exp_name)
        print(summary_text(analysis))
        print(f"report: {report}")
        if not a.logs:
            send(tracker, analysis, exp_dir)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def checked_tracker(spec: TrackerSpec | None, exp_path: str) -> Tracker | None:
    """The tracker for the sweep in `exp_path` (a folder, or a bucket's URI), its settings checked (one line each)."""
    if spec is None:
        return None
    info = (None if is_remote(exp_path) else read_sweep_info(Path(exp_path))) or {}
    exp = info.get("exp") if isinstance(info.get("exp"), str) else exp_path.rstrip("/").rsplit("/", 1)[-1]
    tracker = make_tracker(spec, exp, exp_path)
    tracker.check()
    return tracker


def send(tracker: Tracker | None, analysis, exp_dir: Path) -> None:
    """A finished sweep's trials, verdicts and report to the tracker, as a live sweep sends them."""
    if tracker is None:
        return
    try:
        n = send_finished(tracker, analysis.res, [v.to_json() for v in analysis.verdicts], exp_dir)
    except UserError:
        raise
    except Exception as e:  # the tracker's own errors (a server gone, a database locked): one line, as any mistake
        why = first_line(e)
        raise UserError(f"tracker {tracker.kind} failed ({why}); the report is written: send it again with the same "
                        "command once the tracker works (nothing is sent twice)") from None
    print(f"tracker: {n} trial(s) and {len(analysis.verdicts)} verdict(s) sent to {tracker.where()}")


if __name__ == "__main__":
    sys.exit(main())
