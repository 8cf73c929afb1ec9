"""How the live view writes numbers (losses with their spread, times, values, progress bars) and fits a width."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

BAR = 20  # the progress bar's width in characters


def mean_std(values: list[float]) -> tuple[float, float | None]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return mean, std


def fmt_loss(mean: float | None, std: float | None = None) -> str:
    """`3.7527 ± 0.0140`; `3.7527` for one seed; `diverged` for an infinite mean, `—` for none."""
    if mean is None:
        return "—"
    if not math.isfinite(mean):
        return "diverged"
    return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None and math.isfinite(std) else "")


def fmt_time(seconds: float) -> str:
    """`41s`, `3m05s`, `1h02m`."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def fmt_value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def bar(fraction: float, width: int = BAR, full: str = "█", empty: str = "░") -> str:
    filled = int(round(max(0.0, min(1.0, fraction)) * width))
    return full * filled + empty * (width - filled)


# -- fitting the screen's width ------------------------------------------------------------
#
# A run's line is: name, seeds, progress (a bar and its percentage), the val loss over the seeds, and its
# state. On a narrow terminal the line is made to fit in this order, one step at a time until it fits;
# the state is never cut (it always stays whole at the end of the line):
FIT_ORDER = (
    "the val loss column narrows from 27 characters to its longest value (the header to `val loss`)",
    "the progress bar narrows from 20 to 10 characters",
    "the progress bar goes (its percentage stays)",
    "the seeds column goes",
    "run names are shortened, to no fewer than 8 characters (ending in …)",
    "each val loss drops its spread (± std)",
)
LOSS = 27  # the val loss column's width on a wide screen (it holds `3.7527 ± 0.0140 at 1000 (n=2)`)
LOSS_HEAD, LOSS_HEAD_SHORT = "val loss over the seeds", "val loss"
MIN_NAME = 8


@dataclass(frozen=True)
class RunCells:
    """What a run's line shows: its name, seeds, the share of its budget done, its val loss (with and without
    the spread over the seeds) and its state."""

    name: str
    seeds: int
    frac: float
    loss: str
    loss_short: str
    state: str


@dataclass(frozen=True)
class Layout:
    """The columns of the runs' lines: the name's width, the bar's (0: none), whether the seeds column shows,
    the val loss column's width and whether losses drop their spread (steps of FIT_ORDER)."""

    name: int
    bar: int = BAR
    seeds: bool = True
    loss: int = LOSS
    short: bool = False


def clip(text: str, width: int) -> str:
    """`text` in at most `width` characters, ending in … when cut."""
    return text if len(text) <= width else text[:max(0, width - 1)] + "…"


def run_row(c: RunCells, lay: Layout, ascii_bar: bool = False) -> str:
    """A run's line in `lay`: the state whole at its end."""
    progress = f"{c.frac:>4.0%}"
    if lay.bar:
        progress = (bar(c.frac, lay.bar, "#", "-") if ascii_bar else bar(c.frac, lay.bar)) + " " + progress
    loss = clip(c.loss_short if lay.short else c.loss, lay.loss)
    parts = [f"{clip(c.name, lay.name):<{lay.name}}"] + ([f"{c.seeds:>5}"] if lay.seeds else [])
    return "  ".join(parts + [progress, f"{loss:<{lay.loss}}", c.state])


def header_row(word: str, lay: Layout) -> str:
    """The header of the runs' lines in `lay`."""
    head = LOSS_HEAD if lay.loss >= len(LOSS_HEAD) else LOSS_HEAD_SHORT
    parts = [f"{clip(word, lay.name):<{lay.name}}"] + (["seeds"] if lay.seeds else [])
    progress = f"{'progress':<{lay.bar + 5}}" if lay.bar else "done"
    return "  ".join(parts + [progress, f"{head:<{lay.loss}}", "state"])


def fit_layout(rows: list[RunCells], words: list[str], width: int | None) -> Layout:
    """The widest layout (FIT_ORDER) whose every line, header included, fits `width` (None: the wide one)."""
    name = max([len(r.name) for r in rows] + [len(w) for w in words] + [3])
    loss = max([len(r.loss) for r in rows] + [len(LOSS_HEAD_SHORT)])
    lay = Layout(name, loss=max(LOSS, loss))  # a loss longer than the column widens it: nothing is cut
    if width is None:
        return lay

    def fits(lay: Layout) -> bool:
        return all(len(run_row(r, lay)) <= width for r in rows) and all(len(header_row(w, lay)) <= width
                                                                        for w in words)

    steps = [dict(loss=loss), dict(bar=BAR // 2), dict(bar=0), dict(seeds=False), None,
             dict(short=True, loss=max([len(r.loss_short) for r in rows] + [len(LOSS_HEAD_SHORT)]))]
    for step in steps:
        if fits(lay):
            return lay
        if step is None:  # names: as short as the line needs, not below MIN_NAME
            over = max(len(run_row(r, lay)) for r in rows) - width if rows else 0
            lay = replace(lay, name=max(MIN_NAME, min(lay.name, lay.name - over)))
        else:
            lay = replace(lay, **step)
    if not fits(lay):  # the last resort: the loss column gives what the state needs
        over = max([len(run_row(r, lay)) for r in rows] + [0]) - width
        lay = replace(lay, loss=max(len(LOSS_HEAD_SHORT), lay.loss - over))
    return lay


def wrap(line: str, width: int | None, indent: str = "") -> list[str]:
    """A long line as lines of at most `width` characters (None: as it is), the later ones indented, broken at
    spaces: a narrow screen shows every word instead of cutting the end."""
    if width is None or len(line) <= width:
        return [line]
    import textwrap

    lead = line[:len(line) - len(line.lstrip())]
    return textwrap.wrap(line, width, initial_indent="", subsequent_indent=lead + indent,
                         break_long_words=True, break_on_hyphens=False) or [line]


def join_fit(parts: list[str], width: int | None, sep: str = " · ") -> list[str]:
    """Parts joined by `sep`, as few lines as fit `width` (a part longer than the width gets a line of its own)."""
    if width is None:
        return [sep.join(parts)]
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + len(sep) + len(part) <= width:
            lines[-1] += sep + part
        else:
            lines.append(part)
    return [w for line in lines for w in wrap(line, width, "  ")]
