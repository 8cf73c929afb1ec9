"""Damaged files and interruptions, as a user meets them: real files, real subprocesses, real signals.

Every case ends with one line naming the file and the fix, a non-zero exit status and no
traceback; nothing a run saved before is lost.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import DATASET_DAMAGE, DISK_FULL_RUN, TINY, assert_user_error, cli_args

from gptcore.config import build_config
from gptcore.errors import UserError
from gptcore.sinks import Console, Jsonl
from gptcore.train import Trainer, load_checkpoint

META_DAMAGE = [how for how in DATASET_DAMAGE if DATASET_DAMAGE[how][1] == "meta.pkl"]


def quiet(line: str) -> None:
    pass


def damage_needles(how: str, root, folder) -> list[str]:
    _, fname, needle = DATASET_DAMAGE[how]
    return [str(folder / fname), needle, f"`python -m gptcore prepare shakespeare_char --data_dir {root}`"]


@pytest.fixture(scope="module")
def nanogpt_run(tmp_path_factory, data_dir):
    """A run folder whose ckpt.pt is as nanoGPT writes it: no vocabulary inside, so `sample`
    reads the dataset's meta.pkl."""
    out = tmp_path_factory.mktemp("nanogpt-run")
    cfg = build_config({**TINY, "data_dir": str(data_dir), "out_dir": str(out), "max_iters": 2,
                        "always_save_checkpoint": True})
    list(Trainer(cfg, say=quiet).run())
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    for key in ("meta", "scaler", "code_version"):
        del ckpt[key]
    torch.save(ckpt, out / "ckpt.pt")
    return out


# ---------------------------------------------------------------------------------------
# damaged datasets


@pytest.mark.parametrize("how", list(DATASET_DAMAGE))
def test_train_refuses_a_damaged_dataset(how, damaged_dataset, gptcore_cli, tmp_path):
    root, folder = damaged_dataset(how)
    p = gptcore_cli("train", *cli_args({**TINY, "data_dir": root, "out_dir": "out"}), cwd=tmp_path)
    assert_user_error(p, *damage_needles(how, root, folder))
    assert "download" not in p.stderr
    assert not (tmp_path / "out").exists()  # refused before any work


@pytest.mark.parametrize("how", list(DATASET_DAMAGE))
def test_check_refuses_a_damaged_dataset(how, damaged_dataset, gptcore_cli, tmp_path):
    root, folder = damaged_dataset(how)
    p = gptcore_cli("check", *cli_args({**TINY, "data_dir": root}), cwd=tmp_path)
    if how == "ids_beyond_vocab":
        # the data check itself reports ids outside the vocabulary, as the tutorial's check does,
        # with the file and the fix on its FAIL line, and exits 1
        assert p.returncode == 1 and "Traceback" not in p.stderr + p.stdout, p.stderr
        fail = [line for line in p.stdout.splitlines() if line.startswith(f"FAIL: {folder / 'train.bin'}")]
        assert len(fail) == 1 and "token id 94" in fail[0], p.stdout
        assert f"`python -m gptcore prepare shakespeare_char --data_dir {root}`" in fail[0]
    else:
        assert_user_error(p, *damage_needles(how, root, folder))


@pytest.mark.parametrize("how", META_DAMAGE)
def test_sample_refuses_a_damaged_meta_pkl(how, nanogpt_run, damaged_dataset, gptcore_cli, tmp_path):
    root, folder = damaged_dataset(how)
    p = gptcore_cli("sample", f"--out_dir={nanogpt_run}", f"--data_dir={root}", "--device=cpu", "--num_samples=1",
                    "--max_new_tokens=5", cwd=tmp_path)
    assert_user_error(p, *damage_needles(how, root, folder))


def test_sample_reads_the_datasets_meta_pkl(nanogpt_run, data_dir, gptcore_cli, tmp_path):
    """The other side of the test above: with an intact meta.pkl the same checkpoint samples."""
    p = gptcore_cli("sample", f"--out_dir={nanogpt_run}", f"--data_dir={data_dir}", "--device=cpu",
                    "--num_samples=1", "--max_new_tokens=5", "--start=ROMEO:", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("ROMEO:") and p.stdout.endswith("---------------\n")


# ---------------------------------------------------------------------------------------
# damaged checkpoints


def _wrong_shapes(ckpt, path):
    for name in ("transformer.h.0.attn.c_attn.weight", "transformer.h.0.mlp.c_fc.weight"):
        ckpt["model"][name] = ckpt["model"][name].t().contiguous()  # the right keys, transposed
    torch.save(ckpt, path)


def _no_model_args(ckpt, path):
    del ckpt["model_args"]
    torch.save(ckpt, path)


def _incomplete_model_args(ckpt, path):
    del ckpt["model_args"]["n_layer"]
    torch.save(ckpt, path)


def _optimizer_of_another_model(ckpt, path):
    other = Trainer(build_config({**ckpt["config"], "n_embd": 32, "out_dir": str(path.parent)}), say=quiet)
    ckpt["optimizer"] = other.optimizer.state_dict()
    ckpt["optimizer"]["state"] = {i: {"step": torch.tensor(2.0), "exp_avg": torch.zeros_like(p),
                                      "exp_avg_sq": torch.zeros_like(p)}
                                  for i, p in enumerate(other.model.parameters())}
    torch.save(ckpt, path)


def _truncated(ckpt, path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _not_a_checkpoint(ckpt, path):
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)


def _another_torch_file(ckpt, path):
    torch.save(torch.arange(10), path)


# how a ckpt.pt gets damaged -> what the one line says (besides the path); `sample` does not
# read the optimizer, so that case is for resuming only
CHECKPOINT_DAMAGE = {
    "wrong_shapes": (_wrong_shapes, "transformer.h.0.attn.c_attn.weight"),
    "no_model_args": (_no_model_args, "lacks model_args"),
    "incomplete_model_args": (_incomplete_model_args, "n_layer"),
    "optimizer_of_another_model": (_optimizer_of_another_model, "optimizer"),
    "truncated": (_truncated, "not a loadable checkpoint"),
    "not_a_checkpoint": (_not_a_checkpoint, "not a loadable checkpoint"),
    "another_torch_file": (_another_torch_file, "not a checkpoint"),
}


@pytest.fixture(scope="module")
def good_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("good-run")
    values = {**TINY, "data_dir": str(data_dir), "out_dir": str(out), "max_iters": 2, "always_save_checkpoint": True}
    list(Trainer(build_config(values), say=quiet).run())
    return out, values


@pytest.fixture
def damaged_checkpoint(good_run, tmp_path):
    """`damaged_checkpoint(how)` -> (run folder, values): a copy of a good run whose ckpt.pt is damaged."""

    def make(how: str):
        src, values = good_run
        out = tmp_path / f"run-{how}"
        out.mkdir()
        (out / "ckpt.pt").write_bytes((src / "ckpt.pt").read_bytes())
        ckpt = torch.load(out / "ckpt.pt", weights_only=True)
        CHECKPOINT_DAMAGE[how][0](ckpt, out / "ckpt.pt")
        return out, {**values, "out_dir": str(out)}

    return make


@pytest.mark.parametrize("how", list(CHECKPOINT_DAMAGE))
def test_resume_refuses_a_damaged_checkpoint(how, damaged_checkpoint, gptcore_cli, tmp_path):
    out, values = damaged_checkpoint(how)
    before = (out / "ckpt.pt").read_bytes()
    p = gptcore_cli("train", *cli_args({**values, "max_iters": 4}), "--init_from=resume", cwd=tmp_path)
    assert_user_error(p, str(out / "ckpt.pt"), CHECKPOINT_DAMAGE[how][1])
    assert (out / "ckpt.pt").read_bytes() == before  # left as it was, for whoever looks at it
    assert not (out / "train.log").exists()


@pytest.mark.parametrize("how", [h for h in CHECKPOINT_DAMAGE if h != "optimizer_of_another_model"])
def test_sample_refuses_a_damaged_checkpoint(how, damaged_checkpoint, gptcore_cli, tmp_path):
    out, _ = damaged_checkpoint(how)
    p = gptcore_cli("sample", f"--out_dir={out}", "--device=cpu", "--num_samples=1", "--max_new_tokens=5",
                    cwd=tmp_path)
    assert_user_error(p, str(out / "ckpt.pt"), CHECKPOINT_DAMAGE[how][1])


# ---------------------------------------------------------------------------------------
# a full disk


def test_train_on_a_disk_that_fills_up(tmp_path, data_dir, small_tmpfs, run_gptcore):
    values = {**TINY, "data_dir": str(data_dir), **DISK_FULL_RUN}
    probe = build_config({**values, "max_iters": 2, "out_dir": str(tmp_path / "probe")})
    list(Trainer(probe, say=quiet).run())
    size = (tmp_path / "probe" / "ckpt.pt").stat().st_size
    disk = small_tmpfs(size * 3 // 2 + 64 * 1024)  # the logs' few pages besides
    out = disk / "out"
    p = run_gptcore("train", *cli_args({**values, "out_dir": out}), cwd=tmp_path)
    assert_user_error(p, "the disk is full", str(out / "ckpt.pt"), "last save is kept", "free some space",
                      "--out_dir")
    assert not (out / "ckpt.pt.tmp").exists()
    assert load_checkpoint(out / "ckpt.pt")["iter_num"] == 2
    log = (out / "train.log").read_text()
    assert "step 2: train loss" in log and log.count("saving checkpoint") == 2


def test_logs_on_a_full_disk_are_one_line(small_tmpfs):
    disk = small_tmpfs(64 * 1024)
    with contextlib.suppress(OSError), open(disk / "filler", "wb") as f:
        f.write(b"\0" * 128 * 1024)  # fills the disk: what fits is kept
    console = Console(disk / "train.log", stream=io.StringIO())
    with pytest.raises(UserError, match=rf"^the disk is full: cannot write {disk / 'train.log'} .*--out_dir$"):
        console.say("step 2: train loss 2.5000, val loss 2.6000")
    console.close()  # the lines it could not write do not fail a second time
    jsonl = Jsonl(disk / "metrics.jsonl")
    with pytest.raises(UserError, match=rf"^the disk is full: cannot write {disk / 'metrics.jsonl'} "):
        jsonl.log({"event": "eval", "iter": 2})
    jsonl.close()


# ---------------------------------------------------------------------------------------
# Ctrl-C

INTERRUPTED_RE = (r"^interrupted at step (\d+); (.+) holds step (\d+): continue from it with the same command plus "
                  r"--init_from=resume$")

# `python -m gptcore train ARGS`, with every checkpoint write after the first slowed down (a slow
# disk), and a marker file touched while such a write is under way: a signal sent once the marker
# exists lands in the middle of a save
SLOW_SAVES = """
import sys, time, pathlib, torch

marker = pathlib.Path(sys.argv[1])
real_save = torch.save
saves = []


class SlowDisk:
    def __init__(self, f):
        self.f = f

    def write(self, data):
        marker.touch()
        time.sleep(0.05)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)


def save(obj, f, *args, **kwargs):
    saves.append(1)
    return real_save(obj, f if len(saves) == 1 else SlowDisk(f), *args, **kwargs)


torch.save = save
from gptcore.__main__ import main

sys.exit(main(sys.argv[2:]))
"""


def _wait_for(what, proc: subprocess.Popen, condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (status {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what} after {timeout} s")
        time.sleep(0.01)


def _saved_evals(out) -> list[int]:
    path = out / "metrics.jsonl"
    if not path.is_file():
        return []
    events = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    return [e["iter"] for e in events if e["event"] == "eval" and e["saved"]]


def _interrupt(proc: subprocess.Popen, tmp_path) -> tuple[str, re.Match]:
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert proc.wait(timeout=60) == 130
    stderr = (tmp_path / "stderr").read_text()
    assert "Traceback" not in stderr + (tmp_path / "stdout").read_text()
    assert stderr.startswith("\n") and stderr.count("\n") == 2, stderr  # after the terminal's ^C, one line
    m = re.match(INTERRUPTED_RE, stderr.strip())
    assert m, stderr
    return stderr, m


def _default_sigint() -> None:
    # a suite started in the background of a shell without job control inherits an ignored SIGINT, and
    # Python then leaves it ignored: the run must see Ctrl-C as a terminal's foreground process does
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _popen(args, tmp_path, env) -> subprocess.Popen:
    with open(tmp_path / "stdout", "w") as out, open(tmp_path / "stderr", "w") as err:
        return subprocess.Popen([sys.executable, *map(str, args)], cwd=tmp_path, env=env, stdout=out, stderr=err,
                                preexec_fn=_default_sigint)


def test_ctrl_c_keeps_the_last_checkpoint_and_says_how_to_resume(tmp_path, data_dir, gptcore_env, run_gptcore):
    values = {**TINY, "data_dir": data_dir, "out_dir": "out", "max_iters": 10**6, "eval_interval": 20,
              "log_interval": 1000, "always_save_checkpoint": True}
    proc = _popen(["-m", "gptcore", "train", *cli_args(values)], tmp_path, gptcore_env)
    out = tmp_path / "out"
    _wait_for("a second checkpoint", proc, lambda: len(_saved_evals(out)) >= 2)
    _, m = _interrupt(proc, tmp_path)
    ckpt = load_checkpoint(out / "ckpt.pt")
    assert m.group(2) == str(Path("out") / "ckpt.pt") and int(m.group(3)) == ckpt["iter_num"]
    assert ckpt["iter_num"] == _saved_evals(out)[-1] >= 40 and int(m.group(1)) >= ckpt["iter_num"]
    assert not (out / "ckpt.pt.tmp").exists()
    # and the line's advice works: the same command plus --init_from=resume goes on from that step
    start = ckpt["iter_num"]
    p = run_gptcore("train", *cli_args({**values, "max_iters": start + 3, "log_interval": 1}), "--init_from=resume",
                    cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    iters = [json.loads(line)["iter"] for line in (out / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["event"] == "iter"]
    assert iters[-3:] == [start, start + 1, start + 2]


def test_ctrl_c_during_a_checkpoint_save_leaves_the_previous_one(tmp_path, data_dir, gptcore_env):
    (tmp_path / "slow_saves.py").write_text(SLOW_SAVES)
    marker = tmp_path / "writing"
    values = {**TINY, "data_dir": data_dir, "out_dir": "out", "max_iters": 10**6, "eval_interval": 10,
              "log_interval": 1000, "always_save_checkpoint": True}
    proc = _popen(["slow_saves.py", marker, "train", *cli_args(values)], tmp_path, gptcore_env)
    out = tmp_path / "out"
    _wait_for("the second save to begin", proc, marker.exists)
    first = (out / "ckpt.pt").read_bytes()
    _, m = _interrupt(proc, tmp_path)
    assert (out / "ckpt.pt").read_bytes() == first  # the save under way was abandoned whole
    assert not (out / "ckpt.pt.tmp").exists()
    ckpt = load_checkpoint(out / "ckpt.pt")
    assert ckpt["iter_num"] == int(m.group(3)) == 10 and int(m.group(1)) == 20  # interrupted saving step 20
    assert _saved_evals(out) == [10]
