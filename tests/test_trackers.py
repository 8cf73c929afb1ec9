"""W&B and MLflow (sweeps/trackers/, gptcore/tracking.py), read back with the trackers' own clients, offline.

- a finished sweep (tests/results_factory.py, no training) sent with `gptsweep analyze --tracker`: to
  MLflow, read with `MlflowClient` (one run per trial under one parent, the final val loss of
  trials.csv, every verdict, the report as artifacts), sent again and again after a cut: nothing twice;
  to W&B offline, read with `wandb leet inspect` (one offline run per trial, its val loss, group and tags);
- the live path: one real smoke sweep with `--tracker mlflow` on the session's Ray head;
- the trainer's `--wandb_log=True` offline: one run with nanoGPT's keys;
- bad tracker settings (and the other mistakes seen without training) are one line each, before the
  plan and before Ray.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY, cli_args
from results_factory import curve, make_exp2, make_run
from sweep_helpers import env_for, run

from sweeps.command.pipeline import analyse_sweep
from sweeps.trackers import make_tracker, parse_tracker
from sweeps.trackers.base import trial_info

WANDB = str(Path(sys.executable).with_name("wandb"))


def mlflow_runs(uri: str, exp: str) -> tuple[list, list]:
    """(the trials' runs, the sweep's runs) of an MLflow experiment, as MLflow's own client reads them."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(exp)
    runs = client.search_runs([found.experiment_id], max_results=1000) if found else []
    kind = [r.data.tags.get("kind") for r in runs]
    return [r for r, k in zip(runs, kind) if k == "trial"], [r for r, k in zip(runs, kind) if k == "sweep"]


def history_len(uri: str, run_id: str, key: str = "val_loss") -> list[int]:
    from mlflow.tracking import MlflowClient

    return [m.step for m in MlflowClient(tracking_uri=uri).get_metric_history(run_id, key)]


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    """An MLflow SQLite store with its tables made, to copy where a test's store goes: MLflow makes a new one's
    tables in seconds (its migrations), once here instead of in every test."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def finished_sweep(folder: Path, exp: str = "exp2") -> Path:
    make_exp2(folder)
    (folder / "sweep.json").write_text(json.dumps({"exp": exp, "started": "2026-01-02T03:04:05+0000"}))
    return folder


def analyze(*args: str) -> tuple[int, str, str]:
    from sweeps.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["analyze", *args])
    return code, out.getvalue(), err.getvalue()


def test_a_finished_sweep_to_mlflow_is_one_run_per_trial_under_its_parent_and_never_twice(tmp_path, empty_store):
    exp_dir = finished_sweep(tmp_path / "exp2")
    shutil.copy(empty_store, exp_dir / "mlflow.db")  # where `--tracker mlflow` keeps its runs: beside the sweep
    code, out, err = analyze(str(exp_dir), "--tracker", "mlflow")
    assert code == 0, err
    uri = f"sqlite:///{exp_dir / 'mlflow.db'}"
    assert f"6 trial(s) and 1 verdict(s) sent to {uri}" in out
    trials, parents = mlflow_runs(uri, "exp2")
    table = pd.read_csv(exp_dir / "trials.csv").set_index("trial_id")
    assert len(parents) == 1 and len(trials) == len(table) == 6
    parent = parents[0]
    for r in trials:
        tags = r.data.tags
        assert tags["mlflow.parentRunId"] == parent.info.run_id and tags["sweep"] == "exp2-20260102-030405"
        row = table.loc[tags["trial_id"]]
        assert r.info.run_name == f"{row['name']} s{tags['seed']}" and tags["run"] == row["name"]
        assert tags["experiment"] == "exp2" and tags["stage"] == "grid" and tags["status"] == row["status"]
        assert r.data.metrics["val_loss"] == pytest.approx(row["final_val_loss"], abs=1e-12)  # the last step's
        assert r.data.params["batch_size"] in ("64", "16") and r.info.status == "FINISHED"
        assert history_len(uri, r.info.run_id) == [0, 100, 200, 300, 400, 500]
    verdicts = json.loads((exp_dir / "verdicts.json").read_text())
    [v] = verdicts
    assert parent.data.tags[f"verdict.{v['check']}"] == v["outcome"] == "holds"
    assert parent.data.metrics[f"verdict.{v['check']}.effect"] == pytest.approx(v["effect"])
    assert parent.data.tags[f"verdict.{v['check']}.seeds"] == "grad_accum=3, large_batch=3"
    from mlflow.tracking import MlflowClient

    kept = {a.path for a in MlflowClient(tracking_uri=uri).list_artifacts(parent.info.run_id)}
    assert {"report.md", "verdicts.json", "trials.csv", "plots"} <= kept
    # the same sweep again: the same runs, no step twice
    assert analyze(str(exp_dir), "--tracker", "mlflow")[0] == 0
    again, parents_again = mlflow_runs(uri, "exp2")
    assert len(again) == 6 and len(parents_again) == 1
    assert all(history_len(uri, r.info.run_id) == [0, 100, 200, 300, 400, 500] for r in again)


def test_a_cut_sweep_continues_its_runs_from_the_step_they_hold(tmp_path, empty_store):
    """What --resume does to a tracker: a new session finds the runs by sweep and trial id and goes on."""
    exp_dir = tmp_path / "exp1"
    make_run(exp_dir, "baseline", curve(1.5, iters=range(0, 401, 100)), seeds=(1337, 1338))
    (exp_dir / "sweep.json").write_text(json.dumps({"exp": "exp1", "started": "2026-01-02T03:04:05+0000"}))
    shutil.copy(empty_store, exp_dir / "mlflow.db")
    a, _ = analyse_sweep(exp_dir, "exp1")
    res = a.res
    first = make_tracker(parse_tracker("mlflow"), "exp1", str(exp_dir))
    tid = str(res.trials["trial_id"].iloc[0])
    first.trial_started(trial_info(tid, res.params[tid]))
    rows = res.history[res.history["trial_id"] == tid].to_dict("records")
    first.trial_rows(tid, rows[:3])  # steps 0, 100, 200; then the driver dies
    first.close(interrupted=True)
    uri = first.where()
    [cut], _ = mlflow_runs(uri, "exp1")
    assert cut.info.status == "KILLED" and cut.data.tags["status"] == "interrupted"
    second = make_tracker(parse_tracker("mlflow"), "exp1", str(exp_dir))
    second.trial_started(trial_info(tid, res.params[tid]))
    second.trial_rows(tid, rows)  # the retried trial reports every row again
    second.trial_ended(tid, "completed")
    second.close()
    trials, parents = mlflow_runs(uri, "exp1")
    assert len(trials) == 1 and len(parents) == 1
    assert trials[0].info.run_id == cut.info.run_id and trials[0].info.status == "FINISHED"
    assert history_len(uri, cut.info.run_id) == [0, 100, 200, 300, 400]


def leet(*args: str) -> str:
    """`wandb leet inspect ARGS`: W&B's own reader of a run's .wandb log."""
    return subprocess.run([WANDB, "leet", "inspect", *args], capture_output=True, text=True, timeout=120).stdout


def offline_runs(folder: Path) -> dict[str, dict]:
    """Each offline W&B run under `folder`, as `wandb leet inspect` reads it: its summary (state, config,
    tags, latest values), and from its records its group, job type and every history row."""
    from concurrent.futures import ThreadPoolExecutor

    dirs = sorted(folder.glob("offline-run-*"))
    with ThreadPoolExecutor(4) as pool:  # each call starts W&B's CLI: about a second
        summaries = list(pool.map(lambda d: json.loads(leet("--summary", "--json", str(d))), dirs))
        records = list(pool.map(lambda d: [json.loads(x) for x in leet("--json", str(d)).splitlines()], dirs))
    out = {}
    for summary, recs in zip(summaries, records):
        run = next(r["run"] for r in recs if r["type"] == "run")
        out[summary["run_id"]] = {**summary, "group": run.get("run_group"), "job_type": run.get("job_type"),
                                  "history": [r["history"]["item"] for r in recs if r["type"] == "history"]}
    return out


def test_a_finished_sweep_to_wandb_offline_is_one_run_per_trial(tmp_path):
    exp_dir = tmp_path / "exp2"  # two runs of two seeds (W&B's calls cost seconds: fewer than exp2's six trials)
    for name, over in (("large_batch", {"batch_size": 64}), ("grad_accum", {"gradient_accumulation_steps": 4})):
        make_run(exp_dir, name, curve(1.8, iters=range(0, 501, 250)), seeds=(1337, 1338), overrides=over)
    (exp_dir / "sweep.json").write_text(json.dumps({"exp": "exp2", "started": "2026-01-02T03:04:05+0000"}))
    env = {**env_for(tmp_path), "WANDB_MODE": "offline", "WANDB_PROJECT": "gptsweep-test"}
    env.pop("WANDB_API_KEY", None)
    r = subprocess.run([sys.executable, "-m", "sweeps", "analyze", str(exp_dir), "--tracker", "wandb"], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = offline_runs(exp_dir / "wandb")
    table = pd.read_csv(exp_dir / "trials.csv").set_index("trial_id")
    trials = {k: v for k, v in runs.items() if v["config"].get("trial_id")}
    assert len(trials) == 4 and len(runs) == 5  # one run per trial, and the sweep's own
    for one in trials.values():
        row = table.loc[one["config"]["trial_id"]]
        assert one["state"] == "finished" and one["project"] == "gptsweep-test"
        assert one["summary"]["val_loss"] == pytest.approx(row["final_val_loss"], abs=1e-12)
        assert one["summary"]["status"] == row["status"] and [h["iter"] for h in one["history"]] == [0, 250, 500]
        assert one["name"] == f"{row['name']} s{one['config']['seed']}"
        assert one["group"] == "exp2-20260102-030405" and one["job_type"] == row["name"]  # grouped by run
        assert {f"run={row['name']}", f"seed={one['config']['seed']}", "experiment=exp2", "stage=grid",
                "sweep=exp2-20260102-030405"} == set(one["tags"])
    [sweep] = [v for k, v in runs.items() if k not in trials]
    [v] = json.loads((exp_dir / "verdicts.json").read_text())
    assert sweep["job_type"] == "sweep" and sweep["summary"][f"verdict.{v['check']}"] == v["outcome"]
    assert sweep["summary"][f"verdict.{v['check']}.seeds"] == "grad_accum=2, large_batch=2"


def test_the_trainers_wandb_log_offline_logs_nanogpts_keys(tmp_path, data_dir, gptcore_env):
    env = {**gptcore_env, "WANDB_MODE": "offline"}
    env.pop("WANDB_API_KEY", None)
    values = {**TINY, "data_dir": data_dir, "out_dir": tmp_path / "out", "max_iters": 4, "eval_interval": 2,
              "wandb_log": True, "wandb_project": "shakespeare-char", "wandb_run_name": "mini-gpt"}
    r = subprocess.run([sys.executable, "-m", "gptcore", "train", *cli_args(values)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    [run] = offline_runs(tmp_path / "wandb").values()
    assert (run["project"], run["name"], run["state"]) == ("shakespeare-char", "mini-gpt", "finished")
    assert run["config"]["n_embd"] == TINY["n_embd"] and run["config"]["wandb_log"] is True
    history = run["history"]
    assert [h["iter"] for h in history] == [0, 2, 4]  # every evaluation, as nanoGPT logs it
    for h in history:
        assert {"iter", "train/loss", "val/loss", "lr", "mfu"} <= set(h) and math.isfinite(h["val/loss"])
    log = (tmp_path / "out" / "train.log").read_text()
    assert f"val loss {history[-1]['val/loss']:.4f}" in log


# -- refused before the plan and before Ray ---------------------------------------------------


def sweep_cli(*args: str) -> tuple[int, str, str]:
    from sweeps.command.sweep import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def without(monkeypatch):
    """`without("wandb")`: the package looks uninstalled (importlib finds no such module)."""
    real = importlib.util.find_spec

    def hide(*names: str) -> None:
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if name in names
                            else real(name, *a, **k))

    return hide


def test_bad_settings_are_one_line_each_before_the_plan_and_before_ray(tmp_path, monkeypatch, without):
    monkeypatch.setenv("GPTCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))  # no W&B key stored
    monkeypatch.setenv("HOME", str(tmp_path))
    for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_IDENTITY_TOKEN_FILE", "RAY_ADDRESS"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "afile").write_text("")
    storage = ["--storage", str(tmp_path / "results"), "--profile", "smoke"]
    cases = [
        (["--tracker", "neptune"], "--tracker neptune: unknown tracker"),
        (["--tracker", "mlflow=http://127.0.0.1:9"], "it does not answer"),
        (["--tracker", f"mlflow=sqlite:///{tmp_path / 'afile' / 'runs.db'}"], "is a file, not a folder"),
        (["--tracker", f"mlflow={tmp_path / 'runs'}"], "MLflow no longer takes a folder as its store"),
        (["--tracker", "wandb"], "no W&B key is set here"),
        (["--storage", str(tmp_path / "afile"), "--profile", "smoke"], "is a file, not a folder"),
        (["--cpus-per-trial", "4", "--num-cpus", "2"], "each trial asks for 4 CPUs"),
    ]
    for extra, needle in cases:
        code, out, err = sweep_cli("exp1", *storage, *extra)
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and needle in err, (extra, err)
        assert "resources per trial" not in out and "Ray dashboard" not in out, (extra, out)  # no plan, no Ray
    without("mlflow")
    code, _, err = sweep_cli("exp1", *storage, "--tracker", "mlflow")
    assert code == 2 and "needs the mlflow package" in err and "pip install -e '.[mlflow]'" in err, err
    without("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    code, _, err = sweep_cli("exp1", *storage, "--tracker", "wandb", "--dry-run")
    assert code == 2 and "pip install -e '.[wandb]'" in err, err
    # the trainer: its wandb_log=True without wandb, one line before any training
    from gptcore.__main__ import main

    out, errs = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(errs):
        code = main(["train", "--wandb_log=True", f"--out_dir={tmp_path / 'out'}", "--device=cpu"])
    assert code == 2 and errs.getvalue() == ("error: wandb_log=True needs the wandb package, which is not installed: "
                                             "pip install -e '.[wandb]'\n")
    assert not (tmp_path / "out").exists()


# -- the live path -----------------------------------------------------------------------------


def test_a_live_sweep_to_mlflow(tmp_path, ray_address, empty_store):
    shutil.copy(empty_store, tmp_path / "runs.db")  # a store of the user's (the default one: the tests above)
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    r = run(tmp_path, "exp1", "--profile", "smoke", "--tracker", f"mlflow={uri}", address=ray_address)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    exp_dir = tmp_path / "results" / "exp1"
    assert f"tracker: {uri}" in r.stdout and "Traceback" not in r.stderr
    assert json.loads((exp_dir / "sweep.json").read_text())["tracker"] == f"mlflow={uri}"  # --resume goes on there
    trials, parents = mlflow_runs(uri, "exp1")
    table = pd.read_csv(exp_dir / "trials.csv").set_index("trial_id")
    assert len(parents) == 1 and sorted(r.data.tags["trial_id"] for r in trials) == sorted(table.index)
    for t in trials:
        row = table.loc[t.data.tags["trial_id"]]
        assert t.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert t.data.metrics["val_loss"] == pytest.approx(row["final_val_loss"], abs=1e-9)
        assert t.data.tags["status"] == row["status"] and t.info.status == "FINISHED"
        steps = history_len(uri, t.info.run_id)
        assert steps == sorted(set(steps)) and steps[-1] == row["final_iter"]  # each step once
    verdicts = json.loads((exp_dir / "verdicts.json").read_text())
    assert {f"verdict.{v['check']}" for v in verdicts} <= set(parents[0].data.tags)
    assert parents[0].info.status == "FINISHED"
