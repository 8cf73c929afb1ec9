"""sweeps/analysis/search.py: a search's trials ranked at one budget, its answers, importance and the confirm stage."""

from __future__ import annotations

import math

import numpy as np
from results_factory import by_expectation, curve, judge, make_run, make_trial

from sweeps.command.analyze import analyze
from sweeps.results.load import load_sweep
from sweeps.verdicts.search import confirm_table, importance, judging_step, ranked

BATCHES = (3, 6, 12)


def make_search(exp, n: int = 18, stopped_every: int = 3):
    """n search trials over learning rate and batch: the loss is a parabola in log10(lr), best at 1e-3;
    every `stopped_every`-th trial ends at step 500 as if early stopping had cut it."""
    rng = np.random.default_rng(0)
    for i in range(n):
        lr = float(10 ** rng.uniform(-4, -2))
        batch = BATCHES[i % 3]
        final = 1.5 + 0.3 * (math.log10(lr) + 3) ** 2 - 0.02 * math.log2(batch) + rng.normal(0, 0.005)
        evals = curve(final)
        stopped = i % stopped_every == 1
        make_trial(exp, f"t{i:03d}", evals[:3] if stopped else evals, max_iters=1000, stage="search",
                   trial_id=f"ab{i:03d}_{i:05d}", overrides={"learning_rate": lr, "batch_size": batch})


def test_trials_are_ranked_by_budget_then_loss_and_judged_at_one_step(tmp_path):
    exp = tmp_path / "exp1"
    make_search(exp)
    res = load_sweep(exp)
    order = ranked(res)
    assert (order["final_iter"].iloc[:12] == 1000).all() and (order["final_iter"].iloc[12:] == 500).all()
    assert list(order["final_val_loss"].iloc[:12]) == sorted(order["final_val_loss"].iloc[:12])
    assert judging_step(res, order) == 1000  # 12 trials reached the full budget


def test_the_search_answers_the_question(tmp_path):
    exp = tmp_path / "exp1"
    make_search(exp)
    vs = judge("exp1", exp)
    lr = by_expectation(vs, "learning rate has a best value")
    assert lr.outcome == "holds" and lr.effect > 0 and "bottoms out at 0.001" in lr.observed, lr.observed
    batch = by_expectation(vs, "more batch size")
    assert batch.outcome == "holds" and batch.effect < 0 and "per doubling" in batch.observed
    imp, step = importance(load_sweep(exp))
    assert step == 1000 and max(imp, key=imp.get) == "learning_rate"


def test_the_report_of_a_search_lists_the_best_and_stays_small(tmp_path):
    exp = tmp_path / "exp1"
    make_search(exp, n=40)
    for name, level in (("confirm_t007", 1.5), ("confirm_baseline", 1.7)):
        make_run(exp, name, curve(level), stage="confirm")
    text = analyze(exp).read_text()
    assert "## Search" in text and "Parameter importance" in text and "### Searched against confirmed" in text
    table = text.split("## Search")[1].split("\n\n")[2]
    assert len([ln for ln in table.splitlines() if ln.startswith("| t0")]) == 20  # the best 20 of 40
    assert len(list((exp / "plots").glob("*.png"))) <= 12
    rows = {c["name"]: c for c in confirm_table(load_sweep(exp))}
    assert rows["confirm_t007"]["confirmed"].n == 3 and math.isfinite(rows["confirm_t007"]["curse"])
    v = by_expectation(judge("exp1", exp), "beats the reference baseline")
    assert v.outcome == "holds" and v.n_seeds == {"confirm_t007": 3, "confirm_baseline": 3}
