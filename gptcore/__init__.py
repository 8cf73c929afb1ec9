"""gptcore: a nanoGPT-compatible GPT trainer (model, data, loop, diagnostics, sampling).

Usable alone (`python -m gptcore ...`) and as the core of the Ray Tune sweeps. Never imports ray.
"""

import importlib

from .config import TrainConfig, build_config, load_config
from .errors import UserError
from .version import __version__

# these need torch, which takes a second or two to import: loaded on first use, so that
# `python -m gptcore train ... --learning_rat=1e-3` answers a typo at once
_LAZY = {"GPT": "model", "GPTConfig": "model", "Trainer": "train", "get_lr": "train"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["GPT", "GPTConfig", "TrainConfig", "Trainer", "UserError", "build_config", "load_config", "get_lr",
           "__version__"]
