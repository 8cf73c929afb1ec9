"""The GPT language model, laid out like nanoGPT's model.py so state_dicts move between the two.

Read top to bottom: LayerNorm -> CausalSelfAttention -> MLP -> Block -> GPTConfig -> GPT.
Parameter names (wte, wpe, h.N.attn.c_attn, ..., lm_head) are GPT-2's and nanoGPT's on purpose:
a checkpoint written by either program loads in the other unchanged.
This file imports only torch; the config was validated before it gets here, so the asserts
below guard internal invariants, not user input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

from .record import flops_per_token


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (torch's own can't drop just the bias)."""

    def __init__(self, ndim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


def dropout_multiplier(shape: torch.Size, p: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A tensor of `shape` holding 0 with probability p and 1/(1-p) otherwise: dropout as one multiplication.

    The draw takes 16 random bits per element (four from each 64-bit word, 15 of them used), so p
    is rounded to a multiple of 2^-15 (0.2 becomes 0.20001) and the scale is exact for the rounded
    p. On a CPU this is 3x faster than torch's own dropout, whose bernoulli_ draws one number per
    element (benchmarks/train_speed.py, the 6/6/384 config); it uses torch's generator as
    nn.Dropout does, so a run stays reproducible from its seed.
    """
    n = math.prod(shape)
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_()  # uniform on [0, 2^63)
    cut = min(round(p * 32768), 32767)
    keep = (bits.view(torch.int16)[:n] & 0x7FFF) >= cut  # the top word's sign bit is always 0: use 15 bits
    return keep.view(shape).to(dtype).mul_(32768 / (32768 - cut))


class Dropout(nn.Dropout):
    """nn.Dropout (same module, same name in the model) with `dropout_multiplier`'s mask on a CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.p > 0 and x.device.type == "cpu":
            return x * dropout_multiplier(x.shape, self.p, x.dtype, x.device)
        return super().forward(x)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, p: float) -> torch.Tensor:
    """scaled_dot_product_attention with is_causal=True and dropout_p=p; (..., T, hs) each.

    On a CPU, bfloat16 inputs are computed in float32: torch's CPU flash kernel runs 3-4x slower in
    bfloat16 than in float32 at the head sizes of these models (benchmarks/README.md), and the
    matmuls around it stay in bfloat16.
    """
    if q.device.type == "cpu" and q.dtype == torch.bfloat16:
        with torch.autocast("cpu", enabled=False):  # autocast would cast the float32 inputs back
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), dropout_p=p,
                                                  is_causal=True).to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)


def causal_attention_with_dropout(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, p: float) -> torch.Tensor:
    """softmax(q k^T / sqrt(hs) + causal mask), dropped out with probability p, times v; (N, T, hs) each.

    What scaled_dot_product_attention computes with dropout_p=p and is_causal=True, for the CPU:
    there torch's fused kernel has no dropout, and its fallback upcasts bfloat16 to float32 and
    builds the mask in several passes (2.5x slower than this in bfloat16, benchmarks/README.md).
    Here the scale and the mask are folded into one baddbmm, in the compute dtype.
    """
    T, hs = q.size(-2), q.size(-1)
    mask = torch.full((T, T), float("-inf"), dtype=q.dtype, device=q.device).triu(1)
    att = F.softmax(torch.baddbmm(mask, q, k.transpose(1, 2), alpha=1.0 / math.sqrt(hs)), dim=-1)
    att = att * dropout_multiplier(att.shape, p, att.dtype, att.device)
    return torch.bmm(att, v)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        # key, query and value projections for all heads, in one matmul
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        # on the attention weights: inside SDPA's fused kernel, or causal_attention_with_dropout on a CPU
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()  # batch, sequence length, embedding width (n_embd)
        hs = C // self.n_head
        if self.training and self.dropout > 0 and x.device.type == "cpu":
            # (3, B * nh, T, hs) in one copy: the batched matmuls want each head's rows contiguous
            q, k, v = self.c_attn(x).view(B, T, 3, self.n_head, hs).permute(2, 0, 3, 1, 4).reshape(
                3, B * self.n_head, T, hs).unbind(0)
            y = causal_attention_with_dropout(q, k, v, self.dropout).view(B, self.n_head, T, hs)
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            return self.resid_dropout(self.c_proj(y))
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        # the fused kernel (flash / memory-efficient where the device has one) applies the
        # causal mask itself, so no tril buffer is kept: fewer bytes in every checkpoint
        y = causal_attention(q, k, v, self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble the heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()  # exact (erf) GELU, as nanoGPT
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


@dataclass
class GPTConfig:
    """Shape of the network; the same fields as nanoGPT's `model_args` in a checkpoint."""

    block_size: int = 1024
    vocab_size: int = 50304  # GPT-2's 50257 padded up to a multiple of 64 for efficiency
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True  # True: biases in Linears and LayerNorms, like GPT-2


class GPT(nn.Module):
    """A decoder-only transformer. `forward(idx, targets)` returns `(logits, loss)`."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        assert config.vocab_size > 0 and config.block_size > 0
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # weight tying: the input embedding and the output projection are one tensor
        # (https://paperswithcode.com/method/weight-tying); state_dict keeps both names
        self.transformer.wte.weight = self.lm_head.weight

        self.apply(self._init_weights)
        # GPT-2's scaled init: residual projections get std 0.02/sqrt(2 * n_layer), so the
        # residual stream's variance does not grow with depth
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def get_num_params(self, non_embedding: bool = True) -> int:
        """Parameter count; by default without the position embedding, as nanoGPT reports it.

        The token embedding stays in the count because it is tied to lm_head.
        """
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        b, t = idx.size()
        assert t <= self.config.block_size, f"sequence of {t} > block_size {self.config.block_size}"
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is not None:
            logits = self.lm_head(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        else:
            # at inference only the last position is needed: list index keeps the time dim
            logits = self.lm_head(x[:, [-1], :])
            loss = None
        return logits, loss

    def crop_block_size(self, block_size: int) -> None:
        """Shrink the context window of a trained model (keeps the first positions)."""
        assert block_size <= self.config.block_size
        self.config.block_size = block_size
        self.transformer.wpe.weight = nn.Parameter(self.transformer.wpe.weight[:block_size])

    def configure_optimizers(self, weight_decay: float, learning_rate: float, betas, device_type: str):
        """AdamW with weight decay on matmul weights and embeddings (dim >= 2) only.

        Biases and LayerNorm gains are not decayed. Uses the fused kernel (torch >= 2.4 has one
        for cuda and cpu; other devices get the default implementation).
        """
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        extra = {"fused": True} if device_type in ("cuda", "cpu") else {}
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, **extra)

    def flops_per_token(self) -> int:
        """Training FLOPs per token of this model (`flops_per_token` above)."""
        cfg = self.config
        return flops_per_token(self.get_num_params(), cfg.n_layer, cfg.n_embd, cfg.block_size)

    def estimate_mfu(self, fwdbwd_per_iter: float, dt: float, peak_flops: float = 312e12) -> float:
        """Model FLOPs utilisation: achieved FLOP/s over `peak_flops` (A100 bf16 by default)."""
        flops_per_iter = self.flops_per_token() * self.config.block_size * fwdbwd_per_iter
        return (flops_per_iter / dt) / peak_flops

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Extend `idx` (B, T) by sampling `max_new_tokens` tokens, one at a time (no KV cache)."""
        for _ in range(max_new_tokens):
            # beyond block_size the model has no position embedding: keep the latest window
            idx_cond = idx if idx.size(1) <= self.config.block_size else idx[:, -self.config.block_size:]
            logits, _ = self(idx_cond)
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            probs = F.softmax(logits, dim=-1)
            idx_next = torch.multinomial(probs, num_samples=1, generator=generator)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx

