"""Reading checkpoints: nanoGPT's ckpt.pt (or ours), checked before anything is built from it.

A checkpoint is data, never code: it is loaded with `torch.load(..., weights_only=True)`, and
its `model_args` and weights are checked against each other, so a damaged or foreign file is one
line naming it, not a traceback from deep inside torch.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from .eager import shapes_only
from .errors import UserError
from .model import GPT, GPTConfig

MODEL_ARGS = ("n_layer", "n_head", "n_embd", "block_size", "bias", "vocab_size", "dropout")
# the fields of a run's config that a checkpoint's model_args override on resume (dropout may change)
SHAPE_ARGS = ("n_layer", "n_head", "n_embd", "block_size", "bias")


CKPT_FIX = "point --out_dir at another run's folder, or train again with --init_from=scratch"


def _model_args_problem(args: Any) -> str | None:
    """What makes a checkpoint's `model_args` unusable for building a GPT, or None."""
    if not isinstance(args, dict):
        return f"model_args is a {type(args).__name__}, not a dict"
    for k in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size"):
        v = args.get(k)
        if type(v) is not int or v < 1:
            return f"model_args[{k!r}] is {v!r:.40}, not a positive whole number"
    if type(args.get("bias")) is not bool:
        return f"model_args['bias'] is {args.get('bias')!r:.40}, not True or False"
    if args["n_embd"] % args["n_head"]:
        return f"model_args n_embd={args['n_embd']} is not divisible by n_head={args['n_head']}"
    return None


def _state_problem(state: dict, args: dict) -> str | None:
    """The first difference between a checkpoint's weights and the network its model_args
    describe (a key missing or extra, a shape), or None."""
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        return "model is not a dict of named tensors"
    # dropout has no weights (and the caller chooses its own)
    expected = shapes_only(GPTConfig(**{k: args[k] for k in MODEL_ARGS if k in args and k != "dropout"})).state_dict()
    for k, v in expected.items():
        if k not in state:
            return f"the weights lack {k}"
        if state[k].shape != v.shape:
            return f"{k} has shape {tuple(state[k].shape)}, model_args make it {tuple(v.shape)}"
    extra = sorted(set(state) - set(expected))
    return f"the weights have {extra[0]}, which model_args have no place for" if extra else None


def load_checkpoint(path: Path, device: str = "cpu") -> dict:
    """A checkpoint (ours or nanoGPT's), loaded with weights_only=True: data, never code.

    Checked before anything uses it: a file that is cut short or not a checkpoint, missing or
    impossible `model_args`, and weights whose names or shapes do not fit them are a UserError
    naming the file. `iter_num` and `best_val_loss` come back as int and float.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}: train first, or point --out_dir at a run's folder")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # a truncated or foreign file: say which and stop
        text = str(e)
        # the weights-only loader's message is a paragraph suggesting weights_only=False (which
        # would run whatever code the file holds): keep only the reason it names
        m = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(\n\n|$)", text)
        why = " ".join((m.group(1) if m else text).split())[:120]
        raise UserError(f"{path} is not a loadable checkpoint, cut short or another kind of file "
                        f"({e.__class__.__name__}: {why}): {CKPT_FIX}") from None
    if not isinstance(ckpt, dict):
        raise UserError(f"{path} holds a {type(ckpt).__name__}, not a checkpoint dict: {CKPT_FIX}")
    missing = [k for k in ("model", "model_args") if k not in ckpt]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}: it is not a nanoGPT/gptcore checkpoint; {CKPT_FIX}")
    problem = _model_args_problem(ckpt["model_args"])
    if problem is None and not isinstance(ckpt["model"], dict):
        problem = f"model is a {type(ckpt['model']).__name__}, not a dict of tensors"
    if problem is None:
        # torch.compile wraps the module as `_orig_mod`; a checkpoint saved from the wrapper (as
        # nanoGPT does with compile=True) carries that prefix on every key
        prefix = "_orig_mod."
        state = {k[len(prefix):] if isinstance(k, str) and k.startswith(prefix) else k: v
                 for k, v in ckpt["model"].items()}
        # nanoGPT without flash attention registers its causal mask as a buffer `attn.bias`; it is
        # not a parameter (our attention applies the mask itself), so it is dropped
        ckpt["model"] = {k: v for k, v in state.items() if not (isinstance(k, str) and k.endswith(".attn.bias"))}
        problem = _state_problem(ckpt["model"], ckpt["model_args"])
    if problem is None:
        try:
            ckpt["iter_num"] = int(ckpt.get("iter_num", 0))
            # nanoGPT saves the loss as a 0-d tensor
            ckpt["best_val_loss"] = float(ckpt.get("best_val_loss", float("inf")))
        except (TypeError, ValueError, RuntimeError):
            problem = "iter_num or best_val_loss is not a number"
        else:
            if ckpt["iter_num"] < 0:
                problem = f"iter_num is {ckpt['iter_num']}"
    if problem:
        raise UserError(f"{path} is damaged ({problem}): {CKPT_FIX}")
    return ckpt


def model_from_checkpoint(ckpt: dict, dropout: float | None = None) -> GPT:
    """The GPT of a checkpoint from `load_checkpoint` (which has checked that its weights fit)."""
    args = {k: ckpt["model_args"][k] for k in MODEL_ARGS if k in ckpt["model_args"]}
    if dropout is not None:
        args["dropout"] = dropout
    model = GPT(GPTConfig(**args))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:  # a dict that did not come through load_checkpoint
        first = str(e).strip().splitlines()[-1].strip()[:160]
        raise UserError(f"the checkpoint's weights do not fit its model_args ({first}): it is damaged or "
                        "not a nanoGPT/gptcore checkpoint") from None
    return model
