"""The sweep command against damaged files, storage trouble, concurrent use and signals.

Real files, real processes and real signals: each test runs `python sweeps/run.py` in a
subprocess with its own results folder and dataset cache. A test signals only processes its own
sweep started: the driver it spawned (or its process group) and trial processes named by the
trials' own records (config.json's `pid`).
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from sweep_helpers import (
    RUN,
    all_trials,
    by_name,
    env_for,
    results_of,
    run,
    sweep_args,
    wait_for,
    write_experiment,
)

from gptcore.data import prepare

SLOW = "  - {name: quick, max_iters: 40, lr_decay_iters: 40}\n  - {name: slow1}\n  - {name: slow2}"


def with_storage(tmp: Path, storage: Path, *args: str) -> list[str]:
    """The sweep command with a results folder of the test's choosing."""
    return RUN + list(args) + ["--storage", str(storage), "--num-cpus", "2"]


def start(tmp: Path, *args: str, group: bool = False, address: str | None = None) -> subprocess.Popen:
    """The sweep command in the background; with `group`, in a process group of its own (as a terminal runs it)."""
    return subprocess.Popen(sweep_args(tmp, *args, address=address), env=env_for(tmp), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=tmp, start_new_session=group)


def finish(proc: subprocess.Popen, timeout: float = 180) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return out


def one_line_error(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    err = r.stderr.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


def quick_done_and_slow_checkpointed(exp_dir: Path):
    named = by_name(exp_dir)
    quick = results_of(named["quick"]) if "quick" in named else []
    slow = results_of(named["slow1"]) if "slow1" in named else []
    return bool(quick) and quick[-1]["iter"] == 40 and len(slow) >= 2


# --------------------------------------------------------------------------------------------
# damaged data: refused before Ray starts


def damage(folder: Path, how: str) -> str:
    """Damage a prepared dataset; the file the message must name."""
    if how == "odd":
        (folder / "train.bin").write_bytes((folder / "train.bin").read_bytes()[:-1])
        return "train.bin"
    if how == "empty":
        (folder / "train.bin").write_bytes(b"")
        return "train.bin"
    if how == "missing":
        (folder / "val.bin").unlink()
        return "val.bin"
    (folder / "meta.pkl").write_text("garbage")
    return "meta.pkl"


@pytest.mark.parametrize("how", ["odd", "empty", "missing", "meta"])
def test_a_damaged_dataset_is_one_line_before_ray_starts(tmp_path, how):
    folder = tmp_path / "cache" / "data" / "shakespeare_char"
    prepare("shakespeare_char", folder.parent, quiet=True)
    name = damage(folder, how)
    r = subprocess.run(RUN + ["exp1", "--profile", "smoke", "--storage", str(tmp_path / "results"), "--num-cpus", "2"],
                       env=env_for(tmp_path), capture_output=True, text=True, timeout=120, cwd=tmp_path)
    one_line_error(r, name, "prepare")
    assert "Ray dashboard" not in r.stdout and not (tmp_path / "results").exists()


# --------------------------------------------------------------------------------------------
# storage


def test_a_file_in_the_storage_path_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    r = subprocess.run(with_storage(tmp_path, tmp_path / "afile" / "x", "exp1", "--profile", "smoke"),
                       env=env_for(tmp_path), capture_output=True, text=True, timeout=120, cwd=tmp_path)
    one_line_error(r, "is a file, not a folder")


@pytest.fixture
def tmpfs(tmp_path):
    """`tmpfs(size, read_only=False)`: a small real file system of its own, unmounted afterwards."""
    mounts = []

    def make(size: str, read_only: bool = False) -> Path:
        point = tmp_path / f"mnt{len(mounts)}"
        point.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.decode().strip()}")
        mounts.append(point)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
        return point

    yield make
    for point in mounts:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_a_read_only_storage_is_one_line(tmp_path, tmpfs):
    ro = tmpfs("1m", read_only=True)
    r = subprocess.run(with_storage(tmp_path, ro / "results", "exp1", "--profile", "smoke"),
                       env=env_for(tmp_path), capture_output=True, text=True, timeout=120, cwd=tmp_path)
    one_line_error(r, "not writable")


def test_a_full_disk_keeps_the_checkpoints_loadable_and_says_so(tmp_path, tmpfs):
    disk = tmpfs("3m")
    exp = write_experiment(tmp_path, "fill", "  - {name: a}\n  - {name: b}\n  - {name: c}", max_iters=200,
                           eval_interval=20)
    r = subprocess.run(with_storage(tmp_path, disk / "results", str(exp), "--max-failures", "0"),
                       env=env_for(tmp_path), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out[-3000:]
    # Ray logs its own failed uploads (with their tracebacks); the command ends on one line of its own
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the disk that holds") and "is full" in last and "--resume" in last, last
    assert 'sweeps/run.py", line' not in r.stderr  # the trials' failures are Ray's to log; the command's own is not
    # the upload the disk cut short may leave its newest checkpoint half-written: the ones before stay whole
    # (and --resume goes on from them, test_a_truncated_trial_checkpoint_before_resume)
    kept = 0
    for trial in (disk / "results" / "fill").iterdir():
        for ckpt in sorted(trial.glob("checkpoint_*"))[:-1]:
            assert "model" in torch.load(ckpt / "ckpt.pt", map_location="cpu", weights_only=True)
            kept += 1
    assert kept, "no trial had a checkpoint before the disk filled"


def test_a_second_sweep_on_the_same_results_is_refused_with_the_first_ones_pid(tmp_path, ray_address):
    exp = write_experiment(tmp_path, "busy", SLOW, max_iters=300, eval_interval=30)
    first = start(tmp_path, str(exp), address=ray_address)
    try:
        wait_for(lambda: (tmp_path / "results" / "busy" / "sweep.json").is_file(), 120, "the first sweep", first)
        for extra in ([], ["--fresh"], ["--resume"]):
            r = run(tmp_path, str(exp), *extra, timeout=120)
            one_line_error(r, "in use by a running sweep", f"pid {first.pid}", "busy.yaml")
        assert (tmp_path / "results" / "busy").is_dir()  # --fresh moved nothing while it ran
        first.send_signal(signal.SIGINT)
        finish(first)
    finally:
        if first.poll() is None:
            first.kill()


def test_a_finished_sweep_resumes_to_nothing_and_fresh_moves_it_aside_intact(tmp_path, ray_address):
    exp = write_experiment(tmp_path, "again", "  - {name: a, max_iters: 20, lr_decay_iters: 20}", max_iters=20,
                           eval_interval=10)
    assert run(tmp_path, str(exp), address=ray_address).returncode == 0
    # --resume of a finished sweep (what an interrupted summary advises) runs nothing again
    results = {d.name: (d / "result.json").read_bytes() for d in all_trials(tmp_path / "results" / "again")}
    r = run(tmp_path, str(exp), "--resume", address=ray_address)
    assert r.returncode == 0 and "report:" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    assert {d.name: (d / "result.json").read_bytes() for d in all_trials(tmp_path / "results" / "again")} == results
    before = {p.relative_to(tmp_path / "results" / "again"): p.read_bytes()
              for p in (tmp_path / "results" / "again").rglob("*") if p.is_file()}
    r = run(tmp_path, str(exp), "--fresh", address=ray_address)
    assert r.returncode == 0 and "moved the previous results to" in r.stdout
    (aside,) = [p for p in (tmp_path / "results").iterdir() if p.name.startswith("again.old-")]
    assert {p.relative_to(aside): p.read_bytes() for p in aside.rglob("*") if p.is_file()} == before


# --------------------------------------------------------------------------------------------
# fractional GPUs, without a GPU


def test_four_trials_share_one_logical_gpu_at_a_quarter_each(tmp_path):
    runs = "\n".join(f"  - {{name: p{i}}}" for i in range(4))
    exp = write_experiment(tmp_path, "pack", runs, max_iters=120, eval_interval=40)
    r = run(tmp_path, str(exp), "--num-gpus", "1", "--gpus-per-trial", "0.25", "--cpus-per-trial", "0.5",
            timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "0.5 CPU, 0.25 GPU" in r.stdout
    spans = []
    for d in all_trials(tmp_path / "results" / "pack"):
        conf = json.loads((d / "config.json").read_text())
        assert conf["cuda_visible_devices"] == "0" and conf["resolved_device"] == "cpu"
        rows = results_of(d)
        spans.append((rows[0]["timestamp"] - rows[0]["time_total_s"], rows[-1]["timestamp"]))
    assert len(spans) == 4
    # every trial was running at one moment: the latest start comes before the earliest end
    assert max(s for s, _ in spans) < min(e for _, e in spans), spans


@pytest.mark.parametrize("fraction, expect", [("0.3", "is not 1/k of a GPU"), ("0.18", "use 0.1667")])
def test_a_gpu_fraction_that_is_not_one_over_k_is_refused(tmp_path, fraction, expect):
    r = run(tmp_path, "exp1", "--profile", "smoke", "--gpus-per-trial", fraction, "--dry-run", timeout=60)
    one_line_error(r, expect)


def test_a_near_fraction_is_rounded_and_said(tmp_path):
    r = run(tmp_path, "exp1", "--profile", "smoke", "--gpus-per-trial", "0.333", "--dry-run", timeout=60)
    assert r.returncode == 0 and "rounded to 1/3" in r.stdout and "0.333333 GPU" in r.stdout, r.stdout


def test_a_truncated_trial_checkpoint_before_resume(tmp_path, ray_address):
    exp = write_experiment(tmp_path, "cut", "  - {name: long}", max_iters=300, eval_interval=30)
    exp_dir = tmp_path / "results" / "cut"
    proc = start(tmp_path, str(exp), address=ray_address)
    try:
        wait_for(lambda: exp_dir.exists() and any(len(results_of(d)) >= 4 for d in all_trials(exp_dir)), 180,
                 "four reports", proc)
        proc.send_signal(signal.SIGINT)
        out = finish(proc, 120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out[-3000:]
    (d,) = all_trials(exp_dir)
    *damaged, oldest = sorted(d.glob("checkpoint_*"), reverse=True)
    assert damaged, "fewer than two checkpoints kept"
    for c in damaged:  # every checkpoint but the oldest cut short, whichever Ray's record points at
        ckpt = c / "ckpt.pt"
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    r = run(tmp_path, str(exp), "--resume", address=ray_address)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    log = (d / "train.log").read_text()
    assert "cannot be loaded" in log and f"resume: continuing from {oldest.name}" in log, log[-2000:]
    assert results_of(d)[-1]["iter"] == 300
    assert "cannot be loaded" in (exp_dir / "report.md").read_text()  # the report's notes say so
