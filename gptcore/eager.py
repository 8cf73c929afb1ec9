"""A run that compiles nothing, without importing torch's compiler: its optimizer steps and its
shapes-only networks.

torch's optimizers import `torch._dynamo` on their first call (the methods carry a lazy
"do not trace this" guard, and `step` asks for a graph break), compiled run or not, and so does
the meta kernel of `normal_` when a network is built on the meta device. The import
takes 1.1-1.7 s on a 2-core CPU, a third of what a fresh Ray actor costs before its trial trains,
paid again by every trial of a sweep and every `python -m gptcore train`: measured in
benchmarks/README.md ("Where an exp1 sweep's time goes"). In an eager run nothing traces the
optimizer, so the guard has nothing to guard: `eager_optimizers()` marks the guarded methods as
already handled, and `optimizer_step()` calls the optimizer's own update under `no_grad`, which is
what its wrapper does when the optimizer is not differentiable and no hook is registered.
`shapes_only()` builds a network on the meta device without its random initialisation (a
checkpoint's check, the dtype probe's FLOPs), which has no values to fill anyway.

The optimizer's two rely on how torch wraps its methods (the `__dynamo_disable` cache of `torch._disable_dynamo`,
`__wrapped__` from functools.wraps); where that differs (another torch), they change nothing and
the optimizer runs as torch ships it. tests/test_eager.py checks that a run's updates are the
same either way, that torch 2.13 takes the fast path, and that a run and its resume never import
the compiler.
"""

from __future__ import annotations

import inspect
import sys

import torch
from torch.optim import optimizer as _optimizer
from torch.overrides import TorchFunctionMode

from .model import GPT, GPTConfig

# the methods of torch.optim.Optimizer that torch wraps in torch._disable_dynamo
GUARDED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


def eager_optimizers() -> bool:
    """Let torch's optimizers run without importing torch._dynamo; whether that now holds.

    Call it only in a process that compiles no function calling an optimizer method (the trainer
    compiles the model alone): the guards it pre-empts keep the compiler out of those methods.
    """
    if "torch._dynamo" in sys.modules:
        return False  # already imported: nothing to save, and torch's guards stay as they are
    inner = [getattr(getattr(torch.optim.Optimizer, name), "__wrapped__", None) for name in GUARDED]
    if any(fn is None for fn in inner):
        return False
    for fn in inner:
        if getattr(fn, "__dynamo_disable", None) is None:
            # torch._disable_dynamo caches its wrapped function here and imports the compiler only
            # when the cache is empty; the method itself is what an eager call runs
            setattr(fn, "__dynamo_disable", fn)
    return True


def _update(opt: torch.optim.Optimizer):
    """The optimizer's own update (its `step` without torch's wrappers), where calling it directly
    does what `opt.step()` would; else None."""
    if opt.defaults.get("differentiable") or torch.compiler.is_compiling():
        return None
    if (opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks
            or _optimizer._global_optimizer_pre_hooks or _optimizer._global_optimizer_post_hooks):
        return None
    update = inspect.unwrap(type(opt).step)
    return None if update is type(opt).step else update


def optimizer_step(opt: torch.optim.Optimizer) -> None:
    """`opt.step()`, without the compiler's import where the optimizer allows (see the module)."""
    update = _update(opt)
    if update is None:
        opt.step()
        return
    # the label torch's own wrapper gives the step in a profile
    with torch.no_grad(), torch.autograd.profiler.record_function(f"Optimizer.step#{type(opt).__name__}.step"):
        update(opt)


class _NoRandomInit(TorchFunctionMode):
    """Inside torch.device("meta"): a module's random initialisation skipped."""

    SKIPPED = frozenset({"normal_", "uniform_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_",
                         "xavier_uniform_", "xavier_normal_"})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", None) in self.SKIPPED:
            # torch.nn.init passes its tensor by keyword, Tensor.normal_ as self
            tensor = kwargs.get("tensor", args[0] if args else None)
            if isinstance(tensor, torch.Tensor):
                return tensor
        return func(*args, **kwargs)


def shapes_only(config: GPTConfig) -> GPT:
    """A GPT on the meta device: its parameters' names and shapes, without memory or initialisation."""
    with torch.device("meta"), _NoRandomInit():
        return GPT(config)
