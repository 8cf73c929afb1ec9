"""gptcore.model: nanoGPT's parameter names, shapes, counts, init, forward and generate."""

from __future__ import annotations

import math

import pytest
import torch

import gptcore.model as model_mod
from gptcore.model import GPT, GPTConfig, causal_attention, dropout_multiplier


def nanogpt_state_dict_shapes(n_layer, n_embd, block_size, vocab_size, bias):
    """nanoGPT's model.py state_dict, written out by hand (in its order) from shared/notes/nanogpt.md."""
    C = n_embd
    out = [("transformer.wte.weight", (vocab_size, C)), ("transformer.wpe.weight", (block_size, C))]
    for i in range(n_layer):
        h = f"transformer.h.{i}."
        for name, shape in [("ln_1.weight", (C,)), ("ln_1.bias", (C,)),
                            ("attn.c_attn.weight", (3 * C, C)), ("attn.c_attn.bias", (3 * C,)),
                            ("attn.c_proj.weight", (C, C)), ("attn.c_proj.bias", (C,)),
                            ("ln_2.weight", (C,)), ("ln_2.bias", (C,)),
                            ("mlp.c_fc.weight", (4 * C, C)), ("mlp.c_fc.bias", (4 * C,)),
                            ("mlp.c_proj.weight", (C, 4 * C)), ("mlp.c_proj.bias", (C,))]:
            if bias or not name.endswith(".bias"):
                out.append((h + name, shape))
    out.append(("transformer.ln_f.weight", (C,)))
    if bias:
        out.append(("transformer.ln_f.bias", (C,)))
    out.append(("lm_head.weight", (vocab_size, C)))
    return out


@pytest.mark.parametrize("bias", [False, True])
def test_parameter_names_and_shapes_are_nanogpts(bias):
    cfg = GPTConfig(n_layer=2, n_head=2, n_embd=16, block_size=8, vocab_size=65, bias=bias)
    got = [(k, tuple(v.shape)) for k, v in GPT(cfg).state_dict().items()]
    assert got == nanogpt_state_dict_shapes(2, 16, 8, 65, bias)


def test_input_and_output_embeddings_are_tied():
    m = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=65))
    assert m.transformer.wte.weight is m.lm_head.weight


def test_shipped_config_counts_are_nanogpts():
    with torch.device("meta"):  # shapes only: no memory, no init time
        m = GPT(GPTConfig(n_layer=6, n_head=6, n_embd=384, block_size=256, vocab_size=65, dropout=0.2, bias=False))
    assert m.get_num_params(non_embedding=False) == 10_745_088
    assert m.get_num_params() == 10_745_088 - 256 * 384
    assert f"{m.get_num_params() / 1e6:.2f}M" == "10.65M"
    opt = m.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "meta")
    decay, no_decay = opt.param_groups
    assert (len(decay["params"]), sum(p.numel() for p in decay["params"])) == (26, 10_740_096)
    assert (len(no_decay["params"]), sum(p.numel() for p in no_decay["params"])) == (13, 4_992)
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.1, 0.0)
    assert decay["betas"] == (0.9, 0.99)


def test_gpt2_default_counts_are_nanogpts():
    with torch.device("meta"):  # 124M parameters without allocating them
        m = GPT(GPTConfig(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304, bias=False))
    assert f"{m.get_num_params() / 1e6:.2f}M" == "123.59M"


def test_init_follows_gpt2():
    torch.manual_seed(0)
    n_layer = 4
    m = GPT(GPTConfig(n_layer=n_layer, n_head=4, n_embd=128, block_size=64, vocab_size=65, bias=True))
    sd = m.state_dict()
    assert sd["transformer.h.0.attn.c_attn.weight"].std().item() == pytest.approx(0.02, rel=0.05)
    assert sd["transformer.wpe.weight"].std().item() == pytest.approx(0.02, rel=0.05)
    for name in ("transformer.h.1.attn.c_proj.weight", "transformer.h.1.mlp.c_proj.weight"):
        assert sd[name].std().item() == pytest.approx(0.02 / math.sqrt(2 * n_layer), rel=0.05)
    assert (sd["transformer.h.0.attn.c_attn.bias"] == 0).all() and (sd["transformer.h.0.ln_1.weight"] == 1).all()


def test_forward_shapes_and_initial_loss():
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=65))
    idx, targets = torch.randint(0, 65, (2, 4, 16))
    logits, loss = m(idx, targets)
    assert logits.shape == (4, 16, 65)
    assert loss.item() == pytest.approx(math.log(65), abs=0.1)  # about uniform at init
    logits, loss = m(idx)
    assert logits.shape == (4, 1, 65) and loss is None  # inference: the last position only
    with pytest.raises(AssertionError):
        m(torch.zeros(1, 17, dtype=torch.long))


def test_attention_is_causal():
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=65)).eval()
    a = torch.randint(0, 65, (1, 16))
    b = a.clone()
    b[0, 10:] = (b[0, 10:] + 1) % 65
    la, _ = m(a, a)
    lb, _ = m(b, b)
    assert torch.allclose(la[0, :10], lb[0, :10], atol=1e-6)
    assert not torch.allclose(la[0, 10:], lb[0, 10:])


def test_dropout_only_in_training():
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, vocab_size=65, dropout=0.5))
    idx = torch.randint(0, 65, (2, 16))
    m.eval()
    assert torch.equal(m(idx, idx)[0], m(idx, idx)[0])
    m.train()
    assert not torch.equal(m(idx, idx)[0], m(idx, idx)[0])


def test_dropout_multiplier_is_dropout():
    torch.manual_seed(0)
    m = dropout_multiplier(torch.Size([400, 1000]), 0.2, torch.float32, torch.device("cpu"))
    scale = 32768 / (32768 - round(0.2 * 32768))  # p in steps of 2^-15: 0.20001
    assert m.shape == (400, 1000) and m.unique().tolist() == pytest.approx([0.0, scale])
    assert (m == 0).float().mean().item() == pytest.approx(0.2, abs=0.003)
    assert m.mean().item() == pytest.approx(1.0, abs=0.005)  # the expectation is kept
    torch.manual_seed(0)
    assert torch.equal(m, dropout_multiplier(torch.Size([400, 1000]), 0.2, torch.float32, torch.device("cpu")))
    # each of the four 16-bit lanes of a random word drops alike (the top one has no sign bit)
    lanes = (m.view(-1)[: 4 * 100_000].view(-1, 4) == 0).float().mean(0)
    assert torch.allclose(lanes, torch.full((4,), 0.2), atol=0.01)
    assert dropout_multiplier(torch.Size([3]), 0.2, torch.bfloat16, torch.device("cpu")).dtype == torch.bfloat16


def test_cpu_training_attention_equals_sdpa(monkeypatch):
    """With dropout on a CPU, training takes gptcore's own attention; without its mask it is SDPA's."""
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=65, dropout=0.3))
    idx = torch.randint(0, 65, (3, 16))
    m.eval()
    ref, _ = m(idx, idx)
    monkeypatch.setattr(model_mod, "dropout_multiplier",
                        lambda shape, p, dtype, device: torch.ones(shape, dtype=dtype, device=device))
    m.train()
    got, _ = m(idx, idx)
    assert torch.allclose(got, ref, atol=1e-5)
    used = []
    real = model_mod.causal_attention_with_dropout
    monkeypatch.setattr(model_mod, "causal_attention_with_dropout", lambda *a: used.append(1) or real(*a))
    m(idx, idx)[1].backward()
    assert len(used) == 2 and all(p.grad is not None for p in m.parameters())
    m.eval()
    m(idx, idx)
    assert len(used) == 2  # evaluation: SDPA's fused kernel, no dropout


def test_cpu_attention_in_bfloat16_is_computed_in_float32():
    """torch's CPU flash kernel is slow in bfloat16: causal_attention runs it in float32 (under autocast too)."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 8, 4).bfloat16() for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = causal_attention(q, k, v, 0.0)
    assert got.dtype == torch.bfloat16 and torch.equal(got, ref.bfloat16())
    x = torch.randn(2, 8, 4)
    assert torch.equal(causal_attention(x, x, x, 0.0),
                       torch.nn.functional.scaled_dot_product_attention(x, x, x, is_causal=True))


def test_generate_and_crop():
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=65)).eval()
    idx = torch.zeros(2, 3, dtype=torch.long)
    out = m.generate(idx, 20, temperature=0.8, top_k=5)  # runs past block_size: the context is cropped
    assert out.shape == (2, 23) and torch.equal(out[:, :3], idx) and int(out.max()) < 65
    greedy = m.generate(idx, 10, top_k=1)
    assert torch.equal(greedy, m.generate(idx, 10, top_k=1))
    g1 = m.generate(idx, 10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(g1, m.generate(idx, 10, generator=torch.Generator().manual_seed(1)))
    m.crop_block_size(4)
    assert m.transformer.wpe.weight.shape == (4, 16) and m(torch.zeros(1, 4, dtype=torch.long))[0].shape == (1, 1, 65)


def test_mfu_is_nanogpts_formula():
    m = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=65))
    N = m.get_num_params()
    flops_per_iter = (6 * N + 12 * 2 * 2 * 16 * 16) * 16 * 8
    assert m.estimate_mfu(8, 0.5) == pytest.approx(flops_per_iter / 0.5 / 312e12)
