"""End to end: `python sweeps/run.py` with real Ray on 2 CPUs, smoke-sized trials.

Each test runs the command as a user would, in a subprocess, with its own results folder and
dataset cache, and reads what it left on disk. Signals are real: SIGKILL to a trial's worker
process, SIGINT to the driver.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from sweep_helpers import (
    all_trials,
    by_name,
    env_for,
    results_of,
    run,
    sweep_args,
    trial_pid,
    wait_for,
    write_experiment,
)
from test_live import RAY_INTERNALS

from sweeps.results.load import load_sweep


@pytest.fixture(scope="module")
def exp1_sweep(tmp_path_factory, ray_address):
    tmp = tmp_path_factory.mktemp("exp1")
    # a range of seeds: 2 first, 2 more for the runs of a verdict still within noise after them
    r = run(tmp, "exp1", "--profile", "smoke", "--seeds", "2..4", "--max-concurrent", "2", address=ray_address)
    return tmp, r


def ends(exp_dir: Path) -> dict[tuple[str, int], int]:
    """The last iteration of every trial, by (run, seed)."""
    out = {}
    for d in all_trials(exp_dir):
        conf = json.loads((d / "config.json").read_text())
        out[(conf["name"], conf["seed"])] = results_of(d)[-1]["iter"]
    return out


def test_exp1_grid_with_early_stopping_end_to_end(exp1_sweep):
    tmp, r = exp1_sweep
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    exp_dir = tmp / "results" / "exp1"
    end = ends(exp_dir)
    names = ["baseline", "large_lr", "small_lr", "small_batch", "large_model"]
    # the first look: the runs of the verdicts within noise get 2 more seeds (the live view says which)
    look = re.search(r"^\[[^]]+\] look 1 \(2 seeds\): within noise: .+; more seeds: (.+)$", r.stdout, re.M)
    assert look, r.stdout[-3000:]
    more = dict(part.split(" +") for part in look.group(1).split(", "))
    assert "baseline" in more and set(more) < set(names)
    assert sorted(end) == sorted([(n, s) for n in names for s in (1337, 1338)]
                                 + [(n, s) for n in more for s in (1339, 1340)])
    # the tutorial's summary table, with every run's status
    assert "name" in r.stdout and "val loss" in r.stdout and "status" in r.stdout
    stopped = {n for (n, _), it in end.items() if it < 30}
    # small_batch's one verdict is decided at the first rung (too few logged losses there: cannot tell);
    # small_lr ranks last there but continues: converges_slower at 2 seeds is within the strict rung level
    assert stopped == {"small_batch"}, end
    assert end[("baseline", 1337)] == end[("baseline", 1338)] == 30  # the reference is never stopped
    for n in names:  # a run's seeds continue or stop together, the added ones too
        assert len({it for (name, _), it in end.items() if name == n}) == 1, end
    verdicts = json.loads((exp_dir / "verdicts.json").read_text())
    assert len(verdicts) == 5 and all(v["n_seeds"] for v in verdicts)
    assert all("Pocock" in v["rule"] for v in verdicts if "p <" in v["rule"])
    report = (exp_dir / "report.md").read_text()
    assert "### Seeds per run" in report and "### Runs stopped early" in report
    # no run stopped with a verdict within noise at the step it stopped at
    for v in verdicts:
        stopped = [n for n in v["n_seeds"] if end[(n, 1337)] < 30]
        assert not (stopped and v["outcome"] == "within noise"), v
    trials = {(json.loads((d / "config.json").read_text())["name"], d.name): d for d in all_trials(exp_dir)}
    for (name, _), d in trials.items():
        rows = results_of(d)
        assert rows and all("val_loss" in row and "iter" in row for row in rows)
        assert [row["iter"] for row in rows] == sorted(row["iter"] for row in rows)
        conf = json.loads((d / "config.json").read_text())  # the trial's resolved config and code version
        assert conf["name"] == name and conf["code_version"].startswith("gptcore")
        assert conf["torch_threads"] == 1  # the trial's CPU share (1), not the machine's
        assert "step 0: train loss" in (d / "train.log").read_text()
        assert list(d.glob("events.out.tfevents.*")), "no TensorBoard event file"
    # the decision log: every rung decided, the look and the seeds it added, every trial's end, in the design's order
    from sweeps.results.decisions import decisions, environments, read

    log = read(exp_dir / "decisions.jsonl")
    made = decisions(log)
    rungs = [d for d in made if d["kind"] == "rung"]
    assert rungs and all(set(d["stopped"]) | set(d["continued"]) for d in rungs)
    assert {n for d in rungs for n in d["stopped"]} == {"small_batch"}
    (first_look,) = [d for d in made if d["kind"] == "look" and d["look"] == 1]
    assert first_look["added"] == {n: 2 for n in more}
    assert len([d for d in made if d["kind"] == "end"]) == len(end)
    assert [d["kind"] for d in made].index("look") > [d["kind"] for d in made].index("rung")
    assert environments(log) and environments(log)[0]["ray"]
    assert "Ran on cpu in " in report  # the report's header: the device and dtype of the trials
    # Ray's own reader understands the directory
    from ray.tune import ExperimentAnalysis

    ea = ExperimentAnalysis(str(exp_dir), default_metric="val_loss", default_mode="min")
    assert len(ea.trials) == len(end)
    assert ea.best_config["name"] in names
    # Ray's record of every trial is final: a run stopped while it waited at a rung is TERMINATED too
    assert {t.status for t in ea.trials} == {"TERMINATED"}


def test_a_piped_sweep_prints_plain_lines_and_nothing_of_ray(exp1_sweep):
    # the live view, where the output is not a terminal (tests/test_live.py has the terminal's)
    tmp_path, p = exp1_sweep
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    assert not [s for s in RAY_INTERNALS if s in out], out[-3000:]
    for name, state in (("small_lr", "completed"), ("small_batch", "stopped at 10"), ("baseline", "completed"),
                        ("large_lr", "completed"), ("large_model", "completed")):
        assert len(re.findall(rf"^\[[^]]+\] run {name} {re.escape(state)} \(2 seeds\): val \d\.\d{{4}} ± \d\.\d{{4}} "
                              rf"at \d+$", out, re.M)) == 1, (name, out[-3000:])
    assert re.search(r"^\[[^]]+\] rung 10: stopped small_batch, val \d\.\d{4} ± \d\.\d{4} \(n=2\), rank [45] of 5; "
                     r"reference baseline \d\.\d{4} ± \d\.\d{4} \(n=2\); 4 of 5 continue; "
                     r"decided there: noisier cannot tell",
                     out, re.M), out[-3000:]
    # a run ranked last is held while one of its verdicts is open: the line says which, with its effect and p
    assert re.search(r"^\[[^]]+\] rung 10: small_lr continues though ranked 5 of 5, val \d\.\d{4} ± \d\.\d{4} \(n=2\): "
                     r"its verdict is open there, converges_slower within noise \(\+\d\.\d{4} ± \d\.\d{4}, p = ",
                     out, re.M), out[-3000:]
    done = re.search(r"trials (\d+) done, 0 running, 0 pending \(of (\d+)\) · iterations (\d+) of (\d+) · elapsed \S+, "
                     r"done", out)
    assert done and done[1] == done[2] and done[3] == done[4] and int(done[1]) > 10, out[-3000:]
    assert "Ray's log " in out and (tmp_path / "results" / "exp1" / "driver.log").is_file()




def test_the_same_command_gives_the_same_outcomes_whatever_the_concurrency(exp1_sweep, tmp_path, ray_address):
    first, _ = exp1_sweep
    r = run(tmp_path, "exp1", "--profile", "smoke", "--seeds", "2..4", "--max-concurrent", "1", "--order", "file",
            address=ray_address)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    a, b = (json.loads((d / "results" / "exp1" / "verdicts.json").read_text()) for d in (first, tmp_path))
    assert [(v["expectation"], v["outcome"]) for v in a] == [(v["expectation"], v["outcome"]) for v in b]
    assert ends(first / "results" / "exp1") == ends(tmp_path / "results" / "exp1")


def test_an_existing_sweep_is_never_overwritten(exp1_sweep):
    tmp, _ = exp1_sweep
    before = sorted(p.name for p in (tmp / "results" / "exp1").iterdir())
    r = run(tmp, "exp1", "--profile", "smoke")
    assert r.returncode == 2
    assert "--resume" in r.stderr and "--fresh" in r.stderr
    assert sorted(p.name for p in (tmp / "results" / "exp1").iterdir()) == before


SEARCH = """description: a search in which some trials diverge
base: train_shakespeare_char
reference: steady
grid:
  - {name: steady}
optuna:
  num_samples: 12
  space:
    learning_rate: {loguniform: [1.0e-6, 1.0e+4]}
# rate 4: at the rung only the best quarter goes on, so slow (small-rate) trials are stopped
early_stopping: {grace_period: 10, reduction_factor: 4}
profiles:
  full: {config: {max_iters: 30, eval_interval: 10, grad_clip: 0.0, warmup_iters: 0}}
  cpu: {config: {max_iters: 30, eval_interval: 10, grad_clip: 0.0, warmup_iters: 0}}
  smoke: {config: {max_iters: 30, eval_interval: 10, grad_clip: 0.0, warmup_iters: 0}}
"""


def test_a_search_tells_optuna_what_each_trial_did_and_confirms_the_best(tmp_path, ray_address):
    import optuna

    from sweeps.strategies.study import open_study

    path = tmp_path / "divsearch.yaml"
    path.write_text(SEARCH)
    r = run(tmp_path, str(path), "--search", "optuna", "--profile", "smoke", "--sampler", "random", "--seed", "3",
            "--confirm", "1", "--seeds", "2", address=ray_address)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    exp_dir = tmp_path / "results" / "divsearch"
    study = open_study(exp_dir / "optuna.journal", "divsearch")
    S = optuna.trial.TrialState
    states = [t.state for t in study.trials]
    assert len(states) == 12 and S.RUNNING not in states
    # the three truths: run to the end, stopped by ASHA, diverged
    assert S.COMPLETE in states and S.PRUNED in states and S.FAIL in states, states
    for t in study.trials:
        if t.state == S.COMPLETE:
            assert max(t.intermediate_values) == 30  # reported at the optimizer step, to max_iters
        if t.state == S.PRUNED:
            assert max(t.intermediate_values) < 30
    trials = load_sweep(exp_dir).trials
    assert set(trials["stage"]) == {"search", "confirm"}
    confirm = trials[trials["stage"] == "confirm"]
    names = set(confirm["name"])
    assert "confirm_steady" in names and len(names) == 2 and len(confirm) == 4  # (1 best + ref) x 2 seeds
    assert (confirm["final_iter"] == 30).all()  # the confirm stage is never stopped early
    text = (exp_dir / "report.md").read_text()
    assert "## Search" in text and "### Searched against confirmed" in text
    assert "beats the reference steady" in text
    assert len(list((exp_dir / "plots").glob("*.png"))) <= 12


def test_a_killed_trial_completes_from_its_checkpoint(tmp_path, ray_address):
    exp = write_experiment(tmp_path, "killme", "  - {name: victim}", max_iters=400, eval_interval=40)
    proc = subprocess.Popen(sweep_args(tmp_path, str(exp), address=ray_address), env=env_for(tmp_path),
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        exp_dir = tmp_path / "results" / "killme"
        # wait until the trial has reported twice (two checkpoints), then kill its process
        wait_for(lambda: exp_dir.exists() and any(len(results_of(d)) >= 2 for d in all_trials(exp_dir)),
                 180, "two reports from the trial", proc)
        # the process this sweep's trial runs in, from the trial's own record: nothing else on the machine
        (d,) = all_trials(exp_dir)
        os.kill(trial_pid(d), signal.SIGKILL)
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    (d,) = all_trials(exp_dir)
    iters = [row["iter"] for row in results_of(d)]
    assert iters[-1] == 400
    assert iters.count(0) == 1, f"the trial started over instead of resuming: {iters}"
    log = (d / "train.log").read_text()
    assert "Resuming training from" in log and "training took" in log
    assert "completed" in out


def test_an_interrupted_sweep_resumes_without_rerunning_finished_trials(tmp_path, ray_address):
    runs = "  - {name: quick, max_iters: 40, lr_decay_iters: 40}\n  - {name: slow1}\n  - {name: slow2}"
    exp = write_experiment(tmp_path, "stopme", runs, max_iters=150, eval_interval=30)
    exp_dir = tmp_path / "results" / "stopme"
    # the file's order: the quick trial must start (and finish) while the slow ones run
    proc = subprocess.Popen(sweep_args(tmp_path, str(exp), "--order", "file", address=ray_address),
                            env=env_for(tmp_path),
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
    assert slow_iters_before < 150

    r = run(tmp_path, str(exp), "--resume", address=ray_address)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    named = by_name(exp_dir)
    assert (named["quick"] / "result.json").read_text() == quick_before, "a finished trial was run again"
    for name in ("slow1", "slow2"):
        assert results_of(named[name])[-1]["iter"] == 150
    iters = [row["iter"] for row in results_of(named["slow1"])]
    assert iters.count(0) == 1, f"slow1 started over instead of continuing: {iters}"
    assert "Resuming training from" in (named["slow1"] / "train.log").read_text()


def test_a_diverged_trial_ends_as_such_and_the_sweep_goes_on(tmp_path, ray_address):
    runs = "  - {name: fine}\n  - {name: boom, learning_rate: 1.0e+6, grad_clip: 0.0, warmup_iters: 0}"
    exp = write_experiment(tmp_path, "diverge", runs, max_iters=60, eval_interval=20)
    r = run(tmp_path, str(exp), address=ray_address)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    named = by_name(tmp_path / "results" / "diverge")
    boom = results_of(named["boom"])
    assert boom[-1]["status"] == "diverged" and boom[-1]["iter"] < 60  # the record says so itself
    assert "training diverged at step" in (named["boom"] / "train.log").read_text()
    assert results_of(named["fine"])[-1]["iter"] == 60
    assert "diverged" in r.stdout
