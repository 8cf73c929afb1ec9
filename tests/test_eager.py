"""gptcore.eager: an eager run's optimizer steps and shapes-only networks, without importing torch._dynamo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from gptcore import eager
from gptcore.eager import shapes_only
from gptcore.model import GPT, GPTConfig

ROOT = Path(__file__).resolve().parents[1]


def _pair():
    """Two identical models with their AdamW, and a batch."""
    torch.manual_seed(0)
    shape = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=65, dropout=0.0)
    a, b = GPT(shape), GPT(shape)
    b.load_state_dict(a.state_dict())
    x, y = (torch.randint(65, (4, 16)) for _ in range(2))
    return [(m, m.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")) for m in (a, b)], (x, y)


def _train(model, opt, batch, stepper, steps=5):
    for _ in range(steps):
        _, loss = model(*batch)
        loss.backward()
        stepper(opt)
        opt.zero_grad(set_to_none=True)


def test_step_updates_exactly_as_torch_does():
    ((a, opt_a), (b, opt_b)), batch = _pair()
    _train(a, opt_a, batch, eager.optimizer_step)
    _train(b, opt_b, batch, lambda o: o.step())
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    sa, sb = opt_a.state_dict()["state"], opt_b.state_dict()["state"]
    assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])
    assert eager._update(opt_a) is not None  # the direct update was used (torch 2.13's wrappers)


def test_a_registered_hook_gets_torch_s_own_step():
    ((model, opt), _), batch = _pair()
    calls = []
    handle = opt.register_step_post_hook(lambda *args: calls.append(1))
    try:
        assert eager._update(opt) is None
        _train(model, opt, batch, eager.optimizer_step, steps=2)
    finally:
        handle.remove()
    assert calls == [1, 1]


def test_shapes_only_is_the_network_without_its_values():
    shape = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=65, bias=True)
    meta, real = shapes_only(shape).state_dict(), GPT(shape).state_dict()
    assert {k: v.shape for k, v in meta.items()} == {k: v.shape for k, v in real.items()}
    assert all(v.is_meta for v in meta.values())


def test_an_eager_run_never_imports_the_compiler(tiny_values):
    """A fresh process trains (the dtype its probe picks on a CPU with native bfloat16),
    checkpoints and resumes (the optimizer's state_dict and load_state_dict, the checkpoint's
    check on the meta device) with torch._dynamo never imported: the second or so every start saves."""
    code = """
import json, sys
from gptcore.config import build_config
from gptcore.train import Trainer
values = json.loads(sys.argv[1])
for extra in ({}, {"init_from": "resume", "max_iters": values["max_iters"] + 2}):
    trainer = Trainer(build_config({**values, **extra}), say=lambda line: None)
    events = list(trainer.run())
print(json.dumps({"dynamo": "torch._dynamo" in sys.modules, "iter": events[-1]["iter"]}))
"""
    values = {**tiny_values, "dtype": "auto", "always_save_checkpoint": True}
    out = subprocess.run([sys.executable, "-c", code, json.dumps(values)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"dynamo": False, "iter": tiny_values["max_iters"] + 2}
