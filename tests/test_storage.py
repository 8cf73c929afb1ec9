"""sweeps/storage.py in process: where results go, and the policy that never overwrites a sweep."""

from __future__ import annotations

from pathlib import Path

import pytest

from gptcore.errors import UserError
from sweeps.storage.local import aside_name, check_existing, experiment_dir, is_remote, storage_root


@pytest.mark.parametrize("storage, remote", [("s3://bucket/sweeps", True), ("gs://b/p", True), ("abfs://c/p", True),
                                             ("file:///tmp/x", False), ("results", False), ("/nfs/r", False)])
def test_is_remote(storage, remote):
    assert is_remote(storage) is remote


def test_experiment_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert experiment_dir("s3://bucket/sweeps/", "exp1") == "s3://bucket/sweeps/exp1"
    assert experiment_dir("results", "exp1") == str(tmp_path / "results" / "exp1")
    assert storage_root("file://" + str(tmp_path / "r")) == str(tmp_path / "r")


def make_sweep(path: Path) -> dict[str, bytes]:
    (path / "trial_a").mkdir(parents=True)
    files = {"tuner.pkl": b"state", "trial_a/result.json": b'{"iter": 10}\n', "report.md": b"# exp1\n"}
    for name, data in files.items():
        (path / name).write_bytes(data)
    return files


def contents(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def test_a_new_folder_starts_a_sweep(tmp_path):
    assert check_existing(str(tmp_path / "exp1"), resume=False, fresh=False) is False
    (tmp_path / "empty").mkdir()
    assert check_existing(str(tmp_path / "empty"), resume=False, fresh=False) is False


def test_existing_results_need_resume_or_fresh_and_stay_untouched(tmp_path):
    files = make_sweep(tmp_path / "exp1")
    with pytest.raises(UserError, match="pass --resume to continue that sweep or --fresh") as e:
        check_existing(str(tmp_path / "exp1"), resume=False, fresh=False)
    assert "\n" not in str(e.value)
    assert contents(tmp_path / "exp1") == files


def test_resume_needs_a_sweep_to_continue(tmp_path):
    with pytest.raises(UserError, match="nothing to resume"):
        check_existing(str(tmp_path / "exp1"), resume=True, fresh=False)
    make_sweep(tmp_path / "exp1")
    assert check_existing(str(tmp_path / "exp1"), resume=True, fresh=False) is True


def test_fresh_moves_the_old_results_aside_intact_even_twice_a_second(tmp_path, capsys):
    first = make_sweep(tmp_path / "exp1")
    assert check_existing(str(tmp_path / "exp1"), resume=False, fresh=True) is False
    second = make_sweep(tmp_path / "exp1")
    (tmp_path / "exp1" / "report.md").write_bytes(b"# the second sweep\n")
    second["report.md"] = b"# the second sweep\n"
    assert check_existing(str(tmp_path / "exp1"), resume=False, fresh=True) is False
    aside = sorted(p for p in tmp_path.iterdir() if p.name.startswith("exp1.old-"))
    assert len(aside) == 2, "the second --fresh overwrote the first one's results"
    assert sorted([contents(a) for a in aside], key=lambda c: c["report.md"]) == \
        sorted([first, second], key=lambda c: c["report.md"])
    assert not (tmp_path / "exp1").exists()
    assert capsys.readouterr().out.count("moved the previous results to") == 2


def test_aside_names_never_collide(tmp_path):
    p = tmp_path / "exp1"
    names = set()
    for _ in range(3):
        a = aside_name(p)
        a.mkdir()
        names.add(a.name)
    assert len(names) == 3
