"""gptcore.sample: text from a checkpoint, decoded with its vocabulary, reproducible by seed."""

from __future__ import annotations

import pickle
import shutil

import pytest
import torch
from conftest import TINY

from gptcore.__main__ import main
from gptcore.config import build_config
from gptcore.errors import UserError
from gptcore.sample import SampleConfig, generate
from gptcore.train import Trainer


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("run")
    cfg = build_config({**TINY, "data_dir": str(data_dir), "out_dir": str(out), "max_iters": 4,
                        "always_save_checkpoint": True, "learning_rate": 1e-2})
    list(Trainer(cfg, say=lambda line: None).run())
    return out


def sample(run_dir, **kw):
    return generate(SampleConfig(out_dir=str(run_dir), device="cpu", **kw))


def test_samples_decode_with_the_vocabulary(run_dir, data_dir):
    from gptcore.data import load_meta

    vocab = set(load_meta(data_dir / "shakespeare_char")["stoi"])
    texts = sample(run_dir, start="ROMEO:", num_samples=3, max_new_tokens=40, temperature=0.8, top_k=20)
    assert len(texts) == 3
    for t in texts:
        assert t.startswith("ROMEO:") and len(t) == len("ROMEO:") + 40 and set(t) <= vocab


def test_same_seed_same_text(run_dir):
    a = sample(run_dir, num_samples=2, max_new_tokens=30, seed=3)
    assert a == sample(run_dir, num_samples=2, max_new_tokens=30, seed=3)
    assert a != sample(run_dir, num_samples=2, max_new_tokens=30, seed=4)
    assert a[0] != a[1]  # the samples of one call differ from each other


def test_top_k_1_is_greedy(run_dir):
    texts = sample(run_dir, num_samples=2, max_new_tokens=20, top_k=1, seed=1)
    assert texts[0] == texts[1] == sample(run_dir, num_samples=1, max_new_tokens=20, top_k=1, seed=2)[0]


def test_start_from_a_file(run_dir, tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("JULIET:\n")
    assert sample(run_dir, start=f"FILE:{prompt}", num_samples=1, max_new_tokens=5)[0].startswith("JULIET:\n")


@pytest.mark.parametrize("kw, needle", [
    (dict(start="ROMEO€"), "outside the model's vocabulary"),
    (dict(start=""), "start text is empty"),
    (dict(temperature=0.0), "temperature"),
    (dict(top_k=-1), "top_k"),
    (dict(num_samples=0), "num_samples"),
    (dict(start="FILE:/nonexistent/prompt.txt"), "cannot read the prompt file"),
])
def test_bad_sampling_arguments(run_dir, kw, needle):
    with pytest.raises(UserError, match=needle):
        sample(run_dir, **kw)


def test_no_checkpoint(tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        generate(SampleConfig(out_dir=str(tmp_path), device="cpu"))


def test_a_nanogpt_checkpoint_samples_with_the_datasets_meta(run_dir, data_dir, tmp_path):
    ckpt = torch.load(run_dir / "ckpt.pt", weights_only=True)
    theirs = {"model": {"_orig_mod." + k: v for k, v in ckpt["model"].items()},  # saved with compile=True
              "model_args": ckpt["model_args"], "iter_num": ckpt["iter_num"],
              "best_val_loss": torch.tensor(ckpt["best_val_loss"]), "optimizer": ckpt["optimizer"],
              "config": {**ckpt["config"], "data_dir": str(tmp_path / "elsewhere")}}
    torch.save(theirs, tmp_path / "ckpt.pt")
    with pytest.raises(UserError, match="--data_dir"):
        generate(SampleConfig(out_dir=str(tmp_path), device="cpu"))
    texts = generate(SampleConfig(out_dir=str(tmp_path), device="cpu", data_dir=str(data_dir), num_samples=1,
                                  max_new_tokens=25, seed=9))
    assert texts == sample(run_dir, num_samples=1, max_new_tokens=25, seed=9)


@pytest.mark.parametrize("style", ["--out_dir={}", "--out_dir {}"])
def test_sample_command(run_dir, capsys, style):
    args = style.format(run_dir).split(" ") + ["--start=ROMEO:", "--num_samples", "2", "--max_new_tokens=15",
                                               "--temperature=0.9", "--top_k=10", "--device=cpu"]
    assert main(["sample", *args]) == 0
    out = capsys.readouterr().out
    assert out.count("---------------\n") == 2 and out.startswith("ROMEO:")


def test_sample_command_is_reproducible(run_dir, capsys):
    outs = []
    for _ in range(2):
        assert main(["sample", f"--out_dir={run_dir}", "--num_samples=1", "--max_new_tokens=20", "--seed=5"]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1]


def test_sample_command_refuses_mistakes(run_dir, capsys, tmp_path):
    shutil.copy(run_dir / "ckpt.pt", tmp_path / "ckpt.pt")
    for args, needle in ((["--out_dir", str(tmp_path), "--temprature=0.5"], "temperature"),
                         (["--out_dir", str(tmp_path), "--device=tpu"], "device"),
                         (["--out_dir", str(tmp_path / "none")], "no checkpoint")):
        assert main(["sample", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and needle in err and err.count("\n") == 1


def _nanogpt_copy(run_dir, tmp_path):
    """The run's checkpoint as nanoGPT saves it: no vocabulary of its own."""
    ckpt = torch.load(run_dir / "ckpt.pt", weights_only=True)
    del ckpt["meta"]
    torch.save(ckpt, tmp_path / "ckpt.pt")


def test_a_meta_pkl_that_does_not_fit_the_model(run_dir, tmp_path):
    _nanogpt_copy(run_dir, tmp_path)
    folder = tmp_path / "d" / "shakespeare_char"
    folder.mkdir(parents=True)
    (folder / "meta.pkl").write_bytes(pickle.dumps({"vocab_size": 3, "itos": {0: "a", 1: "b", 2: "c"},
                                                    "stoi": {"a": 0, "b": 1, "c": 2}}))
    with pytest.raises(UserError, match=r"meta.pkl has vocab_size 3 but the model has 65: pass --data_dir"):
        generate(SampleConfig(out_dir=str(tmp_path), device="cpu", data_dir=str(tmp_path / "d")))
    (folder / "meta.pkl").write_bytes(pickle.dumps({"vocab_size": 65}))  # ids only: nothing to decode with
    with pytest.raises(UserError, match=r"meta.pkl has no characters"):
        generate(SampleConfig(out_dir=str(tmp_path), device="cpu", data_dir=str(tmp_path / "d")))


def test_a_damaged_vocabulary_inside_the_checkpoint(run_dir, tmp_path):
    ckpt = torch.load(run_dir / "ckpt.pt", weights_only=True)
    del ckpt["meta"]["itos"][64]
    torch.save(ckpt, tmp_path / "ckpt.pt")
    with pytest.raises(UserError, match=rf"the vocabulary in {tmp_path / 'ckpt.pt'} is damaged \(itos"):
        generate(SampleConfig(out_dir=str(tmp_path), device="cpu"))
