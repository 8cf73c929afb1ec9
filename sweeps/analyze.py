"""`python sweeps/analyze.py ...`, the same as `gptsweep analyze`: the command is sweeps/command/analyze.py."""

import sys
from pathlib import Path

if __name__ == "__main__":
    # run as a script: import the package from the repository root, not this folder's modules by bare name
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.path.insert(0, str(here.parent))
    from sweeps.command.analyze import main

    sys.exit(main())
