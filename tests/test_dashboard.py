"""The Ray dashboard names what it shows, in a real browser: the sweep's job, and each trial's actor.

A real sweep in local mode (its own Ray, with the dashboard) trains two trials; while they train,
headless Chromium (Debian's `chromium`; .ci/run installs it) loads the dashboard's Jobs and Actors
pages, and the rendered pages must name the sweep's job by its experiment and results folder and
each trial's actor by its experiment, run, seed and trial id (class `GptTrial`, not Tune's
`ImplicitFunc` with the function's name). The sweep and its Ray are then ended (their processes alone).

Run as a script, it makes the screenshots in docs/ the same way, from the chapter's exp1:

    python tests/test_dashboard.py docs/      # docs/dashboard-jobs.png, docs/dashboard-actors.png
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: the tests' helpers

from common import REPO, RUN  # noqa: E402
from ray_helpers import end_processes, short_tmp  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# as a test's browser should start: nothing of its own in the background, a profile of its own
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync")
CONFIG = ("{max_iters: 3000, n_layer: 2, n_head: 2, n_embd: 64, block_size: 64, batch_size: 16, eval_batch_size: 8, "
          "dropout: 0.0, eval_interval: 100, eval_iters: 2, log_interval: 100, warmup_iters: 10, lr_decay_iters: 3000}")


def browse(url: str, screenshot: Path | None = None, wait_ms: int = 15000) -> str:
    """The page at `url` as the browser renders it (its DOM, after its scripts ran and its data came), and
    optionally a screenshot of it."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        base = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={wait_ms}"]
        dom = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True, timeout=90)
        if screenshot is not None:
            subprocess.run(base + ["--window-size=1500,620", "--hide-scrollbars", f"--screenshot={screenshot}", url],
                           capture_output=True, text=True, timeout=90)
    return html.unescape(dom.stdout)


class Sweep:
    """A sweep in the background, in a process group of its own, with its output collected as it comes."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str]):
        self.proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, predicate, timeout: float, what: str):
        t0 = time.time()
        while time.time() - t0 < timeout:
            found = predicate()
            if found:
                return found
            if self.proc.poll() is not None:
                raise AssertionError(f"the sweep ended before {what}:\n{''.join(self.lines)[-3000:]}")
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}:\n{''.join(self.lines)[-3000:]}")

    def dashboard(self) -> str | None:
        m = re.search(r"Ray dashboard: (http://\S+)", "".join(self.lines))
        return m.group(1) if m else None



def started_trials(exp_dir: Path) -> list[tuple[str, int, str]]:
    """(run name, seed, trial id) of every trial Tune started: its folder `<name>_s<seed>_<trial id>` with the
    params.json Tune writes there."""
    import json

    out = []
    for d in sorted(exp_dir.glob("*_s*_*")) if exp_dir.is_dir() else []:
        try:
            params = json.loads((d / "params.json").read_text())
        except (OSError, ValueError):
            continue
        prefix = f"{params['name']}_s{params['seed']}_"
        if d.name.startswith(prefix):
            out.append((params["name"], params["seed"], d.name[len(prefix):]))
    return out


def run_and_look(exp: str, args: list[str], cache: Path, storage: Path, trials: int, shots: Path | None = None,
                 command: tuple[list[str], Path] | None = None) -> tuple[str, str, list[tuple[str, int, str]], str]:
    """Start the sweep (`command`: its program and folder, default RUN in `cache`), wait until `trials` trials
    train, and load the Jobs and Actors pages (screenshots into `shots`): (jobs page, actors page, the trials,
    the results folder)."""
    temp = short_tmp()
    env = {**os.environ, "RAY_TMPDIR": temp, "RAY_AUTH_MODE": "disabled", "GPTCORE_CACHE": str(cache / "cache"),
           "GPTSWEEP_REUSE_ACTORS": "0", "PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    program, cwd = command or (RUN, cache)
    if command:  # the program as a user types it (the Jobs page shows the command line): python from .venv
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    exp_dir = storage / exp
    sweep = Sweep([*program, *args, "--storage", str(storage), "--num-cpus", "2", "--no-analyze"], cwd, env)
    try:
        url = sweep.wait_for(sweep.dashboard, 180, "the dashboard's URL")
        running = sweep.wait_for(lambda: len(started_trials(exp_dir)) >= trials and started_trials(exp_dir), 240,
                                 f"{trials} trials training")
        names = [f"{exp} {n} s{s} trial {t}" for n, s, t in running]
        actors = ""
        for _ in range(6):  # an actor is named once its trial is set up: the page may be a moment ahead of it
            actors = browse(f"{url}/#/actors", shots / "dashboard-actors.png" if shots else None)
            if all(n in actors for n in names):
                break
            time.sleep(1)
        jobs = browse(f"{url}/#/jobs", shots / "dashboard-jobs.png" if shots else None)
        return jobs, actors, running, str(exp_dir)
    finally:  # no need to stop it gently: the sweep's own processes, and its Ray's (by their temp dir), end
        end_processes([sweep.proc.pid], temp)
        sweep.proc.wait(30)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium; .ci/run installs it)")
def test_the_dashboard_names_the_sweeps_job_and_each_trials_actor(tmp_path):
    exp = tmp_path / "dash.yaml"
    exp.write_text("description: two trials for the dashboard\nbase: train_shakespeare_char\ngrid:\n"
                   "  - {name: a}\n  - {name: b}\nearly_stopping:\n  none: complete curves\nprofiles:\n"
                   + "".join(f"  {p}: {{seeds: 1, config: {CONFIG}}}\n" for p in ("full", "cpu", "smoke")))
    jobs, actors, trials, exp_dir = run_and_look("dash", [str(exp)], tmp_path, tmp_path / "results", trials=2)
    assert len(trials) == 2
    for name, seed, tid in trials:  # each trial's actor: its experiment, run, seed and trial id
        assert f"dash {name} s{seed} trial {tid}" in actors, actors[-3000:]
    assert "GptTrial" in actors and "ImplicitFunc" not in actors
    assert f"gptsweep dash ({exp_dir})" in jobs, jobs[-3000:]  # the sweep's job: experiment and results


def main(out: str) -> int:
    """The screenshots of docs/: exp1's cpu profile, one seed, under /srv/sweeps (a path for the picture)."""
    if CHROMIUM is None:
        print("needs Chromium: apt-get install chromium", file=sys.stderr)
        return 2
    shots = Path(out).absolute()
    storage = Path("/srv/sweeps")
    work = Path(tempfile.mkdtemp(prefix="dashboard-"))
    try:
        jobs, actors, trials, _ = run_and_look("exp1", ["exp1", "--profile", "cpu", "--seeds", "1"], work, storage,
                                               trials=2, shots=shots, command=(["python", "sweeps/run.py"], REPO))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(storage / "exp1", ignore_errors=True)
        (storage / ".exp1.lock").unlink(missing_ok=True)
    print("\n".join(f"exp1 {n} s{s} trial {t}: {'shown' if f'exp1 {n} s{s} trial {t}' in actors else 'MISSING'}"
                    for n, s, t in trials))
    print(f"wrote {shots / 'dashboard-jobs.png'} and {shots / 'dashboard-actors.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs"))


def test_an_actor_per_trial_unless_every_trial_is_tiny(monkeypatch):
    from sweeps.strategies import make_plan
    from sweeps.strategies.plan import PlanRequest
    from sweeps.tune.launch import reuse_actors
    from sweeps.tune.trainable import actor_label

    monkeypatch.delenv("GPTSWEEP_REUSE_ACTORS", raising=False)
    smoke, cpu = (make_plan(PlanRequest(exp="exp1", search="grid", profile=p), 0) for p in ("smoke", "cpu"))
    assert reuse_actors(smoke) and not reuse_actors(cpu)  # seconds of training vs minutes
    monkeypatch.setenv("GPTSWEEP_REUSE_ACTORS", "0")
    assert not reuse_actors(smoke)
    assert actor_label("exp1", {"name": "baseline", "seed": 1337}, "3ad0db4b") == "exp1 baseline s1337 trial 3ad0db4b"
    reused = actor_label("exp1", {"name": "t003"}, "a_00003", reused=True)
    assert reused.startswith("exp1 t003 trial a_00003 (its first")
