"""sweeps/analyze.py: the analysis command."""

from __future__ import annotations

import subprocess
import sys

from common import REPO
from results_factory import curve, make_run

from sweeps.analyze import main


def test_cli_errors_without_traceback(tmp_path):
    # run as the user does, from the repository root by path: exercises the sys.path setup too
    r = subprocess.run([sys.executable, "sweeps/analyze.py", "exp1", "--results", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.startswith("error: no experiment directory") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_direct_path_and_results(tmp_path, capsys):
    exp = tmp_path / "res" / "exp2"
    a = curve(1.8, iters=range(0, 501, 100))
    make_run(exp, "large_batch", a, overrides={"batch_size": 64})
    make_run(exp, "grad_accum", a, overrides={"batch_size": 16, "gradient_accumulation_steps": 4})
    assert main(["exp2", "--results", str(tmp_path / "res")]) == 0
    assert "[holds] gradient accumulation equals a large batch" in capsys.readouterr().out
    assert main([str(exp)]) == 0
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
