"""Damaged files and interruptions, as a user meets them: real files, real subprocesses, real signals.

Every case ends with one line naming the file and the fix, a non-zero exit status and no
traceback; nothing a run saved before is lost.
"""

from __future__ import annotations

import pytest
import torch
from conftest import DATASET_DAMAGE, TINY, assert_user_error, cli_args

from gptcore.config import build_config
from gptcore.train import Trainer

META_DAMAGE = [how for how in DATASET_DAMAGE if DATASET_DAMAGE[how][1] == "meta.pkl"]


def quiet(line: str) -> None:
    pass


def damage_needles(how: str, root, folder) -> list[str]:
    _, fname, needle = DATASET_DAMAGE[how]
    return [str(folder / fname), needle, f"`python -m gptcore prepare shakespeare_char --data_dir {root}`"]


@pytest.fixture(scope="module")
def nanogpt_run(tmp_path_factory, data_dir):
    """A run folder whose ckpt.pt is as nanoGPT writes it: no vocabulary inside, so `sample`
    reads the dataset's meta.pkl."""
    out = tmp_path_factory.mktemp("nanogpt-run")
    cfg = build_config({**TINY, "data_dir": str(data_dir), "out_dir": str(out), "max_iters": 2,
                        "always_save_checkpoint": True})
    list(Trainer(cfg, say=quiet).run())
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    for key in ("meta", "scaler", "code_version"):
        del ckpt[key]
    torch.save(ckpt, out / "ckpt.pt")
    return out


# ---------------------------------------------------------------------------------------
# damaged datasets


@pytest.mark.parametrize("how", list(DATASET_DAMAGE))
def test_train_refuses_a_damaged_dataset(how, damaged_dataset, run_gptcore, tmp_path):
    root, folder = damaged_dataset(how)
    p = run_gptcore("train", *cli_args({**TINY, "data_dir": root, "out_dir": "out"}), cwd=tmp_path)
    assert_user_error(p, *damage_needles(how, root, folder))
    assert "download" not in p.stderr
    assert not (tmp_path / "out").exists()  # refused before any work


@pytest.mark.parametrize("how", list(DATASET_DAMAGE))
def test_check_refuses_a_damaged_dataset(how, damaged_dataset, run_gptcore, tmp_path):
    root, folder = damaged_dataset(how)
    p = run_gptcore("check", *cli_args({**TINY, "data_dir": root}), cwd=tmp_path)
    if how == "ids_beyond_vocab":
        # the data check itself reports ids outside the vocabulary, as the tutorial's check does,
        # with the file and the fix on its FAIL line, and exits 1
        assert p.returncode == 1 and "Traceback" not in p.stderr + p.stdout, p.stderr
        fail = [line for line in p.stdout.splitlines() if line.startswith(f"FAIL: {folder / 'train.bin'}")]
        assert len(fail) == 1 and "token id 94" in fail[0], p.stdout
        assert f"`python -m gptcore prepare shakespeare_char --data_dir {root}`" in fail[0]
    else:
        assert_user_error(p, *damage_needles(how, root, folder))


@pytest.mark.parametrize("how", META_DAMAGE)
def test_sample_refuses_a_damaged_meta_pkl(how, nanogpt_run, damaged_dataset, run_gptcore, tmp_path):
    root, folder = damaged_dataset(how)
    p = run_gptcore("sample", f"--out_dir={nanogpt_run}", f"--data_dir={root}", "--device=cpu", "--num_samples=1",
                    "--max_new_tokens=5", cwd=tmp_path)
    assert_user_error(p, *damage_needles(how, root, folder))


def test_sample_reads_the_datasets_meta_pkl(nanogpt_run, data_dir, run_gptcore, tmp_path):
    """The other side of the test above: with an intact meta.pkl the same checkpoint samples."""
    p = run_gptcore("sample", f"--out_dir={nanogpt_run}", f"--data_dir={data_dir}", "--device=cpu",
                    "--num_samples=1", "--max_new_tokens=5", "--start=ROMEO:", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("ROMEO:") and p.stdout.endswith("---------------\n")
