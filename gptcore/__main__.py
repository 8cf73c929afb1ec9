"""`python -m gptcore {prepare,train,check,sample}`: parse, build, loop.

    python -m gptcore prepare shakespeare_char [--input PATH] [--data_dir data]
    python -m gptcore train config/train_shakespeare_char.py --max_iters=1000 --out_dir=...
    python -m gptcore check train_shakespeare_char --device=cpu
    python -m gptcore sample --out_dir out-shakespeare-char --start "ROMEO:" --num_samples 3

Mistakes in the input end with a one-line `error: ...` and exit status 2; a diverged run
exits 3; Ctrl-C exits 130 after saying how to resume.
"""

from __future__ import annotations

import argparse
import sys

from .config import load_config
from .errors import UserError

USAGE = __doc__.split("\n\n")[1]


def _split_config(args: list[str]) -> tuple[str | None, list[str]]:
    if args and not args[0].startswith("--"):
        return args[0], args[1:]
    return None, args


def cmd_prepare(args: list[str]) -> int:
    from .data import prepare

    p = argparse.ArgumentParser(prog="python -m gptcore prepare",
                                description="Encode a text into train.bin, val.bin and meta.pkl (nanoGPT's format).")
    p.add_argument("name", help="dataset name: shakespeare_char, or any name for your own --input text")
    p.add_argument("--input", help="the UTF-8 text to encode, a file or an http(s) URL (default: data_dir/NAME/"
                                   "input.txt, else for shakespeare_char the copy that ships with gptcore)")
    p.add_argument("--data_dir", default="data", help="folder that holds datasets (default: data)")
    p.add_argument("--block_size", type=int, default=256, help="refuse texts too short for one block of this size")
    a = p.parse_args(args)
    info = prepare(a.name, a.data_dir, a.input, a.block_size)
    print(f"wrote {info['folder']}/train.bin, val.bin, meta.pkl")
    return 0


def cmd_train(args: list[str]) -> int:
    config, overrides = _split_config(args)
    cfg, notes = load_config(config, overrides)  # before importing torch: a typo is answered at once
    if cfg.wandb_log:  # a missing package or key is one line now, not after the data and the model are built
        from .tracking import check_wandb

        check_wandb("wandb_log=True")
    from . import record
    from .device import resolve_device
    from .run import Run

    resolve_device(cfg)  # refuse an impossible device/dtype before any work
    run = Run(cfg, stream=sys.stdout)
    for note in notes:
        run.say(note)
    if config:
        run.say(f"Overriding config with {config}")
    for o in overrides:
        run.say(f"Overriding: {o.lstrip('-')}")
    run.start()  # checks the data and the checkpoint before the run folder is made
    out = run.out_dir
    status = 0
    sinks = []
    try:
        if cfg.wandb_log:
            from .tracking import WandbSink

            sinks.append(WandbSink(run.cfg))
        for m in run.events(sinks):
            if m["event"] == record.END and m["status"] == record.DIVERGED:
                print(f"error: training diverged at step {m['iter']} (loss {m['loss']}); everything logged so "
                      f"far is in {out}: lower --learning_rate or keep --grad_clip on", file=sys.stderr)
                status = 3
    except KeyboardInterrupt:
        if run.saved_at is None:
            print(f"\ninterrupted at step {run.trainer.iter_num}, before this run saved a checkpoint: run the same "
                  "command again to start over", file=sys.stderr)
        else:
            print(f"\ninterrupted at step {run.trainer.iter_num}; {out / 'ckpt.pt'} holds step {run.saved_at}: "
                  "continue from it with the same command plus --init_from=resume", file=sys.stderr)
        status = 130
    finally:
        for sink in sinks:
            sink.close()
        run.close()
    return status


def cmd_check(args: list[str]) -> int:
    config, overrides = _split_config(args)
    cfg, notes = load_config(config, overrides)
    from . import diagnostics
    from .batches import Batches
    from .data import check_dataset, ensure_prepared
    from .device import autocast_context, resolve_device
    from .model import GPT
    from .train import model_config

    for note in notes:
        print(note)
    device, device_type, dtype = resolve_device(cfg)
    import torch

    folder = ensure_prepared(cfg.dataset, cfg.data_dir, block_size=cfg.block_size)
    # token ids outside the vocabulary are for the data check to report, with the rest of it
    meta = check_dataset(folder, cfg.block_size, cfg.train_tokens, vocab=False)
    batches = Batches(folder, cfg.block_size, cfg.batch_size, cfg.gradient_accumulation_steps, cfg.seed,
                      device, cfg.train_tokens, cfg.eval_batch_size, cfg.eval_seed)
    torch.manual_seed(cfg.seed)
    model = GPT(model_config(cfg, meta["vocab_size"])).to(device)
    ok, lines = diagnostics.run_all(model, batches, meta, autocast_context(device_type, dtype))
    print("\n".join(lines))
    return 0 if ok else 1


def cmd_sample(args: list[str]) -> int:
    from .config import parse_overrides
    from .sample import SAMPLE_FIELDS, build_sample_config, generate

    cfg = build_sample_config(parse_overrides(args, SAMPLE_FIELDS))
    for text in generate(cfg):
        print(text)
        print("---------------")
    return 0


COMMANDS = {"prepare": cmd_prepare, "train": cmd_train, "check": cmd_check, "sample": cmd_sample}


def main(argv: list[str] | None = None) -> int:
    """The command line (also the `gptcore` console script): returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"error: unknown command {cmd!r}: use one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if cmd != "prepare" and rest and rest[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    try:
        return COMMANDS[cmd](rest)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside a training loop (which says how to resume itself)
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
