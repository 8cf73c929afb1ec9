"""Two outputs of a View: plain lines (a file, a pipe, CI) and a screen redrawn in place (a terminal)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sweeps.view.state import View
from sweeps.view.text import fmt_time


class PlainOutput:
    """A View as plain lines: each decision and finished run at once, the progress line at most every `interval` s.

    Every line starts with the time since the sweep started, `[1m20s]`.
    """

    def __init__(self, view: View, write: Callable[[str], None], interval: float = 45.0):
        self.view, self.write, self.interval = view, write, interval
        self._last: float | None = None

    def begin(self) -> None:
        """The first line: what runs, and how often the progress line comes."""
        title = f"{self.view.title}; " if self.view.title else ""
        self.write(f"{title}a line per decision and per finished run, the progress every {fmt_time(self.interval)}")

    def _line(self, text: str) -> None:
        self.write(f"[{fmt_time(self.view.elapsed())}] {text}")

    def update(self, now: float) -> None:
        self.view.tick(now)
        for note in self.view.take_notes():
            self._line(note)
        if self._last is None:
            self._last = now  # the plan was printed just before: the first progress line after an interval
        elif now - self._last >= self.interval:
            self._last = now
            self._line(self.view.progress_line())

    def finish(self, now: float) -> None:
        self.view.tick(now)
        for note in self.view.take_notes():
            self._line(note)
        self._line(self.view.progress_line())
        where = [f"results {self.view.results}" if self.view.results else "",
                 f"Ray's log {self.view.log}" if self.view.log else ""]
        if any(where):
            self._line(" · ".join(w for w in where if w))


class TerminalOutput:
    """A View redrawn in place on a terminal (rich's Live), at most every `every` seconds."""

    def __init__(self, view: View, file: Any = None, every: float = 0.5, force_terminal: bool | None = None,
                 width: int | None = None):
        from rich.console import Console
        from rich.live import Live

        self.view, self.every = view, every
        self.console = Console(file=file, force_terminal=force_terminal, width=width)  # width None: the terminal's
        self.live = Live(console=self.console, auto_refresh=False, transient=False, redirect_stdout=True,
                         redirect_stderr=True)
        self._last: float | None = None
        self._started = False

    def _renderable(self):
        from rich.text import Text

        # laid out for the terminal's width (read at each redraw: a resized window is followed); what still does
        # not fit is cut at the end of a line rather than wrapped over the lines below it
        return Text(self.view.render(width=self.console.width), no_wrap=True, overflow="ellipsis")

    def update(self, now: float) -> None:
        self.view.tick(now)
        self.view.take_notes()  # everything is on the screen
        if not self._started:
            self.live.start()
            self._started = True
        if self._last is None or now - self._last >= self.every:
            self._last = now
            self.live.update(self._renderable(), refresh=True)

    def finish(self, now: float) -> None:
        self.view.tick(now)
        self.view.take_notes()
        if not self._started:
            self.live.start()
            self._started = True
        self.live.update(self._renderable(), refresh=True)
        self.live.stop()
        self._started = False
