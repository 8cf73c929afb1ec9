"""The Ray side of a sweep: start (or join) Ray, ship the dataset, build the Tuner from a Plan.

Nothing here decides *what* runs (that is `plan.py`) or reads results (`analysis/`); the
trainable itself is `trainable.py`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shlex
import shutil
import socket
import sys
import time
from pathlib import Path

from gptcore.errors import UserError
from sweeps.experiment.specs import METRIC, MODE
from sweeps.storage.local import driver_file, is_remote, storage_root
from sweeps.strategies.plan import Plan, reuse_actors

REPO = Path(__file__).resolve().parents[2]


def job_metadata(exp: str, exp_path: str) -> dict[str, str]:
    """What the dashboard's Jobs page shows of the sweep: its name (`job_name`, Ray's Name column), the
    experiment and the results folder."""
    return {"job_name": f"gptsweep {exp} ({exp_path})", "gptsweep_experiment": exp, "gptsweep_results": exp_path}


def start_ray(address: str | None, storage: str, num_cpus: int | None = None, dashboard_host: str = "127.0.0.1",
              num_gpus: int | None = None, job: dict[str, str] | None = None):
    """Start a local Ray instance (address None) or join a cluster; print where the dashboard is.

    `job` is the driver's job metadata (`job_metadata`): in a `ray job submit` the submission's own keys win.
    """
    import ray
    from ray.job_config import JobConfig

    os.environ.setdefault("RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the classic table honours our column choice
    # checkpoints at every evaluation force frequent state snapshots; that is intended here
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # the grid's runs override the shared param_space on purpose; Tune warns about each value
    logging.getLogger("ray.tune.search.variant_generator").setLevel(logging.ERROR)
    if address:
        from sweeps.tune import cluster

        cluster.check_reachable(address)  # ray.init would retry an unreachable address for minutes
        try:
            ctx = ray.init(address=address, runtime_env=cluster.runtime_env_for_cluster(REPO, storage),
                           job_config=JobConfig(metadata=dict(job or {})),
                           log_to_driver=False)
        except ConnectionError as e:  # e.g. "auto" with no cluster on this machine
            raise UserError(f"cannot connect to the Ray cluster at {address}: {str(e).splitlines()[0]}") from None
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        res = ray.cluster_resources()
        print(f"connected to the Ray cluster at {address}: {len(nodes)} nodes, {res.get('CPU', 0):g} CPUs, "
              f"{res.get('GPU', 0):g} GPUs")
        cluster.check_storage(storage, nodes)
        note = cluster.credentials_note(storage)
        if note:
            print(f"note: {note}")
    else:
        ctx = ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=True, dashboard_host=dashboard_host,
                       job_config=JobConfig(metadata=dict(job or {})),
                       log_to_driver=False, configure_logging=True, logging_level="WARNING")
    url = getattr(ctx, "dashboard_url", None)
    if url:
        print(f"Ray dashboard: http://{url}" + ("" if address else "  (local, on this machine only)"))
        if os.environ.get("RAY_AUTH_MODE", "").lower() != "disabled":
            print("  it asks for Ray's token: print it with `ray get-auth-token` (or set RAY_AUTH_MODE=disabled "
                  "before starting to turn token auth off on a private machine)")
    return ray


def prepare_dataset(trials: list[dict], source: str | None) -> dict[str, bytes]:
    """The prepared dataset's files, to ship to every node; prepared here first when it is not cached."""
    from gptcore.data import dataset_files, ensure_prepared, prepare
    from gptcore.sources import cache_dir

    names = {t["dataset"] for t in trials}
    if len(names) != 1:
        raise UserError(f"one sweep trains on one dataset, this one names {', '.join(sorted(names))}")
    name = names.pop()
    data_dir = cache_dir() / "data"
    try:
        if source:
            prepare(name, data_dir, input_path=source, quiet=True)
        else:
            ensure_prepared(name, data_dir, quiet=True)
    except UserError as e:  # gptcore names its own option (--input); say this command's
        raise UserError(str(e).replace("--input", "--data-source")) from None
    from gptcore.data import check_dataset

    folder = data_dir / name
    # every trial reads the same files: a damaged one is one line here, before Ray starts, not an
    # error in every trial
    for block, tokens in sorted({(t["block_size"], t["train_tokens"]) for t in trials}):
        try:
            check_dataset(folder, block, tokens)
        except UserError as e:
            raise UserError(f"{e} (here: python sweeps/run.py ... --data-source FILE|URL prepares it again)") from None
    return dataset_files(folder)


def record_sweep(plan: Plan, exp_path: str, tracker: str | None = None) -> None:
    """sweep.json (how the sweep was started) and a copy of the experiment file, beside the results.

    The copy is what the analysis judges this sweep's verdicts by, even if the file changes later.
    `tracker` is the --tracker the sweep logs to (a --resume without one goes on logging there).
    """
    stopping = plan.scheduler
    record = {"exp": plan.exp.name, "experiment_file": str(plan.exp.path), "profile": plan.profile,
              "search": plan.search, "seeds": list(plan.seeds),
              "seed_range": {"min": plan.seed_range.least, "max": plan.seed_range.most, "step": plan.seed_range.step,
                             "looks": list(plan.seed_range.looks)},
              "scheduler": {"grace_period": stopping.grace_period, "reduction_factor": stopping.reduction_factor}
              if stopping else None,
              "num_samples": plan.num_samples, "sampler": plan.sampler or None, "family": plan.family,
              "search_batch": plan.search_batch,
              "confirm": plan.confirm.k if plan.confirm else 0,
              "confirm_per": (plan.confirm.per if plan.confirm else "") or None, "cpus_per_trial": plan.cpus,
              "gpus_per_trial": plan.gpus,
              "order": plan.order, "command": shlex.join(["python", "sweeps/run.py"] + sys.argv[1:]),
              "planned_trials": plan.planned_trials,
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": socket.gethostname(), "pid": os.getpid(),
              "tracker": tracker}
    files = {"sweep.json": json.dumps(record, indent=2) + "\n",
             f"{plan.exp.name}.yaml": plan.exp.path.read_text(encoding="utf-8")}
    if is_remote(exp_path):  # beside the trials in the bucket, where `gptsweep ls` and the analysis read them
        from sweeps.storage.s3 import open_fs

        fs, path = open_fs(exp_path)
        fs.create_dir(path, recursive=True)
        for name, text in files.items():
            with fs.open_output_stream(f"{path}/{name}") as f:
                f.write(text.encode())
        return
    folder = Path(exp_path)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")


def _trial_name(t) -> str:
    return f"{t.config.get('name', 'trial')}_s{t.config.get('seed', '')}_{t.trial_id}"


_LOG_HANDLER = "gptsweep-driver-log"
_SCREEN: list[logging.Handler] = []  # Ray's handlers that ray_log_to_file took off, for ray_log_to_screen


class _QuietFileHandler(logging.FileHandler):
    """A log file that, when it cannot be written (a full disk), drops the message: logging's default prints a
    traceback on the screen, and the sweep says what the disk's trouble means in a line of its own."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def ray_log_to_file(exp_path: str, exp: str) -> Path:
    """Ray's driver-side messages (the `ray` logger and its children, `ray.tune` among them) into a file.

    The file is `<experiment dir>/driver.log`; with remote storage (s3://...) it is kept on the
    driver's machine, under the cache. Ray's handler that writes them on the screen is taken off.
    Calling it again replaces the file of the previous call.
    """
    path = driver_file(exp_path, "driver.log", "logs")
    logger = logging.getLogger("ray")
    ray_log_to_screen()
    for h in list(logger.handlers):
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
            logger.removeHandler(h)
            _SCREEN.append(h)
    handler = _QuietFileHandler(path, encoding="utf-8")
    handler.set_name(_LOG_HANDLER)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    return path


def ray_log_to_screen() -> None:
    """Undo `ray_log_to_file`: Ray's messages on the screen again, as Ray set them up."""
    logger = logging.getLogger("ray")
    for h in list(logger.handlers):
        if h.get_name() == _LOG_HANDLER:
            logger.removeHandler(h)
            h.close()
    while _SCREEN:
        logger.addHandler(_SCREEN.pop(0))


def _live_view(plan: Plan, exp_path: str, log: Path, parts):
    """The callback that shows the sweep (sweeps/view/) in place of Tune's status table."""
    from sweeps.tune.live import LiveView

    spec = parts.view
    return LiveView({"title": spec.title, "planned_trials": spec.planned_trials, "planned_runs": spec.planned_runs,
                     "max_iters": plan.max_iters,
                     "panel": spec.panel, "results": exp_path, "log": str(log)}, shown=parts.shown)


def build_tuner(plan: Plan, storage: str, exp_path: str, restore: bool, dataset: dict[str, bytes],
                seed: int = 0, max_failures: int = 3, verbose: bool = False):
    """The Tuner that runs the plan, or the restored one when `restore`.

    `verbose` False (the default): the live view of the runs (sweeps/view/state.py) on the screen and
    Ray's own messages in `driver.log` (`ray_log_to_file`); True: Tune's status table and Ray's
    messages as Ray prints them. A restored Tuner shows what the sweep's first session chose (Tune
    restores its callbacks and reporter); Ray's messages follow `verbose` either way.
    """
    from ray import tune

    from sweeps.tune.callbacks import TrialStatus
    from sweeps.tune.tracking import TrackerFeed
    from sweeps.tune.trainable import train_gpt, trial_class

    resources = {"cpu": plan.cpus, "gpu": plan.gpus}  # both, always: a GPU-only bundle asks for 0 CPUs
    reuse = reuse_actors(plan)
    trainable = trial_class(plan.exp.name, dataset, resources, reused=reuse)
    if verbose:
        ray_log_to_screen()
    log = None if verbose else ray_log_to_file(exp_path, plan.exp.name)
    from sweeps.results.decisions import ENVIRONMENT, driver_environment
    from sweeps.strategies.base import decision_log

    decision_log(exp_path).record(ENVIRONMENT, env=driver_environment())  # at every start: a resume may move
    if restore:
        print(f"resuming the sweep in {exp_path}")
        try:
            return tune.Tuner.restore(exp_path, trainable, resume_unfinished=True, resume_errored=True)
        except ValueError as e:  # a sweep started before trials were GptTrial actors: Tune wants its old name
            if "but expected 'train_gpt'" not in str(e):
                raise
            old = tune.with_resources(tune.with_parameters(train_gpt, dataset=dataset), resources)
            return tune.Tuner.restore(exp_path, old, resume_unfinished=True, resume_errored=True)

    parts = plan.strategy.tune(plan, exp_path, seed)
    callbacks = [TrialStatus(), TrackerFeed()]
    if verbose:
        # Tune's table: the trial's name, what it varies, and the metrics that matter
        reporter = tune.CLIReporter(
            parameter_columns=["name"] + parts.table_columns,
            metric_columns={"iter": "iter", "train_loss": "train", "val_loss": "val", "gap": "gap",
                            "tokens_per_s": "tok/s"},
            max_report_frequency=15, sort_by_metric=False)
    else:
        reporter = None  # with verbose=0 Tune prints no table
        callbacks.append(_live_view(plan, exp_path, log, parts))
    return tune.Tuner(
        trainable,
        param_space=parts.param_space,
        tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, search_alg=parts.search_alg, scheduler=parts.scheduler,
                                    num_samples=plan.num_samples, max_concurrent_trials=parts.max_concurrent,
                                    reuse_actors=reuse, trial_name_creator=_trial_name,
                                    trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(
            name=plan.exp.name, storage_path=storage_root(storage),
            failure_config=tune.FailureConfig(max_failures=max_failures),
            # two while a trial runs, so a damaged newest one leaves an older one to continue from
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2), callbacks=callbacks,
            sync_config=tune.SyncConfig(sync_artifacts=True),
            progress_reporter=reporter, verbose=1 if verbose else 0),
    )


def disk_full(path: str, error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    if is_remote(path):
        return False
    try:
        return shutil.disk_usage(Path(path).parent).free < 2**20
    except OSError:
        return False


def shutdown(ray) -> None:
    """Stop Ray; a Ctrl-C during it (a terminal sends one to the whole group) must not hide the exit status."""
    try:
        ray.shutdown()
    except KeyboardInterrupt:
        ray.shutdown()
