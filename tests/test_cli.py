"""`python -m gptcore ...` as a user runs it: subprocesses, their files, their log lines, their errors.

A user's mistake ends with exactly one line on stderr, `error: ...`, exit status 2 and no
traceback; a diverged run exits 3; `check` exits 1 when a check fails.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, UNREACHABLE_URL, assert_user_error, cli_args

from gptcore.__main__ import main
from gptcore.config import TrainConfig

# the tutorial's own parsers (chapter 04, plot_loss.py / summarize_experiments.py)
STEP_RE = r"step (\d+): train loss ([\d.]+), val loss ([\d.]+)"
TOOK_RE = r"training took ([\d.]+)"
ITER_RE = r"^iter (\d+): loss ([\d.]+), time ([\d.]+)ms, mfu (-?[\d.]+)%, (\d+) tok/s$"


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, data_dir, run_gptcore):
    """A tiny training run made with the tutorial's command line, in a folder with no config/ in it."""
    cwd = tmp_path_factory.mktemp("cli")
    values = {**TINY, "data_dir": data_dir, "out_dir": "out-tiny", "max_iters": 4, "eval_interval": 2}
    p = run_gptcore("train", "config/train_shakespeare_char.py", *cli_args(values), cwd=cwd)
    assert p.returncode == 0, p.stderr[-3000:]
    return cwd, p, values


def test_prepare_command_writes_nanogpts_files(tmp_path, shakespeare_input, run_gptcore):
    p = run_gptcore("prepare", "shakespeare_char", "--input", shakespeare_input, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "vocab size: 65" in p.stdout and "train has 1,003,854 tokens" in p.stdout
    digest = hashlib.sha256((tmp_path / "data" / "shakespeare_char" / "train.bin").read_bytes()).hexdigest()
    assert digest == "6ec305602a99ac2802745a134e1f5e33e2231b4855525b00b9aebb730ac2626f"


def test_prepare_offline_without_a_source(tmp_path, gptcore_env):
    # Tiny Shakespeare ships inside gptcore: no --input, and every download would fail here
    offline = {**gptcore_env, **{v: UNREACHABLE_URL for v in ("http_proxy", "https_proxy", "HTTP_PROXY",
                                                               "HTTPS_PROXY")}}
    p = subprocess.run([sys.executable, "-m", "gptcore", "prepare", "shakespeare_char"], cwd=tmp_path, env=offline,
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    assert "train has 1,003,854 tokens" in p.stdout and "val has 111,540 tokens" in p.stdout
    assert "vocab size: 65" in p.stdout and "download" not in p.stdout + p.stderr
    folder = tmp_path / "data" / "shakespeare_char"
    assert np.fromfile(folder / "val.bin", dtype=np.uint16).size == 111_540
    digest = hashlib.sha256((folder / "train.bin").read_bytes()).hexdigest()
    assert digest == "6ec305602a99ac2802745a134e1f5e33e2231b4855525b00b9aebb730ac2626f"


def test_prepare_from_an_unreachable_url(tmp_path, gptcore_cli):
    url = "http://127.0.0.1:9/x.txt"  # the discard port: refused at once
    p = gptcore_cli("prepare", "mine", "--input", url, cwd=tmp_path)
    assert_user_error(p, f"--input {url}: could not download it", "Connection refused")
    assert not (tmp_path / "data" / "mine" / "train.bin").exists()


@pytest.mark.parametrize("content, needle", [
    (b"", "is empty"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00" * 300, "binary"),
    (b"Now is the winter of our discontent\n" * 5, "too short"),
    ("".join(chr(c) for c in range(32, 80_000) if not 0xD800 <= c <= 0xDFFF).encode(), "distinct characters"),
])
def test_prepare_refuses_bad_texts(tmp_path, capsys, content, needle):
    (tmp_path / "in.txt").write_bytes(content)
    # in-process (the unreachable URL above runs the same error path in a subprocess)
    assert main(["prepare", "mine", f"--input={tmp_path / 'in.txt'}", f"--data_dir={tmp_path / 'data'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err


def test_train_command_logs_the_contract_lines(cli_run):
    cwd, p, values = cli_run
    out = cwd / "out-tiny"
    log = (out / "train.log").read_text()
    assert "config/train_shakespeare_char.py not found here: using the shipped config" in log
    steps = re.findall(STEP_RE, log)
    assert [int(s) for s, _, _ in steps] == [0, 2, 4]
    assert all(abs(float(v) - 4.17) < 0.1 for _, _, v in steps[:1])
    took = re.findall(TOOK_RE, log)
    assert len(took) == 1 and float(took[0]) > 0
    iters = [m.groups() for m in re.finditer(ITER_RE, log, flags=re.M)]
    assert [int(i[0]) for i in iters] == [0, 1, 2, 3]
    assert all(float(i[2]) > 0 and int(i[4]) > 0 for i in iters)
    # the console and train.log hold the same lines, as `tee` would keep them
    assert p.stdout.splitlines() == log.splitlines()
    assert "Traceback" not in p.stderr


def test_train_command_writes_its_files(cli_run):
    cwd, _, values = cli_run
    out = cwd / "out-tiny"
    assert {f.name for f in out.iterdir()} >= {"ckpt.pt", "config.json", "metrics.jsonl", "train.log"}
    conf = json.loads((out / "config.json").read_text())
    assert {f.name for f in fields(TrainConfig)} <= set(conf)
    assert (conf["resolved_device"], conf["resolved_dtype"]) == ("cpu", "float32")
    assert conf["n_embd"] == 16 and conf["dataset"] == "shakespeare_char" and conf["eval_iters"] == 2
    assert {"code_version", "python", "torch"} <= set(conf)
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["eval", "iter", "iter", "eval", "iter", "iter", "eval", "end"]


def test_resume_command_continues_the_log(cli_run, run_gptcore, tmp_path):
    cwd, _, values = cli_run
    shutil.copytree(cwd / "out-tiny", tmp_path / "out-tiny")
    p = run_gptcore("train", "train_shakespeare_char", *cli_args({**values, "max_iters": 6}), "--init_from=resume",
                    cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    log = (tmp_path / "out-tiny" / "train.log").read_text()
    assert [int(s) for s, _, _ in re.findall(STEP_RE, log)] == [0, 2, 4, 4, 6]  # appended: step 4 again, then 6
    assert "Resuming training from" in log
    assert len(re.findall(TOOK_RE, log)) == 2
    events = [json.loads(line) for line in (tmp_path / "out-tiny" / "metrics.jsonl").read_text().splitlines()]
    assert [e["iter"] for e in events if e["event"] == "iter"] == [0, 1, 2, 3, 4, 5]


def test_diverged_run_exits_3_and_keeps_its_logs(tmp_path, data_dir, run_gptcore):
    values = {**TINY, "data_dir": data_dir, "out_dir": "boom", "max_iters": 20, "eval_interval": 10,
              "learning_rate": 1e6, "grad_clip": 0, "warmup_iters": 0, "decay_lr": False}
    p = run_gptcore("train", "train_shakespeare_char", *cli_args(values), cwd=tmp_path)
    assert p.returncode == 3, p.stderr
    assert "Traceback" not in p.stderr and p.stderr.count("\n") == 1
    m = re.match(r"error: training diverged at step (\d+)", p.stderr)
    assert m, p.stderr
    step = int(m.group(1))
    log = (tmp_path / "boom" / "train.log").read_text()
    assert "step 0: train loss" in log and f"training diverged at step {step}: loss is" in log
    events = [json.loads(line) for line in (tmp_path / "boom" / "metrics.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "eval" and events[-1]["status"] == "diverged"
    assert events[-1]["iter"] == step and events[-1]["loss"] is None  # NaN is written as null


@pytest.mark.parametrize("args, needles", [
    (["--learning_rat=1e-3"], ["learning_rat", "learning_rate"]),
    (["--n_layer=8", "--n_embd=512"], ["n_embd=512", "n_head=6", "--n_head"]),  # the tutorial's exp 1D as written
    (["--block_size=2000000"], ["block_size=2000000", "larger than the data"]),
    (["--n_layer=0"], ["n_layer=0"]),
    (["--dropout=-0.1"], ["dropout=-0.1"]),
    (["--dtype=float16"], ["float16", "--dtype"]),
    (["--compile=maybe"], ["compile", "True or"]),
    (["--max_iters=ten"], ["max_iters", "whole number"]),
    (["--init_from=resume"], ["no checkpoint"]),
    (["--dataset=nosuch"], ["nosuch", "prepare"]),
])
def test_train_mistakes_are_one_line(tmp_path, data_dir, gptcore_cli, args, needles):
    tiny = {**TINY, "data_dir": data_dir, "out_dir": "out-x"}
    if "--n_embd=512" in args:
        tiny = {k: v for k, v in tiny.items() if k not in ("n_head", "n_embd")}  # the shipped n_head=6
    p = gptcore_cli("train", "train_shakespeare_char", *cli_args(tiny), *args, cwd=tmp_path)
    assert_user_error(p, *needles)
    assert not (tmp_path / "out-x").exists()  # refused before any work


def test_unknown_config_and_malicious_config(tmp_path, gptcore_cli):
    assert_user_error(gptcore_cli("train", "nosuch_config", cwd=tmp_path), "nosuch_config", "train_shakespeare_char")
    sentinel = tmp_path / "pwned"
    (tmp_path / "evil.py").write_text(f"max_iters = 5\nimport os\nos.system('touch {sentinel}')\n")
    assert_user_error(gptcore_cli("train", "evil.py", cwd=tmp_path), "evil.py:2", "never executed")
    assert not sentinel.exists()


def test_accepted_spellings(tmp_path, data_dir, run_gptcore):
    tiny = cli_args({**TINY, "data_dir": data_dir, "out_dir": "ok", "max_iters": 0})
    p = run_gptcore("train", "train_shakespeare_char", *tiny, "--learning_rate=1", "--compile=false",
                    "--decay_lr=FALSE", "--bias=true", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    conf = json.loads((tmp_path / "ok" / "config.json").read_text())
    assert (conf["learning_rate"], conf["compile"], conf["decay_lr"], conf["bias"]) == (1.0, False, False, True)


def test_check_command(tmp_path, data_dir, run_gptcore):
    tiny = cli_args({**TINY, "data_dir": data_dir})
    p = run_gptcore("check", "train_shakespeare_char", *tiny, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "all checks passed" in p.stdout and "ln(65) = 4.1744" in p.stdout
    # a corrupted dataset: token ids beyond the vocabulary
    bad = tmp_path / "bad" / "shakespeare_char"
    bad.mkdir(parents=True)
    for name in ("val.bin", "meta.pkl"):
        (bad / name).write_bytes((data_dir / "shakespeare_char" / name).read_bytes())
    (np.fromfile(data_dir / "shakespeare_char" / "train.bin", dtype=np.uint16) + 30).astype(np.uint16).tofile(
        bad / "train.bin")
    p = run_gptcore("check", "train_shakespeare_char", *cli_args({**TINY, "data_dir": bad.parent}), cwd=tmp_path)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert "FAIL: token ids outside [0, 65)" in p.stdout


def test_sample_command(cli_run, run_gptcore):
    cwd, _, _ = cli_run
    a = run_gptcore("sample", "--out_dir", "out-tiny", "--start=ROMEO:", "--num_samples=2", "--max_new_tokens=30",
                    "--seed=3", cwd=cwd)
    b = run_gptcore("sample", "--out_dir=out-tiny", "--start=ROMEO:", "--num_samples=2", "--max_new_tokens=30",
                    "--seed=3", cwd=cwd)
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout
    samples = a.stdout.split("---------------\n")
    assert len(samples) == 3 and samples[-1] == ""
    assert all(s.startswith("ROMEO:") and len(s) == len("ROMEO:") + 30 + 1 for s in samples[:2])


def test_usage_and_unknown_command(tmp_path, gptcore_cli):
    p = gptcore_cli(cwd=tmp_path)
    assert p.returncode == 2 and "python -m gptcore train" in p.stdout
    assert_user_error(gptcore_cli("trian", cwd=tmp_path), "trian", "train")


def test_main_returns_the_exit_status(capsys):
    # `main` is also the `gptcore` console script, whose wrapper does sys.exit(main())
    assert main(["--help"]) == 0 and main([]) == 2 and main(["trian"]) == 2
    assert all(type(main(a)) is int for a in (["--help"], ["train", "--help"], ["train", "--max_iters=x"]))
    capsys.readouterr()


def test_the_gptcore_console_script(tmp_path, gptcore_env):
    script = Path(sys.executable).parent / "gptcore"
    if not script.is_file():
        pytest.skip(f"no console script at {script}: install the project with `pip install -e .`")
    p = subprocess.run([str(script), "trian"], cwd=tmp_path, env=gptcore_env, capture_output=True, text=True,
                       timeout=120)
    assert_user_error(p, "trian")
    p = subprocess.run([str(script), "train", "--max_iters=ten"], cwd=tmp_path, env=gptcore_env,
                       capture_output=True, text=True, timeout=120)
    assert_user_error(p, "max_iters", "whole number")
    p = subprocess.run([str(script), "--help"], cwd=tmp_path, env=gptcore_env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and "python -m gptcore train" in p.stdout
