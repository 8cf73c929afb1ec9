"""End to end on Ray clusters: `python sweeps/run.py ... --address ADDR` as a user runs it.

- a real two-node cluster made with `ray start` (head and one worker, 1 CPU each, both on this
  machine, with their own temp dir and free ports so they meet no other Ray on the machine);
- a simulated three-node cluster (`ray.cluster_utils.Cluster`) that loses a worker node in the
  middle of a sweep;
- an address where nothing listens.

Every Ray process a test starts is ended by its fixture, also when the test fails. The command
runs in a subprocess with its own results folder and dataset cache; token auth is off
(RAY_AUTH_MODE=disabled) in every process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ray_helpers import RealCluster, descendants, end_processes, free_ports, runs_under, short_tmp
from sweep_helpers import RUN, by_name, results_of, wait_for, write_experiment


def env_for(tmp: Path, ray_tmp: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(GPTCORE_CACHE=str(tmp / "cache"), RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1",
               RAY_USAGE_STATS_ENABLED="0")
    if ray_tmp:
        # Ray keeps "the last cluster started here" under its temp root: keep ours out of /tmp/ray,
        # so that no other Ray user on this machine joins our test cluster by accident
        env["RAY_TMPDIR"] = ray_tmp
    env.pop("RAY_ADDRESS", None)
    return env


def sweep_cmd(tmp: Path, exp: str, address: str, *args: str) -> list[str]:
    return RUN + [exp, "--address", address, "--storage", str(tmp / "results"), *args]


# --------------------------------------------------------------------------------------------
# nothing listening


def test_an_address_where_nothing_listens_is_one_line_error_not_a_hang(tmp_path):
    t0 = time.time()
    r = subprocess.run(RUN + ["exp1", "--address", "127.0.0.1:1", "--profile", "smoke", "--storage",
                              str(tmp_path / "X")], capture_output=True, text=True, env=env_for(tmp_path),
                       cwd=tmp_path, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "127.0.0.1:1" in r.stderr and "Traceback" not in r.stderr
    assert time.time() - t0 < 30  # ray.init alone would retry for minutes
    assert not (tmp_path / "X").exists()


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1", "[::1]:1", "localhost:1/"])
def test_check_reachable_refuses_a_port_where_nothing_listens(address):
    from gptcore.errors import UserError
    from sweeps.tune.cluster import check_reachable

    with pytest.raises(UserError, match="no Ray cluster answers at"):
        check_reachable(address, timeout_s=2)


@pytest.mark.parametrize("address", ["auto", "local", "ray://head"])
def test_check_reachable_leaves_addresses_without_a_port_to_ray(address):
    from sweeps.tune.cluster import check_reachable

    check_reachable(address)  # no connection tried, no error: ray.init answers these itself


# --------------------------------------------------------------------------------------------
# a real cluster: `ray start --head` plus one `ray start --address` worker


@pytest.fixture
def real_cluster(tmp_path):
    temp = short_tmp()
    port = free_ports(1)[0]
    c = RealCluster(address=f"127.0.0.1:{port}", temp_dir=temp, env=env_for(tmp_path, temp))
    try:
        c.start_node("--head", f"--port={port}", "--include-dashboard=false")
        c.start_node(f"--address={c.address}")
        yield c
    finally:
        end_processes(c.groups, temp)
        shutil.rmtree(temp, ignore_errors=True)


PROBE = """
import json, sys
import ray, ray._private.state
ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
nodes = [{k: n[k] for k in ("NodeID", "NodeManagerAddress", "Alive", "Resources")} for n in ray.nodes()]
actors = [{"pid": a["Pid"], "node": a["Address"]["NodeID"], "cls": a["ActorClassName"]}
          for a in ray._private.state.actors().values()]
print(json.dumps({"nodes": nodes, "actors": actors}))
"""


@pytest.mark.slow
def test_smoke_sweep_on_a_real_two_node_cluster(tmp_path, real_cluster):
    r = subprocess.run(sweep_cmd(tmp_path, "exp1", real_cluster.address, "--profile", "smoke"),
                       env=real_cluster.env, capture_output=True, text=True, cwd=tmp_path, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"connected to the Ray cluster at {real_cluster.address}: 2 nodes, 2 CPUs, 0 GPUs" in r.stdout
    assert "resources per trial: 1 CPU, 0 GPU" in r.stdout

    exp_dir = tmp_path / "results" / "exp1"
    trials = by_name(exp_dir)
    assert sorted(trials) == sorted(["baseline", "large_lr", "small_lr", "small_batch", "large_model"])
    for name, d in trials.items():
        rows = results_of(d)
        assert rows and rows[-1]["iter"] in (10, 20, 30), name  # completed, or stopped by ASHA at a rung
        assert json.loads((d / "config.json").read_text())["name"] == name
        assert "step 0: train loss" in (d / "train.log").read_text()
    assert json.loads((exp_dir / "sweep.json").read_text())["cpus_per_trial"] == 1
    assert (exp_dir / "report.md").is_file()

    # where the trials ran: Ray's actor table maps each trial's worker pid to its node
    p = subprocess.run([sys.executable, "-c", PROBE, real_cluster.address], env=real_cluster.env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-3000:]
    state = json.loads(p.stdout.strip().splitlines()[-1])
    nodes = [n for n in state["nodes"] if n["Alive"]]
    assert len(nodes) == 2 and all(n["Resources"]["CPU"] == 1 for n in nodes)
    trial_actors = [a for a in state["actors"] if a["cls"] == "GptTrial"]  # the trials' class (trainable.py)
    placed = {a["node"] for a in trial_actors}
    ran_on = {a["node"] for a in trial_actors if a["pid"] in {row["pid"] for d in trials.values()
                                                             for row in results_of(d)}}
    # 1 CPU per trial on nodes of 1 CPU: Tune's second trial at once had to go to the second node.
    # (Smoke trials take under a second, so the first node's reused worker may run them all
    # before the second one has started: only the placement is certain.)
    assert placed == {n["NodeID"] for n in nodes}, f"trial workers were not placed on both nodes: {state}"
    assert ran_on and ran_on <= placed

    # a local --storage passed the storage check because both nodes are this one machine
    from sweeps.tune.cluster import check_storage

    assert len({n["NodeManagerAddress"] for n in nodes}) == 1
    check_storage(str(tmp_path / "results"), nodes)  # no UserError


# --------------------------------------------------------------------------------------------
# a simulated cluster that loses a node in the middle of a sweep


@pytest.fixture
def sim_cluster(monkeypatch):
    """A head with no CPU (it runs no trials) and two worker nodes of 1 CPU, all in this process's
    care; add_node must run in the main thread."""
    from ray.cluster_utils import Cluster

    temp = short_tmp()
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_TMPDIR", temp)  # see env_for
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cluster = None
    try:
        # Ray's temp root is $RAY_TMPDIR/ray; dashboard_port: the check for it runs even when it is off
        cluster = Cluster(initialize_head=True, shutdown_at_exit=False,
                          head_node_args={"num_cpus": 0, "include_dashboard": False,
                                          "dashboard_port": free_ports(1)[0]})
        workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        yield cluster, workers, temp
    finally:
        # every process under this one is the cluster's now (the sweep has ended); Ray's agents and
        # workers rename themselves (ray::...), so note them by pid before their raylets go
        started = descendants(os.getpid())
        if cluster is not None:
            try:
                cluster.shutdown()
            except Exception as e:  # still end every process below
                print(f"cluster.shutdown: {e!r}")
        end_processes([], temp, started)
        shutil.rmtree(temp, ignore_errors=True)


def _raylet_pid(node) -> int:
    from ray._private import ray_constants

    return node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid


@pytest.mark.slow
def test_a_sweep_survives_losing_a_node(tmp_path, sim_cluster):
    cluster, (doomed, _survivor), temp = sim_cluster
    max_iters = 240
    runs = "\n".join(f"  - {{name: t{i}}}" for i in range(4))
    exp = write_experiment(tmp_path, "nodeloss", runs, max_iters=max_iters, eval_interval=30)
    exp_dir = tmp_path / "results" / "nodeloss"
    proc = subprocess.Popen(sweep_cmd(tmp_path, str(exp), cluster.address), env=env_for(tmp_path, temp),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        doomed_raylet = _raylet_pid(doomed)

        def running_on_doomed() -> dict[str, int]:
            """Trials whose latest report came from a worker of the doomed node, with 2+ checkpoints
            and far enough from the end that the node's loss interrupts them."""
            out = {}
            try:
                rows_of = {name: results_of(d) for name, d in by_name(exp_dir).items()}
            except ValueError:  # a file caught half-written: look again
                return {}
            for name, rows in rows_of.items():
                if (len(rows) >= 2 and rows[-1]["iter"] <= max_iters // 2
                        and runs_under(rows[-1]["pid"], doomed_raylet)):
                    out[name] = rows[-1]["iter"]
            return out

        victims = wait_for(running_on_doomed, 180, "a trial with checkpoints on the doomed node", proc)
        victim_pids = {results_of(by_name(exp_dir)[n])[-1]["pid"] for n in victims}
        cluster.remove_node(doomed)
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out[-4000:]
    assert "connected to the Ray cluster" in out and ": 3 nodes, 2 CPUs" in out

    trials = by_name(exp_dir)
    assert sorted(trials) == ["t0", "t1", "t2", "t3"]
    every_eval = list(range(0, max_iters + 1, 30))
    for name, d in trials.items():
        # every evaluation reported exactly once: nothing lost, nothing run twice, none started over
        assert [row["iter"] for row in results_of(d)] == every_eval, name
        log = (d / "train.log").read_text()
        assert "step 0: train loss" in log and "training took" in log, name
    for name in victims:
        rows = results_of(trials[name])
        # the node's loss was one failure of the trial (Ray's error.txt), retried under --max-failures
        # (default 3; with 0 the trial would end as an error and the command exit 1)
        assert "node" in (trials[name] / "error.txt").read_text()
        assert "Resuming training from" in (trials[name] / "train.log").read_text(), \
            f"{name} was on the lost node but did not resume from its checkpoint"
        assert rows[-1]["pid"] not in victim_pids and not runs_under(rows[-1]["pid"], doomed_raylet)
    # the summary table at the end (the plan at the start lists the trials too)
    summary = [line for line in out.splitlines() if line.split()[:1] in (["t0"], ["t1"], ["t2"], ["t3"])][-4:]
    assert all(line.rstrip().endswith("completed") for line in summary), summary
