"""sweeps/run.py as a user runs it, without training: the dry run, --list and every bad option.

Each test runs the command in a subprocess (`python sweeps/run.py ...`) and reads its output, but
for the options themselves, read in process with `parse_options`.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from common import REPO
from sweep_helpers import RUN, env_for, run

from gptcore.errors import UserError
from sweeps.command.options import SweepOptions, parse_options


def test_dry_run_lists_every_trial_and_the_total_without_starting_ray(tmp_path):
    r = run(tmp_path, "exp1", "--profile", "smoke", "--dry-run")
    assert r.returncode == 0, r.stderr
    for name in ("baseline", "large_lr", "small_lr", "small_batch", "large_model"):
        assert name in r.stdout
    assert "5 runs x 1 seed (1337) = 5 trials, 150 iterations" in r.stdout
    assert "1 CPU, 0 GPU" in r.stdout
    assert "ray dashboard:" not in r.stdout.lower() and "127.0.0.1" not in r.stdout  # no Ray started
    assert not (tmp_path / "results").exists()


def test_dry_run_of_an_optuna_search_shows_the_space(tmp_path):
    r = run(tmp_path, "exp5", "--search", "optuna", "--num-samples", "6", "--profile", "smoke",
            "--gpus-per-trial", "0.25", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "6 Optuna trials (random sampler" in r.stdout and "shape: choice" in r.stdout
    assert "0.25 GPU" in r.stdout and "at most 300 iterations" in r.stdout


def _table_names(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("trial "))
    return [line.split()[0] for line in lines[start + 1:] if line.strip() and "trials," not in line]


def test_without_early_stopping_the_grid_starts_longest_first(tmp_path):
    r = run(tmp_path, "exp1", "--profile", "cpu", "--scheduler", "none", "--seeds", "1", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "start order: longest first" in r.stdout
    # the 6/8/192 model first, the batch-3 run (a quarter of the tokens) last; equal costs keep the file's order
    assert _table_names(r.stdout) == ["large_model", "baseline", "large_lr", "small_lr", "small_batch"]


@pytest.mark.parametrize("args", [["--scheduler", "asha"], ["--scheduler", "none"]])
def test_when_asked_the_grid_keeps_the_files_order(tmp_path, args):
    r = run(tmp_path, "exp1", "--profile", "cpu", "--dry-run", "--order", "file", "--seeds", "2", *args)
    assert r.returncode == 0, r.stderr
    assert "start order: the file's" in r.stdout
    assert _table_names(r.stdout) == [n for n in ["baseline", "large_lr", "small_lr", "small_batch", "large_model"]
                                      for _ in range(2)]  # each run's seeds together


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
    ("description: x\nbase: train_shakespeare_char\nprofiles: {}\ngrid: [{name: a, n_layers: 2}]\n",
     "did you mean n_layer"),
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


# what the command imports: --list, --help and --dry-run start neither Ray nor Optuna (seconds, not tens)
_IMPORTS = """
import sys
from sweeps.command.sweep import cli
try:
    rc = cli(sys.argv[1:])
except SystemExit as e:  # --help
    rc = e.code
print("rc", rc, "loaded", sorted(m for m in ("ray", "optuna") if m in sys.modules))
"""


@pytest.mark.parametrize("args", [["--list"], ["--help"], ["exp1", "--profile", "smoke", "--dry-run"],
                                  ["exp1", "--search", "optuna", "--profile", "smoke", "--dry-run"]])
def test_list_help_and_dry_runs_import_neither_ray_nor_optuna(tmp_path, args):
    r = subprocess.run([sys.executable, "-c", _IMPORTS, *args], capture_output=True, text=True,
                       env=env_for(tmp_path), cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "rc 0 loaded []"


def test_options_are_read_once_into_a_frozen_value_with_the_commands_defaults():
    opts = parse_options(["exp1"])
    assert opts == SweepOptions(exp="exp1")  # every default is SweepOptions' own
    assert (opts.search, opts.sampler, opts.confirm, opts.scheduler, opts.profile, opts.order) \
        == ("grid", "auto", 3, "auto", "auto", "auto")
    assert (opts.cpus_per_trial, opts.gpus_per_trial, opts.storage, opts.max_failures, opts.dashboard_host,
            opts.keep_checkpoints, opts.seed, opts.notes) == (1.0, None, "results", 3, "127.0.0.1", "last", 0, ())
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.exp = "exp2"
    assert parse_options(["--list"]).list_experiments


def test_a_gpu_fraction_near_one_over_k_is_rounded_and_said():
    opts = parse_options(["exp1", "--gpus-per-trial", "0.333"])
    assert opts.gpus_per_trial == 1 / 3
    assert opts.notes == ("--gpus-per-trial 0.333 rounded to 1/3 = 0.333333: 3 trials a GPU",)
    assert parse_options(["exp1", "--gpus-per-trial", "0.25"]).notes == ()
    with pytest.raises(UserError, match="not 1/k of a GPU"):
        parse_options(["exp1", "--gpus-per-trial", "0.3"])


# --- bad input at the edge: one line, exit 2, before the plan and before Ray -----------------

def _refused(r: subprocess.CompletedProcess, *needles: str) -> None:
    from conftest import assert_user_error

    assert_user_error(r, *needles)
    assert "trial " not in r.stdout  # the plan's table was not printed


@pytest.mark.parametrize("address, expect", [
    (":::", "--address ':::' is not a Ray address"),
    ("host:port:extra", "--address 'host:port:extra' is not a Ray address"),
    ("127.0.0.1:notaport", "--address '127.0.0.1:notaport' is not a Ray address"),
    ("head", "--address 'head' is not a Ray address"),
    ("10.0.0.1:99999", "port 99999 is out of range"),
    ("http://127.0.0.1:8265", "is a web address (the dashboard's"),
])
def test_an_address_that_does_not_parse_is_one_line(tmp_path, address, expect):
    r = subprocess.run(RUN + ["exp1", "--address", address, "--dry-run"], capture_output=True, text=True,
                       env=env_for(tmp_path), timeout=60)
    _refused(r, expect, "host:port")


def test_a_ray_address_variable_that_does_not_parse_is_named(tmp_path):
    env = {**env_for(tmp_path), "RAY_ADDRESS": "10.0.0.1:6379:1"}
    r = subprocess.run(RUN + ["exp1", "--dry-run"], capture_output=True, text=True, env=env, timeout=60)
    _refused(r, "$RAY_ADDRESS '10.0.0.1:6379:1' is not a Ray address", "unset RAY_ADDRESS")


@pytest.mark.parametrize("make, expect", [
    (lambda p: None, "no such file"),
    (lambda p: p.mkdir(), "is a folder, not a text file"),
])
def test_a_data_source_that_is_no_file_is_refused_before_the_plan_even_in_a_dry_run(tmp_path, make, expect):
    source = tmp_path / "input.txt"
    make(source)
    r = subprocess.run(RUN + ["exp1", "--profile", "smoke", "--data-source", str(source), "--dry-run"],
                       capture_output=True, text=True, env=env_for(tmp_path), timeout=60)
    _refused(r, f"--data-source {source}", expect)
    assert r.stdout == ""


def test_a_damaged_data_source_is_one_line_before_the_plan(tmp_path):
    source = tmp_path / "input.txt"
    source.write_bytes(b"\x00\x01\x02 not text")
    r = run(tmp_path, "exp1", "--profile", "smoke", "--data-source", str(source), timeout=120)
    _refused(r, str(source), "looks binary")
    assert r.stdout == "" and not (tmp_path / "results").exists()


@pytest.mark.parametrize("kind", ["latin-1", "binary", "folder"])
def test_an_experiment_file_that_is_no_text_is_one_line(tmp_path, kind):
    path = tmp_path / "bad.yaml"
    if kind == "folder":
        path.mkdir()
    else:
        path.write_bytes("description: une expérience\n".encode("latin-1") if kind == "latin-1"
                         else bytes(range(256)))
    r = subprocess.run(RUN + [str(path), "--dry-run"], capture_output=True, text=True, env=env_for(tmp_path),
                       timeout=60)
    _refused(r, str(path), {"latin-1": "is not UTF-8 text", "binary": "looks binary",
                            "folder": "is a folder, not an experiment file"}[kind])


def test_a_remote_storage_that_cannot_be_opened_is_one_line(tmp_path):
    from sweeps.command.sweep import existing_sweep

    opts = parse_options(["exp1", "--storage", "nosuchscheme://bucket/prefix"])
    with pytest.raises(UserError) as e:
        existing_sweep("nosuchscheme://bucket/prefix/exp1", opts)
    msg = str(e.value)
    assert msg.startswith("--storage nosuchscheme://bucket/prefix: cannot open it (") and "\n" not in msg, msg
