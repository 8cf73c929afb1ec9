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
both sides do exactly the same iterations; `--asha` keeps the experiment's scheduler.

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
    python benchmarks/sweep_throughput.py --seq-modes 1thread,passive --longest-first

`--longest-first` adds a third run: the sweep of a copy of exp1 whose grid is ordered by
estimated cost, longest first (so the big model does not run alone at the end).

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

import common  # noqa: F401  (sets up sys.path for gptcore and sweeps)
from common import REPO, data_source, median, prepare_data, ratio, table, write_json

import yaml  # noqa: E402

from sweeps.spaces import expand_shape, load_experiment  # noqa: E402


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
    """The `done` event of a run's metrics.jsonl, plus the median tokens/s of its logged steps."""
    done, tps = {}, []
    for line in metrics.read_text().splitlines():
        m = json.loads(line)
        if m.get("event") == "done":
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
            "train_time_s": sum(r["train_time_s"] for r in per.values()),
            "elapsed_s": sum(r["elapsed_s"] for r in per.values()),
            "process_overhead_s": sum(r["wall_s"] - r["elapsed_s"] for r in per.values())}


def sweep(exp: str, profile: str, tmp: Path, env: dict, source: str, label: str, asha: bool) -> dict:
    storage = tmp / f"storage-{label}"
    cmd = [sys.executable, "sweeps/run.py", exp, "--profile", profile, "--storage", str(storage),
           "--data-source", source, "--no-analyze"] + ([] if asha else ["--scheduler", "none"])
    wall, rc, lines = run_logged(cmd, env, tmp / f"sweep-{label}.log")
    if rc != 0:
        tail = "\n".join(line for _, line in lines[-15:])
        raise RuntimeError(f"the sweep failed ({rc}):\n{tail}")
    t_plan = next((t for t, line in lines if "if none stops early" in line), None)
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
    # slot-seconds from Ray being up to the summary, minus the seconds trials spent in gptcore's loop
    idle = slots * ((t_end - t_ray) if t_ray is not None else wall) - elapsed
    res = {"wall_s": wall, "trials": per, "n_trials": n, "ray_start_s": ray_start,
           "startup_before_ray_s": t_plan, "after_summary_s": wall - t_end,
           "train_time_s": sum(r["train_time_s"] or 0 for r in per.values()), "elapsed_s": elapsed,
           "slots": slots, "overhead_slot_s_per_trial": idle / n if n else float("nan")}
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


def longest_first_copy(exp_name: str, profile: str, tmp: Path) -> Path:
    """A copy of the experiment file whose grid is ordered by estimated compute, largest first."""
    from gptcore.config import build_config
    from gptcore.model import GPT, GPTConfig

    exp = load_experiment(exp_name)

    def cost(run: dict) -> float:
        c = build_config(expand_shape({k: x for k, x in run.items() if k != "name"}, exp_name))
        model = GPT(GPTConfig(n_layer=c.n_layer, n_head=c.n_head, n_embd=c.n_embd, block_size=c.block_size,
                              vocab_size=65, bias=c.bias))
        per_token = 6 * model.get_num_params() + 12 * c.n_layer * c.n_embd * c.block_size
        return c.max_iters * c.batch_size * c.gradient_accumulation_steps * c.block_size * per_token

    costs = {r["name"]: cost(r) for r in exp.grid_runs(profile)}
    doc = yaml.safe_load(exp.path.read_text())
    doc["grid"] = sorted(doc["grid"], key=lambda r: -costs[r["name"]])
    folder = tmp / "longest-first"
    folder.mkdir()
    path = folder / f"{exp.name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    print("  order: " + ", ".join(f"{r['name']} ({costs[r['name']] / 1e12:.1f} TFLOP)" for r in doc["grid"]))
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--quick", action="store_true", help="the smoke profile (seconds per trial)")
    p.add_argument("--profile", help="exp1 profile (default cpu; smoke with --quick)")
    p.add_argument("--exp", default="exp1", help="experiment (default exp1)")
    p.add_argument("--asha", action="store_true", help="keep the experiment's ASHA scheduler in the sweep")
    p.add_argument("--seq-modes", default="default",
                   help="comma list of sequential passes: default (torch's threads), 1thread, passive")
    p.add_argument("--longest-first", action="store_true", help="also run the sweep with the grid ordered longest first")
    p.add_argument("--noop-trials", type=int, default=8, help="no-op trials for Ray's per-trial cost (0: skip)")
    p.add_argument("--data-source", help="Tiny Shakespeare input.txt (default: the shared copy)")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    profile = a.profile or ("smoke" if a.quick else "cpu")
    modes = a.seq_modes.split(",")
    for m in modes:
        if m not in SEQ_MODES:
            p.error(f"--seq-modes: {m!r} is not one of {', '.join(SEQ_MODES)}")
    source = data_source(a.data_source)
    if not source:
        p.error("no Tiny Shakespeare text found: pass --data-source PATH (the sweep runs offline from it)")
    runs = load_experiment(a.exp).grid_runs(profile)
    result: dict = {"exp": a.exp, "profile": profile, "asha": a.asha, "runs": [r["name"] for r in runs],
                    "sequential": {}}
    with tempfile.TemporaryDirectory(prefix="bsweep-") as tmpname:
        tmp = Path(tmpname)
        env = base_env(tmp)
        data_dir = tmp / "data"
        prepare_data(data_dir, source)

        # sweep and sequential passes alternate, so drifting load falls on both
        for i, mode in enumerate(modes):
            print(f"== sequential ({mode}{': ' + str(SEQ_MODES[mode]) if SEQ_MODES[mode] else ''}): "
                  f"{len(runs)} x python -m gptcore train ({a.exp}, profile {profile})", flush=True)
            result["sequential"][mode] = sequential(runs, tmp, env, data_dir, mode)
            if i == 0:
                print(f"== sweep: python sweeps/run.py {a.exp} --profile {profile}"
                      f"{'' if a.asha else ' --scheduler none'}", flush=True)
                result["sweep"] = sweep(a.exp, profile, tmp, env, source, "grid", a.asha)
        if a.longest_first:
            print("== sweep, grid ordered longest first", flush=True)
            path = longest_first_copy(a.exp, profile, tmp)
            result["sweep_longest_first"] = sweep(str(path), profile, tmp, env, source, "lpt", a.asha)
        if a.noop_trials:
            print(f"== Ray alone: start-up and {a.noop_trials} no-op trials", flush=True)
            result["noop"] = noop_overhead(a.noop_trials, tmp)

    sw = result["sweep"]
    sweeps = [("sweep", sw)] + ([("sweep, longest first", result["sweep_longest_first"])]
                                if "sweep_longest_first" in result else [])
    rows = []
    for mode, seq in result["sequential"].items():
        rows.append([f"sequential ({mode})", f"{seq['wall_s']:.1f}", f"{seq['train_time_s']:.1f}",
                     f"{seq['elapsed_s']:.1f}", ""])
    for label, r in sweeps:
        rows.append([label, f"{r['wall_s']:.1f}", f"{r['train_time_s']:.1f}", f"{r['elapsed_s']:.1f}",
                     ", ".join(f"{ratio(r['wall_s'], seq['wall_s']):.2f}x {mode}"
                               for mode, seq in result["sequential"].items())])
    print()
    print(table(rows, ["", "wall s", "sum of step time s", "sum of loop time s", "wall vs sequential"]))
    result["ratios"] = {f"{label} / sequential ({mode})": ratio(r["wall_s"], seq["wall_s"])
                        for label, r in sweeps for mode, seq in result["sequential"].items()}
    for k, v in result["ratios"].items():
        print(f"{k}: {v:.2f} (goal <= 0.70)")
    print(f"sweep: Ray start {sw['ray_start_s']:.1f} s (after {sw['startup_before_ray_s']:.1f} s of imports and "
          f"planning), {sw['after_summary_s']:.1f} s after the summary; idle or overhead slot-seconds per trial "
          f"{sw['overhead_slot_s_per_trial']:.1f} s ({sw['slots']} slots)")
    for mode, seq in result["sequential"].items():
        print(f"sequential ({mode}): {seq['process_overhead_s'] / len(runs):.1f} s per run outside gptcore's loop "
              "(interpreter, imports, data, model)")
    if "noop" in result:
        noop = result["noop"]
        print(f"Ray alone: import {noop['import_ray_s']:.1f} s, ray.init {noop['ray_init_s']:.1f} s, "
              f"{noop['n_trials']} no-op trials in {noop['fit_s']:.1f} s ({noop['fit_s_per_trial']:.2f} s each), "
              f"shutdown {noop['shutdown_s']:.1f} s")
    write_json("sweep_throughput", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
