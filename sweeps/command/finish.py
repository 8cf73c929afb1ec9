"""The end of a sweep: its summary table and report, the checkpoints it keeps, and the exit status."""

from __future__ import annotations

import signal
import sys

from gptcore.errors import first_line
from sweeps.command.options import SweepOptions
from sweeps.results.trial import ERRORED, UNFINISHED
from sweeps.storage.local import apply_checkpoint_policy, is_remote
from sweeps.strategies import strategy_for
from sweeps.trackers import Tracker


def resume_command(opts: SweepOptions) -> str:
    return (f"python sweeps/run.py {opts.exp} --resume"
            + (f" --storage {opts.storage}" if opts.storage != "results" else ""))


def close_tracker(tracker: Tracker | None, interrupted: bool = False) -> None:
    """End the tracker's runs (those of trials not over: cut short); a tracker that fails is one line."""
    if tracker is None:
        return
    try:
        tracker.close(interrupted=interrupted)
    except Exception as e:  # the results are safe on disk whatever the tracker does
        print(f"note: tracker {tracker.kind} failed while closing its runs ({first_line(e)})", file=sys.stderr)


def send_verdicts(tracker: Tracker | None, analysis, folder) -> None:
    """The verdicts and the report to the tracker's sweep-level run, and where to look; a failure is one line."""
    if tracker is None:
        return
    try:
        tracker.sweep_ended([v.to_json() for v in analysis.verdicts], folder)
        print(f"tracker: {tracker.where()}")
    except Exception as e:
        print(f"note: tracker {tracker.kind} failed ({first_line(e)}): send the sweep again with gptsweep analyze "
              f"{folder} --tracker {tracker.spec}", file=sys.stderr)


def summarise(opts: SweepOptions, exp_path: str, tracker: Tracker | None = None) -> int:
    """The summary table (and, unless --no-analyze, the report and verdicts, also to the tracker); the exit
    status. The tracker's runs are closed here."""
    # Tune's own SIGINT handler (it stops trials) stays installed after a sweep that ran to its end: from here
    # on a Ctrl-C is ours, and every step below says what it leaves
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = 130
    try:
        code = _summarise(opts, exp_path, tracker)
        return code
    except KeyboardInterrupt:
        # before the report (that has its own message): reading the results, or pruning checkpoints
        print(f"\ninterrupted while summarising; the results are in {exp_path}; continue with: "
              f"{resume_command(opts)} (it runs no finished trial again)", file=sys.stderr)
        return 130
    finally:
        close_tracker(tracker, interrupted=code == 130)


def _summarise(opts: SweepOptions, exp_path: str, tracker: Tracker | None = None) -> int:
    from sweeps.command import pipeline
    from sweeps.report.summary import summary_text
    from sweeps.results.load import load_sweep, read_sweep_info

    # a sweep in S3 (or another bucket): its records are copied here, without checkpoints, and the report
    # made from them goes back beside them
    uri = exp_path if is_remote(exp_path) else None
    local = pipeline.fetch(exp_path, quiet=True)
    res = load_sweep(local)
    exp = pipeline.experiment_of(local)
    info = read_sweep_info(local)
    how = strategy_for(res, info)
    status = res.trials["status"]
    freed = 0 if uri else apply_checkpoint_policy(local, res.trials, opts.keep_checkpoints, how.worth_keeping(res))
    if freed:
        print(f"checkpoints: kept per --keep-checkpoints {opts.keep_checkpoints}, {freed / 2**20:.1f} MB freed")
    print()
    if status.isin(UNFINISHED).any():
        print(how.summary_table(res, exp))
        print(f"\nthe sweep was interrupted; continue it with: {resume_command(opts)}")
        return 130
    if opts.no_analyze:
        print(how.summary_table(res, exp))
    else:
        report = None
        try:
            # the line is inside the try: a Ctrl-C may come the moment it appears
            print("writing the report...", flush=True)
            analysis, report = pipeline.analyse(res, exp, local, info)
            where = pipeline.publish(local, exp_path)
            print(summary_text(analysis))
            print(f"\nreport: {where}" + (f" (local copy: {report})" if uri else ""))
            send_verdicts(tracker, analysis, local)
        except KeyboardInterrupt:
            # the sweep itself is done and on disk; at most the report is missing
            print(f"\ninterrupted {'after' if report else 'while'} writing the report; the results are complete in "
                  f"{local}; {'write it again' if report else 'finish it'} with: gptsweep analyze {local}",
                  file=sys.stderr)
            return 130
    print(f"results: {uri or local}")
    if res.trials["error"].astype(str).str.contains("No space left on device").any():
        print(f"the disk that holds {local} is full (No space left on device): free space there, then continue "
              f"with: {resume_command(opts)}", file=sys.stderr)
    return 1 if (status == ERRORED).any() else 0
