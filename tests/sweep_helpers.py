"""Helpers shared by the end-to-end sweep tests (test_sweeps.py, test_cluster_e2e.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INPUT = REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
RUN = [sys.executable, str(REPO / "sweeps" / "run.py")]
needs_data = pytest.mark.skipif(not INPUT.is_file(), reason=f"Tiny Shakespeare not found at {INPUT}")


def results_of(trial_dir: Path) -> list[dict]:
    """A trial's result rows (Ray's result.json), oldest first."""
    path = trial_dir / "result.json"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def trial_dirs(exp_dir: Path) -> dict[str, Path]:
    """Every trial folder of an experiment, keyed `<run name>:<folder>`."""
    if not exp_dir.is_dir():
        return {}
    return {json.loads((d / "params.json").read_text())["name"] + ":" + d.name: d
            for d in exp_dir.iterdir() if (d / "params.json").is_file()}


def by_name(exp_dir: Path) -> dict[str, Path]:
    """Trial folders keyed by run name (for grids, where names are unique)."""
    return {k.split(":")[0]: v for k, v in trial_dirs(exp_dir).items()}


def write_experiment(tmp: Path, name: str, runs: str, max_iters: int, eval_interval: int) -> Path:
    """A small experiment file with slower trials than the smoke profile, for the signal tests."""
    base = (f"{{max_iters: {max_iters}, n_layer: 2, n_head: 2, n_embd: 64, block_size: 64, batch_size: 16, "
            f"eval_batch_size: 8, dropout: 0.0, eval_interval: {eval_interval}, eval_iters: 2, log_interval: 50, "
            f"warmup_iters: 10, lr_decay_iters: {max_iters}, compile: false}}")
    path = tmp / f"{name}.yaml"
    path.write_text(f"""description: a test experiment
base: train_shakespeare_char
grid:
{runs}
scheduler:
  none: complete curves
profiles:
  full: {{base: {base}}}
  cpu: {{base: {base}}}
  smoke: {{base: {base}}}
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
