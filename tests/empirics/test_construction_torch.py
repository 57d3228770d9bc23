"""empirics.construction_torch: the block-level torch f̂ against the lowered float64 network."""

import numpy as np
import pytest
import torch

from robmem.empirics.construction_torch import ConstructionModule
from robmem.empirics.network_torch import from_torch
from robmem.theory.construction import build_construction
from robmem.theory.separation import synthetic_separated_points


@pytest.mark.parametrize("gated", [True, False])
def test_module_matches_lowered_network_and_outside_margin(gated):
    x, y = synthetic_separated_points(25, 6, 0.2, 3, seed=0)
    torch.manual_seed(0)
    inner = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    model = build_construction(x, y, 0.05, clean=from_torch(inner) if gated else None, n_classes=3)
    module = ConstructionModule(model, inner if gated else None).eval()
    rng = np.random.default_rng(1)
    probe = np.clip(np.vstack([x + rng.uniform(-0.08, 0.08, x.shape), rng.random((25, 6))]), 0, 1)
    xt = torch.as_tensor(probe, dtype=torch.float32)
    with torch.no_grad():
        got, margin = module(xt).double().numpy(), module.outside_margin(xt).numpy()
    np.testing.assert_allclose(got, model.network().forward(probe), atol=1e-4)
    outside = (model.distances(probe) >= model.bump.beta).all(axis=1)
    assert ((margin >= 0) == outside)[np.abs(margin) > 1e-6].all()
    assert (got[:25].argmax(1) == y).all()


def test_module_refuses_the_sawtooth_distance():
    x, y = synthetic_separated_points(4, 2, 0.3, 2, seed=0)
    model = build_construction(x, y, 0.05, "2", l2_method="sawtooth")
    with pytest.raises(ValueError, match="ℓ∞ distance"):
        ConstructionModule(model, None)
