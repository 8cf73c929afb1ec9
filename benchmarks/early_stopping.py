"""Early stopping: an Optuna + ASHA sweep against the same configs trained to the end.

1. `python sweeps/run.py benchmarks/early_stopping.yaml --search optuna --profile cpu
   --num-samples 16 --max-concurrent 2`: exp1's Optuna search (learning rate, batch size,
   model shape; TPE, seed 0) with ASHA (cpu profile: grace 100, reduction factor 3, max_t 600).
2. The 16 sampled configs are read from the trials' params.json and written as the grid of a
   copy of that experiment file with no scheduler, and that grid runs with
   `--scheduler none`: the same 16 configs, each to max_iters, same seed, same data order.
3. Compared: total iterations (the last reported `iter` of each trial in result.json),
   wall time, and the best val loss (the lowest any evaluation of any trial reached).
   Goal: ASHA uses at most 40% of the iterations and its best is within 0.02 of the
   full-budget best. Also checked: each stopped trial's last val loss equals its full run's
   val loss at the same iteration (gptcore's data order is a function of (seed, step)), which
   shows the two sweeps trained the same configs.

Why these ASHA settings: ASHA is asynchronous, so the first trial to reach a rung is never
stopped (nothing is recorded there yet), and with 2 trials at once (2 cores) the early
trials are compared against very few. Halving (reduction factor 2, rungs at 100, 200, 400)
keeps half the trials at each rung and spends close to 40% even when synchronous; a factor of
3 (rungs at 100 and 300) keeps a third. The first rung is after the 50-iteration warm-up, when
losses already rank the learning rates. `--reduction-factor` and `--grace-period` override.

    python benchmarks/early_stopping.py --quick       # smoke profile, a few minutes
    python benchmarks/early_stopping.py               # cpu profile, ~15-25 minutes on 2 cores

Writes benchmarks/out/early_stopping.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import REPO, SOURCE_HELP, ratio, source_args, table, write_json

from sweeps.experiment.files import load_experiment, shape_of
from sweeps.results.load import load_sweep

EXPERIMENT = Path(__file__).resolve().parent / "early_stopping.yaml"


def run_sweep(args: list[str], env: dict, log: Path) -> float:
    t = time.perf_counter()
    with open(log, "w") as f:
        p = subprocess.run([sys.executable, "sweeps/run.py", *args], cwd=REPO, env=env, stdout=f,
                           stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-20:])
        raise RuntimeError(f"sweeps/run.py {' '.join(args)} failed ({p.returncode}):\n{tail}")
    return wall


def read_trials(exp_dir: Path) -> list[dict]:
    """One dict per trial, in the order Ray created them: params, val loss by iter, last iter, best val loss."""
    res = load_sweep(exp_dir)
    trials = []
    for i, (_, row) in enumerate(res.trials.sort_values("trial_id").iterrows()):
        hist = res.history[res.history["trial_id"] == row["trial_id"]]
        cfg = res.configs[row["trial_id"]]
        # the file's space names a size by its shape
        trials.append({"index": i, "params": {**cfg, "shape": shape_of(cfg), "name": row["name"]},
                       "rows": dict(zip(hist["iter"].astype(int), hist["val_loss"])),
                       "iter": int(row["final_iter"]), "max_iters": row["max_iters"],
                       "best_val_loss": row["best_val_loss"], "final_val_loss": row["final_val_loss"],
                       "status": row["status"]})
    return trials


def full_budget_copy(exp_file: Path, trials: list[dict], searched: list[str], tmp: Path) -> Path:
    """A copy of the experiment file whose grid is the sampled configs, with no scheduler."""
    doc = yaml.safe_load(exp_file.read_text())
    doc["grid"] = [{"name": f"t{t['index']:02d}", **{k: t["params"][k] for k in searched}} for t in trials]
    doc["early_stopping"] = {"none": "the full-budget rerun of the early-stopping benchmark"}
    for prof in doc["profiles"].values():
        prof.pop("early_stopping", None)
    path = tmp / "full_budget" / "es_full.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--quick", action="store_true", help="the smoke profile (seconds per trial)")
    p.add_argument("--profile", help="profile of the experiment file (default cpu; smoke with --quick)")
    p.add_argument("--experiment", default=str(EXPERIMENT), help="experiment YAML (default: early_stopping.yaml)")
    p.add_argument("--num-samples", type=int, default=16, help="Optuna trials (default 16)")
    p.add_argument("--max-concurrent", type=int, default=2, help="trials at once (default 2)")
    p.add_argument("--grace-period", type=int, help="override the file's ASHA grace period")
    p.add_argument("--reduction-factor", type=int, help="override the file's ASHA reduction factor")
    p.add_argument("--seed", type=int, default=0, help="Optuna sampler seed (default 0)")
    p.add_argument("--omp-wait-policy", help="set OMP_WAIT_POLICY for the sweeps (trials use 1 thread each)")
    p.add_argument("--data-source", help=SOURCE_HELP)
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    profile = a.profile or ("smoke" if a.quick else "cpu")
    exp_file = Path(a.experiment).resolve()
    exp = load_experiment(exp_file)
    searched = sorted(exp.space(profile))

    with tempfile.TemporaryDirectory(prefix="bes-") as tmpname:
        tmp = Path(tmpname)
        if a.grace_period or a.reduction_factor:  # a copy of the file with the scheduler changed
            doc = yaml.safe_load(exp_file.read_text())
            sched = doc["profiles"][profile].setdefault("early_stopping", {})
            if a.grace_period:
                sched["grace_period"] = a.grace_period
            if a.reduction_factor:
                sched["reduction_factor"] = a.reduction_factor
            exp_file = tmp / "asha" / exp_file.name
            exp_file.parent.mkdir()
            exp_file.write_text(yaml.safe_dump(doc, sort_keys=False))
            exp = load_experiment(exp_file)
        sched = exp.early_stopping(profile)
        max_iters = exp.profile_base(profile)["max_iters"]
        env = dict(os.environ)
        env.update({"GPTCORE_CACHE": str(tmp / "cache"), "RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": str(tmp / "ray")})
        env.pop("RAY_ADDRESS", None)
        if a.omp_wait_policy:
            env["OMP_WAIT_POLICY"] = a.omp_wait_policy
        (tmp / "ray").mkdir()
        common_args = ["--profile", profile, "--max-concurrent", str(a.max_concurrent), *source_args(a.data_source),
                       "--no-analyze", "--seeds", "1", "--confirm", "0"]  # one trial per config, as before

        print(f"== Optuna + ASHA: {a.num_samples} samples of {exp.name} ({profile}), {a.max_concurrent} at once, "
              f"grace {sched.grace_period}, reduction factor {sched.reduction_factor}, max_t {max_iters}",
              flush=True)
        asha_wall = run_sweep([str(exp_file), "--search", "optuna", "--num-samples", str(a.num_samples),
                               "--seed", str(a.seed), "--scheduler", "asha", "--storage", str(tmp / "asha-results"),
                               *common_args], env, tmp / "asha.log")
        asha = read_trials(tmp / "asha-results" / exp.name)
        if len(asha) < a.num_samples:
            raise RuntimeError(f"the ASHA sweep left {len(asha)} trials, not {a.num_samples}")
        print(f"  {asha_wall:.0f} s; iterations per trial: {[t['iter'] for t in asha]}", flush=True)

        print("== the same configs to the end (grid, --scheduler none)", flush=True)
        full_file = full_budget_copy(exp_file, asha, searched, tmp)
        full_wall = run_sweep([str(full_file), "--search", "grid", "--scheduler", "none",
                               "--storage", str(tmp / "full-results"), *common_args], env, tmp / "full.log")
        full = {t["params"]["name"]: t for t in read_trials(tmp / "full-results" / full_file.stem)}
        print(f"  {full_wall:.0f} s", flush=True)

    rows, same_diffs = [], []
    for t in asha:
        f = full[f"t{t['index']:02d}"]
        at = f["rows"].get(t["iter"])
        mine = t["rows"].get(t["iter"])
        if at is not None and mine is not None:
            same_diffs.append(abs(at - mine))
        cfg = ", ".join(f"{k}={t['params'][k]:.2e}" if isinstance(t["params"][k], float) else f"{k}={t['params'][k]}"
                        for k in searched)
        rows.append([f"t{t['index']:02d}", cfg, t["iter"], f"{t['best_val_loss']:.4f}", f["iter"],
                     f"{f['best_val_loss']:.4f}", f"{f['final_val_loss']:.4f}"])
    print()
    print(table(rows, ["trial", "config", "ASHA iters", "ASHA best val", "full iters", "full best val",
                       "full final val"]))
    asha_iters = sum(t["iter"] for t in asha)
    full_iters = sum(t["iter"] for t in full.values())
    asha_best = min(t["best_val_loss"] for t in asha)
    full_best = min(t["best_val_loss"] for t in full.values())
    res = {
        "experiment": exp.name, "profile": profile, "num_samples": a.num_samples, "max_concurrent": a.max_concurrent,
        "asha": {"grace_period": sched.grace_period, "reduction_factor": sched.reduction_factor, "max_t": max_iters},
        "searched": searched, "seed": a.seed,
        "asha_iterations": asha_iters, "full_iterations": full_iters,
        "iteration_fraction": ratio(asha_iters, full_iters),
        "asha_wall_s": asha_wall, "full_wall_s": full_wall, "wall_fraction": ratio(asha_wall, full_wall),
        "asha_best_val_loss": asha_best, "full_best_val_loss": full_best, "best_diff": asha_best - full_best,
        "asha_best_trial": min(asha, key=lambda t: t["best_val_loss"])["index"],
        "full_best_trial": int(min(full.values(), key=lambda t: t["best_val_loss"])["params"]["name"][1:]),
        "stopped_at": {str(t["index"]): t["iter"] for t in asha},
        "same_config_check_max_abs_diff": max(same_diffs) if same_diffs else float("nan"),
        "trials": [{"index": t["index"], "params": {k: t["params"][k] for k in searched}, "asha_iter": t["iter"],
                    "asha_best_val_loss": t["best_val_loss"],
                    "full_best_val_loss": full[f"t{t['index']:02d}"]["best_val_loss"],
                    "full_final_val_loss": full[f"t{t['index']:02d}"]["final_val_loss"]} for t in asha],
    }
    print(f"\niterations: ASHA {asha_iters:,} / full {full_iters:,} = {res['iteration_fraction']:.1%} (goal <= 40%)")
    print(f"best val loss: ASHA {asha_best:.4f} (trial t{res['asha_best_trial']:02d}) vs full {full_best:.4f} "
          f"(trial t{res['full_best_trial']:02d}): {res['best_diff']:+.4f} (goal within 0.02)")
    print(f"wall time: ASHA {asha_wall:.0f} s / full {full_wall:.0f} s = {res['wall_fraction']:.2f}")
    print(f"same configs: largest |val loss difference| at a stopped trial's last iteration: "
          f"{res['same_config_check_max_abs_diff']:.2e}")
    write_json("early_stopping", res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
