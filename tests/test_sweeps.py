"""End to end: `python sweeps/run.py` with real Ray on 2 CPUs, smoke-sized trials.

Each test runs the command as a user would, in a subprocess, with its own results folder and
dataset cache, and reads what it left on disk. Signals are real: SIGKILL to a trial's worker
process, SIGINT to the driver.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from sweep_helpers import INPUT, RUN, by_name, needs_data, results_of, trial_dirs, wait_for, write_experiment

pytestmark = needs_data


def env_for(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(GPTCORE_CACHE=str(tmp / "cache"), RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)
    return env


def sweep_args(tmp: Path, *args: str) -> list[str]:
    return RUN + list(args) + ["--storage", str(tmp / "results"), "--data-source", str(INPUT), "--num-cpus", "2"]


def run(tmp: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(sweep_args(tmp, *args), env=env_for(tmp), capture_output=True, text=True,
                          timeout=timeout, cwd=tmp)


def trial_worker_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "ray::ImplicitFunc"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


# --------------------------------------------------------------------------------------------


def test_dry_run_lists_every_trial_and_the_total_without_starting_ray(tmp_path):
    r = run(tmp_path, "exp1", "--profile", "smoke", "--dry-run")
    assert r.returncode == 0, r.stderr
    for name in ("baseline", "large_lr", "small_lr", "small_batch", "large_model"):
        assert name in r.stdout
    assert "5 trials, 150 iterations" in r.stdout
    assert "1 CPU, 0 GPU" in r.stdout
    assert "dashboard" not in r.stdout.lower()
    assert not (tmp_path / "results").exists()


def test_dry_run_of_an_optuna_search_shows_the_space(tmp_path):
    r = run(tmp_path, "exp5", "--search", "optuna", "--num-samples", "6", "--profile", "smoke",
            "--gpus-per-trial", "0.25", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "6 Optuna (TPE) trials" in r.stdout and "shape: choice" in r.stdout
    assert "0.25 GPU" in r.stdout and "at most 180 iterations" in r.stdout


def _table_names(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("trial "))
    return [line.split()[0] for line in lines[start + 1:] if line.strip() and "trials," not in line]


def test_without_early_stopping_the_grid_starts_longest_first(tmp_path):
    r = run(tmp_path, "exp1", "--profile", "cpu", "--scheduler", "none", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "start order: longest first" in r.stdout
    # the 6/8/192 model first, the batch-3 run (a quarter of the tokens) last; equal costs keep the file's order
    assert _table_names(r.stdout) == ["large_model", "baseline", "large_lr", "small_lr", "small_batch"]


@pytest.mark.parametrize("args", [["--scheduler", "asha"], ["--scheduler", "none", "--order", "file"]])
def test_with_asha_or_when_asked_the_grid_keeps_the_files_order(tmp_path, args):
    # under ASHA the order decides which trials reach a rung first, so the file's author keeps it
    r = run(tmp_path, "exp1", "--profile", "cpu", "--dry-run", *args)
    assert r.returncode == 0, r.stderr
    assert "start order: the file's" in r.stdout
    assert _table_names(r.stdout) == ["baseline", "large_lr", "small_lr", "small_batch", "large_model"]


def test_estimated_compute_grows_with_model_tokens_and_iterations():
    from sweeps.run import estimated_flops

    t = dict(n_layer=4, n_embd=128, block_size=64, batch_size=12, gradient_accumulation_steps=1, max_iters=600,
             eval_interval=100, eval_iters=20, eval_batch_size=0)
    base = estimated_flops(t)
    assert estimated_flops({**t, "n_layer": 6, "n_embd": 192}) > 2.5 * base
    assert estimated_flops({**t, "max_iters": 1200}) > 1.9 * base
    assert estimated_flops({**t, "gradient_accumulation_steps": 4}) > 3 * base
    assert estimated_flops({**t, "eval_iters": 200}) > base


def test_list_shows_each_experiment_on_one_line(tmp_path):
    r = subprocess.run(RUN + ["--list"], capture_output=True, text=True, env=env_for(tmp_path))
    assert r.returncode == 0
    lines = r.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["exp1", "exp2", "exp3", "exp4", "exp5"]


@pytest.mark.parametrize("args, expect", [
    (["exp9"], "unknown experiment 'exp9'"),
    (["exp1", "--search", "random"], "choose one of grid, optuna"),
    (["exp1", "--scheduler", "hyperband"], "choose one of auto, asha, none"),
    (["exp1", "--profile", "tiny"], "choose one of auto, full, cpu, smoke"),
    (["exp1", "--cpus-per-trial", "0"], "--cpus-per-trial"),
    (["exp1", "--gpus-per-trial", "-1"], "--gpus-per-trial"),
    (["exp1", "--gpus-per-trial", "1.5"], "whole number"),
    (["exp1", "--num-samples", "0"], "--num-samples"),
    (["exp1", "--max-concurrent", "abc"], "invalid int value"),
    (["exp1", "--resume", "--fresh"], "not allowed with argument"),
    (["exp1", "--order", "random"], "choose one of auto, file, longest-first"),
    ([], "name an experiment"),
])
def test_bad_options_give_one_clear_line(tmp_path, args, expect):
    r = subprocess.run(RUN + args + ["--dry-run"], capture_output=True, text=True, env=env_for(tmp_path))
    assert r.returncode == 2
    assert expect in r.stderr
    assert "Traceback" not in r.stderr and r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("text, expect", [
    ("description: x\ngrid: [\n", "broken YAML"),
    ("description: x\nbase: train_shakespeare_char\nprofiles: {}\ngrid: [{name: a, n_layers: 2}]\n", "did you mean n_layer"),
    ("descripton: x\n", "unknown key 'descripton'"),
])
def test_bad_experiment_files_give_one_clear_line(tmp_path, text, expect):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    r = subprocess.run(RUN + [str(path), "--dry-run"], capture_output=True, text=True, env=env_for(tmp_path))
    assert r.returncode == 2, r.stdout
    assert expect in r.stderr and str(path) in r.stderr and "Traceback" not in r.stderr


def test_resume_with_nothing_to_resume_is_an_error(tmp_path):
    r = run(tmp_path, "exp1", "--profile", "smoke", "--resume")
    assert r.returncode == 2 and "nothing to resume" in r.stderr


# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exp1_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exp1")
    r = run(tmp, "exp1", "--profile", "smoke")
    return tmp, r


def test_exp1_grid_with_asha_end_to_end(exp1_sweep):
    tmp, r = exp1_sweep
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    exp_dir = tmp / "results" / "exp1"
    trials = by_name(exp_dir)
    assert sorted(trials) == sorted(["baseline", "large_lr", "small_lr", "small_batch", "large_model"])
    # the tutorial's summary table, with every trial's status
    assert "name" in r.stdout and "val loss" in r.stdout and "status" in r.stdout
    stopped = [n for n, d in trials.items() if results_of(d)[-1]["iter"] < 30]
    assert stopped, "ASHA stopped no trial"  # small_lr (lr 1e-4) is always worse at the first rung
    assert "small_lr" in stopped
    for name, d in trials.items():
        rows = results_of(d)
        assert rows and all("val_loss" in row and "iter" in row for row in rows)
        assert [row["iter"] for row in rows] == sorted(row["iter"] for row in rows)
        conf = json.loads((d / "config.json").read_text())  # the trial's resolved config and code version
        assert conf["name"] == name and conf["code_version"].startswith("gptcore")
        assert conf["torch_threads"] == 1  # the trial's CPU share (1), not the machine's
        assert "step 0: train loss" in (d / "train.log").read_text()
        assert list(d.glob("events.out.tfevents.*")), "no TensorBoard event file"
    # Ray's own reader understands the directory
    from ray.tune import ExperimentAnalysis

    ea = ExperimentAnalysis(str(exp_dir), default_metric="val_loss", default_mode="min")
    assert len(ea.trials) == 5
    assert ea.best_config["name"] in trials


def test_an_existing_sweep_is_never_overwritten(exp1_sweep):
    tmp, _ = exp1_sweep
    before = sorted(p.name for p in (tmp / "results" / "exp1").iterdir())
    r = run(tmp, "exp1", "--profile", "smoke")
    assert r.returncode == 2
    assert "--resume" in r.stderr and "--fresh" in r.stderr
    assert sorted(p.name for p in (tmp / "results" / "exp1").iterdir()) == before


def test_exp3_with_optuna_and_4_samples(tmp_path):
    r = run(tmp_path, "exp3", "--search", "optuna", "--num-samples", "4", "--profile", "smoke")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    exp_dir = tmp_path / "results" / "exp3"
    trials = list(trial_dirs(exp_dir).values())
    assert len(trials) == 4
    params = [json.loads((d / "params.json").read_text()) for d in trials]
    assert len({(p["dropout"], p["weight_decay"]) for p in params}) == 4  # TPE proposed four configs
    assert all(0.0 <= p["dropout"] <= 0.3 and 0.0 <= p["weight_decay"] <= 0.3 for p in params)
    assert list(exp_dir.glob("searcher-state-*.pkl")), "the Optuna searcher's state was not saved"
    assert all(results_of(d)[-1]["iter"] == 30 for d in trials)


def test_a_killed_trial_completes_from_its_checkpoint(tmp_path):
    exp = write_experiment(tmp_path, "killme", "  - {name: victim}", max_iters=400, eval_interval=40)
    proc = subprocess.Popen(sweep_args(tmp_path, str(exp)), env=env_for(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        exp_dir = tmp_path / "results" / "killme"
        # wait until the trial has reported twice (two checkpoints), then kill its process
        wait_for(lambda: exp_dir.exists() and any(len(results_of(d)) >= 2 for d in trial_dirs(exp_dir).values()),
                 180, "two reports from the trial", proc)
        pids = wait_for(trial_worker_pids, 30, "the trial's worker process")
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    (d,) = trial_dirs(exp_dir).values()
    iters = [row["iter"] for row in results_of(d)]
    assert iters[-1] == 400
    assert iters.count(0) == 1, f"the trial started over instead of resuming: {iters}"
    log = (d / "train.log").read_text()
    assert "Resuming training from" in log and "training took" in log
    assert "completed" in out


def test_an_interrupted_sweep_resumes_without_rerunning_finished_trials(tmp_path):
    runs = "  - {name: quick, max_iters: 40, lr_decay_iters: 40}\n  - {name: slow1}\n  - {name: slow2}"
    exp = write_experiment(tmp_path, "stopme", runs, max_iters=600, eval_interval=30)
    exp_dir = tmp_path / "results" / "stopme"
    # the file's order: the quick trial must start (and finish) while the slow ones run
    proc = subprocess.Popen(sweep_args(tmp_path, str(exp), "--order", "file"), env=env_for(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        def quick_done_and_slow_checkpointed():
            if not exp_dir.exists():
                return False
            named = by_name(exp_dir)
            quick = results_of(named["quick"]) if "quick" in named else []
            slow = results_of(named["slow1"]) if "slow1" in named else []
            return bool(quick) and quick[-1]["iter"] == 40 and len(slow) >= 2

        wait_for(quick_done_and_slow_checkpointed, 180, "the quick trial to finish", proc)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out[-3000:]
    assert "--resume" in out
    named = by_name(exp_dir)
    quick_before = (named["quick"] / "result.json").read_text()
    slow_iters_before = results_of(named["slow1"])[-1]["iter"]
    assert slow_iters_before < 600

    r = run(tmp_path, str(exp), "--resume")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    named = by_name(exp_dir)
    assert (named["quick"] / "result.json").read_text() == quick_before, "a finished trial was run again"
    for name in ("slow1", "slow2"):
        assert results_of(named[name])[-1]["iter"] == 600
    iters = [row["iter"] for row in results_of(named["slow1"])]
    assert iters.count(0) == 1, f"slow1 started over instead of continuing: {iters}"
    assert "Resuming training from" in (named["slow1"] / "train.log").read_text()


def test_a_diverged_trial_ends_as_such_and_the_sweep_goes_on(tmp_path):
    runs = "  - {name: fine}\n  - {name: boom, learning_rate: 1.0e+6, grad_clip: 0.0, warmup_iters: 0}"
    exp = write_experiment(tmp_path, "diverge", runs, max_iters=60, eval_interval=20)
    r = run(tmp_path, str(exp))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    named = by_name(tmp_path / "results" / "diverge")
    boom = results_of(named["boom"])
    assert boom[-1]["diverged"] == 1 and boom[-1]["iter"] < 60
    assert "training diverged at step" in (named["boom"] / "train.log").read_text()
    assert results_of(named["fine"])[-1]["iter"] == 60
    assert "diverged" in r.stdout
