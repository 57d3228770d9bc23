"""Symbolic, piece-by-piece proofs of the gadget identities (SPEC T1; notes §3.4).

Method: every gadget is piecewise linear. Its domain is split into pieces, and on each
piece the variables are *parametrised by non-negative symbols* (e.g. the piece r ≤ α is
r = α − u with u ≥ 0). sympy's assumption system then resolves every ``Max(0, ·)`` on
that piece exactly, and the identity is proved by simplifying lhs − rhs to 0. Nothing is
sampled. The pieces of each proof cover the whole domain (stated per proof).

The sawtooth bound (Yarotsky 2017, Prop. 2) is proved by exact rational arithmetic on
each dyadic piece [k/2^m, (k+1)/2^m]: every ReLU argument is affine on the piece (by
induction) and keeps its sign there (checked at the two endpoints), so f_m is the chord of
t² on the piece, and chord − t² = (t − a)(b − t) ∈ [0, (b − a)²/4] = [0, 2^(−2m−2)].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from robmem.theory import counting


def relu(e: sympy.Expr) -> sympy.Expr:
    """σ(e) = max(0, e) as a sympy expression."""
    return sympy.Max(0, e)


@dataclass
class Piece:
    """One piece of a proof: the parametrisation and the simplified lhs − rhs."""

    region: str
    difference: sympy.Expr

    @property
    def ok(self) -> bool:
        return sympy.simplify(self.difference) == 0


@dataclass
class ProofResult:
    """Outcome of a piecewise proof: ``holds`` iff every piece's difference is exactly 0."""

    name: str
    statement: str
    pieces: list[Piece] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return bool(self.pieces) and all(p.ok for p in self.pieces)


def _nn(*names: str) -> list[sympy.Symbol]:
    return [sympy.Symbol(n, nonnegative=True) for n in names]


def prove_abs_gadget() -> ProofResult:
    """|t| = σ(t) + σ(−t) for all real t. Pieces: t = u ≥ 0 and t = −u ≤ 0."""
    (u,) = _nn("u")
    res = ProofResult("abs", "|t| = σ(t) + σ(−t), t ∈ R")
    for region, t in (("t = u ≥ 0", u), ("t = −u ≤ 0", -u)):
        res.pieces.append(Piece(region, relu(t) + relu(-t) - sympy.Abs(t)))
    return res


def prove_max_gadget() -> ProofResult:
    """max(a, b) = σ(a − b) + σ(b) − σ(−b) for all real a, b.

    Pieces: b = ±v and a = b ± u (u, v ≥ 0) cover R².
    """
    u, v = _nn("u", "v")
    res = ProofResult("max", "max(a, b) = σ(a − b) + σ(b) − σ(−b), (a, b) ∈ R²")
    for b_sign in (1, -1):
        for a_sign in (1, -1):
            b = b_sign * v
            a = b + a_sign * u
            expr = relu(a - b) + relu(b) - relu(-b) - sympy.Max(a, b)
            res.pieces.append(Piece(f"b = {b_sign:+d}v, a = b {a_sign:+d}u", expr))
    return res


def prove_nonnegative_max_gadget() -> ProofResult:
    """max(a, b) = σ(a − b) + σ(b) for b ≥ 0 (the max-tree's gadget, notes §3.4).

    Pieces: b = v ≥ 0 with a = b + u or a = b − u. By induction over the tree levels
    (all values are ≥ 0 since they start as |x_k − c_k|), the tree returns ‖x − c‖_∞.
    """
    u, v = _nn("u", "v")
    res = ProofResult("max_nonneg", "max(a, b) = σ(a − b) + σ(b), b ≥ 0")
    for a_sign in (1, -1):
        a = v + a_sign * u
        res.pieces.append(
            Piece(f"b = v ≥ 0, a = b {a_sign:+d}u", relu(a - v) + relu(v) - sympy.Max(a, v))
        )
    return res


def prove_trapezoid() -> ProofResult:
    """g(r) = [σ(β − r) − σ(α − r)]/(β − α) with α < β equals 1 on r ≤ α, 0 on r ≥ β, and
    (β − r)/(β − α) on α ≤ r ≤ β (notes §3.4).

    Pieces (α real, w = β − α > 0, u, v ≥ 0): r = α − u; r = α + v with β = α + v + u;
    r = β + u. They cover R.
    """
    alpha = sympy.Symbol("alpha", real=True)
    w = sympy.Symbol("w", positive=True)
    u, v = _nn("u", "v")
    res = ProofResult("trapezoid", "g = 1 (r ≤ α), linear (α ≤ r ≤ β), 0 (r ≥ β)")

    def g(r: sympy.Expr, beta: sympy.Expr) -> sympy.Expr:
        return (relu(beta - r) - relu(alpha - r)) / (beta - alpha)

    res.pieces.append(Piece("r = α − u ≤ α", g(alpha - u, alpha + w) - 1))
    beta_mid = alpha + v + u
    res.pieces.append(
        Piece(
            "α ≤ r = α + v ≤ β = α + v + u",
            g(alpha + v, beta_mid) - (beta_mid - (alpha + v)) / (beta_mid - alpha),
        )
    )
    res.pieces.append(Piece("r = β + u ≥ β", g(alpha + w + u, alpha + w)))
    return res


def prove_gate() -> ProofResult:
    """Gate G(f, g) = σ(f − M g) − σ(−f − M g), M > 0 (SPEC T1):

    (i) G(f, 0) = f for all f (pieces f = ±u); (ii) G(f, g) = 0 when M g ≥ |f|
    (pieces f = ±p, M g = p + u); (iii) G(f, g) = sign(f)·(|f| − M g) when 0 ≤ M g ≤ |f|
    (pieces f = ±(q + u), M g = q), so G never flips the sign of f.
    """
    m = sympy.Symbol("M", positive=True)
    u, p, q = _nn("u", "p", "q")
    res = ProofResult("gate", "G(f,0) = f; G = 0 if Mg ≥ |f|; G = sign(f)(|f| − Mg) otherwise")

    def gate(f: sympy.Expr, mg: sympy.Expr) -> sympy.Expr:
        return relu(f - mg) - relu(-f - mg)

    for s in (1, -1):
        res.pieces.append(Piece(f"g = 0, f = {s:+d}u", gate(s * u, 0) - s * u))
        res.pieces.append(Piece(f"f = {s:+d}p, Mg = p + u", gate(s * p, p + u)))
        res.pieces.append(Piece(f"f = {s:+d}(q + u), Mg = q", gate(s * (q + u), q) - s * u))
    # (i) with g written through M: M·0 = 0 (keeps M in the statement)
    res.pieces.append(Piece("g = 0 symbolic M", gate(u, m * 0) - u))
    return res


def _tooth(t: sympy.Expr) -> sympy.Expr:
    return 2 * relu(t) - 4 * relu(t - sympy.Rational(1, 2)) + 2 * relu(t - 1)


def sawtooth_exact(t: sympy.Rational, teeth: int) -> sympy.Rational:
    """f_m(t) = t − Σ_s g_s(t)/4^s evaluated in exact rational arithmetic."""
    g = sympy.Rational(t)
    f = sympy.Rational(t)
    for s in range(1, teeth + 1):
        g = _tooth(g)
        f = f - g / 4**s
    return f


def prove_sawtooth_bound(teeth: int) -> ProofResult:
    """0 ≤ f_m(t) − t² ≤ 2^(−2m−2) on [0, 1], with equality to t² at t = k/2^m
    (Yarotsky 2017, Prop. 2).

    Pieces: the 2^m dyadic intervals [a, b] = [k/2^m, (k+1)/2^m]. On each, every ReLU
    argument of the composition is affine (induction) with the same sign at a and b,
    so f_m is affine there; f_m(a) = a², f_m(b) = b² exactly; hence f_m − t² =
    (t − a)(b − t), whose maximum (b − a)²/4 = 2^(−2m−2) is attained at the midpoint.
    Each piece records ``(f_m − t²) − (t − a)(b − t)`` (must be 0) and the two facts
    are folded in: a piece where a sign changes or an endpoint is off records a
    non-zero difference.
    """
    if teeth < 1:
        raise ValueError(f"teeth: must be >= 1, got {teeth}")
    t = sympy.Symbol("t", real=True)
    res = ProofResult(
        f"sawtooth_m{teeth}",
        f"0 ≤ f_{teeth}(t) − t² ≤ 2^(−{2 * teeth + 2}) on [0,1], f = t² on the 2^-{teeth} grid",
    )
    h = sympy.Rational(1, 2**teeth)
    for k in range(2**teeth):
        a, b = k * h, (k + 1) * h
        # exact affine pieces of g_s on [a, b], propagated symbolically
        g_piece = t  # g_0 = t (affine)
        f_piece = t
        sign_ok = True
        for s in range(1, teeth + 1):
            new = sympy.Integer(0)
            for coef, brk in ((2, 0), (-4, sympy.Rational(1, 2)), (2, 1)):
                arg = sympy.expand(g_piece - brk)
                va, vb = arg.subs(t, a), arg.subs(t, b)
                if va >= 0 and vb >= 0:
                    new += coef * arg
                elif va <= 0 and vb <= 0:
                    pass
                else:
                    sign_ok = False
            g_piece = sympy.expand(new)
            f_piece = sympy.expand(f_piece - g_piece / 4**s)
        # the affine piece must agree with the actual composition at both endpoints
        endpoint_gap = (sawtooth_exact(a, teeth) - f_piece.subs(t, a)) ** 2 + (
            sawtooth_exact(b, teeth) - f_piece.subs(t, b)
        ) ** 2
        chord_gap = sympy.expand(f_piece - t**2 - (t - a) * (b - t))
        diff = chord_gap + endpoint_gap + (0 if sign_ok else 1)
        res.pieces.append(Piece(f"t ∈ [{a}, {b}]", diff))
    return res


def prove_linf_tree_count(dim: int) -> ProofResult:
    """Tree(d) closed form (sympy Sum in :mod:`robmem.theory.counting`) equals the template's
    non-zero count, for one given d."""
    from robmem.theory.gadgets import linf_tree_templates

    layers, readout = linf_tree_templates(dim)
    counted = sum(int(m.nnz) for m in layers)
    d = sympy.Symbol("d", integer=True, nonnegative=True)
    closed = counting.linf_tree_weight_expr().subs(d, dim).doit()
    res = ProofResult(f"tree_count_d{dim}", "Tree(d) closed form = counted non-zeros")
    res.pieces.append(Piece(f"d = {dim}", sympy.Integer(counted) - sympy.simplify(closed)))
    return res


def all_gadget_proofs(max_teeth: int = 3) -> list[ProofResult]:
    """Every gadget proof of SPEC T1 (sawtooth for m = 1..max_teeth)."""
    proofs = [
        prove_abs_gadget(),
        prove_max_gadget(),
        prove_nonnegative_max_gadget(),
        prove_trapezoid(),
        prove_gate(),
    ]
    proofs += [prove_sawtooth_bound(m) for m in range(1, max_teeth + 1)]
    return proofs
