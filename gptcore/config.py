"""The trainer's one typed config, and how it is read: config files and `--key=value` overrides.

Config files are nanoGPT-style Python files of `name = value` lines. They are parsed with
`ast` and never executed: anything other than an assignment of a literal (numbers, strings,
booleans, simple arithmetic on numbers) is refused with the file and line. Every value is
checked against the field's type, and impossible combinations are refused before any work,
with a one-line message naming the key, the value and the fix.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import math
import operator
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import UserError

SHIPPED_DIR = Path(__file__).parent / "configs"

DTYPES = ("auto", "float32", "bfloat16", "float16")
INIT_FROM = ("scratch", "resume")


@dataclass
class TrainConfig:
    """Every knob of nanoGPT's train.py (same names, same defaults), plus a few of our own.

    nanoGPT's defaults describe GPT-2 124M on OpenWebText; the shipped
    `train_shakespeare_char` config overrides them for the tutorial. `device`, `dtype` and
    `compile` differ: they are resolved for the machine at hand (see `resolve_device`).
    """

    # I/O
    out_dir: str = "out"
    eval_interval: int = 2000
    log_interval: int = 1
    eval_iters: int = 200
    eval_only: bool = False
    always_save_checkpoint: bool = True
    init_from: str = "scratch"  # 'scratch' or 'resume' (from out_dir/ckpt.pt)
    # wandb: accepted so nanoGPT configs load; gptcore logs to the console, JSONL and sinks
    wandb_log: bool = False
    wandb_project: str = "owt"
    wandb_run_name: str = "gpt2"
    # data
    dataset: str = "openwebtext"
    gradient_accumulation_steps: int = 40
    batch_size: int = 12  # micro-batch size; an optimizer step sees batch_size * accumulation
    block_size: int = 1024
    # model
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = False
    # AdamW
    learning_rate: float = 6e-4
    max_iters: int = 600000
    weight_decay: float = 1e-1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0.0 disables clipping
    # learning-rate schedule
    decay_lr: bool = True
    warmup_iters: int = 2000
    lr_decay_iters: int = 600000
    min_lr: float = 6e-5
    # system
    backend: str = "nccl"  # accepted for compatibility; gptcore trains on one device
    device: str = "auto"  # 'auto' picks cuda, then mps, then cpu
    dtype: str = "auto"  # 'auto': bfloat16 where the device runs it fast, else float16 on cuda, float32 on cpu
    compile: bool = False  # torch.compile: faster steps after a long first one (see README)
    # gptcore's own knobs
    seed: int = 1337  # training data order, initialisation and dropout
    eval_seed: int = 1337  # the evaluation windows: runs with different seeds are evaluated on the same text
    data_dir: str = "data"  # datasets live in data_dir/<dataset>/, as nanoGPT's data/<dataset>/
    train_tokens: int = 0  # train on only the first N tokens of train.bin (0: all of it)
    eval_batch_size: int = 0  # windows per evaluation batch (0: batch_size); fix it to compare batch sizes
    debug: bool = False  # run the tutorial's diagnostics at start and gradient health every 100 iters
    mfu_peak_flops: float = 312e12  # MFU denominator; nanoGPT's A100 bf16 peak

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _field_types(cls) -> dict[str, type]:
    # dataclass annotations are strings under `from __future__ import annotations`
    names = {"int": int, "float": float, "bool": bool, "str": str}
    return {f.name: names[f.type] for f in fields(cls)}


FIELD_TYPES = _field_types(TrainConfig)


# ----------------------------------------------------------------------------------------
# values


def coerce(key: str, value: Any, typ: type, where: str) -> Any:
    """Turn `value` (a literal or a command-line string) into `typ`, or raise UserError.

    An int is a valid float (`--learning_rate=1`), booleans are case-insensitive words,
    and a float with no fraction is a valid int (`--max_iters=1e3`).
    """
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()  # numpy scalars from a search space: np.int64(64) is an int here
    raw = value
    if isinstance(value, str) and typ is not str:
        text = value.strip()
        if typ is bool:
            low = text.lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise UserError(f"{where}: {key}={raw!r} is not a boolean: write {key}=True or {key}=False")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{where}: {key}={raw!r} is not a boolean: write {key}=True or {key}=False")
    if typ is int:
        if isinstance(value, bool):
            pass
        elif isinstance(value, int):
            return value
        elif isinstance(value, float) and value.is_integer():
            return int(value)
        raise UserError(f"{where}: {key}={raw!r} is not a whole number: write e.g. {key}={_example(key)}")
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise UserError(f"{where}: {key}={raw!r} is not a finite number: write e.g. {key}={_example(key)}")
            return float(value)
        raise UserError(f"{where}: {key}={raw!r} is not a number: write e.g. {key}={_example(key)}")
    # str: keep the text as typed (spaces matter in a prompt); a quoted command-line value is
    # unquoted, as nanoGPT's literal_eval would; in a file, a non-string literal is a mistake
    if isinstance(raw, str):
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            return raw[1:-1]
        return raw
    raise UserError(f"{where}: {key}={raw!r} is not a string: write {key}='...'")


def _example(key: str) -> Any:
    return getattr(TrainConfig(), key, 1)


def unknown_key(key: str, where: str, valid=FIELD_TYPES) -> UserError:
    close = difflib.get_close_matches(key, list(valid), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else f"valid keys: {', '.join(sorted(valid))}"
    return UserError(f"{where}: unknown config key {key!r}: {hint}")


# ----------------------------------------------------------------------------------------
# config files: parsed, never executed

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow,
           ast.Mod: operator.mod}


def _literal(node: ast.AST) -> Any:
    """The value of a literal expression, allowing arithmetic on numbers (`5 * 8`, `1e-3 / 10`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _literal(node.operand)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        a, b = _literal(node.left), _literal(node.right)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)):
            if isinstance(node.op, ast.Pow) and abs(b) > 64:
                raise ValueError("exponent too large")
            return _BINOPS[type(node.op)](a, b)
    raise ValueError("not a literal")


def read_config_file(path: Path) -> dict[str, Any]:
    """The `name = literal` assignments of a nanoGPT-style config file, type-checked."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read config file {path}: {e}") from None
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as e:
        raise UserError(f"{path}:{e.lineno}: syntax error in config file: {e.msg}") from None
    values: dict[str, Any] = {}
    for stmt in tree.body:
        where = f"{path}:{stmt.lineno}"
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
            continue  # a docstring
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
            kind = type(stmt).__name__.lower()
            raise UserError(f"{where}: only `name = value` lines are allowed in a config file, found a {kind} "
                            "statement; config files are read, never executed: remove it")
        key = stmt.targets[0].id
        try:
            value = _literal(stmt.value)
        except (ValueError, ZeroDivisionError, OverflowError):
            src = ast.get_source_segment(text, stmt.value) or "..."
            raise UserError(f"{where}: {key} = {src} is not a literal; config files are read, never "
                            "executed: write a number, string or True/False") from None
        if key not in FIELD_TYPES:
            raise unknown_key(key, where)
        values[key] = coerce(key, value, FIELD_TYPES[key], where)
    return values


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.py") if not p.name.startswith("_"))


def find_config(name_or_path: str) -> tuple[Path, str | None]:
    """Resolve CONFIG: an existing file, else a shipped config by name.

    `config/train_shakespeare_char.py`, as the tutorial writes it, finds the shipped config
    when there is no such file here. Returns the path and a note to print when it fell back.
    """
    p = Path(name_or_path)
    if p.is_file():
        return p, None
    stem = p.name[:-3] if p.name.endswith(".py") else p.name
    shipped = SHIPPED_DIR / f"{stem}.py"
    if stem in shipped_configs():
        note = None if p.name == stem else f"{name_or_path} not found here: using the shipped config {stem}"
        return shipped, note
    raise UserError(f"config {name_or_path!r} is neither a file nor a shipped config: "
                    f"give a path or one of {', '.join(shipped_configs())}")


# ----------------------------------------------------------------------------------------
# command-line overrides


def parse_overrides(args: list[str], valid: dict[str, type] = FIELD_TYPES) -> dict[str, Any]:
    """`--key=value` (or `--key value`) arguments as typed values, left to right, later wins."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("--"):
            raise UserError(f"unexpected argument {arg!r}: overrides look like --key=value")
        if "=" in arg:
            key, value = arg[2:].split("=", 1)  # a value may itself contain '='
        elif i < len(args) and not args[i].startswith("--"):
            key, value = arg[2:], args[i]
            i += 1
        else:
            raise UserError(f"{arg} has no value: write {arg}=VALUE")
        if key not in valid:
            raise unknown_key(key, "command line", valid)
        out[key] = coerce(key, value, valid[key], "command line")
    return out


def build_config(values: dict[str, Any], where: str = "config") -> TrainConfig:
    """A validated TrainConfig from a dict of (already typed or raw) values.

    Used by the sweeps layer too: a trial's config dict goes through the same checks.
    """
    typed = {}
    for key, value in values.items():
        if key not in FIELD_TYPES:
            raise unknown_key(key, where)
        typed[key] = coerce(key, value, FIELD_TYPES[key], where)
    cfg = TrainConfig(**typed)
    validate(cfg)
    return cfg


def load_config(config: str | None, overrides: list[str]) -> tuple[TrainConfig, list[str]]:
    """CONFIG plus `--key=value` overrides, validated. Returns the config and notes to print."""
    notes: list[str] = []
    values: dict[str, Any] = {}
    if config is not None:
        path, note = find_config(config)
        if note:
            notes.append(note)
        values.update(read_config_file(path))
    values.update(parse_overrides(overrides))
    return build_config(values), notes


# ----------------------------------------------------------------------------------------
# validation of impossible values (device- and data-dependent checks live with the device and data)

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def validate(cfg: TrainConfig) -> None:
    """Refuse impossible values with a one-line message naming key, value and fix."""

    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise UserError(msg)

    for key in ("eval_interval", "log_interval", "eval_iters", "gradient_accumulation_steps",
                "batch_size", "block_size", "n_layer", "n_head", "n_embd"):
        v = getattr(cfg, key)
        need(v >= 1, f"{key}={v} must be at least 1: set --{key} to a positive number")
    for key in ("max_iters", "warmup_iters", "lr_decay_iters", "train_tokens", "eval_batch_size"):
        v = getattr(cfg, key)
        need(v >= 0, f"{key}={v} must not be negative: set --{key}=0 or more")
    need(0 <= cfg.seed < 2**32, f"seed={cfg.seed} must be in [0, 2**32): e.g. --seed=1337")
    need(0 <= cfg.eval_seed < 2**32, f"eval_seed={cfg.eval_seed} must be in [0, 2**32): e.g. --eval_seed=1337")
    if cfg.n_embd % cfg.n_head:
        divisors = [h for h in range(1, min(cfg.n_embd, 64) + 1) if cfg.n_embd % h == 0]
        near = min(divisors, key=lambda h: (abs(h - cfg.n_head), -h))  # a tie goes to more heads
        need(False, f"n_embd={cfg.n_embd} is not divisible by n_head={cfg.n_head}: set --n_head to a "
                    f"divisor of {cfg.n_embd} (e.g. --n_head={near}) or change --n_embd")
    need(0.0 <= cfg.dropout < 1.0, f"dropout={cfg.dropout} must be in [0, 1): e.g. --dropout=0.2")
    need(cfg.learning_rate > 0, f"learning_rate={cfg.learning_rate} must be positive: e.g. --learning_rate=1e-3")
    need(cfg.min_lr >= 0, f"min_lr={cfg.min_lr} must not be negative: e.g. --min_lr=1e-4")
    need(cfg.weight_decay >= 0, f"weight_decay={cfg.weight_decay} must not be negative: e.g. --weight_decay=0.1")
    for key in ("beta1", "beta2"):
        v = getattr(cfg, key)
        need(0.0 <= v < 1.0, f"{key}={v} must be in [0, 1): e.g. --{key}=0.9")
    need(cfg.grad_clip >= 0, f"grad_clip={cfg.grad_clip} must not be negative: 0.0 disables clipping")
    need(cfg.mfu_peak_flops > 0, f"mfu_peak_flops={cfg.mfu_peak_flops} must be positive")
    need(cfg.dtype in DTYPES, f"dtype={cfg.dtype!r} is not one of {', '.join(DTYPES)}: e.g. --dtype=float32")
    if cfg.init_from.startswith("gpt2"):
        need(False, f"init_from={cfg.init_from!r}: loading OpenAI GPT-2 weights needs a download and is not "
                    "supported; use --init_from=scratch or --init_from=resume")
    need(cfg.init_from in INIT_FROM, f"init_from={cfg.init_from!r} is not one of {', '.join(INIT_FROM)}")
    need(bool(_NAME.match(cfg.dataset)), f"dataset={cfg.dataset!r} must be a plain name (letters, digits, "
                                         "'_', '-', '.'), the folder under data_dir")
    dev = cfg.device
    need(dev in ("auto", "cpu", "mps", "cuda") or bool(re.fullmatch(r"cuda:\d+", dev)),
         f"device={dev!r} is not one of auto, cpu, cuda, cuda:N, mps: e.g. --device=cpu")
