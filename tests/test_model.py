"""gptcore.model: nanoGPT's parameter names, shapes, counts, init, forward and generate."""

from __future__ import annotations

import math

import pytest
import torch

from gptcore.model import GPT, GPTConfig


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
