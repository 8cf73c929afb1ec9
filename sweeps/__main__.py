"""`python -m sweeps` and the `gptsweep` command: run a sweep, or analyse one.

    gptsweep exp1 [options]            # python sweeps/run.py exp1 [options]
    gptsweep analyze exp1 [options]    # python sweeps/analyze.py exp1 [options]
    gptsweep ls [ROOT] [--json]        # the sweeps under results/ (or ROOT, s3://... too) and their states
    gptsweep diff A B [--json]         # two sweeps of one experiment: identical, or where they part and why
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["analyze"]:
        from sweeps.command.analyze import main as analyze

        return analyze(argv[1:])
    if argv[:1] == ["ls"]:
        from sweeps.command.ls import main as ls

        return ls(argv[1:])
    if argv[:1] == ["diff"]:
        from sweeps.command.diff import main as diff

        return diff(argv[1:])
    from sweeps.command.sweep import cli

    return cli(argv)


if __name__ == "__main__":
    sys.exit(main())
