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


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo; elsewhere what platform says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, object]:
    """What changes numbers: python, torch, the code itself, and the processor (the CPU's model and whether it
    multiplies bfloat16 in hardware; the GPU's name where there is one)."""
    import torch

    from .device import cpu_has_native_bf16

    env: dict[str, object] = {"code_version": code_version(), "python": platform.python_version(),
                              "torch": torch.__version__, "cpu": cpu_model(), "cpu_bf16": cpu_has_native_bf16()}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(torch.cuda.current_device())
    return env
