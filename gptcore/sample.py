"""Generate text from a trained checkpoint (nanoGPT's sample.py, with the same knobs)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from .checkpoint import load_checkpoint, model_from_checkpoint
from .config import coerce
from .data import load_meta, meta_problem
from .device import autocast_context, resolve_device
from .errors import UserError


@dataclass
class SampleConfig:
    out_dir: str = "out"  # the run folder holding ckpt.pt
    start: str = "\n"  # prompt text, or FILE:path to read it from a file
    num_samples: int = 10
    max_new_tokens: int = 500
    temperature: float = 0.8  # < 1 sharper, > 1 more random
    top_k: int = 200  # keep only the k most likely tokens; 0 keeps all
    seed: int = 1337
    device: str = "auto"
    dtype: str = "auto"
    data_dir: str = ""  # where to find meta.pkl when the checkpoint has no vocabulary (nanoGPT's)


SAMPLE_FIELDS = {f.name: {"int": int, "float": float, "str": str}[f.type] for f in fields(SampleConfig)}


def validate_sample(cfg: SampleConfig) -> None:
    if cfg.num_samples < 1 or cfg.max_new_tokens < 1:
        raise UserError("num_samples and max_new_tokens must be at least 1: e.g. --num_samples=3 --max_new_tokens=200")
    if cfg.temperature <= 0:
        raise UserError(f"temperature={cfg.temperature} must be positive: e.g. --temperature=0.8")
    if cfg.top_k < 0:
        raise UserError(f"top_k={cfg.top_k} must be 0 (keep all) or positive: e.g. --top_k=200")
    if not 0 <= cfg.seed < 2**32:
        raise UserError(f"seed={cfg.seed} must be in [0, 2**32): e.g. --seed=1337")
    from .config import TrainConfig, validate

    validate(TrainConfig(device=cfg.device, dtype=cfg.dtype))  # the trainer's checks of device and dtype


def _vocabulary(ckpt: dict, cfg: SampleConfig, path: Path) -> dict:
    """The checkpoint's own vocabulary, else (a nanoGPT checkpoint) its dataset's meta.pkl, checked."""
    vocab = ckpt["model_args"].get("vocab_size")
    if isinstance(ckpt.get("meta"), dict) and ckpt["meta"].get("itos"):
        meta = ckpt["meta"]
        problem = meta_problem(meta)
        if problem is None and meta["vocab_size"] != vocab:
            problem = f"vocab_size {meta['vocab_size']}, the model's is {vocab}"
        if problem:
            raise UserError(f"the vocabulary in {path} is damaged ({problem}): sample from another checkpoint")
        return meta
    conf = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    data_dir = cfg.data_dir or conf.get("data_dir", "data")
    folder = Path(data_dir) / str(conf.get("dataset", ""))
    if not (folder / "meta.pkl").is_file():
        raise UserError(f"the checkpoint has no vocabulary and {folder / 'meta.pkl'} does not exist: "
                        "pass --data_dir pointing at the folder that holds the dataset")
    meta = load_meta(folder)
    if not meta.get("itos"):
        raise UserError(f"{folder / 'meta.pkl'} has no characters (itos, stoi) to decode tokens with: pass "
                        "--data_dir pointing at the character-level dataset the model was trained on")
    if meta["vocab_size"] != vocab:
        raise UserError(f"{folder / 'meta.pkl'} has vocab_size {meta['vocab_size']} but the model has {vocab}: "
                        "pass --data_dir pointing at the dataset the model was trained on")
    return meta


def generate(cfg: SampleConfig) -> list[str]:
    """The generated texts, prompt included."""
    validate_sample(cfg)
    from .config import TrainConfig

    device, device_type, dtype = resolve_device(TrainConfig(device=cfg.device, dtype=cfg.dtype))
    path = Path(cfg.out_dir) / "ckpt.pt"
    ckpt = load_checkpoint(path, device)
    model = model_from_checkpoint(ckpt, dropout=0.0).to(device).eval()
    meta = _vocabulary(ckpt, cfg, path)
    stoi = meta["stoi"]
    start = cfg.start
    if start.startswith("FILE:"):
        try:
            start = Path(start[5:]).read_text(encoding="utf-8")
        except OSError as e:
            raise UserError(f"--start={cfg.start}: cannot read the prompt file ({e.strerror})") from None
    unknown = sorted({c for c in start if c not in stoi})
    if unknown:
        raise UserError(f"the start text has characters outside the model's vocabulary: {''.join(unknown)!r}; "
                        "remove them")
    if not start:
        raise UserError("the start text is empty: give at least one character, e.g. --start='ROMEO:'")
    return sample_texts(model, meta, start, cfg.num_samples, cfg.max_new_tokens, cfg.temperature, cfg.top_k,
                        cfg.seed, device, autocast_context(device_type, dtype))


def sample_texts(model, meta: dict, start: str, num_samples: int, max_new_tokens: int, temperature: float = 0.8,
                 top_k: int = 200, seed: int = 1337, device: str = "cpu",
                 autocast: AbstractContextManager | None = None) -> list[str]:
    """`num_samples` texts generated after `start` (every character of it in `meta`'s vocabulary), prompt included.

    One generator seeded with `seed` draws them all, so the same call gives the same texts.
    The model is put in eval mode (no dropout) and left there.
    """
    stoi, itos = meta["stoi"], meta["itos"]
    model.eval()
    ids = torch.tensor([[stoi[c] for c in start]], dtype=torch.long, device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    out = []
    with torch.no_grad(), autocast or nullcontext():
        for _ in range(num_samples):
            y = model.generate(ids, max_new_tokens, temperature=temperature, top_k=top_k or None, generator=gen)
            out.append("".join(itos[int(i)] for i in y[0].tolist()))
    return out


def build_sample_config(values: dict) -> SampleConfig:
    typed = {k: coerce(k, v, SAMPLE_FIELDS[k], "command line") for k, v in values.items()}
    return SampleConfig(**typed)
