"""The live view of a sweep (sweeps/live.py, sweeps/live_tune.py) and the scheduler's decisions it shows.

The View is rendered in process from recorded events: the same events give the same screen. The
plain output (no terminal) is checked for its rate: one line per decision and per finished run,
the progress line at most once an interval. Two real smoke sweeps check what a user sees, piped
and on a pseudo-terminal: the view, and nothing of Ray's status table.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import select
import subprocess
import time

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler
from sweep_helpers import env_for, sweep_args

from sweeps.strategies.halving import SeedGroupHalving
from sweeps.strategies.search import SearchPanel
from sweeps.tune.live import LiveView
from sweeps.view.outputs import PlainOutput, TerminalOutput
from sweeps.view.state import View

RAY_INTERNALS = ("== Status ==", "Result logdir", "driver_artifacts", "Current best trial", "Logical resource usage")

DECISION = {"rung": 10, "inferred": False, "reference": "baseline",
            "runs": [{"name": "large_lr", "mean": 3.515, "std": 0.0071, "n": 2, "rank": 1, "continues": True},
                     {"name": "baseline", "mean": 3.915, "std": 0.0071, "n": 2, "rank": 2, "continues": True},
                     {"name": "small_lr", "mean": 4.165, "std": 0.0071, "n": 2, "rank": 3, "continues": False}],
            "continued": ["large_lr", "baseline"], "stopped": ["small_lr"]}


def row(it: int, val: float, status: str = "running") -> dict:
    return {"iter": it, "val_loss": val, "train_loss": val, "status": status, "max_iters": 30}


def grid_events() -> list[tuple]:
    """A grid of 3 runs x 2 seeds: all reach rung 10, small_lr is stopped there, the others go on."""
    ev: list[tuple] = []
    ids = {(n, s): f"{n}-{s}" for n in ("baseline", "small_lr", "large_lr") for s in (1, 2)}
    cfg = {k: {"name": k[0], "seed": k[1], "max_iters": 30} for k in ids}
    ev += [("trial_added", ids[k], cfg[k]) for k in ids]
    start = {"baseline": [4.0, 3.9], "small_lr": [4.2, 4.15], "large_lr": [3.9, 3.5]}
    for n, losses in start.items():
        for s in (1, 2):
            k = (n, s)
            ev.append(("trial_started", ids[k], cfg[k], 101.0))
            ev += [("trial_result", ids[k], row(10 * i, v + 0.01 * s), 102.0 + i) for i, v in enumerate(losses)]
            ev.append(("trial_waiting", ids[k], 104.0))
    ev.append(("decision", DECISION, 110.0))
    ev += [("trial_ended", ids["small_lr", s], "stopped early", 110.0) for s in (1, 2)]
    ev += [("trial_started", ids["baseline", 1], cfg["baseline", 1], 111.0),
           ("trial_result", ids["baseline", 1], row(20, 3.81), 115.0), ("tick", 120.0)]
    return ev


def play(events: list[tuple], **kw) -> View:
    view = View(title="exp1: 3 runs x 2 seeds", planned_trials=6, max_iters=30, dashboard="http://127.0.0.1:8265",
                results="results/exp1", log="results/exp1/driver.log", **kw)
    view.start(100.0)
    for kind, *args in events:
        getattr(view, kind)(*args)
    return view


def test_the_same_events_give_the_same_screen():
    assert play(grid_events()).render() == play(grid_events()).render()


def test_a_grid_screen_shows_each_run_the_decisions_and_the_totals():
    screen = play(grid_events()).render()
    lines = screen.splitlines()
    assert lines[0] == "exp1: 3 runs x 2 seeds"
    runs = {ln.split()[0]: ln for ln in lines if ln.split() and ln.split()[0] in ("baseline", "small_lr", "large_lr")}
    # progress over both seeds' budgets (baseline: 20 + 10 of 60), the loss at the step both seeds reached
    assert re.fullmatch(r"baseline +2  █{10}░{10}  50%  3\.9150 ± 0\.0071 at 10 +running", runs["baseline"])
    assert re.search(r"33%  4\.1650 ± 0\.0071 at 10 +stopped at 10$", runs["small_lr"])
    assert re.search(r"3\.5150 ± 0\.0071 at 10 +waiting at 10$", runs["large_lr"])
    assert ("  rung 10: stopped small_lr, val 4.1650 ± 0.0071 (n=2), rank 3 of 3; reference baseline "
            "3.9150 ± 0.0071 (n=2); 2 of 3 continue") in lines
    assert ("trials 2 done, 1 running, 3 waiting at a rung, 0 pending (of 6) · iterations 70 of 140 · "
            "elapsed 20s, about 20s left") in lines
    assert lines[-1] == "dashboard http://127.0.0.1:8265 · results results/exp1 · Ray's log results/exp1/driver.log"


def test_run_states_and_the_loss_all_seeds_reached():
    view = play([("trial_added", "a1", {"name": "a", "seed": 1, "max_iters": 30}),
                 ("trial_added", "a2", {"name": "a", "seed": 2, "max_iters": 30})])
    assert view.run_state("a") == "pending"
    view.trial_started("a1", {"name": "a"}, 101)
    view.trial_result("a1", row(10, 3.0), 102)
    assert view.run_loss("a") == (None, None, None, 0)  # the other seed has no evaluation yet
    view.trial_started("a2", {"name": "a"}, 103)
    view.trial_result("a1", row(20, 2.5), 104)
    view.trial_result("a2", row(10, 3.2), 105)
    mean, std, step, n = view.run_loss("a")
    assert (round(mean, 4), step, n) == (3.1, 10, 2)
    view.trial_ended("a1", "completed", 106)
    view.trial_result("a2", {"iter": 15, "val_loss": float("nan"), "status": "diverged", "max_iters": 30}, 107)
    view.trial_ended("a2", "diverged", 107)
    assert view.run_state("a") == "diverged (1 of 2 seeds)"
    assert view.run_loss("a")[2:] == (20, 1)  # the diverged seed is left out, and n says so
    assert view.take_notes()[-1] == "run a diverged (1 of 2 seeds): val 2.5000 at 20 (n=1)"
    view.trial_added("b1", {"name": "b", "max_iters": 30})
    view.trial_ended("b1", "errored", 108)
    assert view.run_state("b") == "errored"


def test_a_decision_without_reference_names_the_last_run_to_continue_and_all_continue_is_one_line():
    view = play([])
    d = {**DECISION, "reference": None}
    assert view.decision_lines(d) == ["rung 10: stopped small_lr, val 4.1650 ± 0.0071 (n=2), rank 3 of 3; "
                                      "last to continue baseline 3.9150 ± 0.0071 (n=2); 2 of 3 continue"]
    everyone = {**DECISION, "rung": 20, "stopped": [], "continued": ["large_lr", "baseline", "small_lr"]}
    assert view.decision_lines(everyone) == ["rung 20: all 3 runs continue, best large_lr 3.5150 ± 0.0071 (n=2)"]
    inferred = {**DECISION, "inferred": True, "runs": [{**r, "n": 0, "mean": None, "std": None}
                                                        for r in DECISION["runs"]]}
    assert view.decision_lines(inferred)[0].startswith("rung 10 (decided before the resume): stopped small_lr, "
                                                       "val (no value kept)")


def search_events() -> list[tuple]:
    ev: list[tuple] = []
    trials = {"t000": (1e-3, [3.9, 3.5, 3.2]), "t001": (5e-3, [3.8, 3.4]), "t002": (1e-4, [4.2]),
              "t003": (2e-3, [3.9, 3.3, 3.1])}
    for i, (name, (lr, losses)) in enumerate(trials.items()):
        cfg = {"name": name, "stage": "search", "learning_rate": lr, "batch_size": 8, "max_iters": 30}
        ev.append(("trial_started", name, cfg, 101.0 + i))
        ev += [("trial_result", name, row(10 * (j + 1), v), 102.0 + i + j) for j, v in enumerate(losses)]
    ev += [("trial_ended", "t000", "completed", 110.0), ("trial_ended", "t002", "stopped early", 110.0),
           ("trial_ended", "t003", "completed", 111.0), ("tick", 112.0)]
    return ev


def test_a_search_shows_done_pruned_running_the_best_so_far_and_the_confirm_stage():
    view = play(search_events(), panel=SearchPanel(8, "tpe", ("learning_rate", "batch_size")))
    view.planned_trials = 10
    screen = view.render()
    assert "search (sampler tpe): 3 of 8 trials done (1 pruned), 1 running" in screen
    # the largest budget reached is 30: of the trials there, t003 is lowest
    assert "best so far: t003 val 3.1000 at 30 (learning_rate=0.002, batch_size=8)" in screen
    assert re.search(r"^t001 +1 .* 3\.4000 at 20 +running$", screen, re.M)  # a running trial has its line
    assert not re.search(r"^t000 ", screen, re.M)  # a finished one is in the totals
    assert "confirm stage: after the search" in screen
    for s in (1, 2):
        view.trial_started(f"c{s}", {"name": "confirm_t003", "stage": "confirm", "seed": s, "max_iters": 30}, 113)
    screen = view.render()
    assert "confirm stage: the best configurations and the reference at the full budget, over the seeds" in screen
    assert re.search(r"^confirm_t003 +2 .* running$", screen, re.M)
    assert "best t003 3.1000 at 30" in view.progress_line()


def test_plain_output_writes_each_decision_and_finished_run_once_and_progress_at_most_once_an_interval():
    view = play([])
    lines: list[str] = []
    out = PlainOutput(view, lines.append, interval=30)
    out.begin()
    assert lines == ["exp1: 3 runs x 2 seeds; a line per decision and per finished run, the progress every 30s"]
    events = grid_events()
    t = 100.0
    for kind, *args in events:
        getattr(view, kind)(*args)
        t += 1
        out.update(t)  # as Tune's loop does at each step
    for now in range(int(t), 200):  # nothing new: only the periodic line
        out.update(float(now))
    body = lines[1:]
    decisions = [ln for ln in body if "rung 10: stopped small_lr" in ln]
    finished = [ln for ln in body if ln.endswith("run small_lr stopped at 10 (2 seeds): val 4.1650 ± 0.0071 at 10")]
    progress = [ln for ln in body if "· iterations" in ln]
    assert len(decisions) == 1 and len(finished) == 1
    assert body.index(decisions[0]) < body.index(finished[0])
    # from 100 s to 199 s with an interval of 30: at 131, 161, 191 at most
    assert 2 <= len(progress) <= 3
    assert len(body) == 2 + len(progress)
    assert all(re.match(r"\[\d+(m\d\ds)?s?\] ", ln) for ln in body)
    out.finish(200.0)
    assert lines[-1] == "[1m40s] results results/exp1 · Ray's log results/exp1/driver.log"
    assert "trials 2 done" in lines[-2]


def test_a_run_is_not_over_while_a_planned_seed_has_not_come():
    # with --max-concurrent, Tune may add a run's second seed only after its first has ended (a reference
    # run passes the rungs without waiting): the run's line comes when both are over, with both seeds
    cfg = {s: {"name": "baseline", "seed": s, "max_iters": 30} for s in (1, 2)}
    view = play([], planned_runs={"baseline": 2})
    for s in (1, 2):
        view.trial_added(f"b{s}", cfg[s])
        view.trial_started(f"b{s}", cfg[s], 101.0)
        view.trial_result(f"b{s}", row(30, 3.7 + 0.01 * s), 102.0)
        view.trial_ended(f"b{s}", "completed", 103.0)
        assert view.finished == ([] if s == 1 else ["baseline"])
    assert view.take_notes()[-1] == "run baseline completed (2 seeds): val 3.7150 ± 0.0071 at 30"


def test_terminal_output_redraws_the_view():
    view = play(grid_events())
    buf = io.StringIO()
    out = TerminalOutput(view, file=buf, force_terminal=True)  # what a terminal gets, in a buffer
    out.update(130.0)
    out.update(130.1)  # within the redraw interval: nothing new drawn
    out.finish(131.0)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())
    assert "baseline" in text and "█" in text and "early stopping:" in text
    assert not any(s in text for s in RAY_INTERNALS)


class _Controller:
    """The little of Tune's controller the scheduler uses."""

    def __init__(self, trials):
        self.trials = trials

    def get_trials(self):
        return self.trials

    def stop_trial(self, trial):
        trial.set_status(Trial.TERMINATED)

    def _schedule_trial_train(self, trial):  # private in Tune: a trial waiting in place is asked for more
        self.asked = [*getattr(self, "asked", []), trial.config["name"]]


def test_the_scheduler_lists_its_decisions_with_each_runs_figures():
    levels = {"baseline": 3.0, "good": 2.5, "bad": 3.5, "worse": 4.0}
    trials = [Trial("__fake", config={"name": n, "seed": s}, stub=True) for n in levels for s in (0, 1)]
    sched = SeedGroupHalving(grace_period=10, reduction_factor=2, max_t=40, n_trials=len(trials),
                             protected=("baseline",))
    tc = _Controller(trials)
    for t in trials:
        sched.on_trial_add(tc, t)
        t.set_status(Trial.RUNNING)
    answers = [sched.on_trial_result(tc, t, {"iter": 10, "val_loss": levels[t.config["name"]] + 0.1 * t.config["seed"]})
               for t in trials]
    # the protected baseline goes on past the rung; the others wait for the decision, in place, since every
    # trial runs and no other could use a freed slot; the last one's report decides the rung
    assert answers[:-1] == [TrialScheduler.CONTINUE] * 2 + [TrialScheduler.NOOP] * (len(trials) - 3)
    assert answers[-1] == TrialScheduler.STOP and not sched.in_place
    assert tc.asked == ["good", "good"]  # the others stopped where they waited
    assert [t.status for t in trials].count(Trial.TERMINATED) == 3  # bad's two seeds and worse's first
    [d] = sched.decisions
    assert (d["rung"], d["inferred"], d["reference"]) == (10, False, "baseline")
    assert d["continued"] == ["good", "baseline"] and d["stopped"] == ["bad", "worse"]
    first = d["runs"][0]
    assert (first["name"], first["rank"], first["n"], first["continues"]) == ("good", 1, 2, True)
    assert first["mean"] == pytest.approx(2.55) and first["std"] == pytest.approx(0.0707, abs=1e-4)
    assert [r["rank"] for r in d["runs"]] == [1, 2, 3, 4]
    # what the view makes of it
    assert View().decision_lines(d)[0] == ("rung 10: stopped bad, val 3.5500 ± 0.0707 (n=2), rank 3 of 4; "
                                           "reference baseline 3.0500 ± 0.0707 (n=2); 2 of 4 continue")


def test_the_callback_pickles_without_its_output_and_keeps_its_scheduler():
    sched = SeedGroupHalving(grace_period=10, reduction_factor=2, max_t=40, n_trials=2)
    cb = LiveView({"title": "t", "planned_trials": 2, "max_iters": 40}, shown=(sched,), interval=1)
    cb.setup(total_num_samples=2)  # pytest's stdout is no terminal: the plain output
    assert isinstance(cb._out, PlainOutput)
    sched.decisions.append({**DECISION})
    cb_again, sched_again = pickle.loads(pickle.dumps((cb, sched)))  # as tuner.pkl holds both
    assert cb_again._out is None and cb_again._view is None
    assert cb_again._shown[0] is sched_again and sched_again.decisions == sched.decisions
    old = pickle.loads(pickle.dumps(sched))
    del old.__dict__["decisions"]  # a scheduler pickled before the list existed
    assert pickle.loads(pickle.dumps(old)).decisions == []


def test_ray_messages_go_to_driver_log_and_back_to_the_screen(tmp_path):
    import logging

    from sweeps.tune.launch import ray_log_to_file, ray_log_to_screen

    logger = logging.getLogger("ray")
    screen_buf = io.StringIO()
    screen = logging.StreamHandler(screen_buf)
    logger.addHandler(screen)
    try:
        path = ray_log_to_file(str(tmp_path / "exp1"), "exp1")
        ray_log_to_file(str(tmp_path / "exp1"), "exp1")  # again: still one file handler, the screen's kept aside
        assert path == tmp_path / "exp1" / "driver.log" and screen not in logger.handlers
        logging.getLogger("ray.tune").warning("a note from Tune")
        assert "a note from Tune" in path.read_text() and not screen_buf.getvalue()
        ray_log_to_screen()
        assert screen in logger.handlers and not [h for h in logger.handlers if h.get_name() == "gptsweep-driver-log"]
    finally:
        ray_log_to_screen()
        logger.removeHandler(screen)


# -- what a user sees, in a real sweep ----------------------------------------------------

SMOKE = ("exp1", "--profile", "smoke", "--seeds", "2", "--no-analyze")


def test_a_sweep_on_a_terminal_shows_the_live_view(tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    env = {**env_for(tmp_path), "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "50"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(sweep_args(tmp_path, *SMOKE), env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.time() + 400
    try:
        while time.time() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child's side is closed
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    raw = b"".join(chunks).decode("utf-8", "replace")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw).replace("\r", "")
    (tmp_path / "screen.txt").write_text(text)
    assert proc.returncode == 0, text[-3000:]
    assert re.search(r"^baseline +2  [█░]{20} +\d+%", text, re.M), text[-3000:]
    assert "early stopping:" in text and "rung 10: stopped small_batch" in text
    assert "trials 10 done, 0 running, 0 pending (of 10)" in text
    assert not [s for s in RAY_INTERNALS if s in text], text[-3000:]


def test_a_held_run_and_the_verdicts_decided_at_a_rung_are_said():
    runs = [{"name": "baseline", "mean": 2.58, "std": 0.003, "n": 3, "rank": 1, "continues": True, "held": [],
             "decided": []},
            {"name": "large_lr", "mean": 2.60, "std": 0.01, "n": 3, "rank": 2, "continues": True,
             "held": ["oscillates_or_worse within noise (+0.0173 ± 0.0120, p = 0.25)"], "decided": []},
            {"name": "small_lr", "mean": 3.04, "std": 0.004, "n": 3, "rank": 3, "continues": False, "held": [],
             "decided": ["converges_slower holds (+0.4566 ± 0.0026, p = 3.7e-08)"]}]
    d = {"rung": 100, "inferred": False, "reference": "baseline", "runs": runs, "continued": ["baseline", "large_lr"],
         "stopped": ["small_lr"], "held": ["large_lr"]}
    lines = View().decision_lines(d)
    assert lines[0].endswith("2 of 3 continue; decided there: converges_slower holds (+0.4566 ± 0.0026, p = 3.7e-08)")
    assert lines[1] == ("rung 100: large_lr continues though ranked 2 of 3, val 2.6000 ± 0.0100 (n=3): its verdict is "
                        "open there, oscillates_or_worse within noise (+0.0173 ± 0.0120, p = 0.25)")
    everyone = {**d, "stopped": [], "continued": ["baseline", "large_lr", "small_lr"]}
    assert [line.split(":")[0] for line in View().decision_lines(everyone)] == ["rung 100", "rung 100"]
    look = {"look": 1, "seeds": 3, "open": ["lower_loss within noise (-0.0145 ± 0.0252, p = 0.6)"],
            "added": {"weight_decay": 2, "overfit": 2}}
    assert View.look_line(look) == ("look 1 (3 seeds): within noise: lower_loss within noise (-0.0145 ± 0.0252, "
                                    "p = 0.6); more seeds: weight_decay +2, overfit +2")
    assert View.look_line({**look, "open": [], "added": {}}) == "look 1 (3 seeds): every verdict decided, no seed added"


# -- a narrow terminal ----------------------------------------------------------------------

def narrow_events() -> list[tuple]:
    """A grid whose lines are as long as the cpu profile's get: long names, losses with (n=...), long states."""
    ev: list[tuple] = []
    cfg = {(n, s): {"name": n, "seed": s, "max_iters": 1000} for n in ("baseline", "large_model", "small_batch")
           for s in (1, 2, 3)}
    for (n, s), c in cfg.items():
        ev += [("trial_added", f"{n}-{s}", c), ("trial_started", f"{n}-{s}", c, 101.0)]
        ev += [("trial_result", f"{n}-{s}", {**row(it, 2.5 - it / 1e4 + s / 100), "max_iters": 1000}, 102.0 + it / 100)
               for it in (0, 500, 1000) if not (n == "small_batch" and s == 3 and it > 0)]
    ev += [("trial_ended", "large_model-1", "completed", 120.0), ("trial_ended", "large_model-2", "completed", 120.0),
           ("trial_ended", "large_model-3", "diverged", 121.0), ("trial_waiting", "baseline-1", 122.0),
           ("trial_ended", "small_batch-3", "errored", 123.0), ("tick", 130.0)]
    return ev


def test_the_view_fits_80_and_120_columns_and_never_cuts_a_state():
    from sweeps.view.text import FIT_ORDER

    view = play(narrow_events())
    states = {n: view.run_state(n) for n in view.runs}
    assert states["large_model"] == "diverged (1 of 3 seeds)" and states["small_batch"] == "running"
    wide = view.render()
    assert max(len(ln) for ln in wide.splitlines() if "%" in ln) > 80  # what the issue saw: runs too wide for 80
    for width in (80, 120):
        buf = io.StringIO()
        out = TerminalOutput(view, file=buf, force_terminal=True, width=width)  # a terminal of that width
        out.finish(131.0)
        screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue()).replace("\r", "")
        lines = [ln.rstrip() for ln in screen.splitlines() if ln.strip()]
        assert all(len(ln) <= width for ln in lines), [ln for ln in lines if len(ln) > width]
        assert "…" not in screen  # nothing cut: narrowed, dropped or wrapped instead
        for name, state in states.items():  # each run's line ends with its whole state
            shown = [ln for ln in lines if ln.startswith(name[:8]) and "%" in ln]  # (each redraw has it)
            assert shown and all(ln.endswith("  " + state) for ln in shown), (width, shown)
        flat = " ".join(lines)  # the totals and where things are: every part, on as many lines as they need
        for part in view.totals_parts() + ["results results/exp1", "Ray's log results/exp1/driver.log"]:
            assert part in flat or part.replace(" ", "") in flat.replace(" ", ""), part
    # the order the columns give way in, and what 80 columns shows of it
    at80 = view.render(width=80)
    assert len(FIT_ORDER) == 6 and not any("state" in step for step in FIT_ORDER)
    assert re.search(r"^large_model  +3  .*% +2\.\d{4} ± 0\.\d{4} at 1000 \(n=2\)  diverged \(1 of 3 seeds\)$", at80,
                     re.M), at80
    at120 = view.render(width=120)
    # 120 columns: the wide layout, only the totals wrap
    assert re.search(r"^large_model  +3  [█░]{20} +\d+%  2\.\d{4} ± 0\.\d{4} at 1000 \(n=2\)  diverged \(1 of 3 "
                     r"seeds\)$", at120, re.M), at120
