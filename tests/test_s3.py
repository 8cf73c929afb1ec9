"""Sweeps in S3, for real: a local S3-protocol server (moto's), `gptsweep ls s3://...`, `gptsweep analyze
s3://...`, and bad S3 settings as one line within seconds. Skipped when moto's server is not installed."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import assert_user_error
from results_factory import make_exp2
from test_ls import make_root

pytest.importorskip("moto.server")
pytest.importorskip("boto3")

BUCKET = "sweeps"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3(tmp_path, monkeypatch):
    """A moto S3 server on a free loopback port, with a bucket and credentials it checks; the test's
    environment points at it. Yields a boto3 client; the server (only it) is stopped at the end."""
    import boto3

    port = free_port()
    log = open(tmp_path / "moto.log", "wb")
    # the first 4 requests (bucket, user, key, policy) go unchecked; every later one needs those credentials
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4", "HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto server did not start: {(tmp_path / 'moto.log').read_text()[-2000:]}")
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}"
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws of the user's
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("GPTCORE_CACHE", str(tmp_path / "cache"))  # the one cache: a copy of a bucket lands there
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "bootstrap")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "bootstrap")
        boto3.session.Session().client("s3").create_bucket(Bucket=BUCKET)
        iam = boto3.session.Session().client("iam")
        iam.create_user(UserName="tester")
        key = iam.create_access_key(UserName="tester")["AccessKey"]
        iam.put_user_policy(UserName="tester", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        yield boto3.session.Session().client("s3")  # a new session: the default one keeps old keys
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def upload(client, local: Path, prefix: str) -> None:
    for f in sorted(local.rglob("*")):
        if f.is_file():
            client.upload_file(str(f), BUCKET, f"{prefix}/{f.relative_to(local).as_posix()}")


def run_cli(*args) -> subprocess.CompletedProcess:
    """`gptsweep ARGS` in this process (its environment is the test's), output captured."""
    from sweeps.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return subprocess.CompletedProcess(["gptsweep", *args], code, out.getvalue(), err.getvalue())


def test_ls_lists_sweeps_in_the_bucket(s3, tmp_path):
    upload(s3, make_root(tmp_path / "results"), "team/sweeps")
    r = run_cli("ls", f"s3://{BUCKET}/team/sweeps", "--json")
    assert r.returncode == 0, r.stderr
    found = {d["exp"]: d for d in json.loads(r.stdout)}
    assert sorted(found) == ["exp1", "exp1.old-20250101-120000", "exp2", "exp3", "exp4", "exp5"]
    assert (found["exp1"]["state"], found["exp1"]["done"], found["exp1"]["planned"]) == ("finished", 3, 3)
    assert found["exp2"]["state"] == "failed"
    # just uploaded, unfinished: no lock in S3, so the newest file's age decides
    assert found["exp3"]["state"] == "running?" and found["exp3"]["folder"] == f"s3://{BUCKET}/team/sweeps/exp3"
    from sweeps.command.ls import sweeps_under

    later = {s.exp: s.state for s in sweeps_under(f"s3://{BUCKET}/team/sweeps", now=time.time() + 3600)}
    assert later["exp3"] == later["exp4"] == "interrupted"
    r = run_cli("ls", f"s3://{BUCKET}/nothing-here")
    assert r.returncode == 0 and r.stdout.startswith("no sweeps under")


def test_analyze_from_the_bucket(s3, tmp_path):
    exp = make_exp2(tmp_path / "local" / "exp2")
    ckpt = next(exp.iterdir()) / "checkpoint_000001"
    ckpt.mkdir()
    (ckpt / "ckpt.pt").write_bytes(b"0" * 1000)
    upload(s3, exp, "sw/exp2")
    r = run_cli("analyze", f"s3://{BUCKET}/sw/exp2")
    assert r.returncode == 0, r.stderr
    assert "[holds] gradient accumulation equals a large batch" in r.stdout
    cache = tmp_path / "cache" / "sweeps" / "s3" / BUCKET / "sw" / "exp2"
    assert f"report: s3://{BUCKET}/sw/exp2/report.md (local copy: {cache / 'report.md'})" in r.stdout
    assert not list(cache.glob("*/checkpoint_*"))  # checkpoints are not copied
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="sw/exp2/")["Contents"]}
    for name in ("report.md", "verdicts.json", "trials.csv", "history.csv", "curves.csv"):
        assert f"sw/exp2/{name}" in keys
    assert any(k.startswith("sw/exp2/plots/") and k.endswith(".png") for k in keys)
    # again, by name under --results: the same, from the cached copy
    r = run_cli("analyze", "exp2", "--results", f"s3://{BUCKET}/sw")
    assert r.returncode == 0, r.stderr
    assert "copied 0 file(s)" in r.stdout or "copied" in r.stdout
    assert_user_error(run_cli("analyze", f"s3://{BUCKET}/sw/exp9"), "no sweep at", "exp9")


@pytest.mark.parametrize("what", ["closed port", "no bucket", "no credentials", "wrong key", "wrong secret"])
def test_bad_settings_are_one_line_within_seconds(s3, monkeypatch, what):
    uri = f"s3://{BUCKET}/sw"
    if what == "closed port":
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
        needle = "cannot reach the S3 endpoint"
    elif what == "no bucket":
        uri = "s3://no-such-bucket/sw"
        needle = "bucket no-such-bucket does not exist"
    elif what == "no credentials":
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        needle = "no S3 credentials found"
    else:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID" if what == "wrong key" else "AWS_SECRET_ACCESS_KEY", "WRONG")
        needle = "the S3 credentials were refused"
    from gptcore.errors import UserError
    from sweeps.storage.local import check_remote

    for args in (("ls", uri), ("analyze", f"{uri}/exp2")):
        t0 = time.monotonic()
        r = run_cli(*args)
        assert time.monotonic() - t0 < 15, args
        assert_user_error(r, needle)
    t0 = time.monotonic()
    with pytest.raises(UserError, match=needle):
        check_remote(uri)
    assert time.monotonic() - t0 < 15


def test_check_remote_passes_and_leaves_nothing(s3):
    from sweeps.storage.local import check_remote

    check_remote(f"s3://{BUCKET}/sw")
    check_remote("results")  # a local path: nothing to check here
    # the probe object is gone (pyarrow may leave the empty "folder" marker sw/)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="sw/").get("Contents", [])]
    assert all(k.endswith("/") for k in keys), keys


def bucket_state(client, prefix: str, tmp: Path) -> dict:
    """Ray's record of each trial (sweeps.analysis.load.ray_records) from the newest experiment state in the bucket."""
    from sweeps.results.load import ray_records

    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/").get("Contents", [])]
    states = sorted(k for k in keys if k.rsplit("/", 1)[-1].startswith("experiment_state-"))
    if not states:
        return {}
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / states[-1].rsplit("/", 1)[-1]).write_bytes(client.get_object(Bucket=BUCKET, Key=states[-1])["Body"].read())
    return ray_records(tmp)


def bucket_rows(client, prefix: str) -> dict[str, bytes]:
    """Each trial folder's result.json in the bucket, by folder."""
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/").get("Contents", [])]
    return {k.split("/")[-2]: client.get_object(Bucket=BUCKET, Key=k)["Body"].read()
            for k in keys if k.endswith("/result.json")}


def test_the_driver_killed_then_resume_from_the_bucket(s3, tmp_path):
    """A sweep to s3:// (one trial at a time), its driver killed with SIGKILL once a trial has finished; `--resume`
    continues from the bucket: no finished trial runs again, the others go on from their checkpoints there, and the
    report is made and written beside the trials."""
    from ray_helpers import end_processes, short_tmp
    from sweep_helpers import RUN, env_for, write_experiment
    from test_sweep_faults import SLOW

    storage, prefix = f"s3://{BUCKET}/team", "team/long"
    exp = write_experiment(tmp_path, "long", SLOW, max_iters=90, eval_interval=30)
    ray_tmp = short_tmp()  # the local Ray instances' own temp dir: what to end when the driver is killed
    env = {**env_for(tmp_path), "RAY_TMPDIR": ray_tmp}
    cmd = RUN + [str(exp), "--profile", "smoke", "--max-concurrent", "1", "--order", "file", "--num-cpus", "2",
                 "--storage", storage]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        def finished_and_next_checkpointed():
            records = {r.config.get("name"): r for r in bucket_state(s3, prefix, tmp_path / "state").values()}
            quick, slow1 = records.get("quick"), records.get("slow1")
            if quick is None or slow1 is None or quick.status != "TERMINATED" or not slow1.folder:
                return None
            rows = [line for line in bucket_rows(s3, prefix).get(slow1.folder, b"").splitlines() if line.strip()]
            return records if len(rows) >= 2 else None

        deadline = time.monotonic() + 240
        while not (records := finished_and_next_checkpointed()):
            assert proc.poll() is None, f"the sweep ended before the kill:\n{proc.stdout.read()[-3000:]}"
            assert time.monotonic() < deadline, "no finished trial in the bucket's experiment state"
            time.sleep(0.5)
        proc.kill()  # SIGKILL to the driver alone: no handler runs, nothing is saved on the way out
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        end_processes([proc.pid], ray_tmp, env_marker=f"RAY_TMPDIR={ray_tmp}")
    finished = {r.folder for r in records.values() if r.status == "TERMINATED"}
    before = bucket_rows(s3, prefix)
    assert finished and set(before) >= finished and len(finished) < 3, (finished, sorted(before))

    try:
        r = subprocess.run(cmd + ["--resume"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    finally:
        end_processes([], ray_tmp, env_marker=f"RAY_TMPDIR={ray_tmp}")
        import shutil

        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "resuming the sweep in" in r.stdout and f"report: {storage}/long/report.md" in r.stdout, r.stdout[-3000:]
    after = bucket_rows(s3, prefix)
    rerun = sorted(f for f in finished if after[f] != before[f])
    assert rerun == [], f"finished trials run again after --resume: {rerun}"
    iters = {f.split("_s1337_")[0]: [json.loads(line)["iter"] for line in rows.splitlines() if line.strip()]
             for f, rows in after.items()}
    assert sorted(iters) == ["quick", "slow1", "slow2"], sorted(after)  # one folder a trial
    for name in ("slow1", "slow2"):
        assert iters[name][-1] == 90 and iters[name].count(0) == 1, (name, iters[name])  # went on, not over
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")["Contents"]}
    assert {f"{prefix}/report.md", f"{prefix}/verdicts.json", f"{prefix}/trials.csv", f"{prefix}/sweep.json"} <= keys
    statuses = [json.loads(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read())["status"]
                for k in keys if k.endswith("/status.json")]  # written through the bucket by the sweep
    assert statuses == ["completed"] * 3, statuses
    again = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and again.stderr.startswith("error: ") and "already holds a sweep" in again.stderr
    assert bucket_rows(s3, prefix) == after  # the refused start touched nothing
    ls = run_cli("ls", storage, "--json")
    assert ls.returncode == 0, ls.stderr
    (s,) = json.loads(ls.stdout)
    assert (s["exp"], s["state"], s["done"], s["planned"]) == ("long", "finished", 3, 3), s
