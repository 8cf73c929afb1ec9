"""gptsweep ls: fabricated sweep folders in every state, a held lock, and no Ray imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import REPO
from results_factory import curve, make_trial

from sweeps.command.ls import main as ls_main
from sweeps.command.ls import sweeps_under
from sweeps.storage.local import SweepLock

STARTED = "2025-01-02T10:00:00+0000"


def sweep_json(exp_dir: Path, exp: str, planned: int, command: str | None = None) -> None:
    exp_dir.mkdir(parents=True, exist_ok=True)
    (exp_dir / "sweep.json").write_text(json.dumps({
        "exp": exp, "command": command or f"python sweeps/run.py {exp} --profile smoke", "planned_trials": planned,
        "started": STARTED, "host": "node-a", "pid": 4242}))


def make_root(root: Path) -> Path:
    """One sweep in each state, and a folder that is no sweep."""
    done = curve(2.0, iters=range(0, 101, 50))
    half = curve(2.0, iters=range(0, 51, 50))
    # finished: completed, stopped early (status.json), diverged
    d = root / "exp1"
    sweep_json(d, "exp1", 3)
    make_trial(d, "baseline", done)
    make_trial(d, "small_lr", half, max_iters=100)  # stopped early
    make_trial(d, "large_lr", half, max_iters=100, diverged_at=60)
    # failed: one errored
    d = root / "exp2"
    sweep_json(d, "exp2", 2)
    make_trial(d, "large_batch", done)
    make_trial(d, "grad_accum", half, max_iters=100, error="RuntimeError: boom")
    # interrupted: one trial unfinished, one never started
    d = root / "exp3"
    sweep_json(d, "exp3", 3, "python sweeps/run.py exp3 --fresh --storage runs")
    make_trial(d, "a", done)
    make_trial(d, "b", half, max_iters=100, status="interrupted")
    # interrupted: every trial there ended, but fewer than planned
    d = root / "exp4"
    sweep_json(d, "exp4", 4)
    make_trial(d, "none", done)
    # moved aside by --fresh; an old sweep with tuner.pkl only (no sweep.json)
    d = root / "exp1.old-20250101-120000"
    sweep_json(d, "exp1", 1)
    make_trial(d, "baseline", done)
    d = root / "exp5"
    d.mkdir()
    (d / "tuner.pkl").write_bytes(b"\x80")
    make_trial(d, "s", done)
    (root / "notasweep").mkdir()
    (root / "notasweep" / "x.txt").write_text("x")
    return root


def test_every_state(tmp_path):
    root = make_root(tmp_path / "results")
    found = {s.exp: s for s in sweeps_under(str(root))}
    assert sorted(found) == ["exp1", "exp1.old-20250101-120000", "exp2", "exp3", "exp4", "exp5"]
    s = found["exp1"]
    assert (s.state, s.done, s.planned, s.errored, s.resume) == ("finished", 3, 3, 0, None)
    assert s.command == "python sweeps/run.py exp1 --profile smoke" and s.started.startswith("2025-01-02")
    assert s.wall_s is not None and s.wall_s > 0
    s = found["exp2"]
    assert (s.state, s.done, s.planned, s.errored) == ("failed", 2, 2, 1)
    s = found["exp3"]
    assert (s.state, s.done, s.planned) == ("interrupted", 1, 3)
    assert s.resume == "python sweeps/run.py exp3 --storage runs --resume"
    s = found["exp4"]
    assert (s.state, s.done, s.planned) == ("interrupted", 1, 4)
    assert found["exp1.old-20250101-120000"].state == "finished"
    assert (found["exp5"].state, found["exp5"].planned, found["exp5"].command) == ("finished", 1, None)


def test_cli_table_and_json(tmp_path, capsys):
    root = make_root(tmp_path / "results")
    assert ls_main([str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["sweep", "state", "trials", "started", "wall", "command"]
    line = next(x for x in out if x.startswith("exp3 "))
    assert "interrupted" in line and "1/3" in line and "2025-01-02 10:00" in line
    assert "resume: python sweeps/run.py exp3 --storage runs --resume" in line
    assert "failed, 1 errored" in next(x for x in out if x.startswith("exp2 "))
    assert ls_main([str(root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["exp"] for d in data][:3] == ["exp1", "exp1.old-20250101-120000", "exp2"]
    assert {d["state"] for d in data} == {"finished", "failed", "interrupted"}
    (tmp_path / "empty").mkdir()
    assert ls_main([str(tmp_path / "empty")]) == 0
    assert capsys.readouterr().out.startswith("no sweeps under")
    assert ls_main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no folder") and err.count("\n") == 1


def test_held_lock_is_running_and_no_ray(tmp_path):
    root = make_root(tmp_path / "results")
    lock = SweepLock(str(root / "exp3"))
    lock.acquire("python sweeps/run.py exp3 --resume")
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        code = ("import sys; from sweeps.__main__ import main; rc = main(['ls', sys.argv[1], '--json']); "
                "print('RAY' if 'ray' in sys.modules else 'NORAY', file=sys.stderr); sys.exit(rc)")
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-c", code, str(root)], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stderr.strip().splitlines()[-1] == "NORAY"
        assert time.monotonic() - t0 < 60
        found = {d["exp"]: d for d in json.loads(r.stdout)}
        assert found["exp3"]["state"] == "running" and found["exp3"]["pid"] == os.getpid()
        assert found["exp3"]["resume"] is None and found["exp3"]["host"] == "node-a"
        assert found["exp4"]["state"] == "interrupted"  # its lock file is absent: not running
    finally:
        lock.release()
    # released: interrupted again (the lock file stays behind)
    assert {s.exp: s.state for s in sweeps_under(str(root))}["exp3"] == "interrupted"


def test_gptsweep_ls_dispatch(tmp_path):
    root = make_root(tmp_path / "results")
    r = subprocess.run([sys.executable, "-m", "sweeps", "ls", str(root)], cwd=REPO, capture_output=True, text=True,
                       timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    assert any(x.startswith("exp1 ") and "finished" in x for x in r.stdout.splitlines())


def test_a_folder_an_interrupted_start_left_behind_is_not_counted(tmp_path):
    from test_analysis_load import left_behind_by_an_interrupted_start

    exp = tmp_path / "results" / "x"
    sweep_json(exp, "x", 2)
    left_behind_by_an_interrupted_start(exp)
    (s,) = sweeps_under(str(tmp_path / "results"))
    assert (s.state, s.done, s.planned) == ("finished", 2, 2)
