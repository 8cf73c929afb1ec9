"""Constants every test module shares: where the repository and the Tiny Shakespeare text are."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHAKESPEARE_INPUT = REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
RUN = [sys.executable, str(REPO / "sweeps" / "run.py")]  # the sweep command, as a user runs it
needs_data = pytest.mark.skipif(not SHAKESPEARE_INPUT.is_file(),
                                reason=f"Tiny Shakespeare not found at {SHAKESPEARE_INPUT}")
