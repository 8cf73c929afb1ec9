"""sweeps/analysis/load.py: a sweep's folder as trials and history frames, and the status of each trial."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from results_factory import by_expectation, curve, judge, make_trial, verdicts

from gptcore import record
from gptcore.errors import UserError
from sweeps.command.analyze import analyze, load_results
from sweeps.experiment.files import load_experiment
from sweeps.results.load import legacy_status, load_sweep


@pytest.mark.parametrize("args,status", [
    ((1000, 1000, False, False, True), "completed"),
    ((250, 1000, False, False, True), "stopped early"),
    ((250, 1000, True, False, True), "diverged"),
    ((250, 1000, False, True, True), "errored"),
    ((1000, 1000, False, True, True), "completed"),  # retried after a failure, then finished
    ((0, 1000, False, False, False), "not started"),
    ((0, 1000, False, True, False), "errored"),
])
def test_the_status_of_a_sweep_written_before_the_record(args, status):
    assert legacy_status(*args) == status


def test_the_status_is_the_one_the_record_holds(tmp_path):
    exp = tmp_path / "exp1"
    make_trial(exp, "baseline", curve(1.6))  # its last row says completed, and so does status.json
    make_trial(exp, "small_lr", curve(2.3)[:2], max_iters=1000)  # the sweep wrote: stopped early
    make_trial(exp, "large_lr", curve(1.9)[:3], max_iters=1000, status="interrupted")  # no ending written
    make_trial(exp, "small_batch", curve(2.5)[:2], max_iters=1000, diverged_at=300)
    make_trial(exp, "large_model", [])
    t = load_sweep(exp).trials.set_index("name")
    assert dict(t["status"]) == {"baseline": "completed", "small_lr": "stopped early", "large_lr": "interrupted",
                                 "small_batch": "diverged", "large_model": "not started"}
    # a diverged trial is a status: its divergence row is no evaluation
    assert t.loc["small_batch", "diverged_at"] == 300 and t.loc["small_batch", "n_evals"] == 2
    assert t.loc["small_batch", "final_iter"] == 300 and math.isfinite(t.loc["small_batch", "final_val_loss"])
    # status.json, when there, is the last word (a trial's latest attempt)
    d = next(p for p in exp.iterdir() if p.name.startswith("large_lr"))
    (d / "status.json").write_text(json.dumps({"status": "errored", "iter": 500}))
    assert load_sweep(exp).trials.set_index("name").loc["large_lr", "status"] == "errored"


def test_a_sweep_written_before_the_record_still_loads(tmp_path):
    exp = tmp_path / "exp1"
    make_trial(exp, "baseline", curve(1.6), legacy=True)
    make_trial(exp, "large_lr", curve(2.5)[:2], max_iters=1000, diverged_at=300, legacy=True)
    make_trial(exp, "small_lr", curve(2.3)[:2], max_iters=1000, legacy=True)
    res = load_sweep(exp)
    t = res.trials.set_index("name")
    assert dict(t["status"]) == {"baseline": "completed", "large_lr": "diverged", "small_lr": "stopped early"}
    # the old divergence row (the last finite loss stamped on the step) is not an evaluation
    assert list(res.history[res.history["name"] == "large_lr"]["iter"]) == [0, 250]
    assert t.loc["large_lr", "final_val_loss"] == res.history[res.history["name"] == "large_lr"]["val_loss"].iloc[-1]


def test_load_results_frames_and_dedup(tmp_path):
    exp = tmp_path / "exp1"
    evals = curve(1.6)
    # a retry re-reports step 500 and 750 with new values: the later ones must win
    retry = [{"iter": 500, "train_loss": 1.9, "val_loss": 2.0, "status": "running"},
             {"iter": 750, "train_loss": 1.7, "val_loss": 1.8, "status": "running"}]
    make_trial(exp, "baseline", evals[:4], max_iters=1000, status="completed", extra_rows=retry + [
        {"iter": 1000, "train_loss": 1.55, "val_loss": 1.6, "tokens": 64000, "status": "completed"}])
    with open(next(exp.iterdir()) / "result.json", "a") as f:
        f.write('{"iter": 12')  # a line cut short by a crash
    trials, history = load_results(exp)
    assert len(trials) == 1 and list(history["iter"]) == [0, 250, 500, 750, 1000]
    assert history.loc[history["iter"] == 500, "val_loss"].item() == 2.0
    row = trials.iloc[0]
    assert row["status"] == "completed" and row["retried_rows"] == 2
    for col in ("learning_rate", "batch_size", "gradient_accumulation_steps", "n_layer", "n_head", "n_embd",
                "dropout", "weight_decay", "warmup_iters", "decay_lr", "lr_decay_iters", "max_iters", "block_size",
                "final_train_loss", "final_val_loss", "final_gap", "best_val_loss", "best_iter", "final_iter",
                "tokens", "time_s", "n_params", "mem_mb", "name", "trial_id"):
        assert col in trials.columns, col
    assert row["final_val_loss"] == 1.6 and row["final_gap"] == pytest.approx(0.05)
    assert row["tokens"] == 64000 and row["max_iters"] == 1000


def test_missing_and_empty_experiment_dirs(tmp_path):
    with pytest.raises(UserError, match="no experiment directory"):
        load_results(tmp_path / "nope")
    (tmp_path / "empty" / "plots").mkdir(parents=True)
    with pytest.raises(UserError, match="holds no trials") as e:
        analyze(tmp_path / "empty")
    assert "\n" not in str(e.value)


def test_trial_without_results_and_errored_trial(tmp_path):
    exp = tmp_path / "exp1"
    make_trial(exp, "baseline", curve(1.6))
    make_trial(exp, "large_lr", [])  # params.json and config.json only: never reported
    make_trial(exp, "small_lr", curve(2.0)[:2], max_iters=1000, error="RuntimeError: CUDA out of memory")
    report = analyze(exp)
    trials = load_sweep(exp).trials.set_index("name")
    assert trials.loc["large_lr", "status"] == "not started"
    assert trials.loc["small_lr", "status"] == "errored"
    text = report.read_text()
    assert "large_lr: not started" in text and "CUDA out of memory" in text
    v = by_expectation(judge("exp1", exp), "large learning rate")
    assert v.holds is None and "no evaluations" in v.observed


def test_experiment_where_no_trial_reported(tmp_path):
    exp = tmp_path / "exp2"
    make_trial(exp, "large_batch", [])
    make_trial(exp, "grad_accum", [], error="ray.exceptions.ActorDiedError: the worker died")
    text = analyze(exp).read_text()
    assert "1 not started" in text and "1 errored" in text and "ActorDiedError" in text
    (v,) = judge("exp2", exp)
    assert v.holds is None and "no evaluations" in v.observed
    assert not (exp / "plots" / "val_loss_comparison.png").exists()


def test_diverged_trial(tmp_path):
    exp = tmp_path / "exp1"
    make_trial(exp, "baseline", curve(1.6))
    make_trial(exp, "large_lr", curve(2.5)[:2], max_iters=1000, diverged_at=300)
    res = load_sweep(exp)
    row = res.trials.set_index("name").loc["large_lr"]
    assert row["status"] == "diverged" and row["diverged_at"] == 300 and row["final_iter"] == 300
    assert math.isfinite(row["final_val_loss"])  # the last finite value, not the NaN of the divergence
    assert by_expectation(verdicts(load_experiment("exp1"), res), "large learning rate").holds is True
    text = analyze(exp).read_text()
    assert "diverged" in text and (exp / "plots" / "curves_large_lr.png").stat().st_size > 0


def test_config_rebuilt_without_config_json(tmp_path):
    exp = tmp_path / "exp9"
    make_trial(exp, "baseline", curve(1.6), config_json=False)
    res = load_sweep(exp)
    assert res.trials.iloc[0]["max_iters"] == 1000 and res.trials.iloc[0]["status"] == "completed"
    assert any("no config.json" in n for n in res.notes)


def test_a_shape_in_params_sets_the_size_without_config_json(tmp_path):
    exp = tmp_path / "exp9"
    make_trial(exp, "big", curve(1.6), config_json=False, overrides={"shape": "3/2/48"})
    row = load_sweep(exp).trials.iloc[0]
    assert (row["n_layer"], row["n_head"], row["n_embd"]) == (3, 2, 48)


def write_ray_state(exp_dir: Path, trials: list[tuple[str, str, str, dict]]) -> None:
    """An experiment_state-*.json as Ray 2.60 writes it: (trial_id, status, folder, config) per trial."""
    data = [[json.dumps({"trial_id": tid, "status": status, "relative_logdir": folder, "config": config}),
             json.dumps({"num_failures": 0})] for tid, status, folder, config in trials]
    exp_dir.mkdir(parents=True, exist_ok=True)
    (exp_dir / "experiment_state-2026-12-01_10-00-00.json").write_text(json.dumps({"trial_data": data}))


def test_rays_record_tells_stopped_from_interrupted_and_not_started(tmp_path):
    exp = tmp_path / "exp1"
    done = make_trial(exp, "baseline", curve(1.6), trial_id="aa000_00000", legacy=True)
    stopped = make_trial(exp, "small_lr", curve(2.3)[:2], max_iters=1000, trial_id="aa000_00001", legacy=True)
    cut = make_trial(exp, "large_lr", curve(1.9)[:3], max_iters=1000, trial_id="aa000_00002", legacy=True)
    write_ray_state(exp, [("aa000_00000", "TERMINATED", done.name, {"name": "baseline"}),
                          ("aa000_00001", "TERMINATED", stopped.name, {"name": "small_lr"}),
                          ("aa000_00002", "RUNNING", cut.name, {"name": "large_lr"}),
                          # created but never started: Ray made no folder for it
                          ("aa000_00003", "PENDING", "large_model_aa000_00003",
                           {"name": "large_model", "n_layer": 8, "n_head": 8, "n_embd": 512, "max_iters": 1000})])
    t = load_sweep(exp).trials.set_index("name")
    assert dict(t["status"]) == {"baseline": "completed", "small_lr": "stopped early", "large_lr": "interrupted",
                                 "large_model": "not started"}
    assert t.loc["large_model", "n_layer"] == 8 and t.loc["large_model", "n_evals"] == 0
    text = analyze(exp).read_text()
    assert "| large_model | 1 | N/A | N/A | N/A | N/A | not started |" in text and "`--resume` continues it" in text


def test_an_errored_trial_is_errored_by_rays_record(tmp_path):
    exp = tmp_path / "exp1"
    d = make_trial(exp, "baseline", curve(1.6)[:2], max_iters=1000, trial_id="aa000_00000", legacy=True)
    write_ray_state(exp, [("aa000_00000", "ERROR", d.name, {"name": "baseline"})])
    assert load_sweep(exp).trials.iloc[0]["status"] == "errored"  # even without an error.txt copied along


def test_evaluations_lost_from_result_json_are_taken_from_the_runs_own_record(tmp_path):
    # Ray 2.60 once left a trial paused at a rung with result.json missing its rows before the pause
    exp = tmp_path / "exp1"
    d = make_trial(exp, "baseline", [(0, 4.0, 4.1), (50, 3.0, 3.1), (100, 2.5, 2.6)], max_iters=100)
    rows = (d / "result.json").read_text().splitlines()
    (d / "result.json").write_text("\n".join(rows[2:]) + "\n")  # only the row at 100 is left
    events = [record.evaluation(it, 64, tr, va, 1e-3, 1.0, 1.0, it, va, 100.0, saved=False)
              for it, tr, va in [(0, 4.0, 4.1), (50, 3.0, 3.1), (100, 2.5, 2.6)]]
    (d / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    res = load_sweep(exp)
    assert res.history["iter"].tolist() == [0, 50, 100] and res.history["val_loss"].tolist() == [4.1, 3.1, 2.6]
    assert any("2 evaluation(s) missing from result.json" in n for n in res.notes)


def left_behind_by_an_interrupted_start(exp: Path) -> None:
    """exp/: trial `a` whose first start was cut short before Ray recorded its folder, run again by --resume in a
    folder whose name Ray suffixed; and trial `b`, whole."""
    done = make_trial(exp, "a", curve(1.6), trial_id="ab001_00001")
    done.rename(done.with_name(done.name + "_d545"))
    stale = exp / "a_s1337_ab001_00001"
    (stale / "checkpoint_000000").mkdir(parents=True)
    (stale / "params.json").write_text(json.dumps({"name": "a", "seed": 1337}))
    (stale / "result.json").write_text("")
    make_trial(exp, "b", curve(1.8), trial_id="ab002_00002")


def test_a_folder_an_interrupted_start_left_behind_is_not_a_trial(tmp_path):
    left_behind_by_an_interrupted_start(tmp_path / "exp")
    res = load_sweep(tmp_path / "exp")
    t = res.trials.set_index("name")
    assert sorted(t.index) == ["a", "b"] and set(t["status"]) == {"completed"}
    assert t.loc["a", "path"] == "a_s1337_ab001_00001_d545"
    assert any(n.startswith("a_s1337_ab001_00001: left by a start") for n in res.notes), res.notes


def test_a_trial_asked_again_under_a_new_id_after_resume_is_read_once(tmp_path):
    # `ray job stop` killed the driver as slow2 started, before Ray saved it; --resume asked the grid again and
    # slow2 ran under a new trial id: the first folder (one row at step 0, interrupted) is not a trial
    exp = tmp_path / "long"
    cut = make_trial(exp, "slow2", curve(2.0)[:1], max_iters=1000, trial_id="cd001_00002", status="interrupted")
    again = make_trial(exp, "slow2", curve(2.0), trial_id="ef002_00000")
    quick = make_trial(exp, "quick", curve(1.9), trial_id="ef002_00001")
    write_ray_state(exp, [("ef002_00000", "TERMINATED", again.name, {"name": "slow2", "seed": 1337, "stage": "grid"}),
                          ("ef002_00001", "TERMINATED", quick.name, {"name": "quick", "seed": 1337, "stage": "grid"})])
    res = load_sweep(exp)
    t = res.trials.set_index("name")
    assert sorted(t.index) == ["quick", "slow2"] and set(t["status"]) == {"completed"}, res.trials
    assert t.loc["slow2", "path"] == again.name
    assert any(n.startswith(f"{cut.name}: left by a start") for n in res.notes), res.notes
    # a trial Ray's state does not name but that was not asked again stays, interrupted
    (exp / again.name).rename(exp / "moved_away")
    assert "interrupted" in set(load_sweep(exp).trials["status"])
