"""search_spaces/*.yaml: every shipped file loads, and bad files fail with the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gptcore.config import build_config
from gptcore.errors import UserError
from sweeps.experiment.files import (
    PROFILES,
    PROFILES_FILE,
    EarlyStopping,
    VerdictSpec,
    experiment_names,
    load_experiment,
)

GOOD = """\
description: a test experiment
base: train_shakespeare_char
reference: a
grid:
  - {name: a}
  - {name: b, learning_rate: 2.0e-3}
verdicts:
  - {check: lower_loss, run: b}
optuna:
  num_samples: 3
  space:
    learning_rate: {loguniform: [1.0e-4, 1.0e-2]}
early_stopping: {grace_period: 10, reduction_factor: 2}
profiles:
  full: {config: {max_iters: 100}}
  cpu: {config: {max_iters: 50, n_layer: 2, n_head: 2, n_embd: 32}}
  smoke: {config: {max_iters: 20, n_layer: 1, n_head: 2, n_embd: 32, block_size: 32}, early_stopping: {grace_period: 5}}
"""


def assert_refused(tmp_path: Path, edit: tuple[str, str], expect: str) -> None:
    """GOOD with one edit fails to load with one line naming the file and `expect`."""
    old, new = edit
    text = GOOD.replace(old, new)
    assert text != GOOD
    path = write(tmp_path, text)
    with pytest.raises(UserError) as e:
        load_experiment(path)
    msg = str(e.value)
    assert str(path) in msg and expect in msg and "\n" not in msg, msg


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
    for name in ("exp2", "exp4", "exp5"):
        exp = load_experiment(name)
        assert all(exp.early_stopping(p) is None for p in PROFILES) and exp.no_early_stopping_reason
    assert load_experiment("exp1").early_stopping("cpu") is not None


def test_a_good_file_loads_and_profiles_merge(tmp_path):
    exp = load_experiment(write(tmp_path, GOOD))
    runs = exp.grid_runs("cpu")
    assert runs[1]["learning_rate"] == 2e-3 and runs[1]["max_iters"] == 50 and runs[0]["n_layer"] == 2
    assert exp.early_stopping("smoke") == EarlyStopping(grace_period=5, reduction_factor=2)
    assert exp.early_stopping("cpu") == EarlyStopping(grace_period=10, reduction_factor=2)
    # the cpu scale of profiles.yaml is under the profile: its context length and eval batch
    assert runs[0]["block_size"] == 64 and runs[0]["eval_batch_size"] == 12
    assert exp.verdicts == [VerdictSpec("lower_loss", "b", "a")]  # `against` defaults to the reference


@pytest.mark.parametrize("edit, expect", [
    (("  - {name: a}\n", "  - {name: a, learning_rat: 1.0e-3}\n"), "learning_rate"),  # a typo suggests the key
    (("description:", "descripton:"), "description"),
    (("early_stopping: {grace_period: 10,", "early_stopping: {grace: 10,"), "grace"),
    (("{loguniform:", "{logarithmic:"), "logarithmic"),
    (("  smoke: {config:", "  smokey: {config:"), "smokey"),
    (("grace_period: 10,", "grace_period: -1,"), "grace_period"),
    (("{name: b, learning_rate: 2.0e-3}", "{name: b, learning_rate: fast}"), "learning_rate"),
    (("n_head: 2, n_embd: 32}}\n  smoke", "n_head: 3, n_embd: 32}}\n  smoke"), "n_head"),  # 32 % 3 != 0
    # the verdicts name the runs of the grid, and checks of the registry
    (("{check: lower_loss, run: b}", "{check: lower_loss, run: c}"), "'c' is not a run of this experiment"),
    (("{check: lower_loss, run: b}", "{check: lower_los, run: b}"), "unknown check 'lower_los'"),
    (("{check: lower_loss, run: b}", "{check: lower_loss}"), "lower_loss needs `run: RUN`"),
    (("reference: a", "reference: z"), "reference 'z' is not a run of the grid"),
    (("early_stopping: {grace_period: 10, reduction_factor: 2}", "early_stopping: {none: ''}"), "with the reason"),
])
def test_bad_files_name_the_file_and_key(tmp_path, edit, expect):
    assert_refused(tmp_path, edit, expect)


def test_broken_yaml_names_the_line(tmp_path):
    path = write(tmp_path, GOOD.replace("  - {name: a}\n", "  - {name: a\n"))
    with pytest.raises(UserError, match=r"broken YAML"):
        load_experiment(path)


def test_unknown_experiment_lists_the_valid_ones():
    with pytest.raises(UserError, match="exp1, exp2, exp3, exp4, exp5"):
        load_experiment("exp9")


def test_shape_sets_three_fields_and_is_checked(tmp_path):
    text = GOOD.replace("{name: b, learning_rate: 2.0e-3}", '{name: b, shape: "2/4/64"}')
    exp = load_experiment(write(tmp_path, text))
    b = exp.grid_runs("full")[1]
    assert (b["n_layer"], b["n_head"], b["n_embd"]) == (2, 4, 64)
    with pytest.raises(UserError, match="shape"):
        load_experiment(write(tmp_path, GOOD.replace("{name: b, learning_rate: 2.0e-3}", '{name: b, shape: "big"}')))


def test_duplicate_run_names_are_refused(tmp_path):
    with pytest.raises(UserError, match="unique"):
        load_experiment(write(tmp_path, GOOD.replace("{name: b,", "{name: a,")))


def test_renaming_a_run_without_its_verdict_is_a_load_error(tmp_path):
    # run names live in one place, the file: a verdict left naming an old run does not pass silently
    text = (Path(__file__).resolve().parents[1] / "search_spaces" / "exp1.yaml").read_text()
    path = write(tmp_path, text.replace("{name: large_lr,", "{name: big_lr,"), "exp1.yaml")
    with pytest.raises(UserError, match="'large_lr' is not a run of this experiment: choose one of baseline, big_lr"):
        load_experiment(path)


@pytest.mark.parametrize("name", experiment_names())
def test_shipped_profiles_restate_nothing(name):
    # a profile's config holds what its question needs, not values the base file or the scale already set
    exp = load_experiment(name)
    scales = yaml.safe_load(PROFILES_FILE.read_text())
    doc = yaml.safe_load(exp.path.read_text())
    for profile in PROFILES:
        under = {**exp.base_values, **scales[profile]["config"]}
        own = (doc["profiles"][profile] or {}).get("config", {})
        restated = {k: v for k, v in own.items() if k in under and under[k] == v}
        assert not restated, f"{name} {profile} restates {restated}"


def test_every_reference_and_verdict_run_is_in_the_grid():
    for name in experiment_names():
        exp = load_experiment(name)
        assert exp.reference in exp.run_names
        assert all(v.run in exp.run_names + [None] and v.against in exp.run_names + [None] for v in exp.verdicts)


@pytest.mark.parametrize("edit, expect", [
    (("grid:\n  - {name: a}\n  - {name: b, learning_rate: 2.0e-3}", "grid: {a: 1}"), "grid must be a non-empty list"),
    (("num_samples: 3", "num_samples: many"), "num_samples='many' must be a positive whole number"),
    (("{loguniform: [1.0e-4, 1.0e-2]}", "{choice: []}"), "choice needs a list"),
    (("{loguniform: [1.0e-4, 1.0e-2]}", "{loguniform: [0, 1.0e-2]}"), "positive low bound"),
    (("{loguniform: [1.0e-4, 1.0e-2]}", "{loguniform: [1.0e-2, 1.0e-4]}"), "must be below high"),
    (("base: train_shakespeare_char", "base: train_shakespeare_chr"), "base: config 'train_shakespeare_chr'"),
    (("{name: b, learning_rate: 2.0e-3}", "{name: a, learning_rate: 2.0e-3}"), "a repeats"),
    (("verdicts:\n  - {check: lower_loss, run: b}", "verdicts: {check: lower_loss, run: b}"),
     "verdicts: expected a list"),
    (("grace_period: 10,", "grace_period: ten,"), "grace_period='ten' must be a positive whole number"),
    # the confirm stage per value needs a searched choice
    (("  num_samples: 3\n", "  num_samples: 3\n  confirm_per: learning_rate\n"),
     "optuna.confirm_per='learning_rate' must name a `choice` parameter"),
])
def test_malformed_files_are_one_line(tmp_path, edit, expect):
    assert_refused(tmp_path, edit, expect)


# what is not a YAML text at all: each one line naming the path and the fix, never a traceback
NOT_TEXT = {
    "latin-1": (GOOD.replace("a test experiment", "une expérience").encode("latin-1"), "is not UTF-8 text"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "looks binary"),
    "utf-16": (GOOD.encode("utf-16"), "is UTF-16 text, not UTF-8"),
}


@pytest.mark.parametrize("kind", sorted(NOT_TEXT))
def test_a_file_that_is_not_utf8_text_is_one_line(tmp_path, kind):
    data, expect = NOT_TEXT[kind]
    path = tmp_path / "expt.yaml"
    path.write_bytes(data)
    with pytest.raises(UserError) as e:
        load_experiment(path)
    msg = str(e.value)
    assert str(path) in msg and expect in msg and "\n" not in msg, msg


@pytest.mark.parametrize("name", ["expt.yaml", "sub/expt"])
def test_a_folder_is_not_an_experiment_file(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).mkdir(parents=True)
    with pytest.raises(UserError, match=r"is a folder, not an experiment file"):
        load_experiment(name)


def test_a_utf8_byte_order_mark_is_fine(tmp_path):
    path = tmp_path / "expt.yaml"
    path.write_bytes(GOOD.encode("utf-8-sig"))
    assert load_experiment(path).description == "a test experiment"
