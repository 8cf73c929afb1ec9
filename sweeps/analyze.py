"""Analyse an experiment: tables, plots, verdicts and report.md.

    python sweeps/analyze.py exp1                      # results/exp1/ (a sweep's folder)
    python sweeps/analyze.py exp1 --results runs       # runs/exp1/
    python sweeps/analyze.py path/to/exp_dir           # any experiment folder
    python sweeps/analyze.py --logs experiments/exp1_*.log [--exp exp1] [--out DIR]

A sweep's folder gets trials.csv, history.csv, plots/ and report.md beside the trial folders.
Hand-made logs (the chapter's `... | tee experiments/exp1_baseline.log`) are named by file:
`exp1_large_lr.log` is run `large_lr` of `exp1`; their report goes to `<log folder>/<exp>_report/`
unless --out says otherwise. Mistakes end with a one-line `error: ...` and exit status 2.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

if __package__ in (None, ""):
    # run as a script (`python sweeps/analyze.py`): make the repository root importable, as
    # `sweeps` is a package and `gptcore` lives beside it
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse  # noqa: E402

import pandas as pd  # noqa: E402

from gptcore.errors import UserError  # noqa: E402
from sweeps.analysis.load import Results, infer_log_experiment, load_logs, load_sweep  # noqa: E402
from sweeps.analysis.report import read_sweep_info, summary_text, write_outputs  # noqa: E402
from sweeps.analysis.verdicts import EXPERIMENTS, Verdict  # noqa: E402

USAGE = __doc__.split("\n\n")[1]


def load_results(exp_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, history) of a sweep's experiment folder, read from the raw files (no Ray needed).

    trials has one row per trial, history one row per evaluation; see sweeps/analysis/load.py
    for the columns. Raises UserError when the folder is missing or holds no trials.
    """
    res = load_sweep(Path(exp_dir))
    return res.trials, res.history


def infer_experiment(exp_dir: Path) -> str | None:
    """Which chapter experiment a folder holds: sweep.json's `exp`, else an `expN` folder name."""
    info = read_sweep_info(exp_dir) or {}
    if isinstance(info.get("exp"), str) and info["exp"] in EXPERIMENTS:
        return info["exp"]
    m = re.match(r"^(exp\d+)", Path(exp_dir).name)
    return m.group(1) if m and m.group(1) in EXPERIMENTS else None


def _analyze_dir(exp_dir: Path, exp: str | None) -> tuple[Results, str | None, Path, list[Verdict]]:
    res = load_sweep(exp_dir)
    exp = exp or infer_experiment(exp_dir)
    report, vs = write_outputs(res, exp, exp_dir, read_sweep_info(exp_dir))
    return res, exp, report, vs


def _analyze_logs(files: list[Path], exp: str | None,
                  out_dir: Path | None) -> tuple[Results, str | None, Path, list[Verdict]]:
    res = load_logs(files)  # first: it says which file is missing before anything is written
    exp = exp or infer_log_experiment(files)
    out_dir = out_dir or files[0].parent / f"{exp or 'logs'}_report"
    report, vs = write_outputs(res, exp, out_dir)
    return res, exp, report, vs


def analyze(exp_dir: Path, exp: str | None = None) -> Path:
    """Analyse a sweep's experiment folder in place; returns the path of its report.md.

    Writes trials.csv, history.csv, plots/*.png and report.md into exp_dir. `exp` (exp1 ...
    exp5) selects the chapter's verdicts; by default it comes from sweep.json or the folder name.
    Raises UserError when the folder is missing or holds no trials.
    """
    return _analyze_dir(Path(exp_dir), exp)[2]


def analyze_and_summarize(exp_dir: Path, exp: str | None = None) -> tuple[Path, str]:
    """`analyze`, plus the summary table and verdicts as text for the terminal."""
    res, exp, report, vs = _analyze_dir(Path(exp_dir), exp)
    return report, summary_text(res, exp, vs)


def analyze_logs(files: list[Path], exp: str | None = None, out_dir: Path | None = None) -> Path:
    """Analyse hand-made training logs; returns the path of report.md (default folder: <log folder>/<exp>_report)."""
    return _analyze_logs([Path(f) for f in files], exp, Path(out_dir) if out_dir else None)[2]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python sweeps/analyze.py", description=USAGE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("exp", nargs="?", help="experiment name under --results (exp1 ... exp5), or an experiment folder")
    p.add_argument("--results", default="results", help="folder that holds the experiments (default: results)")
    p.add_argument("--logs", nargs="+", metavar="FILE", help="analyse hand-made nanoGPT-style log files instead")
    p.add_argument("--exp", dest="exp_name", choices=sorted(EXPERIMENTS),
                   help="which chapter experiment to check (default: from sweep.json, the folder or the log names)")
    p.add_argument("--out", help="with --logs: where to write the report (default: <log folder>/<exp>_report)")
    a = p.parse_args(argv)
    try:
        if a.logs:
            if a.exp:
                raise UserError(f"give either an experiment ({a.exp}) or --logs, not both")
            res, exp, report, vs = _analyze_logs([Path(f) for f in a.logs], a.exp_name,
                                                 Path(a.out) if a.out else None)
            if exp is None:
                print("note: the log names share no expN_ prefix: pass --exp exp1 ... exp5 for the chapter's verdicts")
        else:
            if not a.exp:
                raise UserError("name an experiment (e.g. exp1) or an experiment folder, or pass --logs FILE...")
            exp_dir = Path(a.results) / a.exp
            if not exp_dir.is_dir() and Path(a.exp).is_dir():
                exp_dir = Path(a.exp)  # a direct path to an experiment folder
            res, exp, report, vs = _analyze_dir(exp_dir, a.exp_name)
        print(summary_text(res, exp, vs))
        print(f"report: {report}")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
