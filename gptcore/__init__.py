"""gptcore: a nanoGPT-compatible GPT trainer (model, data, loop, diagnostics, sampling).

Usable alone (`python -m gptcore ...`) and as the core of the Ray Tune sweeps. Never imports ray.
"""

from .config import TrainConfig, build_config, load_config
from .errors import Diverged, UserError
from .model import GPT, GPTConfig
from .train import Trainer, get_lr
from .version import __version__

__all__ = ["GPT", "GPTConfig", "TrainConfig", "Trainer", "UserError", "Diverged", "build_config",
           "load_config", "get_lr", "__version__"]
