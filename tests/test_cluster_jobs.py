"""A shared cluster: sweeps submitted side by side as Ray jobs, as users of one head do.

One head for the file, started with `ray start --head` on this machine (2 CPUs, its own temp dir
and ports, its dashboard on 127.0.0.1), with token authentication as Ray sets it up: `ray
get-auth-token --generate` writes ~/.ray/auth_token (HOME is a temp dir here) and RAY_AUTH_MODE=token
makes the head, the job CLI and the jobs' drivers use it. Sweeps go in with `ray job submit
--working-dir .` from the repository root, the way docs/cluster.md says; the test reads the jobs'
states and Ray's task records over the dashboard's REST API with the token.

What the trials did is read from Ray's own records: each `GptTrial.train` task (one per report
of a trial) with its start and end in milliseconds, per job, from the state API. At the end every
process the head started is ended: its process groups, processes naming its temp dir, and those
whose environment holds its RAY_TMPDIR (a job's driver runs in a session of its own, and Ray's
workers rename themselves).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from common import REPO
from ray_helpers import RAY, RealCluster, end_processes, free_ports, short_tmp
from sweep_helpers import by_name, results_of, wait_for, write_experiment
from test_sweep_faults import SLOW

from sweeps.results.load import load_sweep, ray_records

ENDED = ("SUCCEEDED", "FAILED", "STOPPED")


@dataclass
class Head:
    url: str  # the dashboard: job submission and the state API
    env: dict[str, str]  # what `ray ...` commands run with: the token's HOME, RAY_AUTH_MODE=token
    token: str

    def job_cli(self, command: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """`ray job COMMAND --address URL ARGS` from the repository root, as a user of the head runs it."""
        return subprocess.run([RAY, "job", command, "--address", self.url, *args], env=self.env, cwd=REPO,
                              capture_output=True, text=True, timeout=timeout)

    def get(self, path: str, token: bool = True):
        headers = {"Authorization": f"Bearer {self.token}"} if token else {}
        with urllib.request.urlopen(urllib.request.Request(self.url + path, headers=headers), timeout=30) as r:
            return json.load(r)

    def job(self, submission_id: str) -> dict:
        return self.get(f"/api/jobs/{submission_id}")

    def submit(self, submission_id: str, *sweep: str) -> None:
        """`ray job submit --no-wait --working-dir . -- python sweeps/run.py SWEEP` (this interpreter's python)."""
        r = self.job_cli("submit", "--no-wait", "--submission-id", submission_id, "--working-dir", ".", "--",
                     sys.executable, "sweeps/run.py", *sweep)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]

    def wait(self, submission_id: str, timeout: float = 240) -> dict:
        t0 = time.time()
        while time.time() - t0 < timeout:
            job = self.job(submission_id)
            if job["status"] in ENDED:
                return job
            time.sleep(0.5)
        pytest.fail(f"job {submission_id} did not end within {timeout:.0f}s: {self.logs(submission_id)[-3000:]}")

    def logs(self, submission_id: str) -> str:
        return self.job_cli("logs", submission_id).stdout

    def train_tasks(self, job_id: str) -> list[tuple[float, float]]:
        """(start, end) in seconds of every finished trial report (`GptTrial.train`) of a job."""
        query = urllib.parse.urlencode([
            ("limit", 10000), ("detail", 1),
            ("filter_keys", "job_id"), ("filter_predicates", "="), ("filter_values", job_id),
            ("filter_keys", "func_or_class_name"), ("filter_predicates", "="), ("filter_values", "GptTrial.train")])
        tasks = self.get(f"/api/v0/tasks?{query}")["data"]["result"]["result"]
        return [(t["start_time_ms"] / 1000, t["end_time_ms"] / 1000) for t in tasks
                if t.get("start_time_ms") and t.get("end_time_ms")]


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    temp = short_tmp()
    home = Path(temp) / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "RAY_TMPDIR": temp, "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONUNBUFFERED": "1", "GPTCORE_CACHE": str(Path(temp) / "cache")}
    for var in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "PYTHONPATH"):
        env.pop(var, None)  # the jobs import the code they were sent (Ray puts it first on their path)
    port = free_ports(1)[0]
    cluster = RealCluster(address=f"127.0.0.1:{port}", temp_dir=temp, env=env)
    try:
        r = subprocess.run([RAY, "get-auth-token", "--generate"], env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout.strip(), r.stderr
        token = r.stdout.strip()
        assert (home / ".ray" / "auth_token").read_text().strip() == token
        env["RAY_AUTH_MODE"] = "token"
        cluster.start_node("--head", f"--port={port}", num_cpus=2)
        yield Head(f"http://127.0.0.1:{cluster.dashboard_port}", env, token)
    finally:
        end_processes(cluster.groups, temp, env_marker=f"RAY_TMPDIR={temp}")
        shutil.rmtree(temp, ignore_errors=True)


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most spans covering one instant (one ending as another starts: not at once)."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def side_by_side(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    """Seconds during which a span of `a` and a span of `b` ran at once (spans of one side do not overlap)."""
    return sum(max(0.0, min(ea, eb) - max(sa, sb)) for sa, ea in a for sb, eb in b)


def extent(spans: list[tuple[float, float]]) -> tuple[float, float]:
    """From the first span's start to the last one's end."""
    return min(s for s, _ in spans), max(e for _, e in spans)


def test_the_head_refuses_requests_without_the_token(head):
    with pytest.raises(urllib.error.HTTPError) as e:
        head.get("/api/jobs/", token=False)
    assert e.value.code == 401
    assert head.get("/api/jobs/") == []  # with it: no job yet


@pytest.mark.slow
def test_two_sweeps_share_the_head_one_is_stopped_and_resumed(head, tmp_path):
    storage = str(tmp_path / "results")
    # slow enough that the stop comes while a slow run trains: Tune saves its state every ten seconds or so,
    # and bfloat16 on a CPU that has it trains 90 iterations of these runs in about 3 s
    slow = write_experiment(tmp_path, "long", SLOW, max_iters=300, eval_interval=30)
    long_dir = tmp_path / "results" / "long"
    head.submit("exp1", "exp1", "--profile", "smoke", "--seeds", "1", "--max-concurrent", "1", "--storage", storage)
    head.submit("long", str(slow), "--max-concurrent", "1", "--order", "file", "--storage", storage)

    # `ray job stop` of one sweep once a trial of it has finished (in the experiment state Tune saves every ten
    # seconds or so, what --resume goes by) and the next one has checkpoints
    def stop_point():
        named = by_name(long_dir)
        slow1 = results_of(named["slow1"]) if "slow1" in named else []
        quick = [r for r in ray_records(long_dir).values() if r.config.get("name") == "quick"]
        return len(slow1) >= 2 and quick and quick[0].status == "TERMINATED"

    wait_for(lambda: stop_point() or head.job("long")["status"] in ENDED, 180, "the long sweep's first trial")
    assert head.job("long")["status"] == "RUNNING", head.logs("long")[-3000:]
    r = head.job_cli("stop", "long")
    assert r.returncode == 0, r.stderr[-2000:]
    assert head.wait("long", 60)["status"] == "STOPPED"
    assert head.job("exp1")["status"] == "RUNNING", "stopping one sweep ended the other"
    # what Ray's saved state holds as finished: what --resume must not run again
    ended = {r.folder for r in ray_records(long_dir).values() if r.status == "TERMINATED"}
    finished = {name: (d / "result.json").read_bytes() for name, d in by_name(long_dir).items() if d.name in ended}
    assert "quick" in finished and len(finished) < 3, sorted(finished)

    head.submit("long-resumed", str(slow), "--resume", "--storage", storage)
    jobs = {sid: head.wait(sid) for sid in ("exp1", "long-resumed")}
    for sid, job in jobs.items():
        assert job["status"] == "SUCCEEDED", f"{sid}: {job['message']}\n{head.logs(sid)[-3000:]}"

    # each sweep made its report; the resumed one ran no finished trial again
    for exp in ("exp1", "long"):
        assert (tmp_path / "results" / exp / "report.md").is_file(), exp
    # the folders the results are read from: a start that `ray job stop` cut short before Ray saved it (--resume
    # then asks that trial again) leaves a folder that the loader passes over, and so does this test
    named = {t.name: long_dir / t.path for t in load_sweep(long_dir).trials.itertuples()}
    rerun = [name for name, before in finished.items() if (named[name] / "result.json").read_bytes() != before]
    assert rerun == [], f"finished trials run again after --resume: {rerun}"
    for name in ("slow1", "slow2"):
        iters = [row["iter"] for row in results_of(named[name])]
        assert iters[-1] == 300 and iters.count(0) == 1, (name, iters)  # continued, not started over
    statuses = load_sweep(long_dir).trials["status"].tolist()
    assert statuses == ["completed"] * 3, statuses
    exp1 = load_sweep(tmp_path / "results" / "exp1").trials
    assert len(exp1) == 5 and set(exp1["status"]) == {"completed", "stopped early"}

    # --max-concurrent 1: never two reports of one sweep at once (Ray's task records, to the millisecond);
    # and the two sweeps did train side by side
    spans = {sid: head.train_tasks(head.job(sid)["job_id"]) for sid in ("exp1", "long", "long-resumed")}
    for sid, s in spans.items():
        assert s and most_at_once(s) == 1, (sid, most_at_once(s))
    # each span is one `train` call, from a report to the next (tenths of a second in these tiny runs), so the
    # sweeps' stretches of training are compared, from each one's first call to its last
    assert side_by_side([extent(spans["exp1"])], [extent(spans["long"]), extent(spans["long-resumed"])]) > 1.0

    # what the user sees: `ray job list`, and the live view's plain lines in `ray job logs`
    listed = head.job_cli("list")
    assert listed.returncode == 0, listed.stderr[-2000:]
    listed_jobs = {m.group(1): m.group(2) for m in re.finditer(r"submission_id='([^']+)'.*?status=<JobStatus\.(\w+)",
                                                                  listed.stdout)}
    assert listed_jobs == {"exp1": "SUCCEEDED", "long": "STOPPED", "long-resumed": "SUCCEEDED"}, listed.stdout
    out = head.logs("exp1")
    assert "trials 5 done, 0 running, 0 pending (of 5)" in out and f"report: {storage}/exp1/report.md" in out
    # plain lines, one per decision and finished run: no screen redrawn in place, no Tune table
    assert re.search(r"^\[\d+s\] run large_lr completed: val \d\.\d{4} at 30$", out, re.M), out[-3000:]
    assert "\r" not in out and "Trial name" not in out, out[-3000:]
    assert "resuming the sweep in" in head.logs("long-resumed")

    # and `gptsweep ls` of the storage root
    ls = subprocess.run([sys.executable, "-m", "sweeps", "ls", storage, "--json"], cwd=REPO, capture_output=True,
                        text=True, timeout=60)
    assert ls.returncode == 0, ls.stderr
    found = {d["exp"]: (d["state"], d["done"], d["planned"]) for d in json.loads(ls.stdout)}
    assert found == {"exp1": ("finished", 5, 5), "long": ("finished", 3, 3)}, found
