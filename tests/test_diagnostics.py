"""gptcore.diagnostics and `python -m gptcore check`: data check, gradient health, initial loss."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
from conftest import cli_args

from gptcore import diagnostics
from gptcore.__main__ import main
from gptcore.batches import Batches
from gptcore.data import load_meta
from gptcore.model import GPT, GPTConfig


def tiny_model(vocab_size=65, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=16, vocab_size=vocab_size))


def shakespeare(folder):
    return Batches(folder, 16, 4, 1, 1337, "cpu"), load_meta(folder)


def corrupted_copy(data_dir, tmp_path, change):
    folder = tmp_path / "d" / "shakespeare_char"
    shutil.copytree(data_dir / "shakespeare_char", folder)
    ids = np.fromfile(folder / "train.bin", dtype=np.uint16)
    change(ids)
    ids.tofile(folder / "train.bin")
    return folder


def test_all_checks_pass_on_a_fresh_model(data_dir):
    batches, meta = shakespeare(data_dir / "shakespeare_char")
    model = tiny_model()
    ok, lines = diagnostics.run_all(model, batches, meta)
    text = "\n".join(lines)
    assert ok, text
    assert "X shape: (4, 16)" in text and "torch.int64" in text and "ok: Y is X shifted by one token" in text
    assert "sample X: " in text and "ln(65) = 4.1744" in text and "all checks passed" in text
    assert all(p.grad is None for p in model.parameters())  # leaves no gradients behind


def test_ids_beyond_the_vocabulary_fail_the_data_check_without_crashing(data_dir, tmp_path):
    def shift(ids):
        ids += 10  # many ids now >= 65: the embedding lookup would raise

    batches, meta = shakespeare(corrupted_copy(data_dir, tmp_path, shift))
    ok, lines = diagnostics.run_all(tiny_model(), batches, meta)
    assert not ok
    assert any(line.startswith("FAIL: token ids outside [0, 65)") for line in lines)
    assert "model checks skipped" in "\n".join(lines)


def test_one_bad_token_anywhere_is_found(data_dir, tmp_path):
    def one(ids):
        ids[123_456] = 99

    batches, meta = shakespeare(corrupted_copy(data_dir, tmp_path, one))
    ok, lines = diagnostics.data_check(batches, meta)
    assert not ok and any("train.bin has token id 99" in line for line in lines)


def test_y_must_be_x_shifted(data_dir):
    batches, meta = shakespeare(data_dir / "shakespeare_char")

    class Unshifted:
        def train_step(self, it):
            x, y = batches.train_step(it)[0]
            return [(x, x.clone())]

    ok, lines = diagnostics.data_check(Unshifted(), meta)
    assert not ok and "FAIL: Y is not X shifted by one token" in lines


def test_initial_loss_far_from_ln_vocab_fails(data_dir):
    batches, meta = shakespeare(data_dir / "shakespeare_char")
    model = tiny_model()
    ok, lines = diagnostics.initial_loss_check(model, batches, 65)
    assert ok and abs(float(lines[4].split()[1]) - math.log(65)) < 0.5
    with torch.no_grad():
        model.lm_head.weight.mul_(200.0)  # a broken init: confident, wrong logits
    ok, lines = diagnostics.initial_loss_check(model, batches, 65)
    assert not ok and any("FAIL: the initial loss" in line for line in lines)


def test_gradient_health_warnings(data_dir):
    batches, meta = shakespeare(data_dir / "shakespeare_char")
    model = tiny_model()
    diagnostics.one_backward(model, batches)
    ok, lines = diagnostics.gradient_health(model, 7)
    assert ok and lines[0] == "gradient health (step 7):" and "total norm" in lines[1]
    for p in model.parameters():
        p.grad.mul_(1e4)
    ok, lines = diagnostics.gradient_health(model, 7)
    assert not ok and any("gradient norm is large" in line for line in lines)
    next(model.parameters()).grad[0, 0] = float("nan")
    ok, lines = diagnostics.gradient_health(model, 7)
    assert not ok and "  FAIL: gradients contain NaN or Inf" in lines
    for p in model.parameters():
        p.grad.zero_()
    ok, lines = diagnostics.gradient_health(model, 7)
    assert not ok and any("gradient norm is tiny" in line for line in lines)


# ---------------------------------------------------------------------------------------
# the `check` command, in-process (the subprocess variant is in test_cli.py)


def test_check_command_passes(tiny_values, capsys):
    assert main(["check", "train_shakespeare_char", *cli_args(tiny_values)]) == 0
    out = capsys.readouterr().out
    assert "data check" in out and "initial loss check" in out and "gradient health (step 0):" in out
    assert out.rstrip().splitlines()[-2] == "all checks passed"


def test_check_command_fails_on_a_broken_init(tiny_values, capsys, monkeypatch):
    real = GPT._init_weights

    def loud_init(self, module):
        real(self, module)
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=5.0)

    monkeypatch.setattr(GPT, "_init_weights", loud_init)
    assert main(["check", "train_shakespeare_char", *cli_args(tiny_values)]) == 1
    assert "some checks FAILED" in capsys.readouterr().out


def test_check_command_fails_on_a_corrupted_dataset(tiny_values, data_dir, tmp_path, capsys):
    def shift(ids):
        ids += 10

    folder = corrupted_copy(data_dir, tmp_path, shift)
    args = cli_args({**tiny_values, "data_dir": folder.parent})
    assert main(["check", "train_shakespeare_char", *args]) == 1
    assert "FAIL: token ids outside" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["--n_embd=31", "--dtype=float16"])
def test_check_command_refuses_impossible_values(tiny_values, capsys, bad):
    assert main(["check", "train_shakespeare_char", *cli_args(tiny_values), bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
