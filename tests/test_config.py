"""gptcore.config: the shipped config, config files read without executing them, overrides, validation."""

from __future__ import annotations

import numpy as np
import pytest

from gptcore.config import TrainConfig, build_config, find_config, load_config, parse_overrides, read_config_file
from gptcore.errors import UserError

# nanoGPT's config/train_shakespeare_char.py, value for value (shared/notes/nanogpt.md)
NANOGPT_SHAKESPEARE_CHAR = dict(
    out_dir="out-shakespeare-char", eval_interval=250, eval_iters=200, log_interval=10,
    always_save_checkpoint=False, wandb_log=False, wandb_project="shakespeare-char", wandb_run_name="mini-gpt",
    dataset="shakespeare_char", gradient_accumulation_steps=1, batch_size=64, block_size=256,
    n_layer=6, n_head=6, n_embd=384, dropout=0.2, learning_rate=1e-3, max_iters=5000, lr_decay_iters=5000,
    min_lr=1e-4, beta2=0.99, warmup_iters=100,
)
# what it inherits from nanoGPT's train.py
NANOGPT_INHERITED = dict(weight_decay=0.1, beta1=0.9, grad_clip=1.0, decay_lr=True, bias=False, eval_only=False,
                         init_from="scratch")


def test_shipped_config_has_nanogpts_values():
    path, note = find_config("train_shakespeare_char")
    assert note is None
    assert read_config_file(path) == NANOGPT_SHAKESPEARE_CHAR
    cfg, _ = load_config("train_shakespeare_char", [])
    for key, value in {**NANOGPT_SHAKESPEARE_CHAR, **NANOGPT_INHERITED}.items():
        assert getattr(cfg, key) == value, key
        assert type(getattr(cfg, key)) is type(value), key


def test_train_py_defaults_are_nanogpts():
    cfg = TrainConfig()
    assert (cfg.batch_size, cfg.block_size, cfg.gradient_accumulation_steps) == (12, 1024, 40)
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.dropout, cfg.bias) == (12, 12, 768, 0.0, False)
    assert (cfg.learning_rate, cfg.max_iters, cfg.weight_decay, cfg.beta1, cfg.beta2) == (6e-4, 600000, 0.1, 0.9, 0.95)
    assert (cfg.warmup_iters, cfg.lr_decay_iters, cfg.min_lr, cfg.grad_clip) == (2000, 600000, 6e-5, 1.0)
    assert (cfg.eval_interval, cfg.eval_iters, cfg.log_interval, cfg.seed) == (2000, 200, 1, 1337)


def test_tutorial_spelling_finds_the_shipped_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path, note = find_config("config/train_shakespeare_char.py")
    assert path.name == "train_shakespeare_char.py" and path.is_file()
    assert "shipped" in note
    # a real file of that name wins over the shipped one
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "train_shakespeare_char.py").write_text("max_iters = 7\n")
    cfg, notes = load_config("config/train_shakespeare_char.py", [])
    assert cfg.max_iters == 7 and notes == []


def test_unknown_config_name_is_refused():
    with pytest.raises(UserError, match="train_shakespeare_char"):
        find_config("no_such_config")


def test_literal_assignments_are_read(tmp_path):
    f = tmp_path / "c.py"
    f.write_text('"""a docstring is fine"""\n# a comment\ngradient_accumulation_steps = 5 * 8\n'
                 "min_lr = 1e-3 / 10\nwarmup_iters = -0 + 10\ncompile = False\nout_dir = 'out-x'\n"
                 "learning_rate = 1  # an int where a float is expected\n")
    assert read_config_file(f) == dict(gradient_accumulation_steps=40, min_lr=1e-4, warmup_iters=10, compile=False,
                                       out_dir="out-x", learning_rate=1.0)
    assert isinstance(read_config_file(f)["learning_rate"], float)


MALICIOUS = {
    "import": ("max_iters = 10\nimport os\nos.system('touch {sentinel}')\n", 2, "import"),
    "call": ("max_iters = 10\nbatch_size = 4\nprint(open('{sentinel}', 'w'))\n", 3, "expr"),
    "open": ("out_dir = open('{sentinel}', 'w').name\n", 1, "out_dir"),
    "dunder_import": ("out_dir = __import__('os').system('touch {sentinel}')\n", 1, "out_dir"),
    "attribute": ("max_iters = 10\nos.environ = {{}}\n", 2, "assign"),
    "for_loop": ("for i in range(3):\n    max_iters = i\n", 1, "for"),
    "def": ("def f():\n    open('{sentinel}', 'w')\n", 1, "functiondef"),
    "name_reference": ("max_iters = 10\nlr_decay_iters = max_iters\n", 2, "lr_decay_iters"),
    "f_string": ("out_dir = f'{{open(\"{sentinel}\", \"w\")}}'\n", 1, "out_dir"),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_config_files_are_never_executed(tmp_path, case):
    text, line, mention = MALICIOUS[case]
    sentinel = tmp_path / "pwned"
    f = tmp_path / "evil.py"
    f.write_text(text.format(sentinel=sentinel))
    with pytest.raises(UserError) as e:
        load_config(str(f), [])
    msg = str(e.value)
    assert f"{f}:{line}" in msg, msg
    assert mention in msg.lower()
    assert "\n" not in msg
    assert not sentinel.exists(), "a config file was executed"


def test_unknown_key_in_a_file_suggests_the_closest(tmp_path):
    f = tmp_path / "c.py"
    f.write_text("max_iters = 10\nlearning_rat = 1e-3\n")
    with pytest.raises(UserError, match=rf"{f}:2.*learning_rat.*learning_rate"):
        read_config_file(f)


def test_wrong_type_in_a_file(tmp_path):
    f = tmp_path / "c.py"
    f.write_text("batch_size = 'big'\n")
    with pytest.raises(UserError, match=rf"{f}:1.*batch_size"):
        read_config_file(f)


# ---------------------------------------------------------------------------------------
# --key=value overrides


def test_overrides_are_typed():
    v = parse_overrides(["--learning_rate=1", "--compile=false", "--decay_lr=FALSE", "--bias=True",
                         "--max_iters=1e3", "--out_dir=a=b", "--batch_size", "8", "--wandb_run_name=123",
                         "--dataset='shakespeare_char'"])
    assert v == dict(learning_rate=1.0, compile=False, decay_lr=False, bias=True, max_iters=1000, out_dir="a=b",
                     batch_size=8, wandb_run_name="123", dataset="shakespeare_char")
    assert type(v["learning_rate"]) is float and type(v["max_iters"]) is int


def test_later_override_wins():
    assert parse_overrides(["--max_iters=5", "--max_iters=7"]) == {"max_iters": 7}


def test_string_overrides_keep_their_spaces():
    assert parse_overrides(["--wandb_run_name= my run "]) == {"wandb_run_name": " my run "}


@pytest.mark.parametrize("arg, needle", [
    ("--learning_rat=1e-3", "learning_rate"),
    ("--n_embed=128", "n_embd"),
    ("--compile=maybe", "compile"),
    ("--max_iters=1.5", "max_iters"),
    ("--learning_rate=fast", "learning_rate"),
    ("--learning_rate=1e999", "learning_rate"),
    ("--max_iters", "--max_iters=VALUE"),
    ("max_iters=5", "--key=value"),
])
def test_bad_overrides(arg, needle):
    with pytest.raises(UserError) as e:
        parse_overrides([arg])
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_unknown_key_suggests_closest():
    with pytest.raises(UserError) as e:
        load_config("train_shakespeare_char", ["--learning_rat=1e-3"])
    assert "did you mean" in str(e.value) and "learning_rate" in str(e.value)


# ---------------------------------------------------------------------------------------
# impossible values: one line naming the key, the value and the fix, before any work


@pytest.mark.parametrize("overrides, needles", [
    (["--n_layer=8", "--n_embd=512"], ["n_embd=512", "n_head=6", "--n_head=8"]),  # the tutorial's exp 1D
    (["--n_layer=0"], ["n_layer=0", "--n_layer"]),
    (["--batch_size=0"], ["batch_size=0", "--batch_size"]),
    (["--block_size=-16"], ["block_size=-16", "--block_size"]),
    (["--n_embd=0"], ["n_embd=0"]),
    (["--gradient_accumulation_steps=0"], ["gradient_accumulation_steps=0"]),
    (["--eval_interval=0"], ["eval_interval=0"]),
    (["--max_iters=-1"], ["max_iters=-1"]),
    (["--dropout=-0.1"], ["dropout=-0.1", "--dropout"]),
    (["--dropout=1.0"], ["dropout=1.0"]),
    (["--learning_rate=0"], ["learning_rate=0.0"]),
    (["--min_lr=-1e-4"], ["min_lr=-0.0001"]),
    (["--weight_decay=-0.1"], ["weight_decay=-0.1"]),
    (["--beta2=1.5"], ["beta2=1.5"]),
    (["--grad_clip=-1"], ["grad_clip=-1.0"]),
    (["--dtype=float64"], ["dtype='float64'", "--dtype"]),
    (["--device=tpu"], ["device='tpu'", "--device"]),
    (["--init_from=gpt2"], ["init_from='gpt2'", "--init_from=scratch"]),
    (["--init_from=elsewhere"], ["init_from='elsewhere'"]),
    (["--dataset=../etc"], ["dataset='../etc'"]),
    (["--seed=-1"], ["seed=-1", "--seed"]),
    (["--eval_seed=-1"], ["eval_seed=-1", "--eval_seed"]),
    ([f"--eval_seed={2**32}"], [f"eval_seed={2**32}", "--eval_seed"]),
])
def test_impossible_values_are_refused(overrides, needles):
    with pytest.raises(UserError) as e:
        load_config("train_shakespeare_char", overrides)
    msg = str(e.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_build_config_is_the_sweeps_entry_point():
    cfg = build_config({"n_layer": np.int64(2), "learning_rate": np.float64(3e-4), "decay_lr": np.bool_(False),
                        "n_head": 2, "n_embd": 32})
    assert (cfg.n_layer, cfg.learning_rate, cfg.decay_lr) == (2, 3e-4, False)
    assert type(cfg.n_layer) is int and type(cfg.decay_lr) is bool
    with pytest.raises(UserError, match="learning_rate"):
        build_config({"learning_rat": 1e-3})
    with pytest.raises(UserError, match="n_head"):
        build_config({"n_embd": 100, "n_head": 3})
