"""The end of a sweep: its summary table and report, the checkpoints it keeps, and the exit status."""

from __future__ import annotations

import signal
import sys

from sweeps.command.options import SweepOptions
from sweeps.results.trial import ERRORED, UNFINISHED
from sweeps.storage.local import apply_checkpoint_policy, is_remote
from sweeps.strategies import strategy_for


def resume_command(opts: SweepOptions) -> str:
    return (f"python sweeps/run.py {opts.exp} --resume"
            + (f" --storage {opts.storage}" if opts.storage != "results" else ""))


def summarise(opts: SweepOptions, exp_path: str) -> int:
    """The summary table (and, unless --no-analyze, the report and verdicts); the exit status."""
    # Tune's own SIGINT handler (it stops trials) stays installed after a sweep that ran to its end: from here
    # on a Ctrl-C is ours, and every step below says what it leaves
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _summarise(opts, exp_path)
    except KeyboardInterrupt:
        # before the report (that has its own message): reading the results, or pruning checkpoints
        print(f"\ninterrupted while summarising; the results are in {exp_path}; continue with: "
              f"{resume_command(opts)} (it runs no finished trial again)", file=sys.stderr)
        return 130


def _summarise(opts: SweepOptions, exp_path: str) -> int:
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
