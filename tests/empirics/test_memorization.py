"""Tests of robmem.empirics.memorization (SPEC E6): bookkeeping checked by brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from robmem.empirics.memorization import (
    NEVER,
    per_example_robust_loss,
    stably_fitted_epoch,
)


def _brute_stable(corr: np.ndarray, epochs: list[int]) -> np.ndarray:
    out = []
    for j in range(corr.shape[1]):
        val = NEVER
        for k in range(corr.shape[0]):
            if all(corr[k:, j]):
                val = epochs[k]
                break
        out.append(val)
    return np.array(out)


@given(arrays(np.bool_, st.tuples(st.integers(1, 6), st.integers(1, 8))))
def test_stably_fitted_epoch_matches_brute_force(corr: np.ndarray) -> None:
    epochs = [2 * k + 1 for k in range(corr.shape[0])]
    want = _brute_stable(corr, epochs)
    np.testing.assert_array_equal(stably_fitted_epoch(epochs, corr), want)
    np.testing.assert_array_equal(stably_fitted_epoch(epochs, corr.astype(int).tolist()), want)


def test_stably_fitted_epoch_bad_inputs() -> None:
    with pytest.raises(ValueError, match="correct must have shape"):
        stably_fitted_epoch([1, 2], np.zeros((3, 4), dtype=bool))
    with pytest.raises(ValueError, match="correct must have shape"):
        stably_fitted_epoch([1], np.zeros(4, dtype=bool))
    with pytest.raises(ValueError, match="epochs must strictly increase"):
        stably_fitted_epoch([2, 2], np.zeros((2, 4), dtype=bool))


def test_per_example_loss_with_identity_attack_is_cross_entropy() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x, y = torch.rand(11, 4), torch.randint(0, 3, (11,))
    loss, correct = per_example_robust_loss(net, x, y, lambda m, a, b: a, batch_size=4)
    with torch.no_grad():
        logits = net(x)
    want = torch.nn.functional.cross_entropy(logits, y, reduction="none").numpy()
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    np.testing.assert_array_equal(correct, (logits.argmax(1) == y).numpy())
    with pytest.raises(ValueError, match="batch_size"):
        per_example_robust_loss(net, x, y, lambda m, a, b: a, batch_size=0)


# ---------------------------------------------------------------------- mechanism statistics
def _mask(n_true: int, n_false: int) -> np.ndarray:
    return np.array([True] * n_true + [False] * n_false)


def test_enrichment_known_table_and_woolf_ci():
    from robmem.empirics.memorization import late_fitted_enrichment

    # a = late & flipped = 30, b = late & clean = 10, c = other & flipped = 20, d = 40.
    late = _mask(40, 60)
    flipped = np.concatenate([_mask(30, 10), _mask(20, 40)])
    r = late_fitted_enrichment(late, flipped)
    assert r.table == [[30, 10], [20, 40]] and r.method == "sample"
    assert r.odds_ratio == pytest.approx(6.0)
    se = np.sqrt(1 / 30 + 1 / 10 + 1 / 20 + 1 / 40)  # Woolf, by hand
    assert r.ci_low == pytest.approx(6.0 * np.exp(-1.959964 * se), rel=1e-5)
    assert r.ci_high == pytest.approx(6.0 * np.exp(1.959964 * se), rel=1e-5)
    assert r.enriched and r.p_value < 1e-3
    assert r.frac_flipped_late == pytest.approx(0.75) and r.frac_flipped_other == pytest.approx(
        1 / 3
    )
    # Swapping which examples are late reverses the association: OR -> 1/6, not enriched.
    r2 = late_fitted_enrichment(~late, flipped)
    assert r2.odds_ratio == pytest.approx(1 / 6) and not r2.enriched and r2.p_value > 0.99
    assert set(r.to_dict()) >= {"odds_ratio", "ci_low", "ci_high", "method", "p_value"}


def test_enrichment_independent_masks_is_not_enriched():
    from robmem.empirics.memorization import late_fitted_enrichment

    # Exactly proportional table: OR = 1 and the CI straddles 1.
    late = _mask(50, 50)
    flipped = np.concatenate([_mask(10, 40), _mask(10, 40)])
    r = late_fitted_enrichment(late, flipped)
    assert r.odds_ratio == pytest.approx(1.0) and r.ci_low < 1.0 < r.ci_high and not r.enriched


def test_enrichment_zero_cell_uses_haldane_anscombe():
    from robmem.empirics.memorization import late_fitted_enrichment

    # a = 5, b = 0, c = 5, d = 5: the sample OR is infinite.
    late = _mask(5, 10)
    flipped = np.concatenate([_mask(5, 0), _mask(5, 5)])
    r = late_fitted_enrichment(late, flipped, confidence=0.9)
    assert r.method == "haldane-anscombe" and r.table == [[5, 0], [5, 5]]
    assert r.odds_ratio == pytest.approx(5.5 * 5.5 / (0.5 * 5.5))
    se = np.sqrt(3 / 5.5 + 1 / 0.5)
    assert r.ci_low == pytest.approx(11.0 * np.exp(-1.644854 * se), rel=1e-5)
    assert np.isfinite(r.ci_high)


def test_enrichment_bad_inputs():
    from robmem.empirics.memorization import late_fitted_enrichment

    with pytest.raises(ValueError, match="same length"):
        late_fitted_enrichment(_mask(2, 2), _mask(1, 2))
    with pytest.raises(ValueError, match="no late-fitted"):
        late_fitted_enrichment(_mask(0, 4), _mask(2, 2))
    with pytest.raises(ValueError, match="no flipped"):
        late_fitted_enrichment(_mask(2, 2), _mask(0, 4))
    with pytest.raises(ValueError, match="1-D"):
        late_fitted_enrichment(np.ones((2, 2), bool), _mask(2, 2))
    with pytest.raises(ValueError, match="confidence"):
        late_fitted_enrichment(_mask(2, 2), _mask(1, 3), confidence=95.0)
    # torch masks are accepted
    r = late_fitted_enrichment(torch.tensor([True, True, False, False]), torch.tensor([1, 0, 1, 0]))
    assert r.odds_ratio == pytest.approx(1.0)


def test_chance_jaccard_by_enumeration():
    import itertools

    from robmem.empirics.memorization import chance_jaccard

    n, k1, k2 = 6, 2, 3
    a = set(range(k1))
    vals = [len(a & set(b)) / len(a | set(b)) for b in itertools.combinations(range(n), k2)]
    assert chance_jaccard(n, k1, k2) == pytest.approx(np.mean(vals))
    assert chance_jaccard(4, 2, 2) == pytest.approx(7 / 18)
    assert chance_jaccard(5, 5, 5) == pytest.approx(1.0)
    assert np.isnan(chance_jaccard(5, 0, 0))
    with pytest.raises(ValueError, match="k1"):
        chance_jaccard(3, 4, 1)


def test_late_set_agreement_known_values():
    from robmem.empirics.memorization import late_set_agreement

    a = np.array([1, 1, 0, 0], bool)
    b = np.array([1, 0, 1, 0], bool)
    same = late_set_agreement([a, a, a])
    assert same.n_pairs == 3 and same.jaccard_mean == 1.0 and same.kappa_mean == pytest.approx(1.0)
    half = late_set_agreement([a, b])
    assert half.jaccard == [pytest.approx(1 / 3)] and half.kappa == [pytest.approx(0.0)]
    assert half.jaccard_chance == [pytest.approx(7 / 18)]
    opposite = late_set_agreement(np.stack([a, ~a]))
    assert opposite.jaccard_mean == 0.0 and opposite.kappa_mean == pytest.approx(-1.0)
    assert opposite.set_sizes == [2, 2]
    # Independent random sets: Jaccard near its chance level, κ near 0.
    rng = np.random.default_rng(0)
    masks = [rng.random(4000) < 0.2 for _ in range(4)]
    rand = late_set_agreement(masks)
    assert rand.jaccard_mean == pytest.approx(rand.jaccard_chance_mean, abs=0.02)
    assert abs(rand.kappa_mean) < 0.05
    with pytest.raises(ValueError, match="at least 2"):
        late_set_agreement([a])
    with pytest.raises(ValueError, match="same length"):
        late_set_agreement([a, a[:3]])
