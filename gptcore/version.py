"""Which code produced a run: written next to every run's outputs."""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

__version__ = "0.1.0"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """`gptcore <version>+g<sha>[.dirty]` when running from a git checkout, else the version."""
    here = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
        if not sha:
            return f"gptcore {__version__}"
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return f"gptcore {__version__}+g{sha}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return f"gptcore {__version__}"


def environment() -> dict[str, str]:
    """Versions that change numbers: python, torch and the code itself."""
    import torch

    return {"code_version": code_version(), "python": platform.python_version(), "torch": torch.__version__}
