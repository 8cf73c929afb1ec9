"""sweeps/render.py: the one table printer, as text and as Markdown."""

from __future__ import annotations

from sweeps.report.tables import markdown_table, md_cell, text_table


def test_text_tables_align_numbers_right_and_words_left():
    out = text_table(["name", "val loss", "time", "status"],
                     [["baseline", "1.4700", "12.5s", "completed"], ["large_model", "1.3", "130.0s", "stopped early"]])
    lines = out.splitlines()
    assert lines[0].startswith("name         val loss") and set(lines[1]) <= {"-", " "}
    assert lines[2] == "baseline       1.4700   12.5s  completed"
    assert lines[3] == "large_model       1.3  130.0s  stopped early"


def test_text_table_alignment_can_be_given_and_the_rule_left_out():
    out = text_table(["a", "b"], [["1", "x"]], align="rl", rule=False)
    assert out.splitlines() == ["a  b", "1  x"]


def test_markdown_cells_stay_one_cell():
    assert md_cell("a|b\nc <script>") == "a\\|b ↵ c &lt;script>"
    assert md_cell("5 < 6") == "5 < 6"
    assert markdown_table(["x", "y"], [["1", "a|b"]]) == ["| x | y |", "|---|---|", "| 1 | a\\|b |"]
