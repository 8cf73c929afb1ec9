"""The end of a sweep: its summary table and report, the checkpoints it keeps, and the exit status."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from gptcore import record
from sweeps.options import SweepOptions
from sweeps.storage import apply_checkpoint_policy, is_remote


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
    from sweeps.analysis import pipeline
    from sweeps.analysis.load import load_sweep
    from sweeps.analysis.report import runs_table, summary_text

    uri = exp_path if is_remote(exp_path) else None
    if uri:
        # a sweep in S3 (or another bucket): its records are copied here, without checkpoints, and the
        # report made from them goes back beside them (sweeps/remote.py)
        from sweeps import remote

        local = remote.cache_dir(uri)
        remote.download(uri, local)
        exp_path = str(local)
    res = load_sweep(Path(exp_path))
    exp = pipeline.experiment_of(Path(exp_path))
    status = res.trials["status"]
    freed = 0 if uri else apply_checkpoint_policy(Path(exp_path), res.trials, opts.keep_checkpoints,
                                                  worth_keeping(res))
    if freed:
        print(f"checkpoints: kept per --keep-checkpoints {opts.keep_checkpoints}, {freed / 2**20:.1f} MB freed")
    print()
    if status.isin(record.UNFINISHED).any():
        print(runs_table(res, exp))
        print(f"\nthe sweep was interrupted; continue it with: {resume_command(opts)}")
        return 130
    if opts.no_analyze:
        print(runs_table(res, exp))
    else:
        report = None
        try:
            # the line is inside the try: a Ctrl-C may come the moment it appears
            print("writing the report...", flush=True)
            analysis, report = pipeline.analyse(res, exp, Path(exp_path), pipeline.read_sweep_info(Path(exp_path)))
            if uri:
                remote.upload_outputs(Path(exp_path), uri)
            print(summary_text(analysis))
            print(f"\nreport: {uri + '/report.md' if uri else report}" + (f" (local copy: {report})" if uri else ""))
        except KeyboardInterrupt:
            # the sweep itself is done and on disk; at most the report is missing
            print(f"\ninterrupted {'after' if report else 'while'} writing the report; the results are complete in "
                  f"{exp_path}; {'write it again' if report else 'finish it'} with: gptsweep analyze {exp_path}",
                  file=sys.stderr)
            return 130
    print(f"results: {uri or exp_path}")
    if res.trials["error"].astype(str).str.contains("No space left on device").any():
        print(f"the disk that holds {exp_path} is full (No space left on device): free space there, then continue "
              f"with: {resume_command(opts)}", file=sys.stderr)
    return 1 if (status == record.ERRORED).any() else 0


def worth_keeping(res) -> set[str]:
    """The runs whose checkpoints `--keep-checkpoints best` keeps: a search's confirmed ones and its best trial,
    or a grid's best run."""
    from sweeps.analysis.search import is_search, ranked
    from sweeps.analysis.verdicts import best_run

    if is_search(res):
        top = ranked(res)["name"].head(1)
        return {n for n in res.trials["name"] if n.startswith("confirm_")} | set(top)
    best = best_run(res)
    return {best[0]} if best else set()
