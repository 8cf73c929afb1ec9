"""The analysis of one experiment as a pipeline: read → judge → write, for a folder, a bucket or logs.

- read: `results.load.load_sweep` (a sweep's folder) or `results.logs.load_logs` (hand-made
  training logs) → `Results`; a sweep in S3 is first copied here without its checkpoints (`fetch`);
- judge: the strategy that made the results (`sweeps.strategies.strategy_for`) judges them into an
  `Analysis`, every verdict and every fit computed once;
- write: `report.write.write` → trials.csv, history.csv, curves.csv, verdicts.json (scaling.json),
  plots/*.png, report.md; for a sweep in S3 the outputs go back beside it (`publish`).

`gptsweep analyze` and the end of a sweep both run it.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

from gptcore.errors import UserError
from sweeps.experiment.files import Experiment, experiment_names, load_experiment
from sweeps.report.analysis import Analysis
from sweeps.report.write import write
from sweeps.results.frames import Results
from sweeps.results.load import load_sweep, read_sweep_info
from sweeps.results.logs import infer_log_experiment, load_logs
from sweeps.storage.local import blocked_by, is_remote
from sweeps.strategies import strategy_for


def experiment_of(exp_dir: Path, name: str | None = None) -> Experiment | None:
    """The experiment file a folder's verdicts come from.

    `name` (exp1 ... or a YAML path) when given; else the copy of the file the sweep saved
    beside its results (`<exp_dir>/<exp>.yaml`, so a later edit of the file does not change an
    old sweep's verdicts); else the shipped file named like the folder (`exp1`, `exp1.old-...`).
    """
    if name:
        return load_experiment(name)
    info = read_sweep_info(exp_dir) or {}
    exp = info.get("exp")
    if isinstance(exp, str) and (Path(exp_dir) / f"{exp}.yaml").is_file():
        try:
            return load_experiment(Path(exp_dir) / f"{exp}.yaml")
        except UserError as e:
            if exp not in experiment_names():
                raise
            # a copy written by an older version of this program: the shipped file of that name
            print(f"note: the sweep's copy of its experiment file cannot be read by this version ({e}); "
                  f"judging it by the shipped {exp}", file=sys.stderr)
            return load_experiment(exp)
    m = re.match(r"^(exp\d+)", Path(exp_dir).name)
    if m and m.group(1) in experiment_names():
        return load_experiment(m.group(1))
    return None


def judge(res: Results, exp: Experiment | None, info: dict[str, Any] | None = None) -> Analysis:
    """The results judged by the strategy that made them."""
    return strategy_for(res, info).judge(res, exp, info)


def analyse(res: Results, exp: Experiment | None, out_dir: Path,
            info: dict[str, Any] | None = None) -> tuple[Analysis, Path]:
    """Judge `res` and write the analysis into out_dir: (the analysis, its report.md)."""
    a = judge(res, exp, info)
    return a, write(a, out_dir)


def analyse_sweep(exp_dir: Path, exp: str | None = None) -> tuple[Analysis, Path]:
    """The whole pipeline for a sweep's folder, written in place: (the analysis, its report.md).

    `exp` (exp1 ... exp5, or an experiment file) selects the verdicts; by default `experiment_of`
    finds them. Raises UserError when the folder is missing or holds no trials.
    """
    exp_dir = Path(exp_dir)
    res = load_sweep(exp_dir)
    return analyse(res, experiment_of(exp_dir, exp), exp_dir, read_sweep_info(exp_dir))


def check_out_dir(out_dir: Path, what: str) -> None:
    """Refuse a report folder that cannot be made: a file where it or a folder above it should be, or
    a folder this user cannot write to (checked before anything is written)."""
    why = blocked_by(out_dir)
    if why is not None:
        raise UserError(f"{what} {out_dir}: {why}: choose another --out")


def analyse_logs(files: list[Path], exp: str | None = None, out: str | None = None) -> tuple[Analysis, Path]:
    """The whole pipeline for hand-made training logs: (the analysis, its report.md).

    `exp` names the chapter experiment (default: the logs' `expN_` prefix); the report goes to `out`
    (default `<log folder>/<exp>_report`), checked before anything is written.
    """
    res = load_logs(files)  # first: it says which file is missing before anything is written
    name = exp or infer_log_experiment(files)
    experiment = load_experiment(name) if name else None
    if experiment is None:
        print("note: the log names share no expN_ prefix: pass --exp exp1 ... exp5 for the chapter's verdicts")
    out_dir = Path(out) if out else files[0].parent / f"{name or 'logs'}_report"
    check_out_dir(out_dir, "--out" if out else "the report folder")
    return analyse(res, experiment, out_dir)


def fetch(where: str, quiet: bool = False) -> Path:
    """The local folder of a sweep: itself, or for a sweep in S3 (or another bucket) its copy here, made or
    brought up to date without checkpoints (sweeps.storage.s3.local_copy)."""
    if not is_remote(where):
        return Path(where)
    from sweeps.storage import s3

    uri, local = where.rstrip("/"), s3.local_copy(where.rstrip("/"))
    t0 = time.monotonic()
    n = s3.download(uri, local)
    if not quiet:
        print(f"copied {n} file(s) of {uri} to {local} ({time.monotonic() - t0:.1f}s; checkpoints left out)")
    return local


def publish(local: Path, where: str) -> str:
    """Where the report is: for a sweep in S3 its outputs are put back beside it first."""
    if not is_remote(where):
        return str(Path(local) / "report.md")
    from sweeps.storage import s3

    s3.upload_outputs(Path(local), where.rstrip("/"))
    return f"{where.rstrip('/')}/report.md"


def analyse_remote(uri: str, exp: str | None = None) -> tuple[Analysis, Path, str]:
    """`gptsweep analyze s3://bucket/prefix/exp1`: (the analysis, the local report.md, the report's URI)."""
    local = fetch(uri)
    # the decision log is the driver's (on its disk, sweeps.strategies.base.decision_log): into the outputs
    from sweeps.results.decisions import FILE
    from sweeps.storage.local import driver_file

    log = driver_file(uri, FILE, "decisions")
    if log.is_file():
        (local / FILE).write_bytes(log.read_bytes())
    a, report = analyse_sweep(local, exp)
    return a, report, publish(local, uri)
