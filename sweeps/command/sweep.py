"""The sweep command (`gptsweep`, `python -m sweeps`, `python sweeps/run.py`): parse, plan, run, summarise.

The options are read and checked once (`options.parse_options`, whose USAGE is the --help text),
the plan is made and printed (`sweeps.strategies.plan`), then Ray runs it (`sweeps.tune.launch`)
and the end of the sweep is summarised (`finish.py`). `--list`, `--help` and `--dry-run` stop
before Ray or Optuna are imported.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from gptcore.errors import UserError
from sweeps.command.options import parse_options
from sweeps.experiment.files import experiment_names, load_experiment
from sweeps.storage.local import SweepLock, check_existing, check_remote, check_writable, experiment_dir, is_remote
from sweeps.strategies import describe, make_plan


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


def main(argv: list[str] | None = None) -> int:
    opts = parse_options(sys.argv[1:] if argv is None else argv)
    if opts.list_experiments:
        for n in experiment_names():
            print(f"{n}  {load_experiment(n).description}")
        return 0
    from sweeps.command.finish import resume_command, summarise
    from sweeps.tune.cluster import check_job_storage, resolve_address
    from sweeps.tune.launch import build_tuner, disk_full, prepare_dataset, record_sweep, shutdown, start_ray
    from sweeps.tune.resources import check_ray

    check_data_source(opts.data_source)  # a missing file is one line before anything else, in a dry run too
    address = resolve_address(opts.address)  # an address that does not parse: one line, before Ray
    check_job_storage(opts.storage)  # in a Ray job, results relative to its temporary copy of the code would be lost
    ray = None
    if address and not opts.dry_run:
        # on a cluster the GPUs are the cluster's, so join it before choosing a profile
        ray = start_ray(address, opts.storage)
        gpus = int(ray.cluster_resources().get("GPU", 0))
    else:
        gpus = 0 if address else gpu_count()
    plan = make_plan(opts.plan_request(), gpus)
    # the dataset before the plan: a damaged one is one line, not the last line after the whole table
    dataset = None if opts.dry_run else prepare_dataset(plan.trials, opts.data_source)
    print("\n".join(opts.notes + plan.notes + (describe(plan),)))
    if opts.dry_run:
        return 0
    exp_path = experiment_dir(opts.storage, plan.exp.name)
    lock = SweepLock(exp_path)
    if not is_remote(exp_path):
        check_writable(exp_path)
        lock.acquire(shlex.join(["python", "sweeps/run.py"] + sys.argv[1:]))
    try:
        # --fresh moves the old sweep aside: only once the trials are known to fit somewhere
        restore = None if opts.fresh else existing_sweep(exp_path, opts)
        ray = ray or start_ray(None, opts.storage, opts.num_cpus, opts.dashboard_host, opts.num_gpus)
        try:
            # a trial no node can hold would wait forever without a word: one line now instead
            note = check_ray(ray, plan.cpus, plan.gpus, address)
            if note:
                print(f"note: {note}", flush=True)
            if restore is None:
                restore = existing_sweep(exp_path, opts)
            try:
                tuner = build_tuner(plan, opts.storage, exp_path, restore, dataset, seed=opts.seed,
                                    max_failures=opts.max_failures, verbose=opts.verbose)
                if not restore:
                    record_sweep(plan, exp_path)
                tuner.fit()
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
        return summarise(opts, exp_path)
    finally:
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
