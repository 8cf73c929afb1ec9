"""Run one of the tutorial's experiments as a Ray Tune sweep.

    python sweeps/run.py exp1                       # the chapter's grid, profile chosen for this machine
    python sweeps/run.py exp5 --search optuna --num-samples 16
    python sweeps/run.py exp3 --dry-run             # every trial, its resources and the total work
    python sweeps/run.py --list

Local mode (the default) starts an embedded Ray instance with its dashboard on 127.0.0.1;
`--address` (or RAY_ADDRESS) connects to a running cluster instead. Results go to
`results/<exp>/` (or `--storage`), Ray's own experiment directory, then analysis writes
`report.md` there. An existing sweep is never overwritten: say `--resume` or `--fresh`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gptcore.config import build_config  # noqa: E402
from gptcore.errors import UserError  # noqa: E402
from sweeps.spaces import (PROFILES, SCHEDULERS, SEARCHERS, Experiment, expand_shape,  # noqa: E402
                           experiment_names, load_experiment)

METRIC, MODE, TIME_ATTR = "val_loss", "min", "iter"
ORDERS = ("auto", "file", "longest-first")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, like every other user mistake
        raise UserError(f"{message} (see python sweeps/run.py --help)")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = _Parser(prog="python sweeps/run.py", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("exp", nargs="?", help="experiment: " + ", ".join(experiment_names()) + " (or a YAML path)")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.add_argument("--search", default="grid", help="grid (the chapter's runs) or optuna (TPE)")
    p.add_argument("--num-samples", type=int, help="Optuna trials (default: from the experiment file)")
    p.add_argument("--scheduler", default="auto", help="asha, none, or auto (the experiment file's choice)")
    p.add_argument("--profile", default="auto", help="full, cpu, smoke, or auto (full with a GPU, else cpu)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial (default 1)")
    p.add_argument("--gpus-per-trial", type=float, help="GPUs per trial, fractions allowed (default: 1 with GPUs)")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: as many as resources allow)")
    p.add_argument("--order", default="auto",
                   help="grid start order: file, longest-first (estimated compute), or auto (longest-first when "
                        "no scheduler stops trials early, else file)")
    p.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local instance)")
    p.add_argument("--storage", default="results", help="results root: a path, NFS path or s3://... (default results)")
    p.add_argument("--num-cpus", type=int, help="local mode: CPUs Ray may use (default: all)")
    p.add_argument("--seed", type=int, default=0, help="Optuna sampler seed (default 0)")
    p.add_argument("--data-source", help="text file for the dataset when it is not prepared or cached yet")
    p.add_argument("--max-failures", type=int, default=3, help="restarts of a crashed trial from its checkpoint")
    p.add_argument("--dashboard-host", default="127.0.0.1",
                   help="local mode: where the dashboard listens (default 127.0.0.1; 0.0.0.0 exposes it)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the interrupted sweep in the results dir")
    mode.add_argument("--fresh", action="store_true", help="move an existing sweep aside and start over")
    p.add_argument("--dry-run", action="store_true", help="print the trials and the total work; start nothing")
    p.add_argument("--no-analyze", action="store_true", help="skip the report at the end")
    a = p.parse_args(argv)
    if not a.list and not a.exp:
        raise UserError("name an experiment, e.g. python sweeps/run.py exp1 (or --list)")
    if a.search not in SEARCHERS:
        raise UserError(f"--search {a.search!r} is not a searcher: choose one of {', '.join(SEARCHERS)}")
    if a.scheduler not in SCHEDULERS + ("auto",):
        raise UserError(f"--scheduler {a.scheduler!r} is not a scheduler: choose one of auto, {', '.join(SCHEDULERS)}")
    if a.order not in ORDERS:
        raise UserError(f"--order {a.order!r} is not an order: choose one of {', '.join(ORDERS)}")
    if a.profile not in PROFILES + ("auto",):
        raise UserError(f"--profile {a.profile!r} is not a profile: choose one of auto, {', '.join(PROFILES)}")
    if a.cpus_per_trial <= 0:
        raise UserError(f"--cpus-per-trial {a.cpus_per_trial} must be positive, e.g. --cpus-per-trial 1")
    if a.gpus_per_trial is not None and a.gpus_per_trial < 0:
        raise UserError(f"--gpus-per-trial {a.gpus_per_trial} must be 0 or more, e.g. 0.25 to pack 4 trials a GPU")
    if a.gpus_per_trial is not None and a.gpus_per_trial > 1 and not float(a.gpus_per_trial).is_integer():
        raise UserError(f"--gpus-per-trial {a.gpus_per_trial}: above 1 it must be a whole number of GPUs")
    for opt in ("num_samples", "max_concurrent", "num_cpus"):
        v = getattr(a, opt)
        if v is not None and v < 1:
            raise UserError(f"--{opt.replace('_', '-')} {v} must be at least 1")
    if a.max_failures < 0:
        raise UserError(f"--max-failures {a.max_failures} must be 0 or more")
    return a


# --------------------------------------------------------------------------------------------
# the plan: what will run, checked before Ray starts


@dataclass
class Plan:
    exp: Experiment
    profile: str
    search: str
    scheduler: dict | None
    num_samples: int
    cpus: float
    gpus: float
    max_concurrent: int | None
    trials: list[dict]  # grid: the runs in start order; optuna: one representative (the profile base)
    order: str = "file"  # grid start order: file or longest-first

    @property
    def max_iters(self) -> int:
        return max(t["max_iters"] for t in self.trials)


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def make_plan(a: argparse.Namespace, gpus_available: int) -> Plan:
    exp = load_experiment(a.exp)
    profile = a.profile
    if profile == "auto":
        profile = "full" if gpus_available else "cpu"
        print(f"profile: {profile} ({'GPUs found' if gpus_available else 'no GPU here'}; "
              f"choose with --profile full|cpu|smoke)")
    scheduler = exp.scheduler(profile)
    if a.scheduler == "none":
        scheduler = None
    elif a.scheduler == "asha" and scheduler is None:
        asha = exp.asha or {"grace_period": 0, "reduction_factor": 2}
        scheduler = dict(asha)
        if not scheduler["grace_period"]:
            base = exp.profile_base(profile)
            scheduler["grace_period"] = max(1, base["max_iters"] // 8)
        print(f"note: {exp.name} runs without early stopping by design ({exp.asha_off_reason}); --scheduler asha "
              "overrides that")
    gpus = a.gpus_per_trial if a.gpus_per_trial is not None else (1.0 if gpus_available else 0.0)
    if a.search == "grid":
        trials = exp.grid_runs(profile)
        num_samples = len(trials)
    else:
        trials = [{**exp.profile_base(profile), "name": "optuna"}]
        num_samples = a.num_samples or exp.optuna_samples
    trials = [{"name": t["name"], **build_config(expand_shape({k: v for k, v in t.items() if k != "name"},
                                                              exp.name), where=exp.name).as_dict()}
              for t in trials]
    order = "file"
    if a.search == "grid":
        order = a.order if a.order != "auto" else ("file" if scheduler else "longest-first")
    if order == "longest-first":
        # Every trial runs to the end, so the sweep's wall time is set by whichever slot finishes last;
        # starting the costliest trials first leaves only short ones to fill in at the end (a stable
        # sort: equal costs keep the file's order).
        trials = sorted(trials, key=lambda t: -estimated_flops(t))
    return Plan(exp, profile, a.search, scheduler, num_samples, a.cpus_per_trial, gpus, a.max_concurrent, trials,
                order)


def estimated_flops(t: dict, vocab_size: int = 65) -> float:
    """Rough compute of one trial run to the end: training plus evaluations (gptcore's FLOPs per
    token with N ~ 12 L E^2 + V E; forward-only evaluation at a third of that)."""
    from gptcore.model import flops_per_token

    L, E, T = t["n_layer"], t["n_embd"], t["block_size"]
    per_token = flops_per_token(12 * L * E * E + vocab_size * E, L, E, T)
    train = t["max_iters"] * t["batch_size"] * t["gradient_accumulation_steps"] * T * per_token
    evals = t["max_iters"] // t["eval_interval"] + 1
    evaluate = evals * 2 * t["eval_iters"] * (t.get("eval_batch_size") or t["batch_size"]) * T * per_token / 3
    return train + evaluate


def describe(plan: Plan) -> str:
    """The dry run: every trial, its resources, and the total work."""
    base = plan.trials[0]
    lines = [f"{plan.exp.name}: {plan.exp.description}",
             f"profile {plan.profile}" + (f" ({plan.exp.note(plan.profile)})" if plan.exp.note(plan.profile) else ""),
             f"searcher {plan.search}, scheduler "
             + (f"asha (time attribute {TIME_ATTR}, grace period {plan.scheduler['grace_period']}, reduction factor "
                f"{plan.scheduler['reduction_factor']}, max_t {plan.max_iters})" if plan.scheduler
                else f"none ({plan.exp.asha_off_reason or 'chosen on the command line'})"),
             f"resources per trial: {plan.cpus:g} CPU, {plan.gpus:g} GPU"
             + (f"; at most {plan.max_concurrent} at once" if plan.max_concurrent else "")]
    if plan.search == "grid":
        lines.append("start order: " + ("the file's" if plan.order == "file" else
                                        "longest first by estimated compute (choose with --order file)"))
    lines.append("")
    keys = ["learning_rate", "batch_size", "gradient_accumulation_steps", "n_layer", "n_head", "n_embd",
            "block_size", "dropout", "weight_decay", "warmup_iters", "decay_lr", "lr_decay_iters", "max_iters"]
    total_iters = total_tokens = 0
    if plan.search == "grid":
        header = ["trial"] + ["lr" if k == "learning_rate" else "accum" if k == "gradient_accumulation_steps" else k
                              for k in keys] + ["tokens/iter", "~TFLOP"]
        rows = []
        for t in plan.trials:
            tpi = t["batch_size"] * t["gradient_accumulation_steps"] * t["block_size"]
            rows.append([t["name"]] + [f"{t[k]:g}" if isinstance(t[k], float) else str(t[k]) for k in keys]
                        + [f"{tpi:,}", f"{estimated_flops(t) / 1e12:.1f}"])
            total_iters += t["max_iters"]
            total_tokens += t["max_iters"] * tpi
        widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
        for r in [header] + rows:
            lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
        lines.append("")
        lines.append(f"{len(plan.trials)} trials, {total_iters:,} iterations and {total_tokens:,} tokens in all "
                     "if none stops early")
    else:
        lines.append(f"{plan.num_samples} Optuna (TPE) trials from the {plan.profile} base config over:")
        for k, d in plan.exp.space(plan.profile).items():
            lines.append(f"  {k}: {d.kind} {d.args}")
        searched = set(plan.exp.space(plan.profile))
        if "shape" in searched:
            searched |= {"n_layer", "n_head", "n_embd"}
        fixed = ", ".join(f"{k}={base[k]}" for k in keys if k not in searched)
        lines.append(f"fixed: {fixed}")
        lines.append(f"at most {plan.num_samples * base['max_iters']:,} iterations in all "
                     f"({base['max_iters']:,} per trial) if none stops early")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# results directory: never overwritten silently


def experiment_dir(storage: str, exp: str) -> str:
    if "://" in storage:
        return storage.rstrip("/") + "/" + exp
    return str(Path(storage).expanduser().resolve() / exp)


def check_existing(path: str, resume: bool, fresh: bool) -> bool:
    """True when the sweep should be restored; moves an old one aside with --fresh."""
    if "://" in path:
        from ray import tune

        exists = tune.Tuner.can_restore(path)
        if fresh and exists:
            raise UserError(f"--fresh cannot move a sweep aside in remote storage {path}: use a new --storage prefix")
        if resume and not exists:
            raise UserError(f"nothing to resume at {path}: drop --resume to start the sweep")
        if exists and not resume:
            raise UserError(f"{path} already holds a sweep: pass --resume to continue it or use a new --storage")
        return exists
    p = Path(path)
    has_state = (p / "tuner.pkl").is_file()
    has_anything = p.exists() and any(p.iterdir())
    if resume:
        if not has_state:
            raise UserError(f"nothing to resume in {p}: drop --resume to start the sweep")
        return True
    if has_anything:
        if not fresh:
            raise UserError(f"{p} already holds results: pass --resume to continue that sweep or --fresh to start "
                            "over (the old results are moved aside, not deleted)")
        aside = p.with_name(f"{p.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        p.rename(aside)
        print(f"moved the previous results to {aside}")
    return False


# --------------------------------------------------------------------------------------------
# Ray


def start_ray(a: argparse.Namespace, address: str | None):
    """Start (local mode) or join (cluster mode) Ray; print where the dashboard is."""
    import logging

    import ray

    os.environ.setdefault("RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the classic table honours our column choice
    # checkpoints at every evaluation force frequent state snapshots; that is intended here
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # the grid's runs override the shared param_space on purpose; Tune warns about each value
    logging.getLogger("ray.tune.search.variant_generator").setLevel(logging.ERROR)
    if address:
        from sweeps import cluster

        repo = Path(__file__).resolve().parent.parent
        cluster.check_reachable(address)  # ray.init would retry an unreachable address for minutes
        try:
            ctx = ray.init(address=address, runtime_env=cluster.runtime_env_for_cluster(repo), log_to_driver=False)
        except ConnectionError as e:  # e.g. "auto" with no cluster on this machine
            raise UserError(f"cannot connect to the Ray cluster at {address}: {str(e).splitlines()[0]}") from None
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        res = ray.cluster_resources()
        print(f"connected to the Ray cluster at {address}: {len(nodes)} nodes, {res.get('CPU', 0):g} CPUs, "
              f"{res.get('GPU', 0):g} GPUs")
        cluster.check_storage(a.storage, nodes)
    else:
        ctx = ray.init(num_cpus=a.num_cpus, include_dashboard=True, dashboard_host=a.dashboard_host,
                       log_to_driver=False, configure_logging=True, logging_level="WARNING")
    url = getattr(ctx, "dashboard_url", None)
    if url:
        print(f"Ray dashboard: http://{url}" + ("" if address else "  (local, on this machine only)"))
        if os.environ.get("RAY_AUTH_MODE", "").lower() != "disabled":
            print("  it asks for Ray's token: print it with `ray get-auth-token` (or set RAY_AUTH_MODE=disabled "
                  "before starting to turn token auth off on a private machine)")
    return ray


def build_tuner(plan: Plan, a: argparse.Namespace, exp_path: str, restore: bool, dataset: dict):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    from sweeps.trainable import train_gpt

    resources = {"cpu": plan.cpus, "gpu": plan.gpus}  # both, always: a GPU-only bundle asks for 0 CPUs
    trainable = tune.with_resources(tune.with_parameters(train_gpt, dataset=dataset), resources)
    if restore:
        print(f"resuming the sweep in {exp_path}")
        return tune.Tuner.restore(exp_path, trainable, resume_unfinished=True, resume_errored=True)

    base = {k: v for k, v in plan.trials[0].items()}
    if plan.search == "grid":
        param_space = base
        search_alg = BasicVariantGenerator(points_to_evaluate=[dict(t) for t in plan.trials])
    else:
        from ray.tune.search.optuna import OptunaSearch

        param_space = dict(base)
        for k, d in plan.exp.space(plan.profile).items():
            param_space[k] = {"uniform": tune.uniform, "loguniform": tune.loguniform,
                              "randint": lambda lo, hi: tune.randint(lo, hi + 1),  # inclusive high, like the file
                              "choice": lambda *xs: tune.choice(list(xs))}[d.kind](*d.args)
        for k in ("n_layer", "n_head", "n_embd"):
            if "shape" in param_space:
                param_space.pop(k, None)  # `shape` sets these three together
        search_alg = OptunaSearch(seed=a.seed)
    scheduler = None
    if plan.scheduler:
        scheduler = ASHAScheduler(time_attr=TIME_ATTR, max_t=plan.max_iters,
                                  grace_period=plan.scheduler["grace_period"],
                                  reduction_factor=plan.scheduler["reduction_factor"])
    concurrent = plan.max_concurrent
    if concurrent is None and plan.search == "optuna":
        concurrent = _default_concurrency(plan)  # a searcher needs the limit to run trials in parallel

    # a compact live table: the trial's name, what it varies, and the metrics that matter
    varied = sorted({k for t in plan.trials for k in t if len({str(u.get(k)) for u in plan.trials}) > 1} - {"name"})
    if plan.search == "optuna":
        varied = sorted(plan.exp.space(plan.profile))
    reporter = tune.CLIReporter(
        parameter_columns=["name"] + varied,
        metric_columns={"iter": "iter", "train_loss": "train", "val_loss": "val", "gap": "gap",
                        "tokens_per_s": "tok/s"},
        max_report_frequency=15, sort_by_metric=False)

    def trial_name(t) -> str:
        return f"{t.config.get('name', 'trial')}_{t.trial_id}"

    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, search_alg=search_alg, scheduler=scheduler,
                                    num_samples=plan.num_samples, max_concurrent_trials=concurrent,
                                    reuse_actors=True, trial_name_creator=trial_name,
                                    trial_dirname_creator=trial_name),
        run_config=tune.RunConfig(
            name=plan.exp.name, storage_path=_storage_root(a.storage),
            failure_config=tune.FailureConfig(max_failures=a.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            sync_config=tune.SyncConfig(sync_artifacts=True),
            progress_reporter=reporter, verbose=1),
    )


def _default_concurrency(plan: Plan) -> int:
    """As many trials as the cluster's CPUs (and GPUs) hold now; at least 1.

    An autoscaling cluster may show no workers yet: pass --max-concurrent there.
    """
    import ray

    res = ray.cluster_resources()
    slots = res.get("CPU", 0) / plan.cpus
    if plan.gpus:
        slots = min(slots, res.get("GPU", 0) / plan.gpus)
    return max(1, int(slots))


def _storage_root(storage: str) -> str:
    return storage if "://" in storage else str(Path(storage).expanduser().resolve())


def prepare_dataset(trials: list[dict], source: str | None) -> dict:
    from gptcore.data import ensure_prepared, cache_dir, prepare
    from sweeps.trainable import dataset_files

    names = {t["dataset"] for t in trials}
    if len(names) != 1:
        raise UserError(f"one sweep trains on one dataset, this one names {', '.join(sorted(names))}")
    name = names.pop()
    data_dir = cache_dir() / "data"
    folder = data_dir / name
    if source:
        prepare(name, data_dir, input_path=source, quiet=True)
    else:
        try:
            ensure_prepared(name, data_dir, quiet=True)
        except UserError as e:  # gptcore names its own option; say this command's
            raise UserError(f"{e} (here: python sweeps/run.py ... --data-source PATH)") from None
    return dataset_files(folder)


def summary_table(results) -> tuple[str, int, int]:
    """The tutorial's summary table (name, train, val, gap, time, status); counts of errored/unfinished."""
    rows, errored, unfinished = [], 0, 0
    for r in results:
        m = r.metrics or {}
        cfg = r.config or {}
        name = cfg.get("name", "?")
        if r.error is not None:
            status, errored = "error", errored + 1
        elif not m:
            status, unfinished = "not started", unfinished + 1
        elif m.get("diverged"):
            status = f"diverged at {m.get('iter')}"
        elif m.get("iter", 0) >= m.get("max_iters", math.inf):
            status = "completed"
        elif m.get("done"):
            status = f"stopped early at {m.get('iter')}"
        else:
            status, unfinished = f"interrupted at {m.get('iter')}", unfinished + 1
        fmt = lambda k: f"{m[k]:.4f}" if isinstance(m.get(k), (int, float)) and math.isfinite(m[k]) else "-"  # noqa
        rows.append([f"{name}_{r.metrics.get('trial_id', '')}" if name == "optuna" else name,
                     fmt("train_loss"), fmt("val_loss"), fmt("gap"),
                     f"{m['time_total_s']:.1f}s" if "time_total_s" in m else "-", status])
    header = ["name", "train loss", "val loss", "gap", "time", "status"]
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in [header] + rows]
    return "\n".join(out), errored, unfinished


def main(argv: list[str] | None = None) -> int:
    a = parse_args(sys.argv[1:] if argv is None else argv)
    if a.list:
        for n in experiment_names():
            print(f"{n}  {load_experiment(n).description}")
        return 0
    address = None
    if a.address or os.environ.get("RAY_ADDRESS"):
        from sweeps.cluster import resolve_address

        address = resolve_address(a.address)
    ray = None
    if address and not a.dry_run:
        # on a cluster the GPUs are the cluster's, so join it before choosing a profile
        ray = start_ray(a, address)
        gpus = int(ray.cluster_resources().get("GPU", 0))
    else:
        gpus = 0 if address else gpu_count()
    plan = make_plan(a, gpus)
    print(describe(plan))
    if a.dry_run:
        return 0
    exp_path = experiment_dir(a.storage, plan.exp.name)
    restore = check_existing(exp_path, a.resume, a.fresh)
    dataset = prepare_dataset(plan.trials, a.data_source)
    if ray is None:
        ray = start_ray(a, None)
    try:
        tuner = build_tuner(plan, a, exp_path, restore, dataset)
        if "://" not in exp_path:
            Path(exp_path).mkdir(parents=True, exist_ok=True)
            record = {"exp": plan.exp.name, "profile": plan.profile, "search": plan.search,
                      "scheduler": plan.scheduler, "num_samples": plan.num_samples, "cpus_per_trial": plan.cpus,
                      "gpus_per_trial": plan.gpus, "order": plan.order,
                      "command": shlex.join(["python", "sweeps/run.py"] + sys.argv[1:])}
            if not restore:
                (Path(exp_path) / "sweep.json").write_text(json.dumps(record, indent=2) + "\n")
        results = tuner.fit()
    finally:
        ray.shutdown()
    rows = list(results)
    if plan.search == "grid":  # the table follows the experiment file, whatever order the trials ran in
        rank = {t["name"]: i for i, t in enumerate(plan.exp.grid_runs(plan.profile))}
        rows.sort(key=lambda r: rank.get((r.config or {}).get("name"), len(rank)))
    table, errored, unfinished = summary_table(rows)
    print()
    if unfinished:
        print(table)
        print(f"\nthe sweep was interrupted; continue it with: python sweeps/run.py {a.exp} --resume"
              + (f" --storage {a.storage}" if a.storage != "results" else ""))
        return 130
    if a.no_analyze or "://" in exp_path:
        print(table)
        if "://" in exp_path:
            print("\nanalyse remote results after copying them here: python sweeps/analyze.py PATH")
    else:
        from sweeps.analyze import analyze_and_summarize

        report, text = analyze_and_summarize(Path(exp_path), plan.exp.name)
        print(text)
        print(f"\nreport: {report}")
    print(f"results: {exp_path}")
    return 1 if errored else 0


def cli() -> int:
    try:
        return main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
