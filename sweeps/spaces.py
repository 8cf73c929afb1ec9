"""Experiment files (`search_spaces/expN.yaml`): data, validated on load.

An experiment file describes one of the tutorial's experiments:

    description: one line for --list
    question: what the experiment asks
    base: train_shakespeare_char          # a shipped gptcore config (or a path) the runs start from
    grid:                                 # the tutorial's exact runs
      - {name: baseline}
      - {name: large_lr, learning_rate: 5.0e-3}
    optuna:                               # a TPE search around the same question
      num_samples: 16
      space:
        learning_rate: {loguniform: [1.0e-4, 5.0e-3]}
        shape: {choice: ["2/2/128", "4/4/256"]}   # n_layer/n_head/n_embd together
    scheduler:
      asha: {grace_period: 250, reduction_factor: 2}   # or: none: "why early stopping is off"
    profiles:
      full:  {base: {max_iters: 1000}}
      cpu:   {base: {...}, runs: {large_model: {...}}, optuna: {...}, scheduler: {...}}
      smoke: {...}

A trial's config is merged in this order: the base config file, the profile's `base`, the
grid run (or the sampled Optuna values), then the profile's `runs.<name>`. Every merged trial
config is checked with gptcore's own validation when the file is loaded, so a bad value
fails before Ray starts. Unknown keys anywhere are errors naming the file and key.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gptcore.config import FIELD_TYPES, build_config, coerce, find_config, read_config_file
from gptcore.errors import UserError

SPACES_DIR = Path(__file__).resolve().parent.parent / "search_spaces"
PROFILES = ("full", "cpu", "smoke")
SEARCHERS = ("grid", "optuna")
SCHEDULERS = ("asha", "none")
DISTRIBUTIONS = ("uniform", "loguniform", "choice", "randint")
SHAPE = re.compile(r"^(\d+)/(\d+)/(\d+)$")

TOP_KEYS = {"description", "question", "base", "grid", "optuna", "scheduler", "profiles"}
PROFILE_KEYS = {"base", "runs", "optuna", "scheduler", "note"}
OPTUNA_KEYS = {"num_samples", "space"}
ASHA_KEYS = {"grace_period", "reduction_factor"}
# `shape` and `name` are the two keys a run may have that are not TrainConfig fields
RUN_KEYS = set(FIELD_TYPES) | {"shape", "name"}


def _bad_key(key: str, valid, where: str) -> UserError:
    close = difflib.get_close_matches(str(key), sorted(valid), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else f"valid: {', '.join(sorted(valid))}"
    return UserError(f"{where}: unknown key {key!r}: {hint}")


def _check_keys(d: Any, valid, where: str) -> dict:
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise UserError(f"{where}: expected a mapping of keys, found {type(d).__name__}")
    for k in d:
        if k not in valid:
            raise _bad_key(k, valid, where)
    return d


def expand_shape(values: dict[str, Any], where: str) -> dict[str, Any]:
    """Replace `shape: "L/H/E"` by n_layer, n_head and n_embd."""
    if "shape" not in values:
        return values
    out = dict(values)
    shape = str(out.pop("shape"))
    m = SHAPE.match(shape)
    if not m:
        raise UserError(f"{where}: shape={shape!r} must look like n_layer/n_head/n_embd, e.g. \"4/4/256\"")
    out["n_layer"], out["n_head"], out["n_embd"] = (int(g) for g in m.groups())
    return out


@dataclass
class Distribution:
    kind: str  # one of DISTRIBUTIONS
    args: list

    def values_for_dry_run(self) -> list:
        """Representative values to validate (the ends of a range, every choice)."""
        return list(self.args) if self.kind == "choice" else [self.args[0], self.args[1]]


@dataclass
class Experiment:
    """One experiment file, validated; `trials(profile, searcher)` gives the concrete runs."""

    name: str
    path: Path
    description: str
    question: str
    base_values: dict[str, Any]
    grid: list[dict[str, Any]]
    optuna_samples: int
    optuna_space: dict[str, Distribution]
    asha: dict[str, int] | None  # None: early stopping off for this experiment
    asha_off_reason: str
    profiles: dict[str, dict] = field(default_factory=dict)

    # ---------------------------------------------------------------------------------

    def profile_base(self, profile: str) -> dict[str, Any]:
        return {**self.base_values, **self.profiles[profile].get("base", {})}

    def grid_runs(self, profile: str) -> list[dict[str, Any]]:
        """The grid's runs for a profile, each a dict of TrainConfig values plus `name`."""
        base = self.profile_base(profile)
        per_run = self.profiles[profile].get("runs", {})
        return [{**base, **run, **per_run.get(run["name"], {})} for run in self.grid]

    def space(self, profile: str) -> dict[str, Distribution]:
        return {**self.optuna_space, **self.profiles[profile].get("optuna", {})}

    def scheduler(self, profile: str) -> dict[str, int] | None:
        if self.asha is None:
            return None
        return {**self.asha, **self.profiles[profile].get("scheduler", {})}

    def note(self, profile: str) -> str:
        return self.profiles[profile].get("note", "")


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
    return Distribution(kind, list(args))


def _parse_space(d: Any, where: str) -> dict[str, Distribution]:
    d = _check_keys(d, RUN_KEYS - {"name"}, where)
    return {k: _parse_distribution(v, f"{where}.{k}") for k, v in d.items()}


def _parse_run(d: Any, where: str, need_name: bool) -> dict[str, Any]:
    d = _check_keys(d, RUN_KEYS, where)
    if need_name and not isinstance(d.get("name"), str):
        raise UserError(f"{where}: every grid run needs a name, e.g. - {{name: baseline}}")
    out = {}
    for k, v in expand_shape(d, where).items():
        out[k] = v if k == "name" else coerce(k, v, FIELD_TYPES[k], where)
    return out


def load_experiment(name_or_path: str | Path) -> Experiment:
    """Load and validate an experiment file by name (`exp1`) or path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SPACES_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise UserError(f"unknown experiment {str(name_or_path)!r}: choose one of {', '.join(experiment_names())}")
    if not path.is_file():
        raise UserError(f"experiment file {path} does not exist")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{path}{line}: broken YAML: {problem}") from None
    w = str(path)
    doc = _check_keys(doc, TOP_KEYS, w)
    for req in ("description", "base", "grid", "profiles"):
        if req not in doc:
            raise UserError(f"{w}: missing key {req!r}")

    base_path, _ = find_config(str(doc["base"]))
    base_values = read_config_file(base_path)

    if not isinstance(doc["grid"], list) or not doc["grid"]:
        raise UserError(f"{w}: grid must be a non-empty list of runs")
    grid = [_parse_run(r, f"{w}: grid[{i}]", need_name=True) for i, r in enumerate(doc["grid"])]
    names = [r["name"] for r in grid]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserError(f"{w}: grid run names must be unique, {', '.join(dupes)} repeats")

    opt = _check_keys(doc.get("optuna"), OPTUNA_KEYS, f"{w}: optuna")
    samples = opt.get("num_samples", 16)
    if not isinstance(samples, int) or samples < 1:
        raise UserError(f"{w}: optuna.num_samples={samples!r} must be a positive whole number")
    space = _parse_space(opt.get("space"), f"{w}: optuna.space")

    sched = _check_keys(doc.get("scheduler"), SCHEDULERS, f"{w}: scheduler")
    if len(sched) != 1:
        raise UserError(f"{w}: scheduler needs exactly one of: asha: {{grace_period, reduction_factor}}, "
                        "or none: \"why early stopping is off\"")
    asha, reason = None, ""
    if "asha" in sched:
        asha = _parse_asha(sched["asha"], f"{w}: scheduler.asha")
    else:
        reason = str(sched["none"] or "")

    profiles_doc = _check_keys(doc["profiles"], PROFILES, f"{w}: profiles")
    missing = [p for p in PROFILES if p not in profiles_doc]
    if missing:
        raise UserError(f"{w}: profiles lacks {', '.join(missing)}: define full, cpu and smoke")
    profiles: dict[str, dict] = {}
    for pname, pdoc in profiles_doc.items():
        pw = f"{w}: profiles.{pname}"
        pdoc = _check_keys(pdoc, PROFILE_KEYS, pw)
        prof: dict[str, Any] = {"note": " ".join(str(pdoc.get("note", "")).split())}
        base = _parse_run(pdoc.get("base"), f"{pw}.base", need_name=False)
        if "name" in base:
            raise UserError(f"{pw}.base: `name` belongs to grid runs, not to a profile's base")
        prof["base"] = base
        runs = _check_keys(pdoc.get("runs"), set(names), f"{pw}.runs")
        prof["runs"] = {rn: _parse_run(rv, f"{pw}.runs.{rn}", need_name=False) for rn, rv in runs.items()}
        prof["optuna"] = _parse_space(pdoc.get("optuna"), f"{pw}.optuna")
        if "scheduler" in pdoc:
            if asha is None:
                raise UserError(f"{pw}.scheduler: this experiment has no ASHA scheduler to adjust")
            prof["scheduler"] = _parse_asha(pdoc["scheduler"], f"{pw}.scheduler", partial=True)
        profiles[pname] = prof

    exp = Experiment(name=path.stem, path=path, description=str(doc["description"]).strip(),
                     question=str(doc.get("question", "")).strip(), base_values=base_values, grid=grid,
                     optuna_samples=samples, optuna_space=space, asha=asha, asha_off_reason=reason,
                     profiles=profiles)
    _validate_trials(exp)
    return exp


def _parse_asha(d: Any, where: str, partial: bool = False) -> dict[str, int]:
    d = _check_keys(d, ASHA_KEYS, where)
    if not partial:
        for k in ASHA_KEYS:
            if k not in d:
                raise UserError(f"{where}: missing {k}")
    for k, v in d.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise UserError(f"{where}.{k}={v!r} must be a positive whole number of iterations")
    if d.get("reduction_factor", 2) < 2:
        raise UserError(f"{where}.reduction_factor={d['reduction_factor']} must be at least 2")
    return dict(d)


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
            for v in dist.values_for_dry_run():
                where = f"{exp.path}: profile {profile}, optuna {key}={v!r}"
                check(expand_shape({**base, key: v}, where), where)


def experiment_names() -> list[str]:
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))
