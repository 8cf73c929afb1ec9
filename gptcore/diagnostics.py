"""The tutorial's three checks (chapter section 4): data, gradient health, initial loss.

Each returns `(ok, lines)`: whether the check passed, and the report lines to print.
`python -m gptcore check CONFIG` runs all three and exits non-zero when one fails;
`--debug=True` runs them at the start of training and gradient health every 100 iterations.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from pathlib import Path

import torch

from .data import prepare_command

RULE = "=" * 60

# the tutorial's thresholds for gradient warnings
GRAD_NORM_HIGH = 10.0
GRAD_NORM_LOW = 1e-3
GRAD_MAX_HIGH = 100.0
# the tutorial accepts an initial loss within 0.5 of ln(vocab_size)
INITIAL_LOSS_TOLERANCE = 0.5
# the default `autocast`: float32, no autocast (a nullcontext can be entered any number of times)
NO_AUTOCAST = nullcontext()


def data_check(batches, meta: dict) -> tuple[bool, list[str]]:
    """Shapes, dtypes and ranges of a training batch, a decoded sample, and Y == X shifted by one."""
    x, y = batches.train_step(0)[0]
    vocab = meta["vocab_size"]
    lines = [RULE, "data check", RULE,
             f"X shape: {tuple(x.shape)}  Y shape: {tuple(y.shape)}",
             f"X dtype: {x.dtype}  Y dtype: {y.dtype}  device: {x.device}",
             f"X range: [{x.min().item()}, {x.max().item()}]  Y range: [{y.min().item()}, {y.max().item()}]"]
    ok = True
    if x.shape != y.shape or x.dtype != torch.int64:
        ok = False
        lines.append("FAIL: X and Y must be int64 tensors of one shape")
    if x.min().item() < 0 or max(x.max().item(), y.max().item()) >= vocab:
        ok = False
        lines.append(f"FAIL: token ids outside [0, {vocab}): the dataset and meta.pkl do not match")
    folder = getattr(batches, "folder", None)
    for name, split in getattr(batches, "splits", {}).items():  # every token, not just one batch
        top = int(split.tokens.max())
        lines.append(f"{name}.bin: {len(split.tokens):,} tokens, largest id {top}")
        if top >= vocab:
            ok = False
            where = f"{folder / name}.bin" if folder else f"{name}.bin"
            fix = f": `{prepare_command(Path(folder))}`" if folder else ""
            lines.append(f"FAIL: {where} has token id {top} >= vocab_size {vocab}: prepare the dataset again{fix}")
    itos = meta.get("itos")
    if itos:
        xs = "".join(itos.get(int(i), "\ufffd") for i in x[0].tolist())  # an unknown id shows as U+FFFD
        ys = "".join(itos.get(int(i), "\ufffd") for i in y[0].tolist())
        lines += [f"sample X: {xs[:80]!r}", f"sample Y: {ys[:80]!r}"]
    if torch.equal(x[:, 1:], y[:, :-1]):
        lines.append("ok: Y is X shifted by one token")
    else:
        ok = False
        lines.append("FAIL: Y is not X shifted by one token")
    return ok, lines


def gradient_health(model: torch.nn.Module, step: int) -> tuple[bool, list[str]]:
    """Total gradient norm and the largest/smallest gradient, with the tutorial's warnings.

    Call after backward (and after unscaling, with fp16).
    """
    norms, gmax, gmin = [], 0.0, math.inf
    finite = True
    for p in model.parameters():
        if p.grad is None:
            continue
        g = p.grad.detach().float()
        finite = finite and bool(torch.isfinite(g).all())
        norms.append(g.norm(2))
        a = g.abs()
        gmax = max(gmax, a.max().item())
        gmin = min(gmin, a.min().item())
    total = torch.stack(norms).norm(2).item() if norms else 0.0
    lines = [f"gradient health (step {step}):",
             f"  total norm: {total:.4f}", f"  largest |grad|: {gmax:.6f}", f"  smallest |grad|: {gmin:.6f}"]
    ok = True
    if not finite:
        ok = False
        lines.append("  FAIL: gradients contain NaN or Inf")
    if total > GRAD_NORM_HIGH:
        ok = False
        lines.append("  warning: the gradient norm is large: lower the learning rate or enable grad_clip")
    if total < GRAD_NORM_LOW:
        ok = False
        lines.append("  warning: the gradient norm is tiny: the learning rate may need to be larger")
    if gmax > GRAD_MAX_HIGH:
        ok = False
        lines.append("  warning: some gradients are very large and may lead to NaN")
    return ok, lines


@torch.no_grad()
def initial_loss_check(model, batches, vocab_size: int, autocast=NO_AUTOCAST) -> tuple[bool, list[str]]:
    """The untrained loss should be close to ln(vocab_size), and logits finite."""
    was_training = model.training
    model.eval()
    x, y = next(iter(batches.eval_batches("val", 1)))
    with autocast:
        logits, loss = model(x, y)
    model.train(was_training)
    expected = math.log(vocab_size)
    lossf = loss.item()
    diff = abs(lossf - expected)
    lines = [RULE, "initial loss check", RULE, f"logits shape: {tuple(logits.shape)}",
             f"loss: {lossf:.4f}  random-guess loss ln({vocab_size}) = {expected:.4f}  difference {diff:.4f}",
             f"logits range: [{logits.min().item():.2f}, {logits.max().item():.2f}]"]
    ok = True
    if not torch.isfinite(logits).all():
        ok = False
        lines.append("FAIL: logits contain NaN or Inf")
    if not math.isfinite(lossf) or diff >= INITIAL_LOSS_TOLERANCE:
        ok = False
        lines.append(f"FAIL: the initial loss is more than {INITIAL_LOSS_TOLERANCE} away from ln(vocab_size)")
    else:
        lines.append("ok: the initial loss is what random guessing gives")
    return ok, lines


def one_backward(model, batches, autocast=NO_AUTOCAST) -> None:
    """Gradients of one training micro-batch, for `gradient_health` outside the loop."""
    model.zero_grad(set_to_none=True)
    x, y = batches.train_step(0)[0]
    with autocast:
        _, loss = model(x, y)
    loss.backward()


def run_all(model, batches, meta: dict, autocast=NO_AUTOCAST) -> tuple[bool, list[str]]:
    """All three checks on an untrained (or loaded) model; leaves no gradients behind.

    When the data check fails the model checks are skipped: token ids outside the vocabulary
    would only crash the embedding lookup.
    """
    ok1, l1 = data_check(batches, meta)
    if not ok1:
        return False, l1 + [RULE, "data check FAILED: model checks skipped", RULE]
    ok2, l2 = initial_loss_check(model, batches, meta["vocab_size"], autocast)
    one_backward(model, batches, autocast)
    ok3, l3 = gradient_health(model, 0)
    model.zero_grad(set_to_none=True)
    verdict = "all checks passed" if ok1 and ok2 and ok3 else "some checks FAILED"
    return ok1 and ok2 and ok3, l1 + l2 + [RULE] + l3 + [RULE, verdict, RULE]
