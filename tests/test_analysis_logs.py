"""sweeps/analysis/logs.py: hand-made nanoGPT and gptcore logs, parsed and reported."""

from __future__ import annotations

import math

import pytest

from sweeps.command.analyze import main
from sweeps.results.logs import load_logs, parse_log

NANOGPT_LOG = """\
Overriding config with config/train_shakespeare_char.py:
# train a miniature character-level shakespeare model
out_dir = 'out-shakespeare-char'
eval_interval = 250 # keep frequent because we'll overfit
max_iters = 5000
Overriding: max_iters = 1000
Overriding: out_dir = experiments/exp1_baseline
tokens per iteration will be: 16,384
number of parameters: 10.65M
step 0: train loss 4.1234, val loss 4.2345
iter 0: loss 4.1975, time 12345.67ms, mfu -100.00%
iter 10: loss 3.2544, time 45.12ms, mfu 0.03%
step 250: train loss 1.9876, val loss 2.0765
iter 250: loss 2.1234, time 45.12ms, mfu 0.03%
step 500: train loss 1.5000, val loss 1.6800
step 750: train loss 1.4100, val loss 1.6000
step 1000: train loss 1.3500, val loss 1.5600
"""


GPTCORE_LOG = """\
Overriding config with config/train_shakespeare_char.py
Overriding: max_iters=1000
Overriding: learning_rate=5e-3
number of parameters: 10.65M
step 0: train loss 4.1234, val loss 4.2345
iter 10: loss 2.1234, time 45.12ms, mfu 0.03%, 17000 tok/s
step 500: train loss 1.8000, val loss 1.9500
step 1000: train loss 1.7000, val loss 1.8800
training took 123.45 seconds
"""


def test_parse_log_exact_lines():
    p = parse_log(NANOGPT_LOG)
    assert p.evals[0] == (0, 4.1234, 4.2345) and p.evals[-1] == (1000, 1.35, 1.56)
    assert p.iters[1] == (10, 3.2544, 45.12, 0.03, p.iters[1][4]) and math.isnan(p.iters[1][4])
    assert p.iters[0][3] == -100.0
    assert p.settings["max_iters"] == 1000 and p.settings["eval_interval"] == 250
    assert p.n_params_m == 10.65 and p.tokens_per_iter == 16384 and math.isnan(p.took_s)
    q = parse_log(GPTCORE_LOG)
    assert q.iters == [(10, 2.1234, 45.12, 0.03, 17000.0)]
    assert q.took_s == 123.45 and q.settings["learning_rate"] == 5e-3
    d = parse_log("step 0: train loss 4.1, val loss 4.2\ntraining diverged at step 7: loss is nan\n")
    assert d.diverged_at == 7


def test_logs_cli(tmp_path, capsys):
    logs = tmp_path / "experiments"
    logs.mkdir()
    (logs / "exp1_baseline.log").write_text(NANOGPT_LOG)
    (logs / "exp1_large_lr.log").write_text(GPTCORE_LOG)
    (logs / "exp1_small_lr.log").write_text("step 0: train loss 4.1, val loss 4.2\n"
                                            "step 250: train loss nan, val loss nan\n")
    assert main(["--logs", *map(str, sorted(logs.glob("*.log")))]) == 0
    out = capsys.readouterr().out
    report = logs / "exp1_report" / "report.md"
    assert f"report: {report}" in out
    res = load_logs(sorted(logs.glob("*.log")))
    t = res.trials.set_index("name")
    assert t.loc["baseline", "status"] == "completed" and t.loc["baseline", "max_iters"] == 1000
    assert t.loc["baseline", "n_params"] == pytest.approx(10.65e6) and t.loc["baseline", "tokens"] == 16384000
    assert t.loc["large_lr", "time_s"] == 123.45 and t.loc["large_lr", "learning_rate"] == 5e-3
    assert t.loc["small_lr", "status"] == "diverged" and t.loc["small_lr", "diverged_at"] == 250
    text = report.read_text()
    assert "# exp1: effect of learning rate, batch size and model size" in text
    assert "| baseline | 1 | 1.3500 | 1.5600 | 0.2100 | N/A |" in text
    assert "123.5s" in text


# files that hold no training log -> what the one line says about each
NOT_LOGS = {
    "empty.log": (b"", "(empty)"),
    "blank.log": (b"\n  \n", "(empty)"),
    "binary.log": (b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)), "(binary)"),
    "notes.log": (b"hello\nthis is not a training log\n", "(no `step N: train loss X, val loss Y` line)"),
    "iters_only.log": (b"iter 0: loss 4.1975, time 12345.67ms, mfu -100.00%\n", "(no `step N"),
}


@pytest.mark.parametrize("name", sorted(NOT_LOGS))
def test_a_file_without_a_training_log_is_one_line_and_writes_nothing(tmp_path, capsys, name):
    data, expect = NOT_LOGS[name]
    path = tmp_path / f"exp1_{name}"
    path.write_bytes(data)
    assert main(["--logs", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no training log in ") and err.count("\n") == 1, err
    assert f"{path} {expect}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no report folder


def test_every_file_without_a_training_log_is_named_even_beside_good_ones(tmp_path, capsys):
    good = tmp_path / "exp1_baseline.log"
    good.write_text(NANOGPT_LOG)
    empty, notes = tmp_path / "exp1_empty.log", tmp_path / "exp1_notes.log"
    empty.write_bytes(b"")
    notes.write_text("nothing here\n")
    assert main(["--logs", str(good), str(empty), str(notes), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{empty} (empty)" in err and f"{notes} (no `step" in err
    assert str(good) not in err and not (tmp_path / "out").exists()


def test_a_log_that_diverged_at_once_is_still_a_log(tmp_path):
    path = tmp_path / "exp1_large_lr.log"
    path.write_text("training diverged at step 0: loss is nan\n")
    assert load_logs([path]).trials.iloc[0]["status"] == "diverged"


@pytest.mark.parametrize("out", ["afile", "afile/sub"])
def test_an_out_folder_that_is_a_file_is_one_line(tmp_path, capsys, out):
    log = tmp_path / "exp1_baseline.log"
    log.write_text(NANOGPT_LOG)
    (tmp_path / "afile").write_text("x")
    assert main(["--logs", str(log), "--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out ") and "is a file, not a folder" in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "exp1_baseline.log"]
