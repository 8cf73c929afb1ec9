"""gptcore.train: the schedule, the loop, checkpoints, resume, determinism and divergence."""

from __future__ import annotations

import dataclasses
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DISK_FULL_RUN

from gptcore import record
from gptcore.errors import UserError
from gptcore.model import GPT, GPTConfig
from gptcore.train import (
    MODEL_ARGS,
    Trainer,
    autocast_context,
    get_lr,
    load_checkpoint,
    model_config,
    model_from_checkpoint,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "outputs.md"


def quiet(line: str) -> None:
    pass


def train(cfg, **run_kw):
    """A Trainer run to the end: (trainer, events)."""
    t = Trainer(cfg, say=quiet)
    return t, list(t.run(**run_kw))


def params(trainer):
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def max_diff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


# ---------------------------------------------------------------------------------------
# learning-rate schedule


def nanogpt_get_lr(it, learning_rate, warmup_iters, lr_decay_iters, min_lr):
    """nanoGPT's train.py get_lr, verbatim apart from the arguments."""
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    assert 0 <= decay_ratio <= 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)


def test_get_lr_is_nanogpts_schedule():
    from gptcore.config import load_config

    cfg, _ = load_config("train_shakespeare_char", [])  # lr 1e-3, warmup 100, decay to 1e-4 at 5000
    expected = {0: 1e-3 / 101, 50: 1e-3 * 51 / 101, 99: 1e-3 * 100 / 101, 100: 1e-3, 2550: 5.5e-4,
                5000: 1e-4, 5001: 1e-4, 10_000: 1e-4}
    for it, lr in expected.items():
        assert get_lr(it, cfg) == pytest.approx(lr, rel=1e-12), it
        assert get_lr(it, cfg) == pytest.approx(nanogpt_get_lr(it, 1e-3, 100, 5000, 1e-4), rel=1e-12)
    assert get_lr(0, cfg) > 0  # nanoGPT PR #578: no zero learning rate at the first step
    lrs = [get_lr(it, cfg) for it in range(100, 5001, 50)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))  # monotone cosine decay


def test_get_lr_constant_without_decay(tiny_config):
    cfg = tiny_config(decay_lr=False, learning_rate=3e-3, warmup_iters=100)
    assert {get_lr(it, cfg) for it in (0, 1, 99, 100, 5000, 10**6)} == {3e-3}


def test_get_lr_degenerate_schedules(tiny_config):
    cfg = tiny_config(warmup_iters=0, lr_decay_iters=0, learning_rate=1e-3, min_lr=1e-4)
    assert get_lr(0, cfg) == 1e-4  # nanoGPT divides by zero here
    cfg = tiny_config(warmup_iters=10, lr_decay_iters=5)
    assert get_lr(3, cfg) == pytest.approx(1e-3 * 4 / 11) and get_lr(10, cfg) == cfg.min_lr


# ---------------------------------------------------------------------------------------
# the loop and what it writes


def test_run_steps_evals_and_metrics(tiny_config):
    cfg = tiny_config(max_iters=4, eval_interval=2, always_save_checkpoint=True)
    t, ev = train(cfg)
    kinds = [(m["event"], m["iter"]) for m in ev]
    assert kinds == [("eval", 0), ("iter", 0), ("iter", 1), ("eval", 2), ("iter", 2), ("iter", 3), ("eval", 4),
                     ("end", 4)]
    assert ev[-1]["status"] == "completed"
    assert t.iter_num == 4
    for m in ev:
        if m["event"] == "iter":
            assert m["lr"] == get_lr(m["iter"], cfg) and math.isfinite(m["loss"])
            # one clock: the loss of update N is measured on the weights after N updates, like `step N`
            assert m["tokens"] == m["iter"] * 4 * 16 and m["tokens_per_s"] > 0
        if m["event"] == "eval":
            assert m["gap"] == pytest.approx(m["val_loss"] - m["train_loss"])
            assert m["tokens"] == m["iter"] * 64 and m["saved"] == (m["iter"] > 0)
    assert abs(ev[0]["val_loss"] - math.log(65)) < 0.1  # an untrained model guesses uniformly
    evals = [m for m in ev if m["event"] == "eval"]
    assert evals[0]["train_time_s"] == 0 and 0 < evals[1]["train_time_s"] < evals[2]["train_time_s"]
    assert all(m["train_time_s"] <= m["elapsed_s"] for m in evals)
    assert evals[-1]["train_time_s"] == ev[-1]["train_time_s"]  # the last evaluation comes after the last step
    assert t.optimizer.param_groups[0]["lr"] == get_lr(4, cfg)  # set by the last evaluation's iteration


def _documented_keys() -> dict[str, set[str]]:
    rows = {}
    for line in DOCS.read_text().splitlines():
        m = re.match(r"\| `(eval|iter|end)` \| (.*) \|$", line)
        if m:
            rows[m.group(1)] = set(re.findall(r"`(\w+)`", m.group(2))) | {"event"}
    assert set(rows) == {"eval", "iter", "end"}, "docs/outputs.md lost its metrics table"
    return rows


def test_metrics_keys_are_the_documented_ones(tiny_config, monkeypatch):
    keys = _documented_keys()
    _, ev = train(tiny_config(max_iters=2))
    for m in ev:
        assert set(m) == keys[m["event"]], m["event"]
    _, ev = train(_nan_at(monkeypatch, tiny_config(max_iters=3), step=1))
    assert ev[-1]["status"] == "diverged" and set(ev[-1]) == keys["end"]
    # the record's own definition (gptcore/record.py) is the documented one
    for kind, fields_ in ((record.EVAL, record.EVAL_FIELDS), (record.STEP, record.STEP_FIELDS),
                          (record.END, record.END_FIELDS)):
        assert set(fields_) | {"event"} == keys[kind], kind


def test_decay_lr_false_keeps_the_rate(tiny_config):
    _, ev = train(tiny_config(decay_lr=False, learning_rate=2e-3, max_iters=3))
    assert {m["lr"] for m in ev if m["event"] in ("iter", "eval")} == {2e-3}


def test_checkpoint_has_nanogpts_keys_and_loads_weights_only(tiny_config):
    cfg = tiny_config(max_iters=2, eval_interval=2, always_save_checkpoint=True)
    t, _ = train(cfg)
    ckpt = torch.load(Path(cfg.out_dir) / "ckpt.pt", map_location="cpu", weights_only=True)
    assert {"model", "optimizer", "model_args", "iter_num", "best_val_loss", "config"} <= set(ckpt)
    assert set(ckpt["model_args"]) == set(MODEL_ARGS) == {"n_layer", "n_head", "n_embd", "block_size", "bias",
                                                          "vocab_size", "dropout"}
    assert ckpt["model_args"]["vocab_size"] == 65 and ckpt["iter_num"] == 2
    nanogpt_globals = {"out_dir", "eval_interval", "log_interval", "eval_iters", "eval_only", "always_save_checkpoint",
                       "init_from", "wandb_log", "wandb_project", "wandb_run_name", "dataset",
                       "gradient_accumulation_steps", "batch_size", "block_size", "n_layer", "n_head", "n_embd",
                       "dropout", "bias", "learning_rate", "max_iters", "weight_decay", "beta1", "beta2", "grad_clip",
                       "decay_lr", "warmup_iters", "lr_decay_iters", "min_lr", "backend", "device", "dtype",
                       "compile"}
    assert nanogpt_globals <= set(ckpt["config"])
    assert not any(k.startswith("_orig_mod.") for k in ckpt["model"])
    m = model_from_checkpoint(load_checkpoint(Path(cfg.out_dir) / "ckpt.pt"))
    assert max_diff(params(t), m.state_dict()) == 0
    t.save(str(Path(cfg.out_dir) / "copy.pt"))  # a str path works too
    assert (Path(cfg.out_dir) / "copy.pt").is_file()


def test_a_nanogpt_style_checkpoint_loads_and_resumes(tiny_config, tmp_path):
    cfg = tiny_config(max_iters=2, eval_interval=2, always_save_checkpoint=True)
    t, _ = train(cfg)
    ours = torch.load(Path(cfg.out_dir) / "ckpt.pt", weights_only=True)
    # as nanoGPT writes it with compile=True on a torch without flash attention
    state = {"_orig_mod." + k: v for k, v in ours["model"].items()}
    state["_orig_mod.transformer.h.0.attn.bias"] = torch.tril(torch.ones(16, 16)).view(1, 1, 16, 16)
    theirs = {"model": state, "optimizer": ours["optimizer"], "model_args": ours["model_args"], "iter_num": 2,
              "best_val_loss": torch.tensor(ours["best_val_loss"]), "config": ours["config"]}
    path = tmp_path / "nanogpt" / "ckpt.pt"
    path.parent.mkdir()
    torch.save(theirs, path)
    m = model_from_checkpoint(load_checkpoint(path))
    assert max_diff(params(t), m.state_dict()) == 0
    resumed = Trainer(tiny_config(max_iters=3, out_dir=str(path.parent), init_from="resume"), say=quiet)
    assert resumed.iter_num == 2 and resumed.best_val_loss == pytest.approx(ours["best_val_loss"])
    assert [m["iter"] for m in resumed.run() if m["event"] == "iter"] == [2]


def test_a_damaged_checkpoint_is_a_user_error(tiny_config, tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "ckpt.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a loadable checkpoint"):
        Trainer(tiny_config(out_dir=str(tmp_path / "bad"), init_from="resume"), say=quiet)
    with pytest.raises(UserError, match="no checkpoint"):
        Trainer(tiny_config(out_dir=str(tmp_path / "none"), init_from="resume"), say=quiet)


@pytest.mark.parametrize("change, needle", [
    (lambda c: c["model_args"].update(n_head=3), "n_embd=16 is not divisible by n_head=3"),
    (lambda c: c["model_args"].update(bias="no"), "model_args['bias'] is 'no'"),
    (lambda c: c["model_args"].update(block_size=0), "model_args['block_size'] is 0"),
    (lambda c: c.update(model_args=[1, 2]), "model_args is a list"),
    (lambda c: c.update(model="weights"), "model is a str"),
    (lambda c: c["model"].pop("lm_head.weight"), "the weights lack lm_head.weight"),
    (lambda c: c["model"].update({"transformer.h.1.ln_1.weight": torch.ones(16)}), "transformer.h.1.ln_1.weight"),
    (lambda c: c["model"].update({"transformer.wpe.weight": [0.0] * 16}), "not a dict of named tensors"),
    (lambda c: c.update(iter_num="three"), "iter_num"),
    (lambda c: c.update(iter_num=-1), "iter_num is -1"),
])
def test_load_checkpoint_checks_what_it_loads(tiny_config, tmp_path, change, needle):
    cfg = tiny_config(max_iters=2, always_save_checkpoint=True)
    train(cfg)
    ckpt = torch.load(Path(cfg.out_dir) / "ckpt.pt", weights_only=True)
    change(ckpt)
    torch.save(ckpt, tmp_path / "ckpt.pt")
    with pytest.raises(UserError) as e:
        load_checkpoint(tmp_path / "ckpt.pt")
    assert needle in str(e.value) and str(tmp_path / "ckpt.pt") in str(e.value) and "\n" not in str(e.value)
    assert "--init_from=scratch" in str(e.value)


def test_checkpoint_on_improvement_or_always(tiny_config, monkeypatch):
    scripted = iter([4.0, 3.0, 3.5, 2.0, 4.0, 3.0, 3.5, 2.0])
    monkeypatch.setattr(Trainer, "estimate_loss", lambda self: {"train": 1.0, "val": next(scripted)})
    saves = []
    monkeypatch.setattr(Trainer, "save", lambda self, path: saves.append(self.iter_num))
    for always, saved, best in ((False, [False, True, False, True], [4.0, 3.0, 3.0, 2.0]),
                                (True, [False, True, True, True], [4.0, 3.0, 3.0, 2.0])):
        saves.clear()
        _, ev = train(tiny_config(max_iters=3, eval_interval=1, always_save_checkpoint=always))
        evals = [m for m in ev if m["event"] == "eval"]
        assert [m["saved"] for m in evals] == saved  # never at step 0, as nanoGPT
        assert [m["best_val_loss"] for m in evals] == best
        assert saves == [m["iter"] for m in evals if m["saved"]]


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint(tiny_config, tmp_path, small_tmpfs):
    probe = tiny_config(**{**DISK_FULL_RUN, "max_iters": 2, "out_dir": str(tmp_path / "probe")})
    train(probe)
    size = (Path(probe.out_dir) / "ckpt.pt").stat().st_size
    assert size > 1_000_000
    disk = small_tmpfs(size * 3 // 2)
    out = disk / "out"
    t = Trainer(tiny_config(**{**DISK_FULL_RUN, "out_dir": str(out)}), say=quiet)
    events = []
    with pytest.raises(UserError) as e:
        for m in t.run():
            events.append(m)
    msg = str(e.value)
    assert msg.startswith(f"the disk is full: cannot write {out / 'ckpt.pt'} (No space left on device)"), msg
    assert "the checkpoint of the last save is kept" in msg and msg.endswith("free some space or choose another "
                                                                             "--out_dir")
    assert [(m["iter"], m["saved"]) for m in events if m["event"] == "eval"] == [(0, False), (2, True)]
    assert sorted(p.name for p in out.iterdir()) == ["ckpt.pt"]  # the temporary file is gone
    ckpt = load_checkpoint(out / "ckpt.pt")
    assert ckpt["iter_num"] == 2
    assert max_diff(ckpt["model"], load_checkpoint(Path(probe.out_dir) / "ckpt.pt")["model"]) == 0
    # any other failed write is one line too: here the folder to write in is a file
    with pytest.raises(UserError, match=r"cannot write .*ckpt.pt/x.pt \(File exists\).*--out_dir"):
        t.save(out / "ckpt.pt" / "x.pt")
    assert load_checkpoint(out / "ckpt.pt")["iter_num"] == 2


@pytest.mark.parametrize("error", [KeyboardInterrupt, lambda: OSError(28, "No space left on device")])
def test_a_write_failing_inside_torch_save_is_reported_as_itself(tiny_config, monkeypatch, error):
    """torch.save's zip writer, finishing the file after a failed write, raises a RuntimeError of
    its own ("unexpected pos"); the save reports the error behind it, and keeps the old file."""
    cfg = tiny_config(max_iters=2, always_save_checkpoint=True)
    t, _ = train(cfg)
    path = Path(cfg.out_dir) / "ckpt.pt"
    before = path.read_bytes()
    real = torch.save

    class FailsAtTheThirdWrite:  # as a SIGINT's handler (or a full disk) raising between two writes
        def __init__(self, f):
            self.f, self.writes = f, 0

        def write(self, data):
            self.writes += 1
            if self.writes == 3:
                raise error()
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(torch, "save", lambda obj, f: real(obj, FailsAtTheThirdWrite(f)))
    with pytest.raises(KeyboardInterrupt if error is KeyboardInterrupt else UserError) as e:
        t.save(path)
    if error is not KeyboardInterrupt:
        assert str(e.value).startswith("the disk is full")
    assert path.read_bytes() == before and not path.with_name("ckpt.pt.tmp").exists()


def test_save_best_false_leaves_saving_to_the_caller(tiny_config):
    cfg = tiny_config(max_iters=2, eval_interval=1, always_save_checkpoint=True)
    train(cfg, save_best=False)
    assert not (Path(cfg.out_dir) / "ckpt.pt").exists()


def test_gradient_clipping(tiny_config, monkeypatch):
    calls = []
    real = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda p, c: calls.append(c) or real(p, c))
    train(tiny_config(max_iters=2, grad_clip=0.5))
    assert calls == [0.5, 0.5]
    calls.clear()
    train(tiny_config(max_iters=2, grad_clip=0.0))  # 0 disables clipping, as nanoGPT
    assert calls == []


def test_model_config_is_the_runs_network(tiny_config):
    cfg = tiny_config(n_layer=2, n_head=4, n_embd=32, block_size=8, bias=True, dropout=0.1)
    assert model_config(cfg, 70) == GPTConfig(block_size=8, vocab_size=70, n_layer=2, n_head=4, n_embd=32,
                                              dropout=0.1, bias=True)
    assert set(MODEL_ARGS) == {f.name for f in dataclasses.fields(GPTConfig)}  # a checkpoint's model_args
    t = Trainer(cfg, say=quiet)
    assert t.model.config == model_config(cfg, 65)


def test_autocast_context(tiny_config):
    with autocast_context("cpu", "float32"):
        assert not torch.is_autocast_enabled("cpu")
    ctx = autocast_context("cpu", "bfloat16")
    for _ in range(2):  # entered once per forward pass, as the trainer does
        with ctx:
            assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
        assert not torch.is_autocast_enabled("cpu")
    with Trainer(tiny_config(dtype="bfloat16"), say=quiet).autocast:  # the trainer's own is the same
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_bfloat16_autocast_on_cpu(tiny_config):
    t, ev = train(tiny_config(dtype="bfloat16", max_iters=2))
    assert t.dtype == "bfloat16"
    _, ref = train(tiny_config(dtype="float32", max_iters=2))
    losses = [m["val_loss"] for m in ev if m["event"] == "eval"]
    ref_losses = [m["val_loss"] for m in ref if m["event"] == "eval"]
    assert all(math.isfinite(x) for x in losses)
    assert losses != ref_losses and losses == pytest.approx(ref_losses, abs=0.05)  # autocast is really on
    assert all(p.dtype == torch.float32 for p in t.model.parameters())  # weights stay fp32


@pytest.mark.parametrize("native", [True, False])
def test_auto_dtype_on_cpu_is_float32_until_the_trainer_measures(tiny_config, monkeypatch, native):
    import gptcore.device as device_mod
    import gptcore.dtype as dtype_mod

    assert isinstance(device_mod.cpu_has_native_bf16(), bool)
    monkeypatch.setattr(dtype_mod, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(dtype_mod, "_MEMO", {})
    # resolve_device alone (sampling, the checks) does not measure: float32
    assert device_mod.resolve_device(tiny_config(device="cpu", dtype="auto"))[2] == "float32"
    # an explicit choice is kept either way: bf16 still works (slowly) where it is emulated
    assert device_mod.resolve_device(tiny_config(device="cpu", dtype="bfloat16"))[2] == "bfloat16"
    # the trainer probes its network where bf16 is native (tests/test_dtype.py), and only there
    probed = []
    monkeypatch.setattr(dtype_mod, "probe_cpu", lambda shape, threads: probed.append(threads) or
                        {"float32_s": 3.0, "bfloat16_s": 1.0, "steps": 3, "probe_s": 0.1})
    t = Trainer(tiny_config(device="cpu", dtype="auto"), say=quiet)
    assert (t.dtype, probed) == (("bfloat16", [torch.get_num_threads()]) if native else ("float32", []))


def test_float16_on_cpu_is_refused(tiny_config):
    with pytest.raises(UserError, match=r"float16.*--dtype=bfloat16"):
        Trainer(tiny_config(dtype="float16"), say=quiet)
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="--device=cpu"):
            Trainer(tiny_config(device="cuda"), say=quiet)


def test_eval_only(tiny_config):
    cfg = tiny_config(max_iters=2, always_save_checkpoint=True)
    t, _ = train(cfg)
    before = params(t)
    t2, ev = train(tiny_config(max_iters=10, eval_only=True, init_from="resume"))
    assert [m["event"] for m in ev] == ["eval", "end"] and t2.iter_num == 2  # no training after a resume either
    assert max_diff(before, params(t2)) == 0


# ---------------------------------------------------------------------------------------
# determinism


def test_gradient_accumulation_equals_the_large_batch(tiny_config):
    """THE test: batch 8 x accumulation 1 and batch 2 x accumulation 4 make the same updates."""
    # the shipped learning rate; Adam turns float rounding in near-zero gradients into differences
    # proportional to it (1.6e-6 here, 1.6e-5 at learning_rate=1e-2)
    common = dict(max_iters=3, eval_interval=1000, dropout=0.0, learning_rate=1e-3, warmup_iters=0, seed=7)
    t0 = Trainer(tiny_config(**common), say=quiet)
    init = params(t0)
    big, ev_big = train(tiny_config(batch_size=8, gradient_accumulation_steps=1, **common))
    acc, ev_acc = train(tiny_config(batch_size=2, gradient_accumulation_steps=4, **common))
    assert big.iter_num == acc.iter_num == 3
    assert max_diff(params(big), params(acc)) < 1e-5
    assert max_diff(params(big), init) > 1e-3  # they did move (about 3 x learning_rate)
    # the logged loss is the step's mean over its micro-batches
    loss = [[m["loss"] for m in ev if m["event"] == "iter"] for ev in (ev_big, ev_acc)]
    assert loss[0] == pytest.approx(loss[1], abs=1e-5)
    # and the comparison can fail: other examples give other parameters
    other, _ = train(tiny_config(batch_size=2, gradient_accumulation_steps=4, **{**common, "seed": 8}))
    assert max_diff(params(big), params(other)) > 1e-4


def test_same_seed_same_run(tiny_config):
    runs = [train(tiny_config(max_iters=3, eval_interval=1, dropout=0.1, seed=s))[1] for s in (5, 5, 6)]
    evals = [[(m["train_loss"], m["val_loss"]) for m in ev if m["event"] == "eval"] for ev in runs]
    assert evals[0] == evals[1]
    assert evals[0] != evals[2]


def test_trials_with_other_seeds_are_evaluated_on_the_same_text(tiny_config):
    runs = [Trainer(tiny_config(seed=s, eval_seed=e), say=quiet) for s, e in ((5, 11), (6, 11), (5, 12))]
    windows = [[x for x, _ in t.batches.eval_batches("val", t.cfg.eval_iters)] for t in runs]
    assert all(torch.equal(p, q) for p, q in zip(windows[0], windows[1]))
    assert not all(torch.equal(p, q) for p, q in zip(windows[0], windows[2]))
    assert not torch.equal(runs[0].batches.train_step(0)[0][0], runs[1].batches.train_step(0)[0][0])
    assert torch.equal(runs[0].batches.train_step(0)[0][0], runs[2].batches.train_step(0)[0][0])
    # what the evaluation measures differs only by the model: the same model scores the same
    runs[1].model.load_state_dict(runs[0].model.state_dict())
    assert runs[0].estimate_loss() == runs[1].estimate_loss() != runs[2].estimate_loss()


def test_evaluation_uses_fixed_batches(tiny_config):
    t = Trainer(tiny_config(), say=quiet)
    assert t.estimate_loss() == t.estimate_loss()


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_resume_continues_exactly(tiny_config, tmp_path, dropout):
    common = dict(max_iters=6, eval_interval=3, always_save_checkpoint=True, dropout=dropout,
                  learning_rate=1e-2, warmup_iters=1, lr_decay_iters=6)
    full, full_ev = train(tiny_config(out_dir=str(tmp_path / "full"), **common))

    part = Trainer(tiny_config(out_dir=str(tmp_path / "part"), **common), say=quiet)
    for m in part.run():
        if m["event"] == "eval" and m["iter"] == 3:
            break  # interrupted right after the checkpoint of step 3
    assert torch.load(tmp_path / "part" / "ckpt.pt", weights_only=True)["iter_num"] == 3
    resumed, ev = train(tiny_config(out_dir=str(tmp_path / "part"), init_from="resume", **common))
    assert [m["iter"] for m in ev if m["event"] == "iter"] == [3, 4, 5]
    assert max_diff(params(full), params(resumed)) < 1e-6
    last = [(m["train_loss"], m["val_loss"]) for m in full_ev if m["event"] == "eval"][-1]
    assert [(m["train_loss"], m["val_loss"]) for m in ev if m["event"] == "eval"][-1] == pytest.approx(last, abs=1e-6)


def test_resume_takes_the_checkpoints_shape(tiny_config):
    train(tiny_config(max_iters=2, always_save_checkpoint=True))
    cfg = tiny_config(max_iters=3, init_from="resume", block_size=64, n_layer=2, n_embd=32)
    before = dataclasses.asdict(cfg)
    t, ev = train(cfg)
    assert (t.cfg.block_size, t.cfg.n_layer, t.cfg.n_embd) == (16, 1, 16) and t.iter_num == 3
    assert all(x.shape[1] == 16 for x, _ in t.batches.train_step(0))
    # the trainer works on a copy: the caller's config is still what the caller wrote
    assert t.cfg is not cfg and dataclasses.asdict(cfg) == before
    assert (cfg.block_size, cfg.n_layer, cfg.n_embd) == (64, 2, 32)
    assert torch.load(Path(cfg.out_dir) / "ckpt.pt", weights_only=True)["config"]["n_layer"] == 1


def test_resume_with_another_vocabulary_is_refused(tiny_config, tmp_path):
    from gptcore.data import prepare

    train(tiny_config(max_iters=2, always_save_checkpoint=True))
    src = tmp_path / "abc.txt"
    src.write_text("abcab cabc\n" * 300)
    prepare("abc", tmp_path / "d2", input_path=str(src), block_size=16, quiet=True)
    with pytest.raises(UserError, match="vocabulary"):
        Trainer(tiny_config(init_from="resume", dataset="abc", data_dir=str(tmp_path / "d2")), say=quiet)


def test_a_dataset_with_ids_beyond_its_vocabulary_is_refused(tiny_config, data_dir, tmp_path):
    bad = tmp_path / "d" / "shakespeare_char"
    shutil.copytree(data_dir / "shakespeare_char", bad)
    ids = np.fromfile(bad / "train.bin", dtype=np.uint16)
    ids[1000] = 70
    ids.tofile(bad / "train.bin")
    with pytest.raises(UserError, match="token id 70"):
        Trainer(tiny_config(data_dir=str(tmp_path / "d")), say=quiet)


def test_train_tokens_limits_the_training_text(tiny_config):
    t = Trainer(tiny_config(train_tokens=500), say=quiet)
    assert len(t.batches.splits["train"].tokens) == 500
    with pytest.raises(UserError, match="train_tokens"):
        Trainer(tiny_config(train_tokens=10**7), say=quiet)


# ---------------------------------------------------------------------------------------
# divergence and debug


def _nan_at(monkeypatch, cfg, step):
    real = Trainer._forward_backward

    def forward_backward(self, x, y):
        loss = real(self, x, y)
        return loss * float("nan") if self.iter_num == step else loss

    monkeypatch.setattr(Trainer, "_forward_backward", forward_backward)
    return cfg


def test_a_nan_loss_ends_the_run_as_diverged(tiny_config, monkeypatch):
    cfg = _nan_at(monkeypatch, tiny_config(max_iters=6, eval_interval=2, always_save_checkpoint=True), step=3)
    t, ev = train(cfg)
    assert [(m["event"], m["iter"]) for m in ev][-3:] == [("eval", 2), ("iter", 2), ("end", 3)]
    assert ev[-1]["status"] == "diverged" and math.isnan(ev[-1]["loss"])
    assert torch.load(Path(cfg.out_dir) / "ckpt.pt", weights_only=True)["iter_num"] == 2  # the last good one


def test_an_exploding_learning_rate_diverges(tiny_config):
    _, ev = train(tiny_config(max_iters=20, learning_rate=1e6, grad_clip=0.0, warmup_iters=0, decay_lr=False))
    assert ev[-1]["status"] == "diverged" and not math.isfinite(ev[-1]["loss"])


def test_debug_runs_the_diagnostics_inside_training(tiny_config):
    lines = []
    cfg = tiny_config(debug=True, max_iters=101, eval_interval=1000, eval_iters=3, log_interval=1000)
    t = Trainer(cfg, say=lines.append)
    ev = list(t.run())
    text = "\n".join(lines)
    assert "data check" in text and "initial loss check" in text and "all checks passed" in text
    assert "gradient health (step 0):" in text and "gradient health (step 100):" in text
    assert "gradient health (step 1):" not in text
    # the diagnostics' one-batch look does not change what the evaluation measures
    _, plain = train(tiny_config(max_iters=0, eval_iters=3))
    assert ev[0]["val_loss"] == plain[0]["val_loss"] and ev[0]["train_loss"] == plain[0]["train_loss"]


def test_trainer_reports_nanogpts_lines(tiny_config):
    lines = []
    Trainer(tiny_config(), say=lines.append)
    assert "Initializing a new model from scratch" in lines
    assert any(re.fullmatch(r"number of parameters: [\d.]+M", s) for s in lines)
    assert any(s.startswith("num decayed parameter tensors: 6, with ") for s in lines)
    assert "tokens per iteration will be: 64" in lines


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bfloat16_training(tiny_config):
    t, ev = train(tiny_config(device="cuda", dtype="auto", max_iters=10, eval_interval=5, n_layer=2, n_embd=32))
    assert (t.device_type, t.dtype) == ("cuda", "bfloat16" if torch.cuda.is_bf16_supported() else "float16")
    evals = [m for m in ev if m["event"] == "eval"]
    assert ev[-1]["status"] == "completed" and all(math.isfinite(m["val_loss"]) for m in evals)
    assert evals[-1]["train_loss"] < evals[0]["train_loss"] and evals[-1]["mem_mb"] > 0
    assert isinstance(t.model, GPT) and next(t.model.parameters()).is_cuda
