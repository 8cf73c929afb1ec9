"""Helpers shared by the end-to-end sweep tests (test_sweeps.py, test_cluster_e2e.py).

Trial folders are read with the analysis loader (`sweeps.analysis.load`), the project's one
reader of a sweep's folder; it tolerates the half-written last line of a file being written.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from common import RUN  # noqa: F401  (re-exported for the e2e tests)

from sweeps.results.load import read_json, result_rows, trial_dirs

results_of = result_rows


def env_for(tmp: Path) -> dict[str, str]:
    """The environment of a sweep command: its own dataset cache, no token auth, no cluster to join."""
    env = dict(os.environ)
    env.update(GPTCORE_CACHE=str(tmp / "cache"), RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)
    return env


def sweep_args(tmp: Path, *args: str, address: str | None = None) -> list[str]:
    """The sweep command with its own results folder (Tiny Shakespeare ships with gptcore): on the Ray
    instance at `address` (the session's shared one, conftest's `ray_address`), else on a local Ray
    instance of its own with 2 CPUs, started and ended by the command."""
    where = ["--address", address] if address else ["--num-cpus", "2"]
    return RUN + list(args) + ["--storage", str(tmp / "results"), *where]


def run(tmp: Path, *args: str, timeout: float = 300, address: str | None = None) -> subprocess.CompletedProcess:
    """Run the sweep command to its end (on the Ray instance at `address`, see `sweep_args`)."""
    return subprocess.run(sweep_args(tmp, *args, address=address), env=env_for(tmp), capture_output=True, text=True,
                          timeout=timeout, cwd=tmp)


def by_name(exp_dir: Path) -> dict[str, Path]:
    """Trial folders keyed by run name (for grids, where names are unique)."""
    if not exp_dir.is_dir():
        return {}
    return {(read_json(d / "params.json") or {}).get("name", d.name): d for d in trial_dirs(exp_dir)}


def trial_pid(trial_dir: Path) -> int:
    """The process a trial runs in (its current attempt), from the config.json the trial writes at its start."""
    return int((read_json(trial_dir / "config.json") or {})["pid"])


def all_trials(exp_dir: Path) -> list[Path]:
    """Every trial folder of an experiment (none when it does not exist yet)."""
    return trial_dirs(exp_dir) if exp_dir.is_dir() else []


def write_experiment(tmp: Path, name: str, runs: str, max_iters: int, eval_interval: int) -> Path:
    """A small experiment file with slower trials than the smoke profile, for the signal tests."""
    # the same in every profile (the tests run with the profile this machine gets)
    config = (f"{{max_iters: {max_iters}, n_layer: 2, n_head: 2, n_embd: 64, block_size: 64, batch_size: 16, "
              f"eval_batch_size: 8, dropout: 0.0, eval_interval: {eval_interval}, eval_iters: 2, log_interval: 50, "
              f"warmup_iters: 10, lr_decay_iters: {max_iters}}}")
    path = tmp / f"{name}.yaml"
    path.write_text(f"""description: a test experiment
base: train_shakespeare_char
grid:
{runs}
early_stopping:
  none: complete curves
profiles:
  full: {{seeds: 1, config: {config}}}
  cpu: {{seeds: 1, config: {config}}}
  smoke: {{seeds: 1, config: {config}}}
""")
    return path


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    """Poll `predicate` until it returns something true; fail if `proc` ends first or time runs out."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"the sweep ended (rc {proc.returncode}) before {what}:\n{out[-3000:]}")
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
