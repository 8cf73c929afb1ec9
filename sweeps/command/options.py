"""The sweep command's options: `parse_options(argv)` reads and checks them once into a frozen `SweepOptions`.

Everything after parsing (the plan, the run, the summary) reads that one value and changes nothing in
it. A user's mistake is one line (a `UserError`, exit status 2), never argparse's usage block. This
module imports neither Ray nor Optuna, so `--list`, `--help` and `--dry-run` start neither.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass, fields, replace

from gptcore.errors import UserError
from sweeps.experiment.files import MAX_SEEDS, PROFILES, SeedRange, experiment_names, seed_range
from sweeps.experiment.specs import FAMILIES
from sweeps.storage.local import KEEP_CHECKPOINTS
from sweeps.strategies import STRATEGIES
from sweeps.strategies.grid import ORDERS
from sweeps.strategies.plan import PlanRequest
from sweeps.strategies.sampling import SAMPLERS
from sweeps.trackers import TrackerSpec, parse_tracker

SEARCHERS = tuple(STRATEGIES)
SCHEDULERS = ("auto", "asha", "none")

# the command's --help: its first paragraph is the description, the rest the epilog
USAGE = """Run one of the tutorial's experiments as a Ray Tune sweep.

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


@dataclass(frozen=True)
class SweepOptions:
    """Every option of the sweep command (same names as on the command line, same defaults).

    `parse_options` builds it from a command line and checks it; a value made directly (tests) is
    taken as it is. It is never changed: `dataclasses.replace` makes a changed copy.
    """

    # what to run
    exp: str | None = None  # exp1 ... exp5, or the path of an experiment YAML; None only with --list
    list_experiments: bool = False  # --list: list the experiments and exit
    search: str = "grid"  # one of SEARCHERS: the chapter's runs, or an Optuna search
    num_samples: int | None = None  # a search's trials; None: the experiment file's
    sampler: str = "auto"  # one of SAMPLERS: a search's Optuna sampler (auto: by the space and the samples)
    confirm: int = 3  # a search's confirm stage: re-run its best K configurations (0 skips it)
    seeds: SeedRange | None = None  # training seeds per grid run (and for the confirm stage); None: the profile's
    scheduler: str = "auto"  # one of SCHEDULERS: early stopping (auto: the experiment file's choice)
    profile: str = "auto"  # "auto" or one of PROFILES (auto: full with a GPU, else cpu)
    seed: int = 0  # the Optuna sampler's seed
    # resources
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None  # 0, 1/k (rounded to it when within 1%) or whole GPUs; None: 1 with GPUs
    max_concurrent: int | None = None  # trials at once; None: as many as the resources allow
    family: str = "none"  # one of FAMILIES: holm holds the chance of any false verdict in the sweep at 5%
    search_batch: int = 4  # a search's B: trial i is sampled knowing trials 0 .. i − B; 0: asynchronous
    order: str = "auto"  # one of ORDERS: a grid's start order (auto: longest-first)
    # Ray
    address: str | None = None  # a Ray cluster to join; None: $RAY_ADDRESS, else a local instance
    num_cpus: int | None = None  # local mode: the CPUs Ray may use; None: all
    num_gpus: int | None = None  # local mode: the GPUs Ray may schedule (logical ones too); None: what torch sees
    dashboard_host: str = "127.0.0.1"  # local mode: where the dashboard listens
    max_failures: int = 3  # restarts of a crashed trial from its checkpoint
    # results
    storage: str = "results"  # the results root: a path, an NFS path or s3://...
    data_source: str | None = None  # a text file or URL to prepare the dataset from (default: gptcore's own)
    resume: bool = False  # continue the interrupted sweep in the results folder
    fresh: bool = False  # move an existing sweep aside and start over (never with resume)
    dry_run: bool = False  # print the trials and the total work; start nothing
    no_analyze: bool = False  # skip the report at the end
    verbose: bool = False  # Ray's own status table and warnings on the screen, instead of the live view
    keep_checkpoints: str = "last"  # one of KEEP_CHECKPOINTS: what stays of the finished trials' checkpoints
    tracker: TrackerSpec | None = None  # --tracker: W&B or MLflow runs of the trials and verdicts (sweeps/trackers/)
    # what the command should say about the options it was given (a GPU fraction rounded to 1/k)
    notes: tuple[str, ...] = ()

    def plan_request(self) -> PlanRequest:
        """What these options ask of the plan (sweeps.strategies.plan.make_plan)."""
        return PlanRequest(exp=self.exp, search=self.search, profile=self.profile, scheduler=self.scheduler,
                           num_samples=self.num_samples, sampler=self.sampler, confirm=self.confirm, seeds=self.seeds,
                           order=self.order, cpus_per_trial=self.cpus_per_trial, gpus_per_trial=self.gpus_per_trial,
                           max_concurrent=self.max_concurrent, family=self.family, search_batch=self.search_batch)


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


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value


_non_negative.__name__ = "int"


def _seed_range(text: str) -> SeedRange:
    """`--seeds 3` or `--seeds 3..8`."""
    least, sep, most = text.partition("..")
    try:
        lo, hi = int(least), int(most if sep else least)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seeds: give N or MIN..MAX, e.g. 3 or 3..8") \
            from None
    if not (1 <= lo <= MAX_SEEDS and 1 <= hi <= MAX_SEEDS):
        raise argparse.ArgumentTypeError(f"{text!r}: seeds run from 1 to {MAX_SEEDS}")
    try:
        return seed_range(lo, hi, "--seeds")
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--seeds: ")) from None


def _parser() -> _Parser:
    p = _Parser(prog="python sweeps/run.py", description=USAGE.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=USAGE.split("\n\n", 1)[1])
    p.add_argument("exp", nargs="?", help="experiment: " + ", ".join(experiment_names()) + " (or a YAML path)")
    p.add_argument("--list", action="store_true", dest="list_experiments", help="list the experiments and exit")
    p.add_argument("--search", choices=SEARCHERS, help="grid (the chapter's runs) or optuna (TPE)")
    p.add_argument("--num-samples", type=_positive(int), help="Optuna trials (default: from the experiment file)")
    p.add_argument("--sampler", choices=SAMPLERS,
                   help="a search's Optuna sampler: tpe, gp (Gaussian process), random, or auto (chosen by the space "
                        "and the number of samples; the dry run says which)")
    p.add_argument("--confirm", type=int, metavar="K",
                   help="after a search, re-run its best K configurations and the reference run to the full budget "
                        "over the seeds (default 3; 0 skips)")
    p.add_argument("--seeds", type=_seed_range, metavar="N|MIN..MAX",
                   help="training seeds per grid run: each run trains with seeds seed, seed+1, ...; MIN..MAX: MIN "
                        "at first, then more, a few at a time up to MAX, for the runs whose verdicts are still within "
                        "noise (default: the profile's, 3..8 for cpu and full)")
    p.add_argument("--search-batch", type=_non_negative, metavar="B",
                   help="a search's trials are sampled in order, trial i knowing trials 0 .. i-B and none after, and "
                        "its early stopping compares a trial with those same trials: the search is a function of the "
                        "command, the same at any --max-concurrent and after --resume, with at most B trials at once "
                        "(default 4); 0: asynchronous (Optuna and Ray's ASHA as trials happen to end: it fills a "
                        "large cluster, but is not reproducible)")
    p.add_argument("--family", choices=FAMILIES,
                   help="holm: the sweep's verdicts share one 5%% chance of a false decisive verdict (Holm's "
                        "step-down); none (default): each verdict keeps its own 5%% (the report says what that makes "
                        "for the sweep)")
    p.add_argument("--scheduler", choices=SCHEDULERS,
                   help="asha (early stopping: for a grid, successive halving that decides a run's seeds together "
                        "and never stops the reference), none, or auto (the experiment file's choice)")
    p.add_argument("--profile", choices=("auto",) + PROFILES,
                   help="full, cpu, smoke, or auto (full with a GPU, else cpu)")
    p.add_argument("--cpus-per-trial", type=_positive(float), help="CPUs per trial (default 1)")
    p.add_argument("--gpus-per-trial", type=float, help="GPUs per trial, fractions allowed (default: 1 with GPUs)")
    p.add_argument("--max-concurrent", type=_positive(int), help="trials at once (default: as many as resources allow)")
    p.add_argument("--order", choices=ORDERS,
                   help="grid start order: file, longest-first (estimated compute), or auto (longest-first); "
                        "it changes how well trials fill the slots, never an outcome")
    p.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local instance)")
    p.add_argument("--storage", help="results root: a path, NFS path or s3://... (default results)")
    p.add_argument("--num-cpus", type=_positive(int), help="local mode: CPUs Ray may use (default: all)")
    p.add_argument("--num-gpus", type=int,
                   help="local mode: GPUs Ray may schedule (default: what torch sees); logical ones can be declared "
                        "without a GPU, to test packing (trials then train on the CPU)")
    p.add_argument("--seed", type=int, help="the Optuna sampler's seed (default 0)")
    p.add_argument("--data-source", metavar="FILE|URL",
                   help="a text file or an http(s) URL to prepare the dataset from (default: the Tiny Shakespeare "
                        "that ships with gptcore)")
    p.add_argument("--max-failures", type=int, help="restarts of a crashed trial from its checkpoint")
    p.add_argument("--dashboard-host",
                   help="local mode: where the dashboard listens (default 127.0.0.1; 0.0.0.0 exposes it)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the interrupted sweep in the results dir")
    mode.add_argument("--fresh", action="store_true", help="move an existing sweep aside and start over")
    p.add_argument("--dry-run", action="store_true", help="print the trials and the total work; start nothing")
    p.add_argument("--no-analyze", action="store_true", help="skip the report at the end")
    p.add_argument("--verbose", action="store_true",
                   help="show Ray's own status table and messages instead of the live view of the runs")
    p.add_argument("--keep-checkpoints", choices=KEEP_CHECKPOINTS,
                   help="what stays of the finished trials' checkpoints: last (each one's newest; default), best "
                        "(only the best run's, or a search's confirmed runs'), none. Unfinished trials keep theirs "
                        "for --resume; the report needs none")
    p.add_argument("--tracker", type=str, metavar="wandb[=PROJECT]|mlflow[=URI]",
                   help="log every trial (its config, losses and ending) and the verdicts and report to W&B or "
                        "MLflow, from this machine; mlflow's default is a SQLite database beside the results "
                        "(<results>/<exp>/mlflow.db); wandb works offline with WANDB_MODE=offline")
    # the defaults are SweepOptions' own, in one place
    p.set_defaults(**{f.name: f.default for f in fields(SweepOptions) if f.name != "notes"})
    return p


def parse_options(argv: list[str]) -> SweepOptions:
    """The options of a command line (without the program name), checked; a mistake is a one-line UserError."""
    o = SweepOptions(**vars(_parser().parse_args(argv)))
    if o.tracker is not None:
        o = replace(o, tracker=parse_tracker(o.tracker))  # an unknown tracker: one line, before anything starts
    if o.num_gpus is not None and o.num_gpus < 0:
        raise UserError(f"--num-gpus {o.num_gpus} must be 0 or more")
    if not o.list_experiments and not o.exp:
        raise UserError("name an experiment, e.g. python sweeps/run.py exp1 (or --list)")
    if o.gpus_per_trial is not None and o.gpus_per_trial < 0:
        raise UserError(f"--gpus-per-trial {o.gpus_per_trial} must be 0 or more, e.g. 0.25 to pack 4 trials a GPU")
    if o.gpus_per_trial is not None and o.gpus_per_trial > 1 and not float(o.gpus_per_trial).is_integer():
        raise UserError(f"--gpus-per-trial {o.gpus_per_trial}: above 1 it must be a whole number of GPUs")
    if o.gpus_per_trial is not None and 0 < o.gpus_per_trial < 1:
        gpus, note = gpu_fraction(o.gpus_per_trial)
        o = replace(o, gpus_per_trial=gpus, notes=o.notes + ((note,) if note else ()))
    if o.max_failures < 0:
        raise UserError(f"--max-failures {o.max_failures} must be 0 or more")
    if o.confirm < 0:
        raise UserError(f"--confirm {o.confirm} must be 0 or more (0 skips the confirm stage)")
    return o


def gpu_fraction(g: float) -> tuple[float, str | None]:
    """A share of a GPU that Ray packs: 1/k exactly (Ray has hung on other fractions: ray#52133 with 0.18,
    ray#42683 with mixed ones). Within 1% of 1/k it is rounded to 1/k and said; otherwise refused."""
    k = round(1 / g)
    if abs(1 / k - g) <= 0.01 * g:
        exact = 1 / k
        return exact, (None if abs(exact - g) < 1e-12 else f"--gpus-per-trial {g:g} rounded to 1/{k} = {exact:.6g}: "
                       f"{k} trials a GPU")
    lo, hi = 1 / math.ceil(1 / g), 1 / math.floor(1 / g)
    raise UserError(f"--gpus-per-trial {g:g} is not 1/k of a GPU: Ray packs trials by fractions that divide a GPU "
                    f"(and hangs on others, ray#52133): use {lo:.4g} ({math.ceil(1 / g)} a GPU) or {hi:.4g} "
                    f"({math.floor(1 / g)} a GPU)")
