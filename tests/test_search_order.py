"""A search is a function of its command: the same trials, early-stopping decisions and verdicts at
any concurrency (sweeps/strategies/study.py, asha.py), end to end with real Ray, Optuna's TPE and
training; and the decision log that says so, decision by decision (sweeps/results/decisions.py)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sweep_helpers import run

from sweeps.results.decisions import decisions, environments, read

# TPE's first 10 trials are its random start-up: 13 trials leave 3 chosen from what it knew
N = 13
COMMAND = ("exp1", "--profile", "smoke", "--search", "optuna", "--num-samples", str(N), "--sampler", "tpe",
           "--seed", "5", "--confirm", "0")


@pytest.fixture(scope="module")
def two_searches(tmp_path_factory, ray_address):
    """The same search at --max-concurrent 1 and 2."""
    out = []
    for c in ("1", "2"):
        tmp = tmp_path_factory.mktemp(f"search-c{c}")
        r = run(tmp, *COMMAND, "--max-concurrent", c, address=ray_address, timeout=600)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        out.append(tmp / "results" / "exp1")
    return out


def _trials(exp_dir):
    t = pd.read_csv(exp_dir / "trials.csv")
    keep = ["name", "status", "final_iter", "final_val_loss", "final_train_loss", "learning_rate", "batch_size",
            "n_layer", "n_embd"]
    return t[[c for c in keep if c in t]].sort_values("name").reset_index(drop=True)


def test_the_same_trials_stops_and_losses_at_concurrency_1_and_2(two_searches):
    a, b = (_trials(d) for d in two_searches)
    assert len(a) == N and list(a["name"]) == [f"t{i:03d}" for i in range(N)]
    pd.testing.assert_frame_equal(a, b, check_exact=True)  # configurations, statuses, losses: to the last digit
    assert (a["status"] == "stopped early").any(), "no trial was stopped: the test shows nothing of the rungs"
    for d in two_searches:  # the study's own files, for --resume and for Optuna's tools
        assert (d / "optuna.journal").is_file() and list(d.glob("searcher-state-*.pkl"))


def test_the_same_verdicts(two_searches):
    a, b = (json.loads((d / "verdicts.json").read_text()) for d in two_searches)
    assert [(v["expectation"], v["outcome"], v["effect"], v["interval"]) for v in a] == \
           [(v["expectation"], v["outcome"], v["effect"], v["interval"]) for v in b]


def test_the_decision_log_holds_every_decision_in_the_designs_order(two_searches):
    logs = [read(d / "decisions.jsonl") for d in two_searches]
    da, db = (decisions(x) for x in logs)
    strip = [{k: v for k, v in r.items()} for r in da]
    assert strip == [{k: v for k, v in r.items()} for r in db]
    kinds = [r["kind"] for r in da]
    assert kinds.count("ask") == N and kinds.count("end") == N and "rung" in kinds
    asks = [r for r in da if r["kind"] == "ask"]
    # trial i was sampled knowing trials 0 .. i - 4 and no others (--search-batch 4)
    assert [r["knew"] for r in asks] == [max(0, i - 3) for i in range(N)]
    stops = [r for r in da if r["kind"] == "rung" and r["decision"] == "stop"]
    assert all(r["value"] > r["cutoff"] and r["among"] for r in stops)
    env = environments(logs[0])[0]
    assert {"code", "torch", "ray", "optuna", "cpu"} <= set(env)


def test_the_report_names_the_device_and_dtype(two_searches):
    text = (two_searches[0] / "report.md").read_text()
    assert "Ran on cpu in " in text and "torch thread(s) a trial" in text
