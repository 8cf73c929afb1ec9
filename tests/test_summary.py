"""sweeps/summary.py: the end of a sweep, in process on fabricated results."""

from __future__ import annotations

import builtins
import os
import signal
import time

import pytest
from results_factory import make_exp2

import sweeps.command.pipeline as pipeline_module
from sweeps.command.finish import summarise
from sweeps.command.options import SweepOptions


def finished_exp2(tmp_path):
    return make_exp2(tmp_path / "results" / "exp2")


def args(**over) -> SweepOptions:
    return SweepOptions(**{"exp": "exp2", **over})  # storage results, keep_checkpoints last, the report written


def test_a_finished_sweep_writes_its_report_and_exits_0(tmp_path, capsys):
    exp = finished_exp2(tmp_path)
    assert summarise(args(), str(exp)) == 0
    out = capsys.readouterr().out
    assert (exp / "report.md").is_file() and f"report: {exp / 'report.md'}" in out


@pytest.mark.parametrize("at", ["the line", "the report", "the summary"])
def test_a_ctrl_c_at_any_moment_of_the_report_is_exit_130_and_says_how_to_finish(tmp_path, capsys, monkeypatch, at):
    # CI once sent the Ctrl-C while "writing the report..." was still being printed: a traceback, exit -2
    exp = finished_exp2(tmp_path)
    real_print, real_write = builtins.print, pipeline_module.write

    def print_(*a, **k):
        if a and ((at == "the line" and str(a[0]).startswith("writing the report"))
                  or (at == "the summary" and "report:" in str(a[0]))):
            raise KeyboardInterrupt
        real_print(*a, **k)

    def write(*a, **k):
        if at == "the report":
            raise KeyboardInterrupt
        return real_write(*a, **k)

    monkeypatch.setattr(builtins, "print", print_)
    monkeypatch.setattr(pipeline_module, "write", write)
    assert summarise(args(), str(exp)) == 130
    err = capsys.readouterr().err
    assert f"the results are complete in {exp}" in err and f"gptsweep analyze {exp}" in err
    assert ("after" in err) == (at == "the summary")


def test_a_ctrl_c_while_the_results_are_read_is_exit_130_and_says_how_to_continue(tmp_path, capsys, monkeypatch):
    # a real SIGINT while the summary reads the trials, with a handler like the one Tune leaves installed
    # after a sweep that ran to its end (it would swallow the Ctrl-C)
    import sweeps.results.load as load_module

    def load(*a, **k):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the handler runs between bytecodes: never reached
        raise AssertionError("the Ctrl-C was swallowed")

    exp = finished_exp2(tmp_path)
    monkeypatch.setattr(load_module, "load_sweep", load)
    before = signal.signal(signal.SIGINT, lambda *_: None)
    try:
        assert summarise(args(), str(exp)) == 130
    finally:
        signal.signal(signal.SIGINT, before)
    err = capsys.readouterr().err
    assert "interrupted while summarising" in err and "python sweeps/run.py exp2 --resume" in err
