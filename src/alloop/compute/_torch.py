"""Shrink-and-perturb for PyTorch models (Ash & Adams 2020): continue from the previous weights, but
scaled down and mixed with a fresh initialisation, so that warm-started training still generalises.

``θ ← shrink·θ + perturb·θ_fresh``, where ``θ_fresh`` is a new seeded initialisation of the same network.
torch is imported on first use (``pip install 'alloop[torch]'``).
"""

from __future__ import annotations

import copy
from typing import Any

from alloop.errors import require_extra

__all__ = ["fresh_like", "is_torch_module", "shrink_perturb", "shrink_perturb_state"]


def _torch() -> Any:
    return require_extra("torch", "torch")


def is_torch_module(obj: Any) -> bool:
    """True when ``obj`` is a ``torch.nn.Module`` (without importing torch when it is not loaded)."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def fresh_like(module: Any, *, seed: int = 0) -> Any:
    """A copy of ``module`` re-initialised by every sub-module's ``reset_parameters`` (seeded, global RNG untouched)."""
    torch = _torch()
    out = copy.deepcopy(module)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        for sub in out.modules():
            reset = getattr(sub, "reset_parameters", None)
            if callable(reset):
                reset()
    return out


def shrink_perturb_state(
    state: dict[str, Any], fresh: dict[str, Any], *, shrink: float, perturb: float
) -> dict[str, Any]:
    """``shrink·state + perturb·fresh`` for floating-point tensors; other entries (counters, buffers) unchanged."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        if hasattr(value, "is_floating_point") and value.is_floating_point() and key in fresh:
            out[key] = value * float(shrink) + fresh[key].to(value.dtype) * float(perturb)
        else:
            out[key] = value
    return out


def shrink_perturb(module: Any, *, shrink: float = 0.4, perturb: float = 0.1, seed: int = 0) -> Any:
    """Apply shrink-and-perturb to ``module``'s parameters in place and return it.

    >>> import torch                                                          # doctest: +SKIP
    >>> net = torch.nn.Linear(3, 2)                                           # doctest: +SKIP
    >>> before = net.weight.detach().clone()                                  # doctest: +SKIP
    >>> fresh = fresh_like(net, seed=1).weight.detach()                       # doctest: +SKIP
    >>> _ = shrink_perturb(net, shrink=0.5, perturb=0.1, seed=1)              # doctest: +SKIP
    >>> torch.allclose(net.weight, 0.5 * before + 0.1 * fresh)                # doctest: +SKIP
    True
    """
    if float(shrink) == 1.0 and float(perturb) == 0.0:  # the identity: no fresh network to build (≈ 50 ms, mlp)
        return module
    torch = _torch()
    fresh = fresh_like(module, seed=seed).state_dict()
    with torch.no_grad():
        new = shrink_perturb_state(module.state_dict(), fresh, shrink=shrink, perturb=perturb)
        module.load_state_dict(new)
    return module
