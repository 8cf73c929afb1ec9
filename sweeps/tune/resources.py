"""Can one trial run anywhere? Checked once Ray is up, before any trial starts.

Ray queues a trial that no node can hold and waits for a node that never comes, without a word
on the screen (a local `--num-cpus 2 --cpus-per-trial 4` sweep hangs forever). So, before
`tuner.fit()`:

- local mode: the one node must hold one trial, else one line naming what was asked, what
  there is and the option to change; checked before Ray starts too (`check_local`, from this
  machine's CPUs and GPUs and --num-cpus / --num-gpus), so the refusal comes before the plan;
- on a cluster (`--address`): if no alive node holds one trial now, the sweep waits only when the
  cluster's autoscaler can start a node that does (one of its node types is large enough, and it
  may start some of them); it says so in one line. Otherwise the same one-line refusal.

`check_trial_fits` decides over plain data (`ray.nodes()` and the node types), so it is tested
without Ray. `autoscaler_node_types` reads the node types from a running cluster: the cluster
config the autoscaler keeps in Ray's GCS where a platform reports it, else the autoscaler's own
config on the head node (`~/ray_bootstrap_config.yaml`, written by `ray up`) when this driver runs
on the head. Neither found: the cluster is taken to be unable to grow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from gptcore.errors import UserError

_EPS = 1e-9  # fractional GPUs (1/3) are compared with a little slack
HEAD_RESOURCE = "node:__internal_head__"  # the resource Ray gives the head node alone
BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"  # where `ray up` leaves the autoscaler's config on the head


@dataclass(frozen=True)
class NodeType:
    """A kind of node the autoscaler can start: its resources (None when the config does not state
    them) and how many it may start (-1: no limit)."""

    name: str
    resources: dict[str, float] | None
    max_workers: int


def _count(n: float, unit: str) -> str:
    return f"{n:g} {unit}" + ("" if n == 1 or 0 < n < 1 else "s")


def _shape(resources: dict[str, float]) -> str:
    return f"{_count(resources.get('CPU', 0), 'CPU')} and {_count(resources.get('GPU', 0), 'GPU')}"


def fits(resources: dict[str, float], cpus: float, gpus: float) -> bool:
    """Whether a node (or node type) with `resources` holds one trial of `cpus` CPUs and `gpus` GPUs."""
    return resources.get("CPU", 0) + _EPS >= cpus and resources.get("GPU", 0) + _EPS >= gpus


def _alive_resources(nodes: list[dict]) -> list[dict[str, float]]:
    return [dict(n.get("Resources") or {}) for n in nodes if n.get("Alive", n.get("alive", False))]


def _describe_nodes(resources: list[dict[str, float]]) -> str:
    """'1 node of 0 CPUs and 0 GPUs, 2 nodes of 4 CPUs and 1 GPU' (the largest last)."""
    if not resources:
        return "no alive node"
    shapes: dict[tuple[float, float], int] = {}
    for r in resources:
        key = (r.get("GPU", 0), r.get("CPU", 0))
        shapes[key] = shapes.get(key, 0) + 1
    return ", ".join(f"{k} node{'s' if k > 1 else ''} of {_shape({'CPU': c, 'GPU': g})}"
                     for (g, c), k in sorted(shapes.items()))


def check_trial_fits(cpus: float, gpus: float, nodes: list[dict], address: str | None = None,
                     node_types: list[NodeType] | None = None) -> str | None:
    """None when an alive node holds one trial now; raise UserError when none can, ever.

    `nodes` is `ray.nodes()`; `address` None is local mode (this machine's Ray instance). On a
    cluster whose autoscaler has a node type that holds a trial (`node_types`, as
    `autoscaler_node_types` reads them; None: unknown, the cluster cannot grow), the trials wait
    for it: the returned line says so, for the command to print.
    """
    alive = _alive_resources(nodes)
    if any(fits(r, cpus, gpus) for r in alive):
        return None
    ask = f"each trial asks for {_shape({'CPU': cpus, 'GPU': gpus})}"
    if address is None:
        have = alive[0] if len(alive) == 1 else {"CPU": max((r.get("CPU", 0) for r in alive), default=0),
                                                 "GPU": max((r.get("GPU", 0) for r in alive), default=0)}
        fixes = []
        if have.get("CPU", 0) + _EPS < cpus:
            fixes.append(f"lower --cpus-per-trial to {have.get('CPU', 0):g} or less (or raise --num-cpus)")
        if have.get("GPU", 0) + _EPS < gpus:
            fixes.append("drop --gpus-per-trial (or declare logical GPUs with --num-gpus N)" if not have.get("GPU")
                         else f"lower --gpus-per-trial to {have['GPU']:g} or less")
        fixes = fixes or ["lower --cpus-per-trial / --gpus-per-trial to what one node has"]  # (one node: never)
        raise UserError(f"{ask}, but this machine's Ray has {_shape(have)}: {' and '.join(fixes)}")
    where = f"the Ray cluster at {address}"
    larger = [t for t in node_types or [] if t.max_workers != 0 and t.resources is not None
              and fits(t.resources, cpus, gpus)]
    if larger:
        t = max(larger, key=lambda t: (t.max_workers < 0, t.max_workers))
        return (f"no node of {where} holds a trial now ({ask}; it has {_describe_nodes(alive)}): the trials wait "
                f"for its autoscaler to start a {t.name} node ({_shape(t.resources or {})})")
    if node_types is None:
        grow = "no autoscaler was found to add a larger one"
    elif not node_types:
        grow = "its autoscaler names no node types"
    else:
        grow = "its autoscaler cannot start one (node types: " + ", ".join(
            f"{t.name} " + (_shape(t.resources) if t.resources is not None else "of unstated size")
            + (" (max 0)" if t.max_workers == 0 else "") for t in node_types) + ")"
    raise UserError(f"{ask}, but no node of {where} has that (it has {_describe_nodes(alive)}) and {grow}: lower "
                    "--cpus-per-trial / --gpus-per-trial to what one node has, or add a node that large")


def node_types_from_config(config: dict) -> list[NodeType]:
    """The node types of an autoscaler config (`ray up`'s cluster.yaml as the autoscaler reads it).

    As Ray fills it out: a type without `max_workers` may start up to the cluster's `max_workers`,
    except the head's type, which starts none; the cluster's `max_workers` caps every type.
    """
    types = config.get("available_node_types") or {}
    if not isinstance(types, dict):
        return []
    cluster_max = config.get("max_workers")
    out = []
    for name, spec in types.items():
        spec = spec if isinstance(spec, dict) else {}
        default = 0 if name == config.get("head_node_type") else (cluster_max if cluster_max is not None else -1)
        n = spec.get("max_workers", default)
        if cluster_max is not None and isinstance(n, int) and n >= 0:
            n = min(n, cluster_max)
        res = spec.get("resources")
        resources = {str(k): float(v) for k, v in res.items() if isinstance(v, (int, float))} \
            if isinstance(res, dict) else None
        out.append(NodeType(str(name), resources, n if isinstance(n, int) else 0))
    return out


def _driver_on_head(nodes: list[dict], driver_ip: str) -> bool:
    return any(n.get("Alive") and HEAD_RESOURCE in (n.get("Resources") or {})
               and n.get("NodeManagerAddress") == driver_ip for n in nodes)


def autoscaler_node_types(address: str, nodes: list[dict]) -> list[NodeType] | None:
    """The node types the cluster's autoscaler can start, read from the running cluster; None when
    there is no sign of an autoscaler. Needs Ray initialised (connected to the cluster)."""
    try:  # the cluster config in the GCS (what Ray Train and Ray Data read too); a private API of Ray
        from ray._private.state import state

        config = state.get_cluster_config()
        if config is not None and config.node_group_configs:
            return [NodeType(g.name, {k: float(v) for k, v in g.resources.items()}, int(g.max_count))
                    for g in config.node_group_configs]
    except Exception:  # an older or newer Ray without it: look on the head instead
        pass
    if address.startswith("ray://"):  # Ray Client: this machine is not the cluster's head
        return None
    try:
        import ray.util

        if not _driver_on_head(nodes, ray.util.get_node_ip_address()):
            return None
        text = Path(BOOTSTRAP_CONFIG).expanduser().read_text(encoding="utf-8")
        config = yaml.safe_load(text)  # `ray up` writes it as JSON, which YAML reads too
    except (OSError, ValueError, ImportError, yaml.YAMLError):
        return None
    return node_types_from_config(config) if isinstance(config, dict) else None


def check_local(cpus: float, gpus: float, num_cpus: int | None, num_gpus: int | None, gpus_seen: int) -> None:
    """Local mode, before Ray starts: refuse a trial this machine's Ray could never hold, in one line.

    The node Ray would start has `--num-cpus` CPUs (default: this machine's, `os.cpu_count()`) and
    `--num-gpus` GPUs (default: those torch sees, `gpus_seen`); Ray itself may see fewer CPUs (a
    container's quota), which `check_ray` catches once it is up.
    """
    node = {"CPU": float(num_cpus if num_cpus is not None else os.cpu_count() or 1),
            "GPU": float(num_gpus if num_gpus is not None else gpus_seen)}
    check_trial_fits(cpus, gpus, [{"Alive": True, "Resources": node}], None)


def check_ray(ray, cpus: float, gpus: float, address: str | None) -> str | None:
    """`check_trial_fits` against the Ray instance the sweep started or joined (the node types are
    read only when no node holds a trial now)."""
    nodes = ray.nodes()
    if any(fits(r, cpus, gpus) for r in _alive_resources(nodes)):
        return None
    return check_trial_fits(cpus, gpus, nodes, address, autoscaler_node_types(address, nodes) if address else None)
