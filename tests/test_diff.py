"""gptsweep diff A B: two fabricated sweeps of exp1 (results_factory's trial folders, decision logs written by
DecisionLog) compared to the last digit; the first decision where they part, changed verdicts, environments,
one-line mistakes; in-process but for one real `python -m sweeps diff`, and one pair in a local S3 server."""

from __future__ import annotations

import contextlib
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from common import REPO
from conftest import assert_user_error
from results_factory import curve, make_trial

from sweeps.__main__ import main
from sweeps.results.decisions import ENVIRONMENT, FILE, DecisionLog

try:  # the S3 pair reuses test_s3's moto server; without moto only that test is skipped
    from test_s3 import BUCKET, s3, upload  # noqa: F401  (s3 is a fixture)
except pytest.skip.Exception:
    s3 = None

ENV = {"code": "5c21dd1", "python": "3.11.7", "torch": "2.13.0", "ray": "2.60.0", "optuna": "4.5.0",
       "numpy": "2.3.0", "cpu": "AMD EPYC 9B14", "cores": 2, "platform": "Linux-6.8-x86_64"}
RUNS = (("baseline", {}), ("large_lr", {"learning_rate": 5e-3}), ("small_lr", {"learning_rate": 1e-4}))
VERDICT = {"expectation": "large_lr: ends above the baseline", "outcome": "holds", "effect": 0.0412,
           "stderr": 0.0051, "interval": [0.0301, 0.0523], "coverage": 0.95, "n_seeds": {"large_lr": 1},
           "step": 100.0, "check": "worse", "rule": "t-test", "p_value": 0.003, "observed": "val 2.04 vs 2.00"}


def make_sweep(folder: Path, exp: str = "exp1", env: dict | None = None, decisions: bool = True,
               verdicts: list | None = None) -> Path:
    """A finished grid sweep of exp1: three runs, one seed, evaluations at 0, 50 and 100, its decision log (the
    environment, each trial's end) and verdicts.json (unless `verdicts` is None)."""
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps({"exp": exp, "search": "grid", "profile": "smoke",
                                                   "planned_trials": 3}))
    for i, (name, over) in enumerate(RUNS):
        make_trial(folder, name, curve(2.0 + 0.1 * i, iters=range(0, 101, 50)), overrides=over)
    if decisions:
        log = DecisionLog(folder / FILE)
        log.record(ENVIRONMENT, env=env or ENV)
        for i, (name, _) in enumerate(RUNS):
            log.record("end", [100, i], trial=name, status="completed", iter=100, val_loss=2.0 + 0.1 * i)
    if verdicts is not None:
        (folder / "verdicts.json").write_text(json.dumps(verdicts))
    return folder


def run(*args) -> subprocess.CompletedProcess:
    """`gptsweep ARGS` through sweeps/__main__.py in this process, output captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return subprocess.CompletedProcess(["gptsweep", *args], code, out.getvalue(), err.getvalue())


def rewrite(path: Path, change) -> None:
    """Change a JSON-lines file's rows in place (`change` edits the list)."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    change(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def trial_folder(sweep: Path, name: str) -> Path:
    return next(sweep.glob(f"{name}_s1337_*"))


def test_two_equal_sweeps_are_identical(tmp_path):
    a = make_sweep(tmp_path / "a" / "exp1", verdicts=[VERDICT])
    b = make_sweep(tmp_path / "b" / "exp1", verdicts=[VERDICT])
    r = run("diff", a, b)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "identical: 3 trials, 9 evaluations, 3 decisions, every verdict" in r.stdout
    assert "same environment" in r.stdout
    assert all(len(line) <= 100 for line in r.stdout.splitlines())


def test_a_loss_off_in_the_last_digit_names_trial_step_and_both_values(tmp_path):
    a = make_sweep(tmp_path / "a" / "exp1", verdicts=[VERDICT])
    b = make_sweep(tmp_path / "b" / "exp1", verdicts=[VERDICT])
    old = {}

    def nudge(rows):
        old["v"] = rows[1]["val_loss"]
        rows[1]["val_loss"] = math.nextafter(rows[1]["val_loss"], 10.0)  # one ulp up, at iter 50

    rewrite(trial_folder(b, "small_lr") / "result.json", nudge)
    r = run("diff", a, b)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "they differ: 1 of 3 trials (losses 1)" in r.stdout
    at = lines.index("first trial that differs:")
    assert lines[at + 1].strip() == "small_lr (seed 1337, grid):"
    new = math.nextafter(old["v"], 10.0)
    assert lines[at + 2].strip() == f"val_loss at iter 50: {old['v']!r} vs {new!r}", lines[at + 2]
    # the decisions do not differ: nothing in the log saw the evaluation at 50
    assert "0 of 3 decisions" in r.stdout and "first decision" not in r.stdout
    # an older sweep without a log: the first trial that differs, and the log said missing
    (b / FILE).unlink()
    r = run("diff", a, b)
    assert r.returncode == 1 and "no decision log in B" in r.stdout and "small_lr (seed 1337" in r.stdout, r.stdout


def search_log(folder: Path, lrs: list[float], ends: list[str], reverse: bool = False) -> None:
    """A search's decisions: each trial asked with its learning rate, a rung decision at 10, its end; written in
    the design's order, or backwards (as a concurrent sweep may write them)."""
    recs = [(ENVIRONMENT, None, {"env": ENV})]
    for i, (lr, end) in enumerate(zip(lrs, ends)):
        t = f"t{i:03d}"
        recs.append(("ask", [i, 0], {"trial": t, "config": {"learning_rate": lr, "n_layer": 2}, "knew": []}))
        recs.append(("rung", [i, 1, 10], {"trial": t, "step": 10, "value": 2.31, "cutoff": 2.28,
                                          "among": ["t000"], "decision": end}))
        recs.append(("end", [i, 2], {"trial": t, "status": "completed" if end == "continue" else "stopped early"}))
    log = DecisionLog(folder / FILE)
    for kind, key, fields in (recs[:1] + recs[1:][::-1] if reverse else recs):
        log.record(kind, key, **fields)


def test_logs_that_part_at_one_ask_name_that_decision_first(tmp_path):
    a = make_sweep(tmp_path / "a" / "exp1", decisions=False, verdicts=[VERDICT])
    b = make_sweep(tmp_path / "b" / "exp1", decisions=False, verdicts=[VERDICT])
    search_log(a, [1e-3, 2e-3, 3e-3, 4e-3], ["continue", "continue", "stop", "continue"])
    # B parts at t002's ask, and later decisions differ too (t003's rung); its records were written backwards
    search_log(b, [1e-3, 2e-3, 3.5e-3, 4e-3], ["continue", "continue", "stop", "stop"], reverse=True)
    r = run("diff", a, b)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("first decision where they part"))
    assert "(of 3 that differ)" in lines[at]
    assert lines[at + 1].strip() == "ask t002: config learning_rate 0.003 vs 0.0035"
    j = json.loads(run("diff", a, b, "--json").stdout)
    assert j["identical"] is False and j["decisions"]["differ"] == 3 and j["decisions"]["count"] == 12
    first = j["decisions"]["first"]
    assert (first["kind"], first["trial"], first["fields"]) == (
        "ask", "t002", [{"field": "config learning_rate", "a": 0.003, "b": 0.0035}])
    # a rung that parts is shown with both sides' figures; one side lacking a decision says so
    (b / FILE).unlink()
    search_log(b, [1e-3, 2e-3, 3e-3], ["continue", "stop", "stop"])
    out = run("diff", a, b).stdout
    assert "rung t001 at 10: continue (2.31 vs cutoff 2.28) vs stop (2.31 vs cutoff 2.28)" in out


def test_a_changed_verdict_side_by_side_and_judging_writes_nothing(tmp_path):
    changed = {**VERDICT, "outcome": "within noise", "effect": 0.0045, "interval": [-0.006, 0.015], "p_value": 0.4}
    a = make_sweep(tmp_path / "a" / "exp1", verdicts=[VERDICT])
    b = make_sweep(tmp_path / "b" / "exp1", verdicts=[changed])
    r = run("diff", a, b)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    at = lines.index("verdicts that changed (1 of 1):")
    assert lines[at + 1].strip() == "worse: large_lr: ends above the baseline"
    assert lines[at + 2].split() == ["outcome", "holds", "vs", "within", "noise"]
    assert lines[at + 3].split() == ["effect", "0.0412", "±", "0.0051", "vs", "0.0045", "±", "0.0051"]
    assert lines[at + 4].split() == ["interval", "[0.0301,", "0.0523]", "vs", "[-0.006,", "0.015]"]
    assert lines[at + 5].strip() == "also: p_value"
    # without verdicts.json a folder is judged as `gptsweep analyze` judges it (the shipped exp1), nothing written
    c = make_sweep(tmp_path / "c" / "exp1")
    d = make_sweep(tmp_path / "d" / "exp1")
    before = sorted(p.relative_to(c).as_posix() for p in c.rglob("*"))
    r = run("diff", c, d)
    assert r.returncode == 0 and "every verdict" in r.stdout, r.stdout + r.stderr
    assert sorted(p.relative_to(c).as_posix() for p in c.rglob("*")) == before
    assert json.loads(run("diff", c, d, "--json").stdout)["a"]["verdicts"] > 0


def test_environments_that_differ_are_listed(tmp_path):
    a = make_sweep(tmp_path / "a" / "exp1", verdicts=[VERDICT])
    b = make_sweep(tmp_path / "b" / "exp1", verdicts=[VERDICT],
                   env={**ENV, "cpu": "Intel Xeon Platinum 8481C", "code": "7a8b9c0+dirty"})
    for f in b.glob("*/config.json"):
        f.write_text(json.dumps({**json.loads(f.read_text()), "resolved_dtype": "bfloat16", "dtype_why": "AMX"}))
    r = run("diff", a, b)
    assert r.returncode == 0, r.stdout + r.stderr  # the same figures from another machine are still identical
    env = r.stdout.split("environment:\n")[1].splitlines()
    assert "  code: 5c21dd1 vs 7a8b9c0+dirty" in env
    assert "  cpu: AMD EPYC 9B14 vs Intel Xeon Platinum 8481C" in env
    assert "  dtype: float32 (3 trials) vs bfloat16 (3 trials)" in env
    assert "  dtype why: none vs AMX (3 trials)" in env
    assert "same environment" not in r.stdout


def test_mistakes_are_one_line(tmp_path):
    a = make_sweep(tmp_path / "a" / "exp1", verdicts=[VERDICT])
    assert_user_error(run("diff", a, tmp_path / "nowhere"), "no folder", "nowhere")
    (tmp_path / "empty").mkdir()
    assert_user_error(run("diff", tmp_path / "empty", a), "holds no sweep", "results/exp1")
    # the root that holds sweeps, not a sweep: named as such
    assert_user_error(run("diff", a, tmp_path / "a"), "holds the sweeps exp1", f"{tmp_path / 'a'}/exp1")
    other = make_sweep(tmp_path / "b" / "exp2", exp="exp2", verdicts=[VERDICT])
    assert_user_error(run("diff", a, other), "exp1", "exp2", "one experiment")
    # the command as a user runs it: its exit status and its one line
    cli = [sys.executable, "-m", "sweeps", "diff"]
    p = subprocess.run(cli + [str(a), str(tmp_path / "nowhere")], capture_output=True, text=True, cwd=REPO,
                       timeout=60)
    assert_user_error(p, "no folder")


@pytest.mark.skipif(s3 is None, reason="moto's S3 server is not installed")
def test_a_sweep_in_s3_against_a_local_one(s3, tmp_path):  # noqa: F811 (the fixture)
    a = make_sweep(tmp_path / "a" / "exp1", verdicts=[VERDICT])
    upload(s3, make_sweep(tmp_path / "b" / "exp1", verdicts=[VERDICT]), "team/exp1")
    r = run("diff", a, f"s3://{BUCKET}/team/exp1")
    assert r.returncode == 0 and "identical: 3 trials" in r.stdout, r.stdout + r.stderr
    assert_user_error(run("diff", a, f"s3://{BUCKET}/team/nothing"), "no sweep at", "nothing")
    assert_user_error(run("diff", a, "s3://no-such-bucket/exp1"), "no-such-bucket")
