"""Shared fixtures.

gptcore (the trainer): the Tiny Shakespeare text from ../shared beside the repository, a
session-wide prepared `shakespeare_char` dataset, a factory of tiny CPU configs, and the
environment a `python -m gptcore` subprocess runs in. Nothing here downloads: every test gets
an empty GPTCORE_CACHE and an unreachable download URL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHAKESPEARE_INPUT = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare" / "input.txt"
UNREACHABLE_URL = "http://127.0.0.1:9/input.txt"  # the discard port: the connection is refused at once

# a model and a run small enough for a shared 2-core machine (~ms per step)
TINY = dict(
    dataset="shakespeare_char", n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4,
    gradient_accumulation_steps=1, dropout=0.0, bias=False, max_iters=4, eval_interval=2, eval_iters=2,
    log_interval=1, learning_rate=1e-3, warmup_iters=2, lr_decay_iters=4, min_lr=1e-4, device="cpu",
    dtype="float32", compile=False, always_save_checkpoint=False,
)


def cli_args(values: dict) -> list[str]:
    """`--key=value` arguments for `python -m gptcore train/check`."""
    return [f"--{k}={v}" for k, v in values.items()]


# ---------------------------------------------------------------------------------------
# gptcore


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """One intra-op thread: the models here are tiny, and on a busy shared machine torch's
    threads spin-wait for each other (runs were 10-40x slower with two)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _no_downloads(tmp_path_factory, monkeypatch):
    """Every test: an empty source-text cache and a download URL that fails at once."""
    monkeypatch.setenv("GPTCORE_CACHE", str(tmp_path_factory.mktemp("gptcore-cache")))
    monkeypatch.setenv("GPTCORE_SHAKESPEARE_URL", UNREACHABLE_URL)


@pytest.fixture(scope="session")
def shakespeare_input() -> Path:
    if not SHAKESPEARE_INPUT.is_file():
        pytest.skip(f"Tiny Shakespeare not found at {SHAKESPEARE_INPUT} (the repository expects ../shared beside it)")
    return SHAKESPEARE_INPUT


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, shakespeare_input) -> Path:
    """A data_dir holding `shakespeare_char`, prepared once per session from the shared text."""
    from gptcore.data import prepare

    d = tmp_path_factory.mktemp("data")
    prepare("shakespeare_char", d, input_path=str(shakespeare_input), quiet=True)
    return d


@pytest.fixture
def tiny_values(data_dir, tmp_path):
    """The values of a tiny CPU run on the prepared data, writing into tmp_path/out."""
    return {**TINY, "data_dir": str(data_dir), "out_dir": str(tmp_path / "out")}


@pytest.fixture
def tiny_config(tiny_values):
    """`tiny_config(**overrides)` -> a validated TrainConfig of a tiny CPU run."""
    from gptcore.config import build_config

    def make(**overrides):
        return build_config({**tiny_values, **overrides})

    return make


@pytest.fixture(scope="session")
def gptcore_env(tmp_path_factory):
    """The environment of a `python -m gptcore` subprocess: this checkout first, no downloads."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["GPTCORE_CACHE"] = str(tmp_path_factory.mktemp("subprocess-cache"))
    env["GPTCORE_SHAKESPEARE_URL"] = UNREACHABLE_URL
    env["PYTHONWARNINGS"] = "ignore"
    env["OMP_NUM_THREADS"] = "1"  # see _one_torch_thread
    return env


@pytest.fixture(scope="session")
def run_gptcore(gptcore_env):
    """`run_gptcore(*args, cwd=DIR)` runs `python -m gptcore ARGS` and returns the CompletedProcess."""

    def run(*args, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gptcore", *map(str, args)], cwd=cwd, env=gptcore_env,
                              capture_output=True, text=True, timeout=timeout)

    return run
