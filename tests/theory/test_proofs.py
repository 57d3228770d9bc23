"""The sympy proofs hold, and the same method rejects wrong identities (it can fail)."""

import pytest
import sympy

from robmem.theory import proofs
from robmem.theory.gadgets import sawtooth_square


def test_all_gadget_proofs_hold():
    for result in proofs.all_gadget_proofs(max_teeth=4):
        assert result.holds, (result.name, [p.region for p in result.pieces if not p.ok])
        assert len(result.pieces) >= 2


@pytest.mark.parametrize("dim", [1, 2, 3, 4, 5, 6, 7, 9, 16, 17, 31, 33, 64, 100, 784])
def test_tree_count_closed_form(dim):
    assert proofs.prove_linf_tree_count(dim).holds


def test_method_rejects_wrong_identities():
    u, v = sympy.symbols("u v", nonnegative=True)
    # max(a, b) = σ(a − b) + σ(b) is wrong for b < 0: the piece b = −v must fail
    a, b = -v + u, -v
    bad = proofs.Piece("b = −v", proofs.relu(a - b) + proofs.relu(b) - sympy.Max(a, b))
    assert not bad.ok
    # |t| = σ(t) − σ(−t) is wrong on t = −u
    assert not proofs.Piece("t=-u", proofs.relu(-u) - proofs.relu(u) - sympy.Abs(-u)).ok
    # a trapezoid whose β < α is not 1 on r ≤ β... it is 1 below min(α,β) but the claimed
    # linear piece (β − r)/(β − α) is wrong for it: check one piece fails
    alpha = sympy.Symbol("alpha", real=True)
    w = sympy.Symbol("w", positive=True)
    r = alpha - w / 2  # between β = α − w and α
    beta = alpha - w
    g = (proofs.relu(beta - r) - proofs.relu(alpha - r)) / (beta - alpha)
    assert not proofs.Piece("β < r < α", g - 1).ok


def test_sawtooth_bound_is_tight_and_exact():
    for m in (1, 2, 3):
        h = sympy.Rational(1, 2**m)
        mid = h / 2
        # the largest error (b − a)²/4 = 2^(−2m−2), attained at the piece's midpoint
        assert proofs.sawtooth_exact(mid, m) - mid**2 == sympy.Rational(1, 2 ** (2 * m + 2))
        # exact rational evaluation agrees with the float evaluator
        assert float(proofs.sawtooth_exact(sympy.Rational(3, 7), m)) == pytest.approx(
            float(sawtooth_square(3 / 7, m)), abs=1e-15
        )


def test_sawtooth_proof_detects_a_wrong_coefficient(monkeypatch):
    def wrong_tooth(t):
        return (
            2 * proofs.relu(t) - 3 * proofs.relu(t - sympy.Rational(1, 2)) + 2 * proofs.relu(t - 1)
        )

    monkeypatch.setattr(proofs, "_tooth", wrong_tooth)
    assert not proofs.prove_sawtooth_bound(2).holds
    with pytest.raises(ValueError, match="teeth"):
        proofs.prove_sawtooth_bound(0)
