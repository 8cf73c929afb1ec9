"""Sweep throughput: exp1 as one Ray Tune sweep against the same five trainings run one by one.

The tutorial runs experiment 1 as five shell commands, one after another. This script runs

  sequential  `python -m gptcore train train_shakespeare_char --key=value ...` for each of
              exp1's five runs, built from the resolved trial configs
              (`sweeps.spaces.load_experiment('exp1').grid_runs(profile)`), one after another
  sweep       `python sweeps/run.py exp1 --profile PROFILE --scheduler none --no-analyze`
              (Ray local mode, one CPU per trial, so two trials at once on two cores)

and prints the wall time of each and their ratio (goal: sweep <= 0.7x sequential on 2 cores),
with where the time goes: Ray's start (from the sweep's own output), training time per trial
(each run's metrics.jsonl), and the per-trial overhead. ASHA is off (`--scheduler none`) so
both sides do exactly the same iterations; `--asha` keeps the experiment's scheduler (the
command as users run it: the sweep then trains fewer iterations than the sequential side, and
the figures go to sweep_throughput_asha.json).

A separate measurement runs tiny no-op trials (they import torch and report once) through
Ray Tune with the sweep command's settings (one CPU each, reuse_actors=True), to give Ray's
start-up and per-trial cost without any training in it.

Each side runs with a temporary GPTCORE_CACHE, storage and RAY_TMPDIR (so it never joins
another Ray instance on the machine) and RAY_AUTH_MODE=disabled. The sweep's trials use one
thread each (Ray sets OMP_NUM_THREADS from the trial's CPUs). The sequential runs use torch's
default thread count (all cores) in `--seq-modes default`, the tutorial's way; on a shared
machine OpenMP's busy-waiting makes that collapse whenever other processes hold a core (see
train_speed.py), so two steadier modes exist: `1thread` (OMP_NUM_THREADS=1) and `passive`
(all cores, OMP_WAIT_POLICY=PASSIVE). Each mode listed is a separate sequential pass.

    python benchmarks/sweep_throughput.py --quick        # smoke profile: a minute or two
    python benchmarks/sweep_throughput.py                # cpu profile: ~15 minutes on 2 cores
    python benchmarks/sweep_throughput.py --seq-modes default,1thread --orders auto,file

`--orders` lists the sweep passes by the sweep's `--order`: `auto` is the command as users run
it (with `--scheduler none` that starts the costliest trials first, so the big model does not
run alone at the end), `file` keeps the experiment file's order.

Writes benchmarks/out/sweep_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, SOURCE_HELP, median, prepare_data, ratio, source_args, table, write_json

from sweeps.experiment.files import expand_shape, load_experiment
from sweeps.strategies.grid import ORDERS


def run_logged(cmd: list[str], env: dict, log: Path) -> tuple[float, int, list[tuple[float, str]]]:
    """Run a command, keep its output with the time each line arrived; (wall s, status, lines)."""
    lines = []
    t0 = time.perf_counter()
    with open(log, "w") as f:
        p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in p.stdout:
            lines.append((time.perf_counter() - t0, line.rstrip("\n")))
            f.write(line)
        rc = p.wait()
    return time.perf_counter() - t0, rc, lines


def read_done(metrics: Path) -> dict:
    """The `end` event of a run's metrics.jsonl (or, for a trial ASHA stopped, its last evaluation),
    plus the median tokens/s of its logged steps."""
    done, tps = {}, []
    for line in metrics.read_text().splitlines():
        m = json.loads(line)
        if m.get("event") in ("eval", "end"):  # `end` is the last line when there is one
            done = m
        elif m.get("event") == "iter" and m.get("tokens_per_s"):
            tps.append(m["tokens_per_s"])
    return {"elapsed_s": done.get("elapsed_s"), "train_time_s": done.get("train_time_s"),
            "iter": done.get("iter"), "tokens_per_s_median": median(tps)}


SEQ_MODES = {"default": {}, "1thread": {"OMP_NUM_THREADS": "1"}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}}


def base_env(tmp: Path) -> dict:
    env = dict(os.environ)
    env.update({"GPTCORE_CACHE": str(tmp / "cache"), "RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": str(tmp / "ray"),
                "PYTHONUNBUFFERED": "1"})
    (tmp / "ray").mkdir(parents=True, exist_ok=True)
    for k in ("RAY_ADDRESS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY"):
        env.pop(k, None)
    return env


# --------------------------------------------------------------------------------------------


def sequential(runs: list[dict], tmp: Path, env: dict, data_dir: Path, mode: str) -> dict:
    per = {}
    env = {**env, **SEQ_MODES[mode]}
    t0 = time.perf_counter()
    for run in runs:
        name = run["name"]
        values = expand_shape({k: v for k, v in run.items() if k != "name"}, "exp1")
        out = tmp / f"seq-{mode}" / name
        values.update(out_dir=str(out), data_dir=str(data_dir))
        cmd = [sys.executable, "-m", "gptcore", "train", "train_shakespeare_char"] + \
              [f"--{k}={v}" for k, v in values.items()]
        wall, rc, _ = run_logged(cmd, env, tmp / f"seq-{mode}-{name}.log")
        if rc != 0:
            raise RuntimeError(f"sequential run {name} failed ({rc}): see its log")
        per[name] = {"wall_s": wall, **read_done(out / "metrics.jsonl")}
        print(f"  {name}: {wall:.1f} s wall, {per[name]['train_time_s']:.1f} s in training steps, "
              f"{per[name]['tokens_per_s_median']:,.0f} tok/s", flush=True)
    total = time.perf_counter() - t0
    return {"mode": mode, "env": SEQ_MODES[mode], "wall_s": total, "runs": per,
            "iterations": sum(r["iter"] for r in per.values()),
            "train_time_s": sum(r["train_time_s"] for r in per.values()),
            "elapsed_s": sum(r["elapsed_s"] for r in per.values()),
            "process_overhead_s": sum(r["wall_s"] - r["elapsed_s"] for r in per.values())}


def sweep_command(exp: str, profile: str, asha: bool, order: str) -> list[str]:
    # one seed per run: the sequential side trains each run once
    return (["sweeps/run.py", exp, "--profile", profile, "--seeds", "1"] + ([] if asha else ["--scheduler", "none"])
            + ([] if order == "auto" else ["--order", order]))


def sweep(exp: str, profile: str, tmp: Path, env: dict, source: str | None, asha: bool, order: str) -> dict:
    storage = tmp / f"storage-{order}"
    cmd = [sys.executable] + sweep_command(exp, profile, asha, order) + \
          ["--storage", str(storage), *source_args(source), "--no-analyze"]
    wall, rc, lines = run_logged(cmd, env, tmp / f"sweep-{order}.log")
    if rc != 0:
        tail = "\n".join(line for _, line in lines[-15:])
        raise RuntimeError(f"the sweep failed ({rc}):\n{tail}")
    t_plan = next((t for t, line in lines if "if none stops early" in line), None)
    started = next((line.split(": ", 1)[1] for _, line in lines if line.startswith("start order: ")), "?")
    t_ray = next((t for t, line in lines if line.startswith("Ray dashboard:")), None)
    t_end = next((t for t, line in lines if line.startswith("results:")), wall)
    exp_dir = storage / Path(exp).stem
    per = {}
    for m in sorted(exp_dir.glob("*/metrics.jsonl")):
        per[m.parent.name] = read_done(m)
    n = len(per)
    elapsed = sum(r["elapsed_s"] or 0 for r in per.values())
    slots = os.cpu_count() or 1  # local mode, one CPU per trial
    ray_start = (t_ray - t_plan) if t_ray is not None and t_plan is not None else float("nan")
    running = (t_end - t_ray) if t_ray is not None else wall  # from Ray being up to the summary
    # slot-seconds while Ray ran trials, minus the seconds trials spent in gptcore's loop
    idle = slots * running - elapsed
    res = {"order": order, "start_order": started, "wall_s": wall, "trials": per, "n_trials": n,
           "iterations": sum(r["iter"] or 0 for r in per.values()), "ray_start_s": ray_start,
           "startup_before_ray_s": t_plan, "after_summary_s": wall - t_end,
           "train_time_s": sum(r["train_time_s"] or 0 for r in per.values()), "elapsed_s": elapsed,
           "slots": slots, "overhead_slot_s_per_trial": idle / n if n else float("nan"),
           # how well the trials filled the slots: 1.0 means no slot was ever idle
           "packing_efficiency": elapsed / (slots * running) if running > 0 else float("nan")}
    for name, r in per.items():
        print(f"  {name}: {r['elapsed_s']:.1f} s in gptcore's loop, {r['train_time_s']:.1f} s in training steps, "
              f"{r['tokens_per_s_median']:,.0f} tok/s, {r['iter']} iterations", flush=True)
    return res


# --------------------------------------------------------------------------------------------
# Ray alone: start-up and no-op trials


def _noop_trial(config):
    import torch  # noqa: F401  (what every real trial imports first)
    from ray import tune

    tune.report({"x": config["i"]})


def noop_overhead(n_trials: int, tmp: Path) -> dict:
    os.environ.update({"RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": str(tmp / "ray-noop"),
                       "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0", "RAY_AIR_NEW_OUTPUT": "0"})
    (tmp / "ray-noop").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    import ray
    from ray import tune
    t_import = time.perf_counter()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=True, dashboard_host="127.0.0.1",
             log_to_driver=False, logging_level="WARNING")
    t_init = time.perf_counter()
    tuner = tune.Tuner(tune.with_resources(_noop_trial, {"cpu": 1}),
                       param_space={"i": tune.grid_search(list(range(n_trials)))},
                       tune_config=tune.TuneConfig(reuse_actors=True),
                       run_config=tune.RunConfig(name="noop", storage_path=str(tmp / "noop-storage"), verbose=0))
    t_fit0 = time.perf_counter()
    tuner.fit()
    t_fit = time.perf_counter()
    ray.shutdown()
    t_down = time.perf_counter()
    fit = t_fit - t_fit0
    return {"import_ray_s": t_import - t0, "ray_init_s": t_init - t_import, "fit_s": fit, "n_trials": n_trials,
            "fit_s_per_trial": fit / n_trials, "shutdown_s": t_down - t_fit}


# --------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--quick", action="store_true", help="the smoke profile (seconds per trial)")
    p.add_argument("--profile", help="exp1 profile (default cpu; smoke with --quick)")
    p.add_argument("--exp", default="exp1", help="experiment (default exp1)")
    p.add_argument("--asha", action="store_true", help="keep the experiment's ASHA scheduler in the sweep")
    p.add_argument("--seq-modes", default="default",
                   help="comma list of sequential passes: default (torch's threads), 1thread, passive")
    p.add_argument("--orders", default="auto",
                   help="comma list of sweep passes by --order: auto (the command as users run it), file, "
                        "longest-first")
    p.add_argument("--noop-trials", type=int, default=8, help="no-op trials for Ray's per-trial cost (0: skip)")
    p.add_argument("--data-source", help=SOURCE_HELP)
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    profile = a.profile or ("smoke" if a.quick else "cpu")
    modes = a.seq_modes.split(",")
    for m in modes:
        if m not in SEQ_MODES:
            p.error(f"--seq-modes: {m!r} is not one of {', '.join(SEQ_MODES)}")
    orders = a.orders.split(",")
    for o in orders:
        if o not in ORDERS:
            p.error(f"--orders: {o!r} is not one of {', '.join(ORDERS)}")
    source = a.data_source
    runs = load_experiment(a.exp).grid_runs(profile)
    result: dict = {"exp": a.exp, "profile": profile, "asha": a.asha, "runs": [r["name"] for r in runs],
                    "sequential": {}}
    with tempfile.TemporaryDirectory(prefix="bsweep-") as tmpname:
        tmp = Path(tmpname)
        env = base_env(tmp)
        data_dir = tmp / "data"
        prepare_data(data_dir, source)

        # sweep and sequential passes alternate, so drifting load falls on both
        result["sweeps"] = {}
        for i in range(max(len(modes), len(orders))):
            if i < len(modes):
                mode = modes[i]
                print(f"== sequential ({mode}{': ' + str(SEQ_MODES[mode]) if SEQ_MODES[mode] else ''}): "
                      f"{len(runs)} x python -m gptcore train ({a.exp}, profile {profile})", flush=True)
                result["sequential"][mode] = sequential(runs, tmp, env, data_dir, mode)
            if i < len(orders):
                order = orders[i]
                print("== sweep: python " + " ".join(sweep_command(a.exp, profile, a.asha, order)), flush=True)
                result["sweeps"][order] = sweep(a.exp, profile, tmp, env, source, a.asha, order)
                print(f"  start order: {result['sweeps'][order]['start_order']}", flush=True)
        if a.noop_trials:
            print(f"== Ray alone: start-up and {a.noop_trials} no-op trials", flush=True)
            result["noop"] = noop_overhead(a.noop_trials, tmp)

    sweeps = [(f"sweep (--order {o})", r) for o, r in result["sweeps"].items()]
    sw = sweeps[0][1]
    rows = []
    for mode, seq in result["sequential"].items():
        rows.append([f"sequential ({mode})", f"{seq['iterations']:,}", f"{seq['wall_s']:.1f}",
                     f"{seq['train_time_s']:.1f}", f"{seq['elapsed_s']:.1f}", ""])
    for label, r in sweeps:
        rows.append([label, f"{r['iterations']:,}", f"{r['wall_s']:.1f}", f"{r['train_time_s']:.1f}",
                     f"{r['elapsed_s']:.1f}",
                     ", ".join(f"{ratio(r['wall_s'], seq['wall_s']):.2f}x {mode}"
                               for mode, seq in result["sequential"].items())])
    print()
    print(table(rows, ["", "iterations", "wall s", "sum of step time s", "sum of loop time s", "wall vs sequential"]))
    result["ratios"] = {f"{label} / sequential ({mode})": ratio(r["wall_s"], seq["wall_s"])
                        for label, r in sweeps for mode, seq in result["sequential"].items()}
    for k, v in result["ratios"].items():
        print(f"{k}: {v:.2f}" + (" (ASHA on: fewer iterations than the sequential side)" if a.asha
                                 else " (goal <= 0.70)"))
    for label, r in sweeps:
        for mode, seq in result["sequential"].items():
            r.setdefault("per_trial_slowdown", {})[mode] = ratio(r["elapsed_s"], seq["elapsed_s"])
        print(f"{label}: slots busy {r['packing_efficiency']:.0%} of the time Ray ran trials; time in gptcore's "
              "loop vs sequential: " + ", ".join(f"{v:.2f}x ({m})" for m, v in r["per_trial_slowdown"].items()))
    print(f"{sweeps[0][0]}: Ray start {sw['ray_start_s']:.1f} s (after {sw['startup_before_ray_s']:.1f} s of imports "
          f"and planning), {sw['after_summary_s']:.1f} s after the summary; idle or overhead slot-seconds per trial "
          f"{sw['overhead_slot_s_per_trial']:.1f} s ({sw['slots']} slots)")
    for mode, seq in result["sequential"].items():
        print(f"sequential ({mode}): {seq['process_overhead_s'] / len(runs):.1f} s per run outside gptcore's loop "
              "(interpreter, imports, data, model)")
    if "noop" in result:
        noop = result["noop"]
        print(f"Ray alone: import {noop['import_ray_s']:.1f} s, ray.init {noop['ray_init_s']:.1f} s, "
              f"{noop['n_trials']} no-op trials in {noop['fit_s']:.1f} s ({noop['fit_s_per_trial']:.2f} s each), "
              f"shutdown {noop['shutdown_s']:.1f} s")
    write_json("sweep_throughput_asha" if a.asha else "sweep_throughput", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
