"""Tables as text (terminal, benchmarks) and as Markdown (report.md): the project's one table printer."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_NUMBER = re.compile(r"^[-+~]?[\d,]*\.?\d+(e[-+]?\d+)?\s*(%|x|s|ms|MB|[kMG])?$", re.IGNORECASE)


def _numeric(cells: list[str]) -> bool:
    filled = [c for c in cells if c not in ("", "-", "N/A", "–")]
    return bool(filled) and all(_NUMBER.match(c) for c in filled)


def text_table(header: list[str], rows: Iterable[Iterable[Any]], align: str | None = None, rule: bool = True) -> str:
    """A plain-text table: columns padded to their widest cell, a dashed rule under the header.

    `align` is one letter per column, `l` or `r`; by default the first column is left-aligned and
    every other column is right-aligned when all its cells are numbers (with units such as s, %, x).
    """
    body = [[str(c) for c in r] for r in rows]
    n = len(header)
    if align is None:
        align = "l" + "".join("r" if _numeric([r[i] for r in body]) else "l" for i in range(1, n))
    cells = [list(map(str, header))] + body
    widths = [max(len(r[i]) for r in cells) for i in range(n)]

    def line(r: list[str]) -> str:
        return "  ".join(c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(r, widths, align)).rstrip()

    out = [line(r) for r in cells]
    if rule:
        out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def md_cell(text: Any) -> str:
    """Text safe inside a Markdown table cell: one line, no column breaks, no stray HTML."""
    s = str(text).replace("\r", "").replace("\n", " ↵ ").replace("|", "\\|")
    # only a '<' that could open a tag needs escaping; '5 < 6' stays readable in the raw file
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", s)


def markdown_table(header: list[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    """A GitHub-flavoured Markdown table, as lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(c) for c in r) + " |" for r in rows]
    return lines
