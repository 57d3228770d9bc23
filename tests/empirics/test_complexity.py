"""Tests of robmem.empirics.complexity (SPEC E5): measure classes, model complexity, init model."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch


def test_model_complexity_uses_theory_calculator() -> None:
    import torch

    import robmem.empirics.measures as measures
    from robmem.empirics.complexity import model_complexity

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x, y = torch.rand(16, 4), torch.randint(0, 3, (16,))
    got = model_complexity(net, x, y)
    want = measures.complexity_measures(net, x, y)
    assert got
    for name, value in got.items():
        assert value == pytest.approx(float(want[name]))


# ------------------------------------------------------------------ measure classes (E5)
def _mlp(seed: int, scale: float = 1.0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)
    return net


_FAST_SEARCH = dict(search_depth=4, mc_samples=2)


def _all_keys_measures(model, init, x, y) -> dict[str, float]:
    from robmem.empirics.measures import SigmaSearchConfig, complexity_measures

    return complexity_measures(
        model, x, y, init_model=init, magnitude_aware=True,
        sigma_search=SigmaSearchConfig(**_FAST_SEARCH),
    )  # fmt: skip


def test_every_calculator_key_is_classified_exactly_once() -> None:
    from robmem.empirics.complexity import MEASURE_CLASSES, NON_MEASURE_KEYS

    x, y = torch.rand(32, 4), torch.randint(0, 3, (32,))
    keys = set(_all_keys_measures(_mlp(0), _mlp(1), x, y))
    owners: dict[str, list[str]] = {k: [] for k in keys}
    for c in MEASURE_CLASSES:
        assert c.sign in (-1, 1)
        for k in (c.key, *c.duplicates):
            owners.setdefault(k, []).append(c.name)
    for k in NON_MEASURE_KEYS:
        owners.setdefault(k, []).append("non-measure")
    assert {k: v for k, v in owners.items() if len(v) != 1} == {}
    assert keys <= set(owners)
    assert {"params", "n_layers"} <= NON_MEASURE_KEYS


def test_duplicates_are_rank_duplicates_on_real_models() -> None:
    """Over models of one architecture each duplicate orders like its class key."""
    from robmem.empirics.complexity import MEASURE_CLASSES

    x, y = torch.rand(32, 4), torch.randint(0, 3, (32,))
    init = _mlp(0)
    family = [_all_keys_measures(_mlp(s, sc), init, x, y) for s, sc in
              [(1, 0.5), (2, 1.0), (3, 1.7), (4, 2.5), (5, 4.0)]]  # fmt: skip
    for c in MEASURE_CLASSES:
        for dup in c.duplicates:
            a = [m[c.key] for m in family]
            b = [m[dup] for m in family]
            if dup in ("inverse_margin",) and min(a) <= 0:
                continue  # 1/γ² is monotone in γ only while γ > 0
            sign = -1.0 if dup in ("inverse_margin", "pacbayes_flatness") else 1.0
            # Every pair ordered the same way (ties included): a strictly monotone relation.
            for i, j in itertools.combinations(range(len(a)), 2):
                assert np.sign(a[i] - a[j]) == sign * np.sign(b[i] - b[j]), (c.name, dup)
            assert len(set(a)) >= 3, (c.name, "family too degenerate to test")


def test_measure_classes_collapse_duplicates_and_orient() -> None:
    from robmem.empirics.complexity import measure_classes

    raw = {
        "spec_product": math.exp(1.5), "log_prod_of_spec": 3.0, "log_sum_of_spec": 2.2,
        "margin": 0.4, "inverse_margin": 6.25, "pacbayes_sigma": 0.2, "pacbayes_flatness": 25.0,
        "params": 59.0, "n_layers": 2.0, "path_norm": 7.0,
    }  # fmt: skip
    got = measure_classes(raw)
    assert got == {
        "margin": -0.4,
        "spectral_product": 3.0,
        "path_norm": 7.0,
        "pacbayes_sigma": -0.2,
    }
    with pytest.raises(ValueError, match="outside every measure class"):
        measure_classes({**raw, "mystery": 1.0}, strict=True)
    assert measure_classes({"mystery": 1.0}) == {}
    with pytest.raises(TypeError, match="measures"):
        measure_classes([1.0])  # type: ignore[arg-type]


def test_init_model_measures_present_and_zero_at_init() -> None:
    import copy

    from robmem.empirics.complexity import measure_classes, model_complexity

    x, y = torch.rand(16, 4), torch.randint(0, 3, (16,))
    model = _mlp(0)
    without = model_complexity(model, x, y, pac_bayes=False)
    assert "fro_dist" not in without and "dist_spec_init" not in without
    same = model_complexity(model, x, y, init_model=copy.deepcopy(model), pac_bayes=False)
    assert same["fro_dist"] == 0.0 and same["dist_spec_init"] == 0.0
    moved = model_complexity(model, x, y, init_model=_mlp(1), pac_bayes=False)
    diff = sum(float(((p - q).detach() ** 2).sum()) for p, q in
               zip(model.parameters(), _mlp(1).parameters(), strict=True)
               if p.ndim > 1)  # fmt: skip
    assert moved["fro_dist"] == pytest.approx(diff, rel=1e-6)
    classes = measure_classes(moved)
    assert {"fro_dist", "dist_spec_init", "spec_init_main"} <= set(classes)
    with pytest.raises(ValueError, match="init_model"):
        other = torch.nn.Sequential(torch.nn.Linear(4, 9), torch.nn.ReLU(), torch.nn.Linear(9, 3))
        model_complexity(model, x, y, init_model=other, pac_bayes=False)


def test_initial_model_rebuilds_the_runs_initial_weights(tmp_path) -> None:
    """A run with lr = 0 never moves: its last checkpoint must equal initial_model(config)."""
    from robmem.empirics.complexity import initial_model
    from robmem.empirics.config import TrainConfig
    from robmem.empirics.trainers import load_model_from_run, train

    cfg = TrainConfig(
        dataset="digits", n_train=40, n_test=20, model="mlp", model_kwargs={"hidden": [8]},
        method="standard", epochs=1, batch_size=20, lr=0.0, seed=3, num_threads=1,
    )  # fmt: skip
    train(cfg, tmp_path / "run", progress=False)
    trained, _, _ = load_model_from_run(tmp_path / "run")
    before = torch.random.get_rng_state()
    init = initial_model(cfg)
    assert torch.equal(before, torch.random.get_rng_state())  # caller's RNG untouched
    for (k, a), b in zip(trained.state_dict().items(), init.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    other = initial_model(cfg.replace(seed=4))
    assert not torch.equal(other.net.net[0].weight, init.net.net[0].weight)
