"""Ray processes of the tests' own: free ports, short temp dirs, `ray start` nodes, and ending exactly them.

Used by the cluster tests (tests/test_cluster_e2e.py) and by the session-wide Ray head that the
end-to-end sweeps share (tests/conftest.py `ray_address`). Nothing here signals a process the
tests did not start: only their process groups, processes naming their unique temp dir (in their
command line, or in their environment as RAY_TMPDIR), or pids noted while they were theirs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray")) if Path(sys.executable).with_name("ray").is_file() else "ray"


def free_ports(n: int) -> list[int]:
    """n distinct ports that nothing listens on now (held open together, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def short_tmp() -> str:
    # not pytest's tmp_path: Ray's unix sockets live under the temp dir and their paths must stay
    # under ~107 characters
    return tempfile.mkdtemp(prefix="raye2e-", dir="/tmp")


@dataclass
class Proc:
    pid: int
    ppid: int
    pgid: int
    zombie: bool
    cmdline: str


def processes() -> list[Proc]:
    """This machine's processes, from /proc (psutil is not a dependency)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        out.append(Proc(int(entry.name), int(fields[1]), int(fields[2]), fields[0] == "Z", cmdline))
    return out


def runs_under(pid: int, ancestor: int) -> bool:
    """Is `pid` a descendant of `ancestor`?"""
    parent = {p.pid: p.ppid for p in processes()}
    while pid in parent and pid > 1:
        pid = parent[pid]
        if pid == ancestor:
            return True
    return False


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for p in processes():
        children.setdefault(p.ppid, []).append(p.pid)
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def environ_holds(pid: int, text: str) -> bool:
    """Does the environment of process `pid` hold `text` (e.g. "RAY_TMPDIR=/tmp/raye2e-...")?"""
    try:
        return text.encode() in (Path("/proc") / str(pid) / "environ").read_bytes()
    except OSError:  # gone, or not ours to read
        return False


def ours(groups: list[int], marker: str | None, pids: list[int], env_marker: str | None = None) -> list[int]:
    """Those of our processes still running: in the process groups we started, naming our unique
    temp dir (`marker`; None: not looked for), among `pids` (noted while they were ours), or with
    `env_marker` in their environment (what every process a Ray node starts inherits, a job's
    driver in a session of its own and workers that renamed themselves included). Never this
    process."""
    return [p.pid for p in processes()
            if not p.zombie and p.pid != os.getpid()
            and (p.pgid in groups or (marker is not None and marker in p.cmdline) or p.pid in pids
                 or (env_marker is not None and environ_holds(p.pid, env_marker)))]


def end_processes(groups: list[int], marker: str | None, pids: list[int] = (), grace_s: float = 3.0,
                  env_marker: str | None = None) -> None:
    """SIGTERM what we started, then SIGKILL what is left after `grace_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in ours(groups, marker, list(pids), env_marker):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + grace_s
        while ours(groups, marker, list(pids), env_marker) and time.time() < deadline:
            time.sleep(0.2)


STARTUP_TIMEOUT = "timed out during startup"  # what `ray start` says when its raylet never registered


@dataclass
class RealCluster:
    address: str
    temp_dir: str
    env: dict[str, str]
    groups: list[int] = field(default_factory=list)
    dashboard_port: int | None = None  # the head's, once started (jobs are submitted there)

    def start_node(self, *args: str, num_cpus: int = 1) -> None:
        """`ray start ARGS` in its own process group; the daemons it leaves keep that group."""
        ports = free_ports(7)
        cmd = [RAY, "start", *args, f"--num-cpus={num_cpus}", f"--temp-dir={self.temp_dir}",
               "--object-store-memory=100000000", "--min-worker-port=0", "--max-worker-port=0",
               f"--node-manager-port={ports[0]}", f"--object-manager-port={ports[1]}",
               f"--dashboard-agent-listen-port={ports[2]}", f"--dashboard-agent-grpc-port={ports[3]}",
               f"--runtime-env-agent-port={ports[4]}", f"--metrics-export-port={ports[5]}"]
        if "--head" in args:
            self.dashboard_port = free_ports(1)[0]
            cmd += [f"--ray-client-server-port={ports[6]}", f"--dashboard-port={self.dashboard_port}"]
        for attempt in (1, 2):
            proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, start_new_session=True)
            self.groups.append(proc.pid)
            out, _ = proc.communicate(timeout=120)
            # Ray waits a fixed 30 s for a new raylet to register with the GCS; on 2 cores under the
            # whole suite that can run out (it did once in CI). Not what these tests check: clear
            # away what the failed start left (its own process group only) and start once more.
            if proc.returncode != 0 and attempt == 1 and STARTUP_TIMEOUT in out:
                end_processes([proc.pid], marker=None)
                continue
            break
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-3000:]}"


