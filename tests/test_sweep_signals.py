"""The sweep command under real signals: Ctrl-C to the process group, SIGKILL of the driver, Ctrl-C during the
report, trial processes killed until --max-failures is exhausted.

Real processes and real signals: each test runs `python sweeps/run.py` in a subprocess with its own
results folder and dataset cache, and signals only processes its own sweep started (the driver it
spawned, its process group, trial processes named by the trials' own records). A file of its own so
that the test workers share the end-to-end sweeps evenly (tests/test_sweep_faults.py has the rest).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from sweep_helpers import RUN, by_name, env_for, results_of, wait_for, write_experiment
from test_sweep_faults import SLOW, finish, quick_done_and_slow_checkpointed, start

from sweeps.results.load import load_sweep


def test_ctrl_c_to_the_process_group_twice_stops_cleanly(tmp_path, ray_address):
    exp = write_experiment(tmp_path, "group", SLOW, max_iters=150, eval_interval=30)
    exp_dir = tmp_path / "results" / "group"
    proc = start(tmp_path, str(exp), "--order", "file", group=True)
    try:
        wait_for(lambda: quick_done_and_slow_checkpointed(exp_dir), 180, "the quick trial to finish", proc)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: every process of the group
        time.sleep(1.0)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # impatient: a second Ctrl-C while it stops
        out = finish(proc, 120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, out[-3000:]
    assert "--resume" in out and "Traceback" not in out, out[-3000:]
    # what --resume then does is tests/test_sweeps.py's interrupted sweep; here: nothing left behind to resume from
    # but the trials' own records, every unfinished one interrupted, the finished one completed
    status = load_sweep(exp_dir).trials.set_index("name")["status"].to_dict()
    assert status["quick"] == "completed" and {status["slow1"], status["slow2"]} <= {"interrupted", "not started"}


# A driver killed outright (SIGKILL) and resumed: tests/test_s3.py (from a bucket) and
# tests/test_cluster_jobs.py (`ray job stop` ends the driver with SIGKILL; local storage, its lock left behind).


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_ctrl_c_during_the_report_keeps_the_results_and_says_how_to_finish(tmp_path, ray_address):
    exp = write_experiment(tmp_path, "late", "  - {name: a, max_iters: 20, lr_decay_iters: 20}\n"
                                             "  - {name: b, max_iters: 20, lr_decay_iters: 20}",
                           max_iters=20, eval_interval=10)
    proc = start(tmp_path, str(exp), address=ray_address)
    try:
        for line in proc.stdout:
            if line.startswith("writing the report"):
                proc.send_signal(signal.SIGINT)
                break
        out = finish(proc, 120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out[-3000:]
    assert "gptsweep analyze" in out and "Traceback" not in out, out[-3000:]
    exp_dir = tmp_path / "results" / "late"
    assert set(load_sweep(exp_dir).trials["status"]) == {"completed"}
    r = subprocess.run([RUN[0], "-m", "sweeps", "analyze", str(exp_dir)], capture_output=True,
                       text=True, env=env_for(tmp_path), timeout=120)
    assert r.returncode == 0 and (exp_dir / "report.md").is_file(), r.stderr[-2000:]


def test_max_failures_exhausted_ends_errored_and_the_others_complete(tmp_path, ray_address):
    exp = write_experiment(tmp_path, "flaky", "  - {name: victim}\n  - {name: bystander, max_iters: 60, "
                                              "lr_decay_iters: 60}", max_iters=1000, eval_interval=20)
    exp_dir = tmp_path / "results" / "flaky"
    proc = start(tmp_path, str(exp), "--max-failures", "1", "--order", "file", address=ray_address)
    try:
        killed = set()
        for _ in range(2):  # two deaths: the first is retried, the second exhausts --max-failures 1
            def victim_running():
                d = by_name(exp_dir).get("victim")
                if d is None or not results_of(d):
                    return None
                pid = (json.loads((d / "config.json").read_text()) if (d / "config.json").is_file() else {}).get("pid")
                return pid if pid and pid not in killed and _alive(pid) else None

            pid = wait_for(victim_running, 180, "the victim's process", proc)
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        out = finish(proc, 240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out[-3000:]
    t = load_sweep(exp_dir).trials.set_index("name")
    assert t.loc["victim", "status"] == "errored" and t.loc["bystander", "status"] == "completed"
    assert (exp_dir / t.loc["victim", "path"] / "error.txt").is_file()
    assert "errored" in out


