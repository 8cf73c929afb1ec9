"""Shared fixtures.

gptcore (the trainer): the Tiny Shakespeare text that ships inside gptcore, written out once
per session, a session-wide prepared `shakespeare_char` dataset, a factory of tiny CPU configs,
and the environment a `python -m gptcore` subprocess runs in. Nothing needs the network: every
test gets an empty GPTCORE_CACHE of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
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
def _own_cache(tmp_path_factory, monkeypatch):
    """Every test: an empty gptcore cache (downloaded texts, shipped datasets) of its own."""
    monkeypatch.setenv("GPTCORE_CACHE", str(tmp_path_factory.mktemp("gptcore-cache")))


@pytest.fixture(scope="session")
def shakespeare_input(tmp_path_factory) -> Path:
    """Tiny Shakespeare (nanoGPT's input.txt) as a file: the copy inside gptcore, written out once."""
    from gptcore.sources import shakespeare_text

    path = tmp_path_factory.mktemp("tinyshakespeare") / "input.txt"
    path.write_bytes(shakespeare_text())
    return path


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, shakespeare_input) -> Path:
    """A data_dir holding `shakespeare_char`, prepared once per session from Tiny Shakespeare."""
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
    """The environment of a `python -m gptcore` subprocess: this checkout first, a cache of its own."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["GPTCORE_CACHE"] = str(tmp_path_factory.mktemp("subprocess-cache"))
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


@pytest.fixture
def gptcore_cli(monkeypatch):
    """`gptcore_cli(*args, cwd=DIR)` runs `python -m gptcore ARGS` in this process (its `main`), with its output
    captured: a CompletedProcess like `run_gptcore`'s, in a fraction of the time (no new interpreter, no
    torch import). For what a user's mistake prints and returns; a real process where signals are the point."""
    import contextlib
    import io

    from gptcore.__main__ import main

    def run(*args, cwd: Path) -> subprocess.CompletedProcess:
        out, err = io.StringIO(), io.StringIO()
        with monkeypatch.context() as m:
            m.chdir(cwd)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main([str(a) for a in args])
        return subprocess.CompletedProcess(["gptcore", *map(str, args)], code, out.getvalue(), err.getvalue())

    return run


def assert_user_error(p: subprocess.CompletedProcess, *needles: str) -> None:
    """A user's mistake as the command line reports it: exactly one `error: ...` line on stderr
    naming each of `needles`, exit status 2, no traceback."""
    assert p.returncode == 2, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr
    for needle in needles:
        assert needle in p.stderr, (needle, p.stderr)


def _rewrite_ids(path: Path, change) -> None:
    import numpy as np

    ids = np.fromfile(path, dtype=np.uint16)
    change(ids).astype(np.uint16).tofile(path)


def _pickle(path: Path, value) -> None:
    import pickle

    path.write_bytes(pickle.dumps(value))


# how a prepared dataset folder gets damaged -> (the file to name, what the message says about it)
DATASET_DAMAGE = {
    "odd_train": (lambda f: (f / "train.bin").write_bytes((f / "train.bin").read_bytes()[:-1]),
                  "train.bin", "odd number of bytes"),
    "odd_val": (lambda f: (f / "val.bin").write_bytes((f / "val.bin").read_bytes() + b"\x00"),
                "val.bin", "odd number of bytes"),
    "empty_train": (lambda f: (f / "train.bin").write_bytes(b""), "train.bin", "is empty"),
    "missing_val": (lambda f: (f / "val.bin").unlink(), "val.bin", "is missing"),
    "meta_garbage": (lambda f: (f / "meta.pkl").write_text("garbage"), "meta.pkl", "is damaged"),
    "meta_not_a_dict": (lambda f: _pickle(f / "meta.pkl", [65, "abc"]), "meta.pkl", "not a nanoGPT meta.pkl"),
    "meta_without_vocab_size": (lambda f: _pickle(f / "meta.pkl", {"stoi": {"a": 0}, "itos": {0: "a"}}),
                                "meta.pkl", "vocab_size"),
    "ids_beyond_vocab": (lambda f: _rewrite_ids(f / "train.bin", lambda ids: ids + 30), "train.bin",
                         "has token id 94"),
    "short_val": (lambda f: _rewrite_ids(f / "val.bin", lambda ids: ids[:10]), "val.bin", "has 10 tokens"),
}


@pytest.fixture
def damaged_dataset(data_dir, tmp_path):
    """`damaged_dataset(how)` -> (data_dir, folder): a copy of the prepared `shakespeare_char`
    under tmp_path, damaged as DATASET_DAMAGE[how] says."""
    import shutil

    def make(how: str) -> tuple[Path, Path]:
        root = tmp_path / f"damaged-{how}"
        folder = root / "shakespeare_char"
        shutil.copytree(data_dir / "shakespeare_char", folder)
        DATASET_DAMAGE[how][0](folder)
        return root, folder

    return make


@pytest.fixture
def small_tmpfs(tmp_path):
    """`small_tmpfs(size_bytes)` -> the folder of a real tmpfs of that size (a small disk that
    fills up), unmounted at the end of the test. Skips where mounting is not permitted."""
    import shutil

    mounts: list[Path] = []

    def mount(size: int) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs (a small disk that fills up) needs root")
        if shutil.which("mount") is None:
            pytest.skip("no `mount` command here to make a small tmpfs")
        where = tmp_path / f"tmpfs{len(mounts)}"
        where.mkdir()
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                           capture_output=True, text=True)
        if p.returncode != 0:
            pytest.skip(f"mounting a tmpfs is not permitted here: {p.stderr.strip() or p.returncode}")
        mounts.append(where)
        return where

    try:
        yield mount
    finally:
        for where in mounts:
            # a lazy unmount as the fallback: a file a failed test left open must not keep it mounted
            if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(where)], capture_output=True)


# a run whose checkpoint (~1.3 MB) dwarfs its logs, for the full-disk tests: with a disk of 1.5
# checkpoints the save at step 2 fits, and the one at step 4 (written beside it) does not
DISK_FULL_RUN = dict(n_layer=2, n_head=2, n_embd=64, max_iters=4, eval_interval=2, always_save_checkpoint=True)


# ---------------------------------------------------------------------------------------
# sweeps


@pytest.fixture(scope="session")
def ray_address():
    """One Ray head (2 CPUs, no dashboard) for the end-to-end sweeps that only need a Ray instance to run
    on: they pass `--address`, and skip starting and stopping Ray of their own (about 7 s a sweep). The
    tests whose point is local mode (a terminal's Ctrl-C to the whole process group, the driver killed,
    --num-gpus) start their own. Its processes are ended at the end of the session, and nothing else."""
    from ray_helpers import RealCluster, end_processes, free_ports, short_tmp

    temp = short_tmp()
    port = free_ports(1)[0]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": temp}
    env.pop("RAY_ADDRESS", None)
    head = RealCluster(address=f"127.0.0.1:{port}", temp_dir=temp, env=env)
    try:
        head.start_node("--head", f"--port={port}", "--include-dashboard=false", num_cpus=2)
        yield head.address
    finally:
        end_processes(head.groups, temp)
        import shutil

        shutil.rmtree(temp, ignore_errors=True)

