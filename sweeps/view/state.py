"""The live view of a sweep: what runs, how far each run is, what the scheduler decided, and how long is left.

`View` holds the state and renders it; it is fed events (a trial added, started, its report rows,
waiting at a rung, ended with its status; a scheduler decision; the time) and knows nothing of
Ray, the screen or the clock: the same events give the same text. Its unit is the *run* (the
trials that share a `name`, a grid run's seeds; a search trial is a run of one), shown as one
line: a progress bar over its seeds' max_iters, the val loss mean ± std over its seeds at the
latest evaluation all of them reached, and its state.

What a strategy shows besides (a search's block: trials done, pruned and running, the best so
far, the confirm stage as a phase of its own) is its `Panel`, given by the strategy
(sweeps/strategies/); the default panel shows every run as a line.

Two outputs show a View (outputs.py): a screen redrawn in place on a terminal, and plain lines
where the output is a file or a pipe. The Tune side (a Callback that turns Tune's hooks into
these events) is sweeps/tune/live.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gptcore import record
from sweeps.results.trial import ERRORED, STOPPED, is_evaluation
from sweeps.view.text import RunCells, fit_layout, fmt_loss, fmt_time, header_row, join_fit, mean_std, run_row, wrap

PENDING, RUNNING, WAITING, ENDED = "pending", "running", "waiting", "ended"


@dataclass
class _Trial:
    tid: str
    name: str
    seed: Any
    stage: str  # its config's `stage` ("" without one)
    max_iters: int | None
    config: dict[str, Any]
    state: str = PENDING
    status: str | None = None  # how it ended: one of sweeps.results.trial.FINAL
    iter: int = 0
    vals: dict[int, float] = field(default_factory=dict)  # iter -> val loss (finite ones only)


class Panel:
    """What a strategy shows of its trials besides the runs' lines: the default shows every run as a line.

    `lines` come above the runs; `sections` say which runs are shown, under which heading (None: none)
    and with which word in the first column; `after` comes below them; `progress` is added to the
    plain output's progress line; `noun` names a finished run in its line.
    """

    def lines(self, view: View) -> list[str]:
        return []

    def sections(self, view: View) -> list[tuple[str | None, list[str], str]]:
        return [(None, list(view.runs), "run")]

    def after(self, view: View) -> list[str]:
        return []

    def progress(self, view: View) -> str:
        return ""

    def noun(self, view: View, name: str) -> str:
        return "run"


class View:
    """The state of a sweep as its events arrive, and its text (module docstring).

    Args:
        title: the first line (e.g. "exp1: grid of 5 runs x 2 seeds").
        planned_trials: the trials the sweep will have (a search's, its confirm stage included).
        planned_runs: per run, the trials it has from the start (a grid's first seeds): a run is not over
            while some have not come yet (Tune may add them late, when slots free). None: what came.
        max_iters: the budget of a trial whose own is not known yet.
        panel: what the strategy shows besides the runs (`Panel`); None: every run as a line.
        dashboard, results, log: where the dashboard is, where the results go, where Ray's messages go.
    """

    def __init__(self, title: str = "", planned_trials: int | None = None, max_iters: int | None = None,
                 panel: Panel | None = None, dashboard: str | None = None, results: str | None = None,
                 log: str | None = None, planned_runs: dict[str, int] | None = None):
        self.title, self.planned_trials, self.max_iters = title, planned_trials, max_iters
        self.planned_runs = dict(planned_runs or {})
        self.panel = panel or Panel()
        self.dashboard, self.results, self.log = dashboard, results, log
        self.trials: dict[str, _Trial] = {}
        self.runs: dict[str, list[str]] = {}  # run name -> its trial ids, in order of arrival
        self.decisions: list[str] = []  # one line per decision about a run, in order
        self.stopped_at: dict[str, int] = {}  # run -> the rung the scheduler stopped it at
        self.finished: list[str] = []  # runs whose every trial ended, in order
        self.started: float | None = None
        self.now: float | None = None
        self._base_iters = 0  # iterations done before this session (a resumed sweep's)
        self._notes: list[str] = []  # lines not yet taken by an output

    # -- events ------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """The sweep (this session of it) starts."""
        self.started = self.started if self.started is not None else now
        self.now = now

    def tick(self, now: float) -> None:
        self.now = now
        if self.started is None:
            self.started = now

    def trial_added(self, tid: str, config: dict[str, Any], last: dict[str, Any] | None = None,
                    ended: str | None = None) -> None:
        """A trial exists (pending). A resumed sweep's restored trial comes with its last report row
        (`last`) and, when it was over before, how it ended (`ended`: no line is written for it)."""
        if tid in self.trials:
            return
        stage = str(config.get("stage", "") or "")
        name = str(config.get("name", tid))
        t = self.trials[tid] = _Trial(tid, name, config.get("seed"), stage, config.get("max_iters"), dict(config))
        self.runs.setdefault(name, []).append(tid)
        if last and "iter" in last:
            self._row(t, last)
            self._base_iters += t.iter
        if ended:
            t.state, t.status = ENDED, ended
            if self._over(name) and name not in self.finished:
                self.finished.append(name)

    def trial_started(self, tid: str, config: dict[str, Any], now: float | None = None) -> None:
        self.trial_added(tid, config)
        t = self.trials[tid]
        if t.state != ENDED:
            t.state = RUNNING
        self._tick(now)

    def trial_result(self, tid: str, row: dict[str, Any], now: float | None = None) -> None:
        t = self.trials.get(tid)
        if t is None:
            return
        if t.state in (PENDING, WAITING):
            t.state = RUNNING
        self._row(t, row)
        self._tick(now)

    def trial_waiting(self, tid: str, now: float | None = None) -> None:
        """The trial waits (paused) at a rung until the scheduler decides it."""
        t = self.trials.get(tid)
        if t is not None and t.state != ENDED:
            t.state = WAITING
        self._tick(now)

    def trial_ended(self, tid: str, status: str, now: float | None = None) -> None:
        """The trial is over: `status` is one of sweeps.results.trial.FINAL."""
        t = self.trials.get(tid)
        if t is None or t.state == ENDED:
            return
        t.state, t.status = ENDED, status
        self._tick(now)
        if t.name not in self.finished and self._over(t.name):
            self.finished.append(t.name)
            self._notes.append(self.finished_line(t.name))

    def _over(self, name: str) -> bool:
        """Whether every trial of run `name` ended, its planned ones all among them."""
        run = self.runs[name]
        return len(run) >= self.planned_runs.get(name, 0) and all(self.trials[u].state == ENDED for u in run)

    def decision(self, d: dict[str, Any], now: float | None = None) -> None:
        """A rung decided by the scheduler (sweeps.scheduler.SeedGroupHalving.decisions' dicts)."""
        self._tick(now)
        for name in d["stopped"]:
            self.stopped_at.setdefault(name, d["rung"])
        lines = self.decision_lines(d)
        self.decisions.extend(lines)
        self._notes.extend(lines)

    def look(self, d: dict[str, Any], now: float | None = None) -> None:
        """A look of a grid with a range of seeds (sweeps.seeding.SeedSearcher.looks' dicts)."""
        self._tick(now)
        self._notes.append(self.look_line(d))
        self.decisions.append(self.look_line(d))

    @staticmethod
    def look_line(d: dict[str, Any]) -> str:
        head = f"look {d['look']} ({d['seeds']} seeds): "
        if not d["open"]:
            return head + "every verdict decided, no seed added"
        added = ", ".join(f"{run} +{n}" for run, n in d["added"].items())
        return (head + "within noise: " + "; ".join(d["open"])
                + (f"; more seeds: {added}" if added else "; no seed added (the most reached)"))

    def _tick(self, now: float | None) -> None:
        if now is not None:
            self.tick(now)

    def _row(self, t: _Trial, row: dict[str, Any]) -> None:
        it = row.get("iter")
        if isinstance(it, (int, float)):
            t.iter = max(t.iter, int(it))
            val = row.get("val_loss")
            if is_evaluation(row) and isinstance(val, (int, float)) and math.isfinite(val):
                t.vals[int(it)] = float(val)
        if isinstance(row.get("max_iters"), (int, float)):
            t.max_iters = int(row["max_iters"])

    # -- what a run shows ----------------------------------------------------------------

    def _budget(self, t: _Trial) -> int:
        return int(t.max_iters or self.max_iters or max(t.iter, 1))

    def run_loss(self, name: str) -> tuple[float | None, float | None, int | None, int]:
        """The val loss mean and std over a run's seeds at the latest evaluation all of them reached, that
        step, and n. A diverged or errored seed is left out (n says so); None while a seed has no evaluation."""
        seeds = [self.trials[u] for u in self.runs[name] if self.trials[u].status not in (record.DIVERGED,
                                                                                           ERRORED)]
        if not seeds or any(not t.vals for t in seeds):
            return None, None, None, 0
        common = set.intersection(*(set(t.vals) for t in seeds))
        if not common:
            return None, None, None, 0
        step = max(common)
        mean, std = mean_std([t.vals[step] for t in seeds])
        return mean, std, step, len(seeds)

    def run_state(self, name: str) -> str:
        """running, waiting at N, pending, stopped at N, completed, diverged, errored."""
        ts = [self.trials[u] for u in self.runs[name]]
        if all(t.state == ENDED for t in ts):
            for status in (ERRORED, record.DIVERGED, STOPPED, record.COMPLETED):
                k = sum(t.status == status for t in ts)
                if not k:
                    continue
                word = (f"stopped at {self.stopped_at.get(name, max(t.iter for t in ts))}"
                        if status == STOPPED else status)
                return word if k == len(ts) else f"{word} ({k} of {len(ts)} seeds)"
        if name in self.stopped_at:
            return f"stopped at {self.stopped_at[name]}"
        if any(t.state == RUNNING for t in ts):
            return "running"
        if any(t.state == WAITING for t in ts):
            return f"waiting at {max(t.iter for t in ts if t.state == WAITING)}"
        return "pending"

    def run_cells(self, name: str) -> RunCells:
        """What a run's line shows (sweeps.view.text.run_row lays it out)."""
        ts = [self.trials[u] for u in self.runs[name]]
        budget = sum(self._budget(t) for t in ts)
        done = sum(min(t.iter, self._budget(t)) for t in ts)
        mean, std, step, n = self.run_loss(name)
        at = (f" at {step}" if step is not None else "") + (f" (n={n})" if step is not None and n < len(ts) else "")
        return RunCells(name, len(ts), done / budget if budget else 0.0, fmt_loss(mean, std) + at,
                        fmt_loss(mean) + at, self.run_state(name))

    def finished_line(self, name: str) -> str:
        """The line of a run whose every trial ended: its state and its loss."""
        mean, std, step, n = self.run_loss(name)
        ts = self.runs[name]
        kind = self.panel.noun(self, name)
        loss = ""
        if step is not None:
            loss = f": val {fmt_loss(mean, std)} at {step}" + (f" (n={n})" if n < len(ts) else "")
        state = self.run_state(name)
        seeds = f" ({len(ts)} seeds)" if len(ts) > 1 and "seeds)" not in state else ""
        return f"{kind} {name} {state}{seeds}{loss}"

    def decision_lines(self, d: dict[str, Any]) -> list[str]:
        """One line per run a decision stopped (its figure and the reference's), or one saying all continue."""
        runs = {r["name"]: r for r in d["runs"]}
        rung, total = d["rung"], len(d["runs"])
        when = " (decided before the resume)" if d.get("inferred") else ""

        def fig(r: dict[str, Any], named: bool = True) -> str:
            value = f"{fmt_loss(r['mean'], r['std'])} (n={r['n']})" if r.get("n") else "(no value kept)"
            return f"{r['name']} {value}" if named else value

        ref = runs.get(d.get("reference") or "")
        if ref is None and d["continued"]:  # no reference: the bar to clear, the last run that continued
            last = max((runs[g] for g in d["continued"]), key=lambda r: r["rank"])
            against = f"last to continue {fig(last)}"
        else:
            against = f"reference {fig(ref)}" if ref else ""
        out = []
        if not d["stopped"]:
            best = min(d["runs"], key=lambda r: r["rank"]) if d["runs"] else None
            out.append(f"rung {rung}{when}: all {total} runs continue" + (f", best {fig(best)}" if best else ""))
        for name in d["stopped"]:
            r = runs[name]
            line = f"rung {rung}{when}: stopped {name}, val {fig(r, named=False)}, rank {r['rank']} of {total}"
            decided = f"; decided there: {'; '.join(r['decided'])}" if r.get("decided") else ""
            out.append(line + (f"; {against}" if against else "") + f"; {len(d['continued'])} of {total} continue"
                       + decided)
        for name in d.get("held", []):
            r = runs[name]
            out.append(f"rung {rung}{when}: {name} continues though ranked {r['rank']} of {total}, val "
                       f"{fig(r, named=False)}: its verdict is open there, {'; '.join(r['held'])}")
        return out

    # -- totals ------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        states = [t.state for t in self.trials.values()]
        planned = max(self.planned_trials or 0, len(self.trials))
        done, running, waiting = states.count(ENDED), states.count(RUNNING), states.count(WAITING)
        return {"planned": planned, "done": done, "running": running, "waiting": waiting,
                "pending": planned - done - running - waiting}

    def iterations(self) -> tuple[int, int]:
        """Iterations done, and those planned: an ended trial's own, every other trial's budget (a trial of a
        stopped run: what it did), and the budget of each trial not yet made."""
        done = planned = 0
        for t in self.trials.values():
            done += min(t.iter, self._budget(t))
            planned += t.iter if t.state == ENDED or t.name in self.stopped_at else self._budget(t)
        missing = max(0, (self.planned_trials or 0) - len(self.trials))
        planned += missing * int(self.max_iters or 0)
        return done, max(planned, done)

    def elapsed(self) -> float:
        return (self.now or 0.0) - (self.started if self.started is not None else (self.now or 0.0))

    def time_left(self) -> float | None:
        """The iterations left at this session's rate so far; None before any."""
        done, planned = self.iterations()
        rate = (done - self._base_iters) / self.elapsed() if self.elapsed() > 0 else 0.0
        return (planned - done) / rate if rate > 0 else None

    def totals_line(self) -> str:
        return " · ".join(self.totals_parts())

    def totals_parts(self) -> list[str]:
        """The totals line's parts: the trials, the iterations, the time."""
        c = self.counts()
        done, planned = self.iterations()
        trials = f"trials {c['done']} done, {c['running']} running"
        if c["waiting"]:
            trials += f", {c['waiting']} waiting at a rung"
        trials += f", {c['pending']} pending (of {c['planned']})"
        left = self.time_left()
        when = f"elapsed {fmt_time(self.elapsed())}"
        if done >= planned and c["done"] >= c["planned"]:
            when += ", done"
        else:
            when += f", about {fmt_time(left)} left" if left is not None else ", time left not known yet"
        return [trials, f"iterations {done:,} of {planned:,}", when]

    def progress_line(self) -> str:
        """The plain output's periodic line: the totals, and what the strategy's panel adds (a search's best)."""
        return self.totals_line() + self.panel.progress(self)

    def stage(self, stage: str) -> list[_Trial]:
        """The trials whose config has this `stage`."""
        return [t for t in self.trials.values() if t.stage == stage]

    # -- the whole screen --------------------------------------------------------------

    def render(self, ascii_bar: bool = False, width: int | None = None) -> str:
        """The screen: title, the panel's block, the runs, the decisions, the totals and where things are.

        `width` (a terminal's columns; None: no limit) is fitted as sweeps.view.text.FIT_ORDER says: the runs'
        columns narrow, never their state; longer lines wrap instead of being cut.
        """
        def fit(lines: list[str], indent: str = "") -> list[str]:
            return [w for line in lines for w in wrap(line, width, indent)]

        out = fit([self.title]) if self.title else []
        sections = [(heading, names, word) for heading, names, word in self.panel.sections(self) if names]
        cells = {n: self.run_cells(n) for _, names, _ in sections for n in names}
        lay = fit_layout(list(cells.values()), [word for _, _, word in sections], width)
        lines = self.panel.lines(self)
        if lines:
            out += [""] + fit(lines, "  ")
        for heading, names, word in sections:
            out += [""] + (fit([heading], "  ") if heading else [])
            out.append(header_row(word, lay))
            out += [run_row(cells[n], lay, ascii_bar) for n in names]
        after = self.panel.after(self)
        if after:
            out += [""] + fit(after, "  ")
        if self.decisions:
            out += ["", "early stopping:"] + fit([f"  {line}" for line in self.decisions], "  ")
        out += [""] + join_fit(self.totals_parts(), width)
        where = [f"dashboard {self.dashboard}" if self.dashboard else "", f"results {self.results}" if self.results
                 else "", f"Ray's log {self.log}" if self.log else ""]
        if any(where):
            out += join_fit([w for w in where if w], width)
        return "\n".join(out)

    def take_notes(self) -> list[str]:
        """The lines (decisions, finished runs) since the last call, in order."""
        notes, self._notes = self._notes, []
        return notes
