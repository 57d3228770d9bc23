"""The T1 construction f̂ evaluated in torch from its blocks (SPEC B3; for PGD against f̂).

Independent of the lowered :class:`robmem.theory.network.ReLUNetwork` (B3 compares the two): the
ℓ∞ distances r_i(x) = ‖x − c_i‖_∞, the trapezoid bumps h_i = (σ(β_i − r_i) − σ(α_i − r_i)) /
(β_i − α_i), the one-hot read-out and, with f_clean, the gate σ(f − M·g) − σ(−f − M·g)
with g = Σ_i h_i. All in float32; memory is batch·N·d floats.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ConstructionModule(nn.Module):
    """f̂ of a ℓ∞ :class:`robmem.theory.construction.RobustMemorizer` with ``clean`` as f_clean."""

    def __init__(self, model: Any, clean: nn.Module | None) -> None:
        super().__init__()
        if model.distance.kind != "linf":
            raise ValueError(f"model: needs the ℓ∞ distance, got {model.distance.kind!r}")
        self.register_buffer("c", torch.as_tensor(model.distance.centres, dtype=torch.float32))
        self.register_buffer("alpha", torch.as_tensor(model.bump.alpha, dtype=torch.float32))
        self.register_buffer("beta", torch.as_tensor(model.bump.beta, dtype=torch.float32))
        labels = torch.as_tensor(model.output.labels, dtype=torch.long)
        onehot = torch.nn.functional.one_hot(labels, model.output.n_classes).float()
        self.register_buffer("onehot", onehot)
        self.clean = clean
        self.scale = float(model.gate.scale) if model.gate is not None else None

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, N) ℓ∞ distances of the flattened inputs to the centres."""
        return (x.flatten(1)[:, None, :] - self.c[None]).abs().amax(dim=2)

    def outside_margin(self, x: torch.Tensor) -> torch.Tensor:
        """min_i (r_i(x) − β_i): ≥ 0 iff x lies outside every inflated ball."""
        return (self.distances(x) - self.beta).amin(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.distances(x)
        h = (torch.relu(self.beta - r) - torch.relu(self.alpha - r)) / (self.beta - self.alpha)
        out = h @ self.onehot
        if self.scale is None:
            return out
        f = self.clean(x)
        g = h.sum(dim=1, keepdim=True)
        return out + torch.relu(f - self.scale * g) - torch.relu(-f - self.scale * g)
