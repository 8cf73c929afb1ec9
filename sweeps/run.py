"""Run one of the tutorial's experiments as a Ray Tune sweep.

    python sweeps/run.py exp1                       # the chapter's grid, profile chosen for this machine
    python sweeps/run.py exp5 --search optuna --num-samples 16
    python sweeps/run.py exp3 --dry-run             # every trial, its resources and the total work
    python sweeps/run.py --list

(`gptsweep` and `python -m sweeps` are the same command.) Local mode, the default, starts an
embedded Ray instance with its dashboard on 127.0.0.1; `--address` (or RAY_ADDRESS) connects to a
running cluster instead. Results go to `results/<exp>/` (or `--storage`), Ray's own experiment
directory, then analysis writes `report.md` there. An existing sweep is never overwritten: say
`--resume` or `--fresh`.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys

from gptcore.errors import UserError
from sweeps.plan import ORDERS, SAMPLERS, SCHEDULERS, SEARCHERS, describe, gpu_fraction, make_plan
from sweeps.spaces import PROFILES, experiment_names, load_experiment
from sweeps.storage import (
    KEEP_CHECKPOINTS,
    SweepLock,
    check_existing,
    check_writable,
    experiment_dir,
    is_remote,
)

_CHOICE = re.compile(r"argument (\S+?)(?:/\S+)?: invalid choice: '?([^']*)'? \(choose from (.*)\)")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, like every other user mistake
        if m := _CHOICE.match(message):
            choices = ", ".join(c.strip(" '") for c in m.group(3).split(","))
            message = f"{m.group(1)} {m.group(2)!r} is not valid: choose one of {choices}"
        raise UserError(f"{message} (see python sweeps/run.py --help)")


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be positive")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its message
    return parse


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = _Parser(prog="python sweeps/run.py", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("exp", nargs="?", help="experiment: " + ", ".join(experiment_names()) + " (or a YAML path)")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.add_argument("--search", default="grid", choices=SEARCHERS, help="grid (the chapter's runs) or optuna (TPE)")
    p.add_argument("--num-samples", type=_positive(int), help="Optuna trials (default: from the experiment file)")
    p.add_argument("--sampler", default="auto", choices=SAMPLERS,
                   help="a search's Optuna sampler: tpe, gp (Gaussian process), random, or auto (chosen by the space "
                        "and the number of samples; the dry run says which)")
    p.add_argument("--confirm", type=int, default=3, metavar="K",
                   help="after a search, re-run its best K configurations and the reference run to the full budget "
                        "over the seeds (default 3; 0 skips)")
    p.add_argument("--seeds", type=_positive(int),
                   help="training seeds per grid run: each run trains with seeds seed, seed+1, ... "
                        "(default: the profile's, 3 for cpu and full)")
    p.add_argument("--scheduler", default="auto", choices=SCHEDULERS,
                   help="asha (early stopping: for a grid, successive halving that decides a run's seeds together "
                        "and never stops the reference), none, or auto (the experiment file's choice)")
    p.add_argument("--profile", default="auto", choices=("auto",) + PROFILES,
                   help="full, cpu, smoke, or auto (full with a GPU, else cpu)")
    p.add_argument("--cpus-per-trial", type=_positive(float), default=1.0, help="CPUs per trial (default 1)")
    p.add_argument("--gpus-per-trial", type=float, help="GPUs per trial, fractions allowed (default: 1 with GPUs)")
    p.add_argument("--max-concurrent", type=_positive(int), help="trials at once (default: as many as resources allow)")
    p.add_argument("--order", default="auto", choices=ORDERS,
                   help="grid start order: file, longest-first (estimated compute), or auto (longest-first); "
                        "it changes how well trials fill the slots, never an outcome")
    p.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local instance)")
    p.add_argument("--storage", default="results", help="results root: a path, NFS path or s3://... (default results)")
    p.add_argument("--num-cpus", type=_positive(int), help="local mode: CPUs Ray may use (default: all)")
    p.add_argument("--num-gpus", type=int,
                   help="local mode: GPUs Ray may schedule (default: what torch sees); logical ones can be declared "
                        "without a GPU, to test packing (trials then train on the CPU)")
    p.add_argument("--seed", type=int, default=0, help="the Optuna sampler's seed (default 0)")
    p.add_argument("--data-source", help="text file for the dataset when it is not prepared or cached yet")
    p.add_argument("--max-failures", type=int, default=3, help="restarts of a crashed trial from its checkpoint")
    p.add_argument("--dashboard-host", default="127.0.0.1",
                   help="local mode: where the dashboard listens (default 127.0.0.1; 0.0.0.0 exposes it)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the interrupted sweep in the results dir")
    mode.add_argument("--fresh", action="store_true", help="move an existing sweep aside and start over")
    p.add_argument("--dry-run", action="store_true", help="print the trials and the total work; start nothing")
    p.add_argument("--no-analyze", action="store_true", help="skip the report at the end")
    p.add_argument("--keep-checkpoints", default="last", choices=KEEP_CHECKPOINTS,
                   help="what stays of the finished trials' checkpoints: last (each one's newest; default), best "
                        "(only the best run's, or a search's confirmed runs'), none. Unfinished trials keep theirs "
                        "for --resume; the report needs none")
    a = p.parse_args(argv)
    a.gpu_note = None
    if a.num_gpus is not None and a.num_gpus < 0:
        raise UserError(f"--num-gpus {a.num_gpus} must be 0 or more")
    if not a.list and not a.exp:
        raise UserError("name an experiment, e.g. python sweeps/run.py exp1 (or --list)")
    if a.gpus_per_trial is not None and a.gpus_per_trial < 0:
        raise UserError(f"--gpus-per-trial {a.gpus_per_trial} must be 0 or more, e.g. 0.25 to pack 4 trials a GPU")
    if a.gpus_per_trial is not None and a.gpus_per_trial > 1 and not float(a.gpus_per_trial).is_integer():
        raise UserError(f"--gpus-per-trial {a.gpus_per_trial}: above 1 it must be a whole number of GPUs")
    if a.gpus_per_trial is not None and 0 < a.gpus_per_trial < 1:
        a.gpus_per_trial, a.gpu_note = gpu_fraction(a.gpus_per_trial)
    if a.max_failures < 0:
        raise UserError(f"--max-failures {a.max_failures} must be 0 or more")
    if a.confirm < 0:
        raise UserError(f"--confirm {a.confirm} must be 0 or more (0 skips the confirm stage)")
    return a


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def main(argv: list[str] | None = None) -> int:
    a = parse_args(sys.argv[1:] if argv is None else argv)
    if a.list:
        for n in experiment_names():
            print(f"{n}  {load_experiment(n).description}")
        return 0
    from sweeps.cluster import resolve_address
    from sweeps.launch import build_tuner, disk_full, prepare_dataset, record_sweep, shutdown, start_ray
    from sweeps.summary import resume_command, summarise

    address = resolve_address(a.address)
    ray = None
    if address and not a.dry_run:
        # on a cluster the GPUs are the cluster's, so join it before choosing a profile
        ray = start_ray(address, a.storage)
        gpus = int(ray.cluster_resources().get("GPU", 0))
    else:
        gpus = 0 if address else gpu_count()
    plan = make_plan(a, gpus)
    print("\n".join(((a.gpu_note,) if a.gpu_note else ()) + plan.notes + (describe(plan),)))
    if a.dry_run:
        return 0
    exp_path = experiment_dir(a.storage, plan.exp.name)
    lock = SweepLock(exp_path)
    if not is_remote(exp_path):
        check_writable(exp_path)
    dataset = prepare_dataset(plan.trials, a.data_source)  # a damaged dataset: one line, nothing written
    if not is_remote(exp_path):
        lock.acquire(shlex.join(["python", "sweeps/run.py"] + sys.argv[1:]))
    try:
        restore = check_existing(exp_path, a.resume, a.fresh)
        ray = ray or start_ray(None, a.storage, a.num_cpus, a.dashboard_host, a.num_gpus)
        try:
            tuner = build_tuner(plan, a.storage, exp_path, restore, dataset, seed=a.seed, max_failures=a.max_failures)
            if not restore and not is_remote(exp_path):
                record_sweep(plan, exp_path)
            tuner.fit()
        except KeyboardInterrupt:
            # a second Ctrl-C while Tune was stopping: it skipped its last save, the one before stands
            print(f"\ninterrupted again while stopping; continue with: {resume_command(a)}", file=sys.stderr)
            return 130
        except Exception as e:
            # Tune fails in many ways once the disk is full (an OSError, an EOFError reading a
            # half-written error file): what the user needs to know is that the disk is full
            if not disk_full(exp_path, e):
                raise
            raise UserError(f"the disk that holds {exp_path} is full (No space left on device): free space there, "
                            f"then continue with: {resume_command(a)}") from None
        finally:
            shutdown(ray)
        return summarise(a, exp_path)
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
