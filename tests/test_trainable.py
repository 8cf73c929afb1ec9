"""sweeps/trainable.py without Ray running: the dataset reaches a node once, intact."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from sweeps.trainable import dataset_files, materialise


def _materialise(args):
    files, cache = args
    import os

    os.environ["GPTCORE_CACHE"] = cache
    return materialise(files, "tiny")


def make_dataset(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    (folder / "train.bin").write_bytes(b"\x01\x00" * 5000)
    (folder / "val.bin").write_bytes(b"\x02\x00" * 600)
    (folder / "meta.pkl").write_bytes(b"not read here")
    return dataset_files(folder)


def test_trials_starting_together_write_the_dataset_once(tmp_path):
    files = make_dataset(tmp_path / "src")
    cache = str(tmp_path / "cache")
    with mp.get_context("spawn").Pool(3) as pool:
        dirs = pool.map(_materialise, [(files, cache)] * 6)
    assert len(set(dirs)) == 1  # one folder, named by the content's hash
    folder = Path(dirs[0]) / "tiny"
    assert {p.name for p in folder.iterdir() if not p.name.startswith(".")} == {"train.bin", "val.bin", "meta.pkl"}
    assert not list(folder.glob(".*.tmp"))
    assert dataset_files(folder) == files


def test_a_changed_dataset_gets_its_own_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTCORE_CACHE", str(tmp_path / "cache"))
    a = make_dataset(tmp_path / "a")
    b = dict(a, **{"val.bin": b"\x03\x00" * 600})
    assert materialise(a, "tiny") != materialise(b, "tiny")
