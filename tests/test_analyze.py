"""sweeps/analyze.py: the analysis command."""

from __future__ import annotations

import subprocess
import sys

from common import REPO
from results_factory import make_exp2

from sweeps.command.analyze import main


def test_cli_errors_without_traceback(tmp_path):
    # run as the user does, from the repository root by path: exercises the sys.path setup too
    r = subprocess.run([sys.executable, "sweeps/analyze.py", "exp1", "--results", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.startswith("error: no experiment directory") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_direct_path_and_results(tmp_path, capsys):
    exp = make_exp2(tmp_path / "res" / "exp2")
    assert main(["exp2", "--results", str(tmp_path / "res")]) == 0
    assert "[holds] gradient accumulation equals a large batch" in capsys.readouterr().out
    assert main([str(exp)]) == 0
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_logs_that_hold_no_training_log_are_one_line_and_no_report(tmp_path):
    from conftest import assert_user_error

    (tmp_path / "exp1_baseline.log").write_bytes(b"")
    (tmp_path / "exp1_large_lr.log").write_bytes(b"\x00\x01binary\xff")
    r = subprocess.run([sys.executable, "-m", "sweeps", "analyze", "--logs", str(tmp_path / "exp1_baseline.log"),
                        str(tmp_path / "exp1_large_lr.log")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert_user_error(r, "no training log in", "exp1_baseline.log (empty)", "exp1_large_lr.log (binary)")
    assert r.stdout == "" and sorted(p.name for p in tmp_path.iterdir()) == ["exp1_baseline.log", "exp1_large_lr.log"]
