"""sweeps/strategies/plan.py in process: the trials a command line asks for, their order, compute, the dry run."""

from __future__ import annotations

import re

import pytest

from gptcore.errors import UserError
from sweeps.command.options import parse_options
from sweeps.experiment.files import EarlyStopping, SeedRange
from sweeps.strategies import choose_profile, describe, make_plan
from sweeps.strategies.plan import estimated_flops


def plan_of(*argv: str, gpus: int = 0):
    return make_plan(parse_options(list(argv)).plan_request(), gpus)


def test_a_grid_plan_has_the_files_runs_and_scheduler():
    plan = plan_of("exp1", "--profile", "smoke", "--order", "file")
    assert [t["name"] for t in plan.trials] == ["baseline", "large_lr", "small_lr", "small_batch", "large_model"]
    assert plan.num_samples == 5 and plan.order == "file" and plan.max_iters == 30 and plan.seeds == (1337,)
    assert plan.scheduler == EarlyStopping(grace_period=10, reduction_factor=2)
    assert (plan.cpus, plan.gpus) == (1.0, 0.0) and not plan.notes
    small = {t["name"]: t for t in plan.trials}["small_batch"]
    assert small["batch_size"] == 2 and small["eval_batch_size"] == 8  # the run's change; the scale's eval batch


def test_auto_profile_follows_the_gpus_and_says_so():
    assert choose_profile("auto", 0) == ("cpu", "profile: cpu (no GPU here; choose with --profile full|cpu|smoke)")
    assert choose_profile("auto", 2)[0] == "full"
    assert choose_profile("smoke", 2) == ("smoke", None)
    plan = plan_of("exp2", gpus=1)
    assert plan.profile == "full" and plan.gpus == 1.0 and plan.notes[0].startswith("profile: full (GPUs found")


def test_without_early_stopping_the_grid_starts_longest_first():
    plan = plan_of("exp1", "--profile", "cpu", "--scheduler", "none", "--seeds", "1")
    assert plan.scheduler is None and plan.order == "longest-first"
    # the 6/8/192 model first, the batch-3 run (a quarter of the tokens) last; equal costs keep the file's order
    assert [t["name"] for t in plan.trials] == ["large_model", "baseline", "large_lr", "small_lr", "small_batch"]
    assert [t["name"] for t in plan_of("exp1", "--profile", "cpu", "--scheduler", "none", "--order", "file",
                                       "--seeds", "1").trials] \
        == ["baseline", "large_lr", "small_lr", "small_batch", "large_model"]


def test_early_stopping_changes_no_order_it_is_longest_first_too():
    # the grid's scheduler decides on the values at its rungs, whatever reaches them first
    plan = plan_of("exp1", "--profile", "cpu")
    assert plan.scheduler is not None and plan.order == "longest-first"


def test_each_run_trains_once_per_seed():
    plan = plan_of("exp1", "--profile", "cpu")
    assert plan.seeds == (1337, 1338, 1339) and len(plan.trials) == 15  # the cpu profile's three seeds
    runs = {}
    for t in plan.trials:
        runs.setdefault(t["name"], []).append(t["seed"])
    assert all(sorted(s) == [1337, 1338, 1339] for s in runs.values()) and len(runs) == 5
    assert all(t["eval_seed"] == 1337 for t in plan.trials)  # one set of evaluation windows for the whole sweep
    assert plan_of("exp1", "--profile", "cpu", "--seeds", "5").seeds == (1337, 1338, 1339, 1340, 1341)
    text = describe(plan)
    assert "5 runs x 3 seeds (1337, 1338, 1339) = 15 trials" in text


def test_the_plan_says_whether_trials_get_actors_of_their_own(monkeypatch):
    monkeypatch.delenv("GPTSWEEP_REUSE_ACTORS", raising=False)
    assert "actors: one per trial, named on the dashboard" in describe(plan_of("exp1", "--profile", "cpu"))
    assert "actors: reused" in describe(plan_of("exp1", "--profile", "smoke"))
    monkeypatch.setenv("GPTSWEEP_REUSE_ACTORS", "1")
    assert "actors: reused" in describe(plan_of("exp1", "--profile", "cpu"))


def test_a_profile_may_set_its_own_seeds(tmp_path):
    from test_spaces import GOOD

    path = tmp_path / "x.yaml"
    path.write_text(GOOD.replace("  cpu: {config:", "  cpu: {seeds: 2, config:"))
    assert plan_of(str(path), "--profile", "cpu").seeds == (1337, 1338)
    assert plan_of(str(path), "--profile", "smoke").seeds == (1337,)
    path.write_text(GOOD.replace("  cpu: {config:", "  cpu: {seeds: {min: 2, max: 6}, config:"))
    assert plan_of(str(path), "--profile", "cpu").seed_range == SeedRange(2, 6)


def test_a_range_of_seeds_starts_with_the_least_and_states_the_least_and_the_most_compute():
    plan = plan_of("exp1", "--profile", "cpu")  # the cpu profile: 3..8
    assert plan.seed_range == SeedRange(3, 8) and len(plan.trials) == 15 and plan.num_samples == 40
    text = describe(plan)
    assert "seeds 3..8 per run: 3 first, then 2 more at a time (seeds at each look: 3, 5, 7, 8)" in text
    # least: the baseline's 3 seeds to 600, the 4 others stopped at the first rung (100); most: 40 x 600
    assert "least compute: 3,000 iterations" in text and "most compute: 40 trials, 24,000 iterations" in text
    exp4 = describe(plan_of("exp4", "--profile", "cpu", "--seeds", "3..5"))
    assert "least compute: 9,600 iterations" in exp4 and "most compute: 20 trials, 16,000 iterations" in exp4
    fixed = plan_of("exp1", "--profile", "cpu", "--seeds", "4")
    assert fixed.seed_range == SeedRange(4, 4) and fixed.num_samples == 20 and "least compute" not in describe(fixed)
    search = plan_of("exp5", "--profile", "cpu", "--search", "optuna", "--seeds", "3..8")
    assert search.confirm.seeds == (1337, 1338, 1339) and any("confirm stage trains with 3" in n for n in search.notes)


@pytest.mark.parametrize("value, says", [("1..4", "the least is 2 or more"), ("5..3", "must not be below"),
                                         ("3..x", "not a number of seeds"), ("0", "from 1 to 64"),
                                         ("3..99", "from 1 to 64")])
def test_a_bad_seeds_option_is_one_line(value, says):
    with pytest.raises(UserError, match=re.escape(says)) as e:
        plan_of("exp1", "--profile", "cpu", "--seeds", value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("value, says", [("{min: 3}", "a range of seeds is {min: N, max: M}"),
                                         ("{min: 3, max: 8, step: 2}", "a range of seeds is"),
                                         ("{min: 1, max: 3}", "the least is 2 or more"),
                                         ("{min: 3, max: two}", "seeds.max='two' must be a whole number")])
def test_a_bad_seeds_range_in_a_file_is_one_line(value, says, tmp_path):
    from test_spaces import GOOD

    path = tmp_path / "x.yaml"
    path.write_text(GOOD.replace("  cpu: {config:", f"  cpu: {{seeds: {value}, config:"))
    with pytest.raises(UserError, match=re.escape(says)):
        plan_of(str(path), "--profile", "cpu")


def test_asha_where_the_file_turns_it_off_is_said():
    plan = plan_of("exp2", "--profile", "cpu", "--scheduler", "asha")
    assert plan.scheduler == EarlyStopping(grace_period=300 // 8, reduction_factor=2)
    assert "runs without early stopping by design" in plan.notes[0]


def test_estimated_compute_grows_with_model_tokens_and_iterations():
    t = dict(n_layer=4, n_embd=128, block_size=64, batch_size=12, gradient_accumulation_steps=1, max_iters=600,
             eval_interval=100, eval_iters=20, eval_batch_size=0)
    base = estimated_flops(t)
    assert estimated_flops({**t, "n_layer": 6, "n_embd": 192}) > 2.5 * base
    assert estimated_flops({**t, "max_iters": 1200}) > 1.9 * base
    assert estimated_flops({**t, "gradient_accumulation_steps": 4}) > 3 * base
    assert estimated_flops({**t, "eval_iters": 200}) > base


def test_the_dry_run_lists_every_trial_and_the_total():
    text = describe(plan_of("exp1", "--profile", "smoke"))
    for name in ("baseline", "large_lr", "small_lr", "small_batch", "large_model"):
        assert f"\n{name} " in text
    assert "5 runs x 1 seed (1337) = 5 trials, 150 iterations" in text and "1 CPU, 0 GPU" in text
    assert "shared by every trial:" in text and "max_iters=30" in text  # what no trial changes, once


def test_the_dry_run_of_a_search_shows_its_space():
    text = describe(plan_of("exp5", "--search", "optuna", "--num-samples", "6", "--profile", "smoke",
                            "--gpus-per-trial", "0.25"))
    assert "6 Optuna trials (random sampler: 6 samples" in text and "shape: choice" in text
    # 6 searched + (the best of each of 3 sizes + tiny) confirmed
    assert "0.25 GPU" in text and "at most 300 iterations" in text
    assert "the confirm stage: the best configuration of each shape (3 values) and the reference run tiny" in text
    text = describe(plan_of("exp1", "--search", "optuna", "--profile", "smoke"))
    assert "the confirm stage: the best 3 configurations and the reference run baseline" in text


@pytest.mark.parametrize("argv", [["exp1", "--profile", "full"], ["exp3", "--profile", "cpu"]])
def test_every_planned_trial_is_a_full_config(argv):
    from gptcore.config import FIELD_TYPES

    for t in plan_of(*argv).trials:
        assert set(FIELD_TYPES) <= set(t) and t["name"]
