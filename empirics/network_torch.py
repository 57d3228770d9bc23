"""Exact conversion between :class:`theory.network.ReLUNetwork` and ``torch.nn.Sequential``."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from robmem.theory.network import ReLUNetwork

#: Largest number of weight entries :func:`to_torch` densifies without ``allow_large=True``
#: (2**27 float32 entries = 512 MiB).
MAX_DENSE_TORCH_ENTRIES = 2**27


def to_torch(
    net: ReLUNetwork, *, dtype: torch.dtype | None = None, allow_large: bool = False
) -> torch.nn.Sequential:
    """Return an equivalent ``torch.nn.Sequential`` of ``Linear``/``ReLU`` modules.

    Parameters
    ----------
    net : ReLUNetwork
    dtype : torch.dtype, optional
        Parameter dtype; default ``torch.float64`` (exact transfer of the float64 weights).
    allow_large : bool
        Densify even when a layer has more than :data:`MAX_DENSE_TORCH_ENTRIES` entries.
    """
    dtype = torch.float64 if dtype is None else dtype
    modules: list[torch.nn.Module] = []
    for index, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        entries = int(w.shape[0]) * int(w.shape[1])
        if entries > MAX_DENSE_TORCH_ENTRIES and not allow_large:
            raise ValueError(
                f"allow_large: layer {index} has {entries} dense entries > "
                f"{MAX_DENSE_TORCH_ENTRIES}; pass allow_large=True to densify anyway"
            )
        dense = w.toarray() if sp.issparse(w) else w
        lin = torch.nn.Linear(int(w.shape[1]), int(w.shape[0]), dtype=dtype)
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(dense, dtype=dtype))
            lin.bias.copy_(torch.as_tensor(b, dtype=dtype))
        modules.append(lin)
        if index < net.depth - 1:
            modules.append(torch.nn.ReLU())
    return torch.nn.Sequential(*modules)


def from_torch(module: torch.nn.Module) -> ReLUNetwork:
    """Build from a ``torch.nn.Sequential`` of ``Linear``, ``ReLU`` (and leading ``Flatten``).

    Consecutive ``Linear`` layers without a ReLU between them are multiplied out, so
    the result is the same function. Any other module raises ``ValueError``.
    """
    mods = list(module.children()) if isinstance(module, torch.nn.Sequential) else [module]
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    pending_relu = False
    for position, mod in enumerate(mods):
        if isinstance(mod, torch.nn.Flatten) and not weights:
            continue
        if isinstance(mod, torch.nn.Identity):
            continue
        if isinstance(mod, torch.nn.Linear):
            w = mod.weight.detach().to(torch.float64).cpu().numpy().copy()
            b = (
                mod.bias.detach().to(torch.float64).cpu().numpy().copy()
                if mod.bias is not None
                else np.zeros(w.shape[0])
            )
            if weights and not pending_relu:
                # two affine maps in a row compose into one
                b = w @ biases[-1] + b
                w = w @ weights[-1]
                weights[-1], biases[-1] = w, b
            else:
                weights.append(w)
                biases.append(b)
            pending_relu = False
        elif isinstance(mod, torch.nn.ReLU):
            if not weights or pending_relu:
                raise ValueError(f"module: ReLU at position {position} must follow a Linear")
            pending_relu = True
        else:
            raise ValueError(
                f"module: unsupported layer {type(mod).__name__} at position {position}; "
                "allowed are Linear, ReLU and a leading Flatten"
            )
    if not weights:
        raise ValueError("module: no Linear layer found")
    if pending_relu:
        raise ValueError("module: a trailing ReLU is not representable (output is affine)")
    return ReLUNetwork(weights, biases)
