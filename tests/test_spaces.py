"""search_spaces/*.yaml: every shipped file loads, and bad files fail with the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gptcore.config import build_config
from gptcore.errors import UserError
from sweeps.spaces import PROFILES, experiment_names, load_experiment

GOOD = """\
description: a test experiment
base: train_shakespeare_char
grid:
  - {name: a}
  - {name: b, learning_rate: 2.0e-3}
optuna:
  num_samples: 3
  space:
    learning_rate: {loguniform: [1.0e-4, 1.0e-2]}
scheduler:
  asha: {grace_period: 10, reduction_factor: 2}
profiles:
  full: {base: {max_iters: 100}}
  cpu: {base: {max_iters: 50, n_layer: 2, n_head: 2, n_embd: 32}}
  smoke: {base: {max_iters: 20, n_layer: 1, n_head: 2, n_embd: 32, block_size: 32}}
"""


def write(tmp_path: Path, text: str, name: str = "expt.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_five_experiments_are_shipped():
    assert experiment_names() == ["exp1", "exp2", "exp3", "exp4", "exp5"]


@pytest.mark.parametrize("name", experiment_names())
def test_every_shipped_file_loads_and_every_trial_is_a_valid_config(name):
    exp = load_experiment(name)
    assert exp.description and exp.grid
    for profile in PROFILES:
        runs = exp.grid_runs(profile)
        assert [r["name"] for r in runs] == [r["name"] for r in exp.grid]
        for r in runs:
            build_config({k: v for k, v in r.items() if k != "name"})


def test_the_full_profile_is_the_chapters_commands():
    # max_iters of each experiment, and the runs' overrides, as the chapter writes them
    want = {"exp1": 1000, "exp2": 500, "exp3": 5000, "exp4": 2000, "exp5": 3000}
    for name, iters in want.items():
        assert all(r["max_iters"] == iters for r in load_experiment(name).grid_runs("full"))
    exp1 = {r["name"]: r for r in load_experiment("exp1").grid_runs("full")}
    assert exp1["large_lr"]["learning_rate"] == 5e-3 and exp1["small_lr"]["learning_rate"] == 1e-4
    assert exp1["small_batch"]["batch_size"] == 16
    assert (exp1["large_model"]["n_layer"], exp1["large_model"]["n_head"], exp1["large_model"]["n_embd"]) == (8, 8, 512)
    exp2 = {r["name"]: r for r in load_experiment("exp2").grid_runs("full")}
    assert (exp2["large_batch"]["batch_size"], exp2["large_batch"]["gradient_accumulation_steps"]) == (64, 1)
    assert (exp2["grad_accum"]["batch_size"], exp2["grad_accum"]["gradient_accumulation_steps"]) == (16, 4)
    exp3 = {r["name"]: (r["dropout"], r["weight_decay"]) for r in load_experiment("exp3").grid_runs("full")}
    assert exp3 == {"overfit": (0.0, 0.0), "dropout": (0.2, 0.0), "weight_decay": (0.0, 0.1), "both": (0.2, 0.1)}
    exp5 = [(r["n_layer"], r["n_head"], r["n_embd"]) for r in load_experiment("exp5").grid_runs("full")]
    assert exp5 == [(2, 2, 128), (4, 4, 256), (6, 6, 384), (8, 8, 512)]


def test_early_stopping_is_off_where_complete_curves_are_needed():
    assert load_experiment("exp2").asha is None and load_experiment("exp4").asha is None
    assert load_experiment("exp1").asha is not None and load_experiment("exp5").asha is not None


def test_a_good_file_loads_and_profiles_merge(tmp_path):
    exp = load_experiment(write(tmp_path, GOOD))
    runs = exp.grid_runs("cpu")
    assert runs[1]["learning_rate"] == 2e-3 and runs[1]["max_iters"] == 50 and runs[0]["n_layer"] == 2
    assert exp.scheduler("smoke") == {"grace_period": 10, "reduction_factor": 2}


@pytest.mark.parametrize("edit, expect", [
    (("  - {name: a}\n", "  - {name: a, learning_rat: 1.0e-3}\n"), "learning_rate"),  # a typo suggests the key
    (("description:", "descripton:"), "description"),
    (("scheduler:\n  asha:", "scheduler:\n  hyperband:"), "hyperband"),
    (("{loguniform:", "{logarithmic:"), "logarithmic"),
    (("smoke: {base:", "smokey: {base:"), "smokey"),
    (("grace_period: 10", "grace_period: -1"), "grace_period"),
    (("{name: b, learning_rate: 2.0e-3}", "{name: b, learning_rate: fast}"), "learning_rate"),
    (("n_head: 2, n_embd: 32}}\n  smoke", "n_head: 3, n_embd: 32}}\n  smoke"), "n_head"),  # 32 % 3 != 0
])
def test_bad_files_name_the_file_and_key(tmp_path, edit, expect):
    old, new = edit
    text = GOOD.replace(old, new)
    assert text != GOOD
    path = write(tmp_path, text)
    with pytest.raises(UserError) as e:
        load_experiment(path)
    msg = str(e.value)
    assert str(path) in msg and expect in msg and "\n" not in msg


def test_broken_yaml_names_the_line(tmp_path):
    path = write(tmp_path, GOOD.replace("  - {name: a}\n", "  - {name: a\n"))
    with pytest.raises(UserError, match=r"broken YAML"):
        load_experiment(path)


def test_unknown_experiment_lists_the_valid_ones():
    with pytest.raises(UserError, match="exp1, exp2, exp3, exp4, exp5"):
        load_experiment("exp9")


def test_shape_sets_three_fields_and_is_checked(tmp_path):
    exp = load_experiment(write(tmp_path, GOOD.replace("{name: b, learning_rate: 2.0e-3}", '{name: b, shape: "2/4/64"}')))
    b = exp.grid_runs("full")[1]
    assert (b["n_layer"], b["n_head"], b["n_embd"]) == (2, 4, 64)
    with pytest.raises(UserError, match="shape"):
        load_experiment(write(tmp_path, GOOD.replace("{name: b, learning_rate: 2.0e-3}", '{name: b, shape: "big"}')))


def test_duplicate_run_names_are_refused(tmp_path):
    with pytest.raises(UserError, match="unique"):
        load_experiment(write(tmp_path, GOOD.replace("{name: b,", "{name: a,")))
