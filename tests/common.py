"""Constants every test module shares: where the repository is, and the sweep command.

Tiny Shakespeare ships inside gptcore, so nothing here points outside the repository.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(REPO / "sweeps" / "run.py")]  # the sweep command, as a user runs it
