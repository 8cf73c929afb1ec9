"""sweeps/trainable.py without Ray running: what a trial reports to Tune, and where it resumes from.

A real training run (gptcore.run.Run, tiny config) drives the reporter; `tune.report` is replaced
by a recorder, so the rows and checkpoints Tune would receive are checked in process.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import sweeps.tune.trainable as trainable
from gptcore.run import Run
from sweeps.results.trial import REPORT_FIELDS


@pytest.fixture
def reports(monkeypatch):
    """Every (row, files in its checkpoint) the trial hands to Tune."""
    got = []

    def report(row, checkpoint=None):
        got.append((row, sorted(p.name for p in Path(checkpoint.path).iterdir())))

    monkeypatch.setattr(trainable.tune, "report", report)
    return got


def _run(cfg, reports) -> list[dict]:
    run = Run(cfg, stream=None, sample_chars=20)
    run.start()
    try:
        list(run.events([trainable.TuneReporter(run)], save_best=False))
    finally:
        run.close()
    return [row for row, _ in reports]


def test_each_evaluation_is_a_report_row_and_the_last_one_says_completed(tiny_config, reports):
    cfg = tiny_config(max_iters=4, eval_interval=2)
    rows = _run(cfg, reports)
    assert [r["iter"] for r in rows] == [0, 2, 4]
    assert [r["status"] for r in rows] == ["running", "running", "completed"]
    assert all(set(r) == set(REPORT_FIELDS) for r in rows)  # the record's fields, nothing else
    assert rows[-1]["max_iters"] == 4 and rows[-1]["n_params"] > 0
    # every checkpoint carries the run's history up to it; the last one the whole log and the sample
    assert all(files == ["ckpt.pt", "metrics.jsonl", "train.log"] for _, files in reports)
    out = Path(cfg.out_dir)
    assert "training took" in (out / "train.log").read_text() and (out / "sample.txt").read_text()


def test_a_diverged_run_ends_with_a_row_without_losses(tiny_config, reports, monkeypatch):
    from gptcore.train import Trainer

    real = Trainer._forward_backward

    def forward_backward(self, x, y):
        loss = real(self, x, y)
        return loss * float("nan") if self.iter_num == 3 else loss

    monkeypatch.setattr(Trainer, "_forward_backward", forward_backward)
    rows = _run(tiny_config(max_iters=6, eval_interval=2), reports)
    assert [(r["iter"], r["status"]) for r in rows] == [(0, "running"), (2, "running"), (3, "diverged")]
    assert math.isnan(rows[-1]["val_loss"]) and math.isnan(rows[-1]["train_loss"])  # nothing was measured there


class _Checkpoint:
    def __init__(self, path: Path):
        self.path = str(path)


def test_a_trial_resumes_from_its_newest_checkpoint_then_the_older_ones(tmp_path):
    for n in ("checkpoint_000001", "checkpoint_000002", "checkpoint_000003"):
        (tmp_path / n).mkdir()
    with trainable._candidates(_Checkpoint(tmp_path / "checkpoint_000002")) as found:
        assert [p.parent.name for p in found] == ["checkpoint_000002", "checkpoint_000001"]
        assert all(p.name == "ckpt.pt" for p in found)
    with trainable._candidates(None) as found:
        assert found == []
