"""Experiment files (`search_spaces/expN.yaml`): data, validated on load.

An experiment file is one of the tutorial's experiments, its question and its runs:

    description: one line for --list
    question: what the experiment asks
    base: train_shakespeare_char          # a shipped gptcore config (or a path) the runs start from
    reference: baseline                   # the run the comparisons are made against
    grid:                                 # the tutorial's exact runs
      - {name: baseline}
      - {name: large_lr, learning_rate: 5.0e-3}
    verdicts:                             # the chapter's expectations, by check and run
      - {check: oscillates_or_worse, run: large_lr}      # `against` defaults to the reference
    optuna:                               # a search around the same question
      num_samples: 16
      space:
        learning_rate: {loguniform: [1.0e-4, 5.0e-3]}
        shape: {choice: ["2/2/128", "4/4/256"]}   # n_layer/n_head/n_embd together
      verdicts: [{check: trend, param: dropout, metric: gap}]   # what a search answers
      confirm_per: shape                  # confirm the best of each size, not the best K (optional)
    early_stopping: {grace_period: 250, reduction_factor: 2}   # or {none: "why it is off"}
    profiles:
      full:  {config: {max_iters: 1000}}          # `seeds: N` (or {min: N, max: M}) changes the scale's seeds
      cpu:   {note: ..., config: {...}, runs: {large_model: {...}}, optuna: {...}, early_stopping: {...}}
      smoke: {...}

Each profile starts from the scale of the same name in `search_spaces/profiles.yaml`, shared by
all experiments. A trial's config is merged in this order: the base config file, the scale's
`config`, the profile's `config`, the grid run (or the sampled values), the profile's
`runs.<name>`. Every merged config is checked with gptcore's own validation when the file is
loaded, and every run a verdict names must be in the grid, so a mistake fails before Ray
starts. Unknown keys anywhere are errors naming the file and the key.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

from gptcore.config import FIELD_TYPES, build_config, coerce, find_config, read_config_file
from gptcore.errors import UserError

# the data model of an experiment file lives in specs.py; it is imported from here too
from sweeps.experiment.specs import (
    CHECK_NEEDS,
    KNOBS,
    SHAPE,
    Distribution,
    EarlyStopping,
    Experiment,
    Profile,
    SeedRange,
    VerdictSpec,
    expand_shape,
    shape_of,
)

__all__ = ["KNOBS", "PROFILES", "PROFILES_FILE", "SHAPE", "Distribution", "EarlyStopping", "Experiment", "Profile",
           "SeedRange", "VerdictSpec", "expand_shape", "experiment_names", "load_experiment", "shape_of"]

SPACES_DIR = Path(__file__).resolve().parents[2] / "search_spaces"
PROFILES_FILE = SPACES_DIR / "profiles.yaml"
PROFILES = ("full", "cpu", "smoke")
DISTRIBUTIONS = ("uniform", "loguniform", "choice", "randint")

TOP_KEYS = {"description", "question", "base", "reference", "grid", "verdicts", "optuna", "early_stopping",
            "profiles"}
PROFILE_KEYS = {"note", "seeds", "config", "runs", "optuna", "early_stopping"}
SCALE_KEYS = {"note", "seeds", "config"}
OPTUNA_KEYS = {"num_samples", "space", "verdicts", "confirm_per"}
EARLY_STOPPING_KEYS = {"grace_period", "reduction_factor"}
VERDICT_KEYS = {"check", "run", "against", "param", "metric", "expect"}
METRICS = ("val_loss", "gap")
EXPECTS = ("lower", "higher")
# `shape` and `name` are the two keys a run may have that are not TrainConfig fields
RUN_KEYS = set(FIELD_TYPES) | {"shape", "name"}


def _bad_key(key: Any, valid, where: str) -> UserError:
    close = difflib.get_close_matches(str(key), sorted(valid), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else f"valid: {', '.join(sorted(valid))}"
    return UserError(f"{where}: unknown key {key!r}: {hint}")


def _mapping(d: Any, valid, where: str) -> dict:
    """`d` as a mapping whose keys are all in `valid` (None is an empty mapping)."""
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise UserError(f"{where}: expected a mapping of keys, found {type(d).__name__}")
    for k in d:
        if k not in valid:
            raise _bad_key(k, valid, where)
    return d


# ----------------------------------------------------------------------------------------
# parsing


def _read_yaml(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise UserError(f"{path} is a folder, not an experiment file: give a .yaml file (or exp1 ... exp5)") from None
    except OSError as e:
        raise UserError(f"cannot read {path} ({e.strerror or e}): check that it exists and is readable") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserError(f"{path} is UTF-16 text, not UTF-8: save it as UTF-8")
    if b"\x00" in raw[:65536]:
        raise UserError(f"{path} looks binary (it has NUL bytes), not a YAML experiment file: give a text file")
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark is fine
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text (bad byte at offset {e.start}): save it as UTF-8") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{path}{line}: broken YAML: {problem}") from None


def _parse_distribution(spec: Any, where: str) -> Distribution:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise UserError(f"{where}: a search range is one of {{{', '.join(DISTRIBUTIONS)}: [...]}}, e.g. "
                        "{loguniform: [1.0e-4, 1.0e-2]}")
    kind, args = next(iter(spec.items()))
    if kind not in DISTRIBUTIONS:
        raise _bad_key(kind, DISTRIBUTIONS, where)
    if not isinstance(args, list) or not args:
        raise UserError(f"{where}: {kind} needs a list, e.g. {kind}: [low, high]")
    if kind != "choice":
        if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
            raise UserError(f"{where}: {kind} needs [low, high] numbers, found {args}")
        if not args[0] < args[1]:
            raise UserError(f"{where}: {kind} low {args[0]} must be below high {args[1]}")
        if kind == "loguniform" and args[0] <= 0:
            raise UserError(f"{where}: loguniform needs a positive low bound, found {args[0]}")
    return Distribution(kind, tuple(args))


def _parse_space(d: Any, where: str) -> dict[str, Distribution]:
    d = _mapping(d, RUN_KEYS - {"name"}, where)
    return {k: _parse_distribution(v, f"{where}.{k}") for k, v in d.items()}


def _parse_values(d: Any, where: str, allow_name: bool = False) -> dict[str, Any]:
    """TrainConfig values (plus `shape`, and `name` in a grid run), each coerced to its field's type."""
    d = _mapping(d, RUN_KEYS if allow_name else RUN_KEYS - {"name"}, where)
    return {k: v if k == "name" else coerce(k, v, FIELD_TYPES[k], where) for k, v in expand_shape(d, where).items()}


def _parse_early_stopping(d: Any, where: str, partial: bool = False) -> dict[str, int]:
    d = _mapping(d, EARLY_STOPPING_KEYS, where)
    missing = [] if partial else sorted(EARLY_STOPPING_KEYS - set(d))
    if missing:
        raise UserError(f"{where}: missing {', '.join(missing)} (or write {{none: \"why early stopping is off\"}})")
    for k, v in d.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise UserError(f"{where}.{k}={v!r} must be a positive whole number of iterations")
    if d.get("reduction_factor", 2) < 2:
        raise UserError(f"{where}.reduction_factor={d['reduction_factor']} must be at least 2")
    return dict(d)


def _parse_verdicts(d: Any, where: str, runs: list[str], reference: str | None) -> list[VerdictSpec]:
    if d is None:
        return []
    if not isinstance(d, list):
        raise UserError(f"{where}: expected a list of {{check: ..., run: ...}}, found {type(d).__name__}")
    out = []
    for i, item in enumerate(d):
        w = f"{where}[{i}]"
        item = _mapping(item, VERDICT_KEYS, w)
        check = item.get("check")
        if check not in CHECK_NEEDS:
            raise UserError(f"{w}: unknown check {check!r}: choose one of {', '.join(sorted(CHECK_NEEDS))}")
        spec = VerdictSpec(check, item.get("run"), item.get("against"), item.get("param"), item.get("metric"),
                           item.get("expect"))
        for key, valid in (("metric", METRICS), ("expect", EXPECTS)):
            if item.get(key) is not None and item[key] not in valid:
                raise UserError(f"{w}: {key} {item[key]!r} is not one of {', '.join(valid)}")
        needs = CHECK_NEEDS[check]
        if "param" in needs:
            if spec.param not in set(FIELD_TYPES) | {"params"}:
                raise UserError(f"{w}: {check} needs `param:` a searched TrainConfig field or `params` "
                                f"(the model's size), found {spec.param!r}")
        elif "param" in item:
            raise UserError(f"{w}: {check} takes no `param`")
        if "against" in needs and spec.against is None:
            if reference is None:
                raise UserError(f"{w}: {check} compares two runs: give `against: RUN` or a top-level `reference`")
            spec = VerdictSpec(check, spec.run, reference)
        for key in ("run", "against"):
            value = getattr(spec, key)
            if key in needs and value is None:
                raise UserError(f"{w}: {check} needs `{key}: RUN`")
            if key not in needs and key in item:
                raise UserError(f"{w}: {check} takes no `{key}`")
            if value is not None and value not in runs:
                raise UserError(f"{w}: {key} {value!r} is not a run of this experiment: "
                                f"choose one of {', '.join(runs)}")
        out.append(spec)
    return out


MAX_SEEDS = 64


def _seeds(value: Any, where: str) -> SeedRange:
    """`seeds: 3` (a fixed number) or `seeds: {min: 3, max: 8}` (more seeds where a verdict is undecided)."""
    def whole(v: Any, what: str) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_SEEDS:
            raise UserError(f"{where}: {what}={v!r} must be a whole number from 1 to {MAX_SEEDS}, "
                            "e.g. seeds: 3 or seeds: {min: 3, max: 8}")
        return v

    if isinstance(value, dict):
        unknown = sorted(set(map(str, value)) - {"min", "max"})
        if unknown or not {"min", "max"} <= set(value):
            raise UserError(f"{where}: a range of seeds is {{min: N, max: M}}, not {value!r}")
        least, most = whole(value["min"], "seeds.min"), whole(value["max"], "seeds.max")
        return seed_range(least, most, where)
    n = whole(value, "seeds")
    return SeedRange(n, n)


def seed_range(least: int, most: int, where: str) -> SeedRange:
    """A checked range of seeds: more than one look needs two seeds or more at the first."""
    if most < least:
        raise UserError(f"{where}: seeds {least}..{most}: the most must not be below the least, e.g. 3..8")
    if most > least and least < 2:
        raise UserError(f"{where}: seeds {least}..{most}: adding seeds needs a noise estimate first, "
                        "so the least is 2 or more, e.g. 3..8")
    return SeedRange(least, most)


def _scales() -> dict[str, dict]:
    """search_spaces/profiles.yaml: the note, seeds and config of each scale."""
    doc = _mapping(_read_yaml(PROFILES_FILE), PROFILES, str(PROFILES_FILE))
    out = {}
    for name in PROFILES:
        w = f"{PROFILES_FILE}: {name}"
        scale = _mapping(doc.get(name), SCALE_KEYS, w)
        out[name] = {"note": " ".join(str(scale.get("note", "")).split()),
                     "seeds": _seeds(scale.get("seeds", 1), f"{w}.seeds"),
                     "config": _parse_values(scale.get("config"), f"{w}.config")}
    return out


def load_experiment(name_or_path: str | Path) -> Experiment:
    """Load and validate an experiment file by name (`exp1`) or path."""
    path = Path(name_or_path)
    if not path.suffix and "/" in str(name_or_path) and path.is_dir():  # a path; a bare name is an experiment's
        raise UserError(f"{path} is a folder, not an experiment file: give a .yaml file (or exp1 ... exp5)")
    if not path.suffix:
        path = SPACES_DIR / f"{name_or_path}.yaml"
        if not path.is_file() or path == PROFILES_FILE:
            raise UserError(f"unknown experiment {str(name_or_path)!r}: choose one of {', '.join(experiment_names())}")
    if path.is_dir():
        raise UserError(f"{path} is a folder, not an experiment file: give a .yaml file (or exp1 ... exp5)")
    if not path.is_file():
        raise UserError(f"experiment file {path} does not exist")
    w = str(path)
    doc = _mapping(_read_yaml(path), TOP_KEYS, w)
    for req in ("description", "base", "grid", "profiles"):
        if req not in doc:
            raise UserError(f"{w}: missing key {req!r}")

    try:
        base_path, _ = find_config(str(doc["base"]))
    except UserError as e:
        raise UserError(f"{w}: base: {e}") from None
    base_values = read_config_file(base_path)

    if not isinstance(doc["grid"], list) or not doc["grid"]:
        raise UserError(f"{w}: grid must be a non-empty list of runs")
    grid = []
    for i, r in enumerate(doc["grid"]):
        run = _parse_values(r, f"{w}: grid[{i}]", allow_name=True)
        if not isinstance(run.get("name"), str) or not run["name"]:
            raise UserError(f"{w}: grid[{i}]: every grid run needs a name, e.g. - {{name: baseline}}")
        grid.append(run)
    names = [r["name"] for r in grid]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserError(f"{w}: grid run names must be unique, {', '.join(dupes)} repeats")
    reference = doc.get("reference")
    if reference is not None and reference not in names:
        raise UserError(f"{w}: reference {reference!r} is not a run of the grid: choose one of {', '.join(names)}")

    opt = doc.get("optuna")
    no_search = ""
    if isinstance(opt, dict) and "none" in opt:  # an experiment whose question a search cannot answer
        if len(opt) != 1 or not str(opt["none"] or "").strip():
            raise UserError(f"{w}: optuna: write {{none: \"why there is no search\"}} alone, with the reason")
        no_search, opt = " ".join(str(opt["none"]).split()), {}
    opt = _mapping(opt, OPTUNA_KEYS, f"{w}: optuna")
    samples = opt.get("num_samples", 16)
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise UserError(f"{w}: optuna.num_samples={samples!r} must be a positive whole number")
    space = _parse_space(opt.get("space"), f"{w}: optuna.space")

    stopping = doc.get("early_stopping")
    reason = ""
    if isinstance(stopping, dict) and "none" in stopping:
        if len(stopping) != 1 or not str(stopping["none"] or "").strip():
            raise UserError(f"{w}: early_stopping: write {{none: \"why early stopping is off\"}} alone, "
                            "with the reason")
        reason, asha = " ".join(str(stopping["none"]).split()), None
    elif stopping is None:
        raise UserError(f"{w}: missing key 'early_stopping': {{grace_period: N, reduction_factor: 2}} or "
                        "{none: \"why early stopping is off\"}")
    else:
        asha = _parse_early_stopping(stopping, f"{w}: early_stopping")

    scales = _scales()
    profiles_doc = _mapping(doc["profiles"], PROFILES, f"{w}: profiles")
    missing = [p for p in PROFILES if p not in profiles_doc]
    if missing:
        raise UserError(f"{w}: profiles lacks {', '.join(missing)}: define full, cpu and smoke")
    profiles: dict[str, Profile] = {}
    for pname in PROFILES:
        pw = f"{w}: profiles.{pname}"
        pdoc = _mapping(profiles_doc[pname], PROFILE_KEYS, pw)
        runs = _mapping(pdoc.get("runs"), set(names), f"{pw}.runs")
        stop = None
        if "optuna" in pdoc and no_search:
            raise UserError(f"{pw}.optuna: {path.stem} has no search ({no_search})")
        if "early_stopping" in pdoc:
            if asha is None:
                raise UserError(f"{pw}.early_stopping: early stopping is off in this experiment ({reason})")
            stop = _parse_early_stopping(pdoc["early_stopping"], f"{pw}.early_stopping", partial=True)
        note = " ".join(str(pdoc.get("note", "")).split())
        profiles[pname] = Profile(
            name=pname,
            note="; ".join(n for n in (scales[pname]["note"], note) if n),
            seeds=_seeds(pdoc["seeds"], f"{pw}.seeds") if "seeds" in pdoc else scales[pname]["seeds"],
            config={**scales[pname]["config"], **_parse_values(pdoc.get("config"), f"{pw}.config")},
            runs={rn: _parse_values(rv, f"{pw}.runs.{rn}") for rn, rv in runs.items()},
            space={**space, **_parse_space(pdoc.get("optuna"), f"{pw}.optuna")},
            early_stopping=EarlyStopping(**{**asha, **(stop or {})}) if asha else None,
        )

    exp = Experiment(name=path.stem, path=path, description=str(doc["description"]).strip(),
                     question=" ".join(str(doc.get("question", "")).split()), base_values=base_values, grid=grid,
                     reference=reference,
                     verdicts=_parse_verdicts(doc.get("verdicts"), f"{w}: verdicts", names, reference),
                     search_verdicts=_parse_verdicts(opt.get("verdicts"), f"{w}: optuna.verdicts", names, reference),
                     optuna_samples=samples, no_early_stopping_reason=reason, no_search_reason=no_search,
                     confirm_per=_confirm_per(opt.get("confirm_per"), profiles, f"{w}: optuna.confirm_per"),
                     profiles=profiles)
    _validate_trials(exp)
    return exp


def _confirm_per(value: Any, profiles: dict[str, Profile], where: str) -> str:
    """`optuna.confirm_per`: a parameter every profile searches as a `choice`."""
    if value is None:
        return ""
    for p in profiles.values():
        choices = sorted(k for k, d in p.space.items() if d.kind == "choice")
        if value not in choices:
            raise UserError(f"{where}={value!r} must name a `choice` parameter of optuna.space in every profile"
                            + (f": {', '.join(choices)}" if choices else f" (profile {p.name} has none)"))
    return str(value)


def _validate_trials(exp: Experiment) -> None:
    """Every grid run and the ends of every search range must make a valid TrainConfig."""

    def check(values: dict[str, Any], where: str) -> None:
        try:
            build_config(values, where=where)
        except UserError as e:
            msg = str(e)
            raise UserError(msg if msg.startswith(where) else f"{where}: {msg}") from None

    for profile in PROFILES:
        for run in exp.grid_runs(profile):
            check({k: v for k, v in run.items() if k != "name"}, f"{exp.path}: profile {profile}, run {run['name']}")
        base = exp.profile_base(profile)
        for key, dist in exp.space(profile).items():
            for v in dist.values_to_check():
                where = f"{exp.path}: profile {profile}, optuna {key}={v!r}"
                check(expand_shape({**base, key: v}, where), where)


def experiment_names() -> list[str]:
    """The shipped experiments (search_spaces/*.yaml but the shared profiles file)."""
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml") if p != PROFILES_FILE)
