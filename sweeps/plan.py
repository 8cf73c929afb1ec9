"""The plan of a sweep: which trials run, with what resources and scheduler, checked before Ray starts.

`make_plan` turns the command's options and an experiment file into a `Plan`; `describe` is the
dry run's text (every trial, its resources and the total work).
"""

from __future__ import annotations

from dataclasses import dataclass

from gptcore.config import build_config
from gptcore.errors import UserError
from gptcore.record import estimated_params

from .options import ORDERS, SCHEDULERS, SEARCHERS, SweepOptions
from .render import text_table
from .sampling import SAMPLERS, Confirm, choose_sampler
from .spaces import KNOBS, PROFILES, EarlyStopping, Experiment, SeedRange, expand_shape, load_experiment

__all__ = ["SAMPLERS", "SEARCHERS", "SCHEDULERS", "ORDERS", "Plan", "make_plan", "describe", "estimated_flops"]
TIME_ATTR = "iter"  # the scheduler's clock: optimizer iterations, as gptcore reports them


@dataclass
class Plan:
    exp: Experiment
    profile: str
    search: str
    scheduler: EarlyStopping | None
    num_samples: int
    cpus: float
    gpus: float
    max_concurrent: int | None
    trials: list[dict]  # grid: every run x seed in start order; optuna: one representative (the profile base)
    order: str = "file"  # grid start order: file or longest-first
    notes: tuple[str, ...] = ()  # what the command should say about its choices
    seeds: tuple[int, ...] = (1337,)  # the first training seeds of every grid run (and of a search's confirm stage)
    seed_range: SeedRange = SeedRange(1, 1)  # a grid's seeds per run: the least, then more up to the most
    sampler: str = ""  # a search's Optuna sampler, and why it was chosen
    sampler_why: str = ""
    confirm: Confirm | None = None  # a search's confirm stage

    @property
    def num_search(self) -> int:
        """A search's own trials, before the confirm stage."""
        return self.num_samples - (self.confirm.n_trials if self.confirm else 0)

    @property
    def runs(self) -> list[str]:
        """The grid's run names, in the file's order."""
        return self.exp.run_names if self.search == "grid" else []

    @property
    def max_iters(self) -> int:
        return max(t["max_iters"] for t in self.trials)


def choose_profile(requested: str, gpus_available: int) -> tuple[str, str | None]:
    """The profile to run, and a note when it was chosen for the user (`auto`)."""
    if requested != "auto":
        return requested, None
    profile = "full" if gpus_available else "cpu"
    why = "GPUs found" if gpus_available else "no GPU here"
    return profile, f"profile: {profile} ({why}; choose with --profile {'|'.join(PROFILES)})"


def _scheduler(exp: Experiment, profile: str, requested: str) -> tuple[EarlyStopping | None, str | None]:
    stopping = exp.early_stopping(profile)
    if requested == "none":
        return None, None
    if requested == "asha" and stopping is None:
        base = exp.profile_base(profile)
        note = (f"note: {exp.name} runs without early stopping by design ({exp.no_early_stopping_reason}); "
                "--scheduler asha overrides that")
        return EarlyStopping(grace_period=max(1, base["max_iters"] // 8), reduction_factor=2), note
    return stopping, None


def make_plan(opts: SweepOptions, gpus_available: int) -> Plan:
    """The sweep that the command's options ask for; every trial config validated."""
    exp = load_experiment(opts.exp)
    profile, note = choose_profile(opts.profile, gpus_available)
    scheduler, sched_note = _scheduler(exp, profile, opts.scheduler)
    gpus = opts.gpus_per_trial if opts.gpus_per_trial is not None else (1.0 if gpus_available else 0.0)
    seed_range = opts.seeds or exp.seeds(profile)
    n_seeds = seed_range.least
    notes = []
    if opts.search == "grid":
        runs = exp.grid_runs(profile)
        # every run trains once per seed; the seeds follow the run's own (the config's) seed
        trials = [{**run, "seed": run.get("seed", exp.base_values.get("seed", 1337)) + i}
                  for run in runs for i in range(n_seeds)]
        # a range: up to `most` seeds for every run (the searcher adds them where a verdict is undecided)
        num_samples = len(runs) * seed_range.most
    else:
        if not exp.space(profile):
            raise UserError(f"{exp.name} has no search: {exp.no_search_reason or 'its file defines no optuna.space'}"
                            f"; run its grid (drop --search optuna)")
        trials = [{**exp.profile_base(profile), "name": "optuna"}]
        num_samples = opts.num_samples or exp.optuna_samples
    trials = [{"name": t["name"], **build_config(expand_shape({k: v for k, v in t.items() if k != "name"}, exp.name),
                                                 where=exp.name).as_dict()}
              for t in trials]
    seeds = tuple(sorted({t["seed"] for t in trials}))
    sampler = why = ""
    confirm = None
    if opts.search == "optuna":
        if not seed_range.fixed:
            notes.append(f"seeds: a search's confirm stage trains with {n_seeds} (the range {seed_range.text()} "
                         "is for a grid's runs)")
            seed_range = SeedRange(n_seeds, n_seeds)
        sampler, why = choose_sampler(opts.sampler, exp.space(profile), num_samples)
        base_seed = trials[0]["seed"]
        seeds = tuple(base_seed + i for i in range(n_seeds))
        if opts.confirm:
            reference = None
            if exp.reference:
                run = next(r for r in exp.grid_runs(profile) if r["name"] == exp.reference)
                reference = {"name": exp.reference, **build_config(
                    expand_shape({k: v for k, v in run.items() if k != "name"}, exp.name), where=exp.name).as_dict()}
            per = exp.confirm_per
            k = len(exp.space(profile)[per].args) if per else min(opts.confirm, num_samples)
            confirm = Confirm(k, seeds, reference, per)
            num_samples += confirm.n_trials
    # the start order changes no outcome (the scheduler decides on the values at its rungs), only
    # how well the trials fill the slots
    order = "file" if opts.search != "grid" else (opts.order if opts.order != "auto" else "longest-first")
    if order == "longest-first":
        # Every trial runs to the end, so the sweep's wall time is set by whichever slot finishes last;
        # starting the costliest trials first leaves only short ones to fill in at the end (a stable
        # sort: equal costs keep the file's order).
        trials = sorted(trials, key=lambda t: -estimated_flops(t))
    return Plan(exp, profile, opts.search, scheduler, num_samples, opts.cpus_per_trial, gpus, opts.max_concurrent,
                trials, order, tuple(n for n in (note, sched_note, *notes) if n), seeds, seed_range, sampler, why,
                confirm)


def estimated_flops(t: dict, vocab_size: int = 65) -> float:
    """Rough compute of one trial run to the end: training plus evaluations (gptcore's FLOPs per
    token with N ~ 12 L E^2 + V E; forward-only evaluation at a third of that)."""
    from gptcore.model import flops_per_token

    L, E, T = t["n_layer"], t["n_embd"], t["block_size"]
    per_token = flops_per_token(estimated_params(L, E) + vocab_size * E, L, E, T)
    train = t["max_iters"] * t["batch_size"] * t["gradient_accumulation_steps"] * T * per_token
    evals = t["max_iters"] // t["eval_interval"] + 1
    evaluate = evals * 2 * t["eval_iters"] * (t.get("eval_batch_size") or t["batch_size"]) * T * per_token / 3
    return train + evaluate


def _compute_range(plan: Plan, first_iters: int, first_tokens: int) -> list[str]:
    """The least and the most a grid with a range of seeds can cost, for the dry run."""
    r = plan.seed_range
    per_seed = {}  # run -> (iterations, tokens) of one seed to the end
    for t in plan.trials:
        per_seed[t["name"]] = (t["max_iters"],
                               t["max_iters"] * t["batch_size"] * t["gradient_accumulation_steps"] * t["block_size"])
    most_iters = sum(i for i, _ in per_seed.values()) * r.most
    most_tokens = sum(k for _, k in per_seed.values()) * r.most
    least = first_iters
    if plan.scheduler is not None:  # every run but the reference stopped at the first rung
        rung = plan.scheduler.grace_period
        least = sum(i if n == plan.exp.reference else min(i, rung) for n, (i, _) in per_seed.items()) * r.least
    return [f"seeds {r.text()} per run: {r.least} first, then {r.step} more at a time (seeds at each look: "
            f"{', '.join(map(str, r.looks))}) for the runs whose verdicts are still within noise;",
            f"  least compute: {least:,} iterations"
            + (" (every run but the reference stopped at the first rung, no seed added)" if plan.scheduler
               else f" and {first_tokens:,} tokens (no seed added)"),
            f"  most compute: {len(per_seed) * r.most} trials, {most_iters:,} iterations and {most_tokens:,} tokens "
            f"(every run to the end with {r.most} seeds)"]


def _short(key: str) -> str:
    return {"learning_rate": "lr", "gradient_accumulation_steps": "accum"}.get(key, key)


def _value(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def describe(plan: Plan) -> str:
    """The dry run: every trial, its resources, and the total work."""
    base = plan.trials[0]
    exp = plan.exp
    if plan.scheduler is None:
        sched = f"none ({exp.no_early_stopping_reason or 'chosen on the command line'})"
    else:
        kind = ("successive halving by run: a run's seeds continue or stop together, on their mean"
                + (f"; {exp.reference} is never stopped" if exp.reference else "")
                if plan.search == "grid" else "asha")
        sched = (f"{kind} (time attribute {TIME_ATTR}, grace period {plan.scheduler.grace_period}, reduction factor "
                 f"{plan.scheduler.reduction_factor}, max_t {plan.max_iters})")
    lines = [f"{exp.name}: {exp.description}",
             f"profile {plan.profile}" + (f" ({exp.note(plan.profile)})" if exp.note(plan.profile) else ""),
             f"searcher {plan.search}, scheduler {sched}",
             f"resources per trial: {plan.cpus:g} CPU, {plan.gpus:g} GPU"
             + (f"; at most {plan.max_concurrent} at once" if plan.max_concurrent else "")]
    if plan.search == "grid":
        lines.append("start order: " + ("the file's" if plan.order == "file" else
                                        "longest first by estimated compute (choose with --order file)"))
        varied = [k for k in KNOBS if len({_value(t[k]) for t in plan.trials}) > 1]
        lines.append("shared by every trial: " + ", ".join(f"{k}={_value(base[k])}" for k in KNOBS if k not in varied))
        lines.append("")
        rows = [[t["name"]] + [_value(t[k]) for k in varied]
                + [f"{t['batch_size'] * t['gradient_accumulation_steps'] * t['block_size']:,}",
                   f"{estimated_flops(t) / 1e12:.1f}"] for t in plan.trials]
        lines.append(text_table(["trial"] + [_short(k) for k in varied] + ["tokens/iter", "~TFLOP"], rows,
                                rule=False))
        total_iters = sum(t["max_iters"] for t in plan.trials)
        total_tokens = sum(t["max_iters"] * t["batch_size"] * t["gradient_accumulation_steps"] * t["block_size"]
                           for t in plan.trials)
        n_runs, n_seeds = len(plan.runs), len(plan.seeds)
        lines += ["", f"{n_runs} runs x {n_seeds} seed{'s' if n_seeds > 1 else ''} "
                      f"({', '.join(map(str, plan.seeds))}) = {len(plan.trials)} trials, {total_iters:,} iterations "
                      f"and {total_tokens:,} tokens in all if none stops early"]
        if not plan.seed_range.fixed:
            lines += _compute_range(plan, total_iters, total_tokens)
    else:
        lines += ["", f"{plan.num_search} Optuna trials ({plan.sampler} sampler: {plan.sampler_why}) from the "
                      f"{plan.profile} base config over:"]
        space = exp.space(plan.profile)
        lines += [f"  {k}: {d.kind} {list(d.args)}" for k, d in space.items()]
        searched = set(space) | ({"n_layer", "n_head", "n_embd"} if "shape" in space else set())
        lines.append("fixed: " + ", ".join(f"{k}={_value(base[k])}" for k in KNOBS if k not in searched))
        if plan.confirm:
            c = plan.confirm
            lines.append("then the confirm stage: "
                         + (f"the best configuration of each {c.per} ({c.k} values)" if c.per
                            else f"the best {c.k} configurations")
                         + (f" and the reference run {c.reference['name']}" if c.reference else "")
                         + f", each over {len(c.seeds)} seed(s) ({', '.join(map(str, c.seeds))}) to the full budget: "
                           f"{c.n_trials} trials (--confirm 0 to skip)")
        lines.append(f"at most {plan.num_samples * base['max_iters']:,} iterations in all "
                     f"({base['max_iters']:,} per trial) if none stops early")
    return "\n".join(lines)
