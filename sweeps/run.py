"""`python sweeps/run.py EXP ...`, the tutorial's way to start a sweep: the command is sweeps/command/sweep.py."""

import sys
from pathlib import Path

if __name__ == "__main__":
    # run as a script: import the package from the repository root, not this folder's modules by bare name
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.path.insert(0, str(here.parent))
    from sweeps.command.sweep import cli

    sys.exit(cli())
