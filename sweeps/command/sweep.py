"""The sweep command (`gptsweep`, `python -m sweeps`, `python sweeps/run.py`): parse, plan, run, summarise.

The options are read and checked once (`options.parse_options`, whose USAGE is the --help text),
the plan is made and printed (`sweeps.strategies.plan`), then Ray runs it (`sweeps.tune.launch`)
and the end of the sweep is summarised (`finish.py`). `--list`, `--help` and `--dry-run` stop
before Ray or Optuna are imported. Every mistake that shows without training (a --storage that is
a file, a trial this machine cannot hold, the tracker's settings, ...) is refused in one line
before the plan is printed and before Ray starts.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from gptcore.errors import UserError
from sweeps.command.options import parse_options
from sweeps.experiment.files import experiment_names, load_experiment
from sweeps.results.load import read_sweep_info
from sweeps.storage.local import SweepLock, check_existing, check_remote, check_writable, experiment_dir, is_remote
from sweeps.strategies import describe, make_plan
from sweeps.trackers import Tracker, make_tracker, parse_tracker


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_data_source(source: str | None) -> None:
    """Refuse a `--data-source` path that is no file to read, before the plan is printed (in a dry run
    too): cheap, it reads nothing. Its text is checked when the dataset is prepared from it."""
    if not source:
        return
    from gptcore.sources import is_url

    if is_url(source):
        return
    fix = "give the path of a UTF-8 text file (or an http(s) URL)"
    p = Path(source).expanduser()
    try:
        if p.is_dir():
            raise UserError(f"--data-source {source} is a folder, not a text file: {fix}")
        if not p.is_file():
            raise UserError(f"--data-source {source}: no such file: {fix}")
        with open(p, "rb"):
            pass
    except OSError as e:
        raise UserError(f"--data-source {source}: cannot read it ({e.strerror or e}): {fix}") from None


def existing_sweep(exp_path: str, opts) -> bool:
    """`check_existing` (True: restore the sweep there), with a remote --storage that cannot be opened
    (an unknown scheme, a URI without a bucket) as one line."""
    try:
        check_remote(exp_path)  # a remote --storage: reachable, the bucket there, the credentials good, in seconds
        return check_existing(exp_path, opts.resume, opts.fresh)
    except (ValueError, OSError) as e:
        if not is_remote(exp_path):
            raise
        why = (str(e).splitlines() or [type(e).__name__])[0]
        raise UserError(f"--storage {opts.storage}: cannot open it ({why}): use s3://bucket/prefix, "
                        "gs://bucket/prefix or a local path") from None


def sweep_tracker(opts, exp: str, exp_path: str) -> Tracker | None:
    """The tracker the sweep logs to, its settings checked (one line each, before the plan and Ray): --tracker,
    or for a --resume without it the one the sweep was started with (sweep.json)."""
    spec = opts.tracker
    if spec is None and opts.resume and not is_remote(exp_path):
        said = (read_sweep_info(Path(exp_path)) or {}).get("tracker")
        if isinstance(said, str) and said:
            spec = parse_tracker(said)
            print(f"tracker: {spec} (as the sweep was started)")
    if spec is None:
        return None
    tracker = make_tracker(spec, exp, exp_path)
    tracker.check(dry_run=opts.dry_run)
    return tracker


def main(argv: list[str] | None = None) -> int:
    opts = parse_options(sys.argv[1:] if argv is None else argv)
    if opts.list_experiments:
        for n in experiment_names():
            print(f"{n}  {load_experiment(n).description}")
        return 0
    from sweeps.command.finish import close_tracker, resume_command, summarise
    from sweeps.tune.cluster import check_job_storage, resolve_address
    from sweeps.tune.launch import (
        build_tuner,
        disk_full,
        job_metadata,
        prepare_dataset,
        record_sweep,
        shutdown,
        start_ray,
    )
    from sweeps.tune.resources import check_local, check_ray

    # every mistake that shows without training is one line here, before the plan and before Ray
    check_data_source(opts.data_source)  # a missing file is one line before anything else, in a dry run too
    address = resolve_address(opts.address)  # an address that does not parse: one line, before Ray
    check_job_storage(opts.storage)  # in a Ray job, results relative to its temporary copy of the code would be lost
    check_writable(opts.storage)  # a --storage that is a file, or a folder this user cannot write
    exp_name = load_experiment(opts.exp).name
    exp_path = experiment_dir(opts.storage, exp_name)
    tracker = sweep_tracker(opts, exp_name, exp_path)
    job = job_metadata(exp_name, exp_path)  # what the dashboard's Jobs page names the sweep
    ray = None
    if address and not opts.dry_run:
        # on a cluster the GPUs are the cluster's, so join it before choosing a profile
        ray = start_ray(address, opts.storage, job=job)
        gpus = int(ray.cluster_resources().get("GPU", 0))
    else:
        gpus = 0 if address else gpu_count()
    plan = make_plan(opts.plan_request(), gpus)
    if not address and not opts.dry_run:  # a trial this machine's Ray could never hold (the dry run still shows it)
        check_local(plan.cpus, plan.gpus, opts.num_cpus, opts.num_gpus, gpus)
    # the dataset before the plan: a damaged one is one line, not the last line after the whole table
    dataset = None if opts.dry_run else prepare_dataset(plan.trials, opts.data_source)
    print("\n".join(opts.notes + plan.notes + (describe(plan),)))
    if opts.dry_run:
        return 0
    from sweeps.tune import tracking  # imports Ray: --list, --help and a dry run stay without it

    lock = SweepLock(exp_path)
    if not is_remote(exp_path):
        check_writable(exp_path)
        lock.acquire(shlex.join(["python", "sweeps/run.py"] + sys.argv[1:]))
    try:
        # --fresh moves the old sweep aside: only once the trials are known to fit somewhere
        restore = None if opts.fresh else existing_sweep(exp_path, opts)
        ray = ray or start_ray(None, opts.storage, opts.num_cpus, opts.dashboard_host, opts.num_gpus, job=job)
        try:
            # a trial no node can hold would wait forever without a word: one line now instead
            note = check_ray(ray, plan.cpus, plan.gpus, address)
            if note:
                print(f"note: {note}", flush=True)
            if restore is None:
                restore = existing_sweep(exp_path, opts)
            try:
                tracking.attach(tracker)  # the callback (a new one, or the resumed sweep's) sends to it
                tuner = build_tuner(plan, opts.storage, exp_path, restore, dataset, seed=opts.seed,
                                    max_failures=opts.max_failures, verbose=opts.verbose)
                if not restore:
                    record_sweep(plan, exp_path, str(tracker.spec) if tracker else None)
                try:
                    tuner.fit()
                finally:
                    tracking.drain()  # what the trials sent is in the tracker before the verdicts follow
            except KeyboardInterrupt:
                # a second Ctrl-C while Tune was stopping: it skipped its last save, the one before stands
                print(f"\ninterrupted again while stopping; continue with: {resume_command(opts)}",
                      file=sys.stderr)
                return 130
            except Exception as e:
                # Tune fails in many ways once the disk is full (an OSError, an EOFError reading a
                # half-written error file): what the user needs to know is that the disk is full
                if not disk_full(exp_path, e):
                    raise
                raise UserError(f"the disk that holds {exp_path} is full (No space left on device): free space "
                                f"there, then continue with: {resume_command(opts)}") from None
        finally:
            shutdown(ray)
        return summarise(opts, exp_path, tracker)
    finally:
        close_tracker(tracker, interrupted=True)  # after summarise's own close: only what an error left open
        lock.release()


def cli(argv: list[str] | None = None) -> int:
    """The command's entry point: user mistakes are one `error:` line and exit status 2."""
    try:
        return main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
