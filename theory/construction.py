"""The robust-memorization ReLU construction f̂ (SPEC T1; [P1] Thm 3.3 / Cor 3.4; [C22] Thm 2.2).

f̂(x) = Σ_i y_i·h_i(x) + σ(f_clean − M g) − σ(−f_clean − M g),  g = Σ_i h_i,

with h_i = [σ(β_i − r_i) − σ(α_i − r_i)]/(β_i − α_i) a trapezoid bump of a distance r_i.

* ℓ∞ (exact, notes §3.4): r_i = ‖x − x_i‖_∞ by a max-tree, α = δ, β = λ − δ where λ is
  the opposite-label ℓ∞ separation; needs δ < λ/2.
* ℓ2 (a) inclusion: B₂(x_i, δ) ⊂ B∞(x_i, δ), so the ℓ∞ construction at radius δ works
  whenever δ < λ∞/2; the sufficient condition of notes §3.4, δ < λ₂/(2√d), implies it
  because λ∞ ≥ λ₂/√d.
* ℓ2 (b) sawtooth: r_i is replaced by s_i = Σ_k f_m(|x_k − x_ik|) with Yarotsky's f_m,
  r² ≤ s ≤ r² + d·2^(−2m−2) on [0,1]^d; α = δ² + d·2^(−2m−2), β = (λ₂ − δ)² (margins
  widened by the approximation error). Needs α < β and data in [0, 1]^d.

Multi-class: one output per class, F_c = Σ_{y_i = c} h_i + gate(f_clean,c). The construction
is kept as typed blocks (:class:`DistanceBlock`, :class:`BumpBlock`, :class:`OutputBlock`,
:class:`GateBlock`) whose parameters the structural certifier reads, and lowered to a
sparse :class:`~robmem.theory.network.ReLUNetwork` for evaluation and torch.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from robmem.theory import gadgets
from robmem.theory.gadgets import sawtooth_square, trapezoid
from robmem.theory.intervals import interval_bounds, small_margin_mask
from robmem.theory.network import ReLUNetwork
from robmem.theory.separation import (
    Separation,
    check_norm,
    check_points_labels,
    opposite_label_separation,
)

logger = logging.getLogger(__name__)

#: Distance kinds of a :class:`DistanceBlock`.
DISTANCE_KINDS: tuple[str, ...] = ("linf", "l2-sawtooth")
#: Ways to realise ℓ2 balls (notes §3.4 (a) and (b)).
L2_METHODS: tuple[str, ...] = ("inclusion", "sawtooth")
#: Subsets of points to memorize ([P1] memorizes the small-margin set; later versions all N).
SUBSETS: tuple[str, ...] = ("all", "small-margin")
#: Smallest gate scale M: any M ≥ sup|f_clean| works; the floor keeps the gate weights
#: non-zero (so the parameter count is data-independent) when f_clean ≡ 0.
GATE_SCALE_FLOOR = 1.0
#: Fraction of the squared-distance gap (λ₂ − δ)² − δ² that the sawtooth error may use
#: when the number of teeth is chosen automatically.
SAWTOOTH_GAP_FRACTION = 0.5
#: With a single class there is no opposite-label point and any β > α is valid; the
#: construction then uses β = SINGLE_CLASS_BETA_FACTOR·δ (ℓ∞) or its square (sawtooth).
SINGLE_CLASS_BETA_FACTOR = 2.0
#: Smallest bump ramp β − α, relative to max(1, β), that the construction accepts. The bump
#: units compute β − r and α − r with r ≤ max(1, β) (a distance in the domain); rounding
#: r and these differences moves them by a few ulps of max(1, β), and the output scales by
#: 1/(β − α), so a bump's height moves by a few 2^-53·max(1, β)/(β − α) (measured ~1.5e-8 at
#: this floor; the sawtooth's s sums d·m rounded terms, d·m times more). At a ramp of a few
#: ulps (δ = λ/2 − ulp) the lowered network really misclassifies ball points (the
#: certifier refutes it). The floor is a usefulness limit, not what makes certificates
#: sound: the certifier bounds the float64 rounding rigorously at any ramp
#: (robmem.theory.intervals.forward_error_bound; ~1e-6 of a bump at this floor).
FLOAT_RAMP_FLOOR = 2.0**-30
#: Default input domain (pixels in [0, 1], SPEC Notation).
UNIT_DOMAIN: tuple[float, float] = (0.0, 1.0)


@dataclass(frozen=True)
class DistanceBlock:
    """r_i(x) = ‖x − c_i‖_∞ (``kind="linf"``) or s_i(x) = Σ_k f_m(|x_k − c_ik|) (sawtooth)."""

    kind: str
    centres: np.ndarray
    teeth: int = 0


@dataclass(frozen=True)
class BumpBlock:
    """Per-centre trapezoid h_i = [σ(β_i − r_i) − σ(α_i − r_i)]/(β_i − α_i)."""

    alpha: np.ndarray
    beta: np.ndarray


@dataclass(frozen=True)
class OutputBlock:
    """Labels of the centres: class indices; ``binary`` means one output with signs ±1.

    For binary outputs class 1 ↔ y = +1 and class 0 ↔ y = −1.
    """

    labels: np.ndarray
    n_classes: int
    binary: bool

    @property
    def n_outputs(self) -> int:
        return 1 if self.binary else self.n_classes

    @property
    def signs(self) -> np.ndarray:
        return np.where(self.labels == 1, 1.0, -1.0)


@dataclass(frozen=True)
class GateBlock:
    """Gate σ(f − M g) − σ(−f − M g) around the clean classifier, with scale M ≥ sup|f|."""

    clean: ReLUNetwork
    scale: float


@dataclass(frozen=True)
class RobustMemorizer:
    """Typed blocks of f̂ plus the data facts used to build it.

    Attributes
    ----------
    distance, bump, output, gate : the blocks (gate is None without f_clean)
    delta : float
        Robust radius δ the construction targets.
    norm : {"inf", "2"}
    separation : Separation
        Opposite-label separation of all N input points (in the norm that set β).
    memorized : (N_mem,) int array
        Indices (into the input points) of the centres.
    domain : (lo, hi) or None
        Box the inputs live in (certification uses balls ∩ domain).
    """

    distance: DistanceBlock
    bump: BumpBlock
    output: OutputBlock
    gate: GateBlock | None
    delta: float
    norm: str
    separation: Separation
    memorized: np.ndarray
    domain: tuple[float, float] | None = UNIT_DOMAIN
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_centres(self) -> int:
        return int(self.distance.centres.shape[0])

    @property
    def dim(self) -> int:
        return int(self.distance.centres.shape[1])

    def replace(self, **changes: object) -> RobustMemorizer:
        """Copy with some blocks replaced (no validation: used to build broken nets)."""
        return dataclasses.replace(self, _cache={}, **changes)

    # ------------------------------------------------------------ block-level evaluation
    def distances(self, x: np.ndarray) -> np.ndarray:
        """r_i(x) (ℓ∞) or s_i(x) (sawtooth), shape (n, N), by the block definition."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        c = self.distance.centres
        out = np.empty((x.shape[0], c.shape[0]))
        for lo in range(0, c.shape[0], 256):
            diff = np.abs(x[:, None, :] - c[None, lo : lo + 256, :])
            if self.distance.kind == "linf":
                out[:, lo : lo + 256] = diff.max(axis=2)
            else:
                out[:, lo : lo + 256] = sawtooth_square(diff, self.distance.teeth).sum(axis=2)
        return out

    def bumps(self, x: np.ndarray) -> np.ndarray:
        """h_i(x), shape (n, N)."""
        return trapezoid(self.distances(x), self.bump.alpha, self.bump.beta)

    def forward_blocks(self, x: np.ndarray) -> np.ndarray:
        """f̂(x) evaluated from the block definitions (independent of the lowering)."""
        h = self.bumps(x)
        out = self.output
        if out.binary:
            sums = h @ out.signs[:, None]
        else:
            onehot = np.zeros((out.labels.size, out.n_classes))
            onehot[np.arange(out.labels.size), out.labels] = 1.0
            sums = h @ onehot
        if self.gate is None:
            return sums
        f = self.gate.clean.forward(np.atleast_2d(x))
        g = h.sum(axis=1, keepdims=True)
        m = self.gate.scale
        return sums + np.maximum(f - m * g, 0.0) - np.maximum(-f - m * g, 0.0)

    # ------------------------------------------------------------ lowering
    def network(self) -> ReLUNetwork:
        """The lowered sparse ReLU network (cached)."""
        if "net" not in self._cache:
            self._cache["net"] = lower(self)
        return self._cache["net"]

    def bump_layer_index(self) -> int:
        """1-based index of the hidden layer holding the bump units σ(β − r), σ(α − r)."""
        if self.distance.kind == "linf":
            return gadgets.linf_tree_depth(self.dim) + 2
        return self.distance.teeth + 2


def _distance_layers(
    block: DistanceBlock,
) -> tuple[list[sp.csr_matrix], list[np.ndarray], sp.csr_matrix]:
    """Hidden layers computing the distances and the (N × units) readout matrix."""
    c = block.centres
    n, d = c.shape
    eye_n = sp.identity(n, format="csr")
    w1 = sp.kron(sp.csr_matrix(np.ones((n, 1))), gadgets.abs_difference_layer(d), format="csr")
    ws: list[sp.csr_matrix] = [w1]
    bs: list[np.ndarray] = [gadgets.abs_difference_bias(c)]
    if block.kind == "linf":
        layers, readout = gadgets.linf_tree_templates(d)
        for t in layers:
            ws.append(sp.kron(eye_n, t, format="csr"))
            bs.append(np.zeros(n * t.shape[0]))
        return ws, bs, sp.kron(eye_n, readout, format="csr")
    layers, readout = gadgets.sawtooth_templates(block.teeth)
    eye_d = sp.identity(d, format="csr")
    for w, b in layers:
        ws.append(sp.kron(eye_n, sp.kron(eye_d, sp.csr_matrix(w)), format="csr"))
        bs.append(np.tile(b, n * d))
    per_point = sp.kron(sp.csr_matrix(np.ones((1, d))), sp.csr_matrix(readout[None, :]))
    return ws, bs, sp.kron(eye_n, per_point, format="csr")


def lower(model: RobustMemorizer) -> ReLUNetwork:
    """Lower the blocks to one sparse ReLU network computing f̂ exactly (up to float64).

    Layout: distance layers; bump layer (unit 2i = σ(β_i − r_i), 2i+1 = σ(α_i − r_i));
    without f_clean the output is Σ_i y_i h_i. With f_clean, the clean network runs in
    parallel (padded with σ(f), σ(−f) pass-throughs, or the bump units padded by σ(u) = u,
    whichever is shallower), then a gate layer holding the class sums Σ_{y_i=c} h_i and the
    units σ(±f_c − M g), and the output adds them.
    """
    n = model.n_centres
    if n == 0:
        # nothing memorized (e.g. an empty small-margin set): g ≡ 0 and the gate is the
        # identity σ(f) − σ(−f) = f, so f̂ is f_clean itself
        if model.gate is None:
            raise ValueError("model: no centres and no clean classifier: nothing to lower")
        clean = model.gate.clean
        return ReLUNetwork(list(clean.weights), list(clean.biases))
    dist_ws, dist_bs, readout = _distance_layers(model.distance)
    alpha, beta = model.bump.alpha, model.bump.beta
    pair = sp.csr_matrix((np.ones(2 * n), (np.arange(2 * n), np.repeat(np.arange(n), 2))))
    w_bump = -(pair @ readout).tocsr()
    b_bump = np.empty(2 * n)
    b_bump[0::2] = beta
    b_bump[1::2] = alpha
    inv = 1.0 / (beta - alpha)
    # h = H @ u (N × 2N)
    h_mat = sp.csr_matrix(
        (np.column_stack([inv, -inv]).reshape(-1), (np.repeat(np.arange(n), 2), np.arange(2 * n))),
        shape=(n, 2 * n),
    )
    out = model.output
    if out.binary:
        label_rows = sp.csr_matrix(out.signs[None, :])
    else:
        label_rows = sp.csr_matrix(
            (np.ones(n), (out.labels, np.arange(n))), shape=(out.n_classes, n)
        )
    hidden_w = dist_ws + [w_bump]
    hidden_b = dist_bs + [b_bump]
    if model.gate is None:
        return ReLUNetwork(
            hidden_w + [(label_rows @ h_mat).tocsr()], hidden_b + [np.zeros(out.n_outputs)]
        )

    clean = model.gate.clean
    n_out = out.n_outputs
    if clean.output_dim != n_out:
        raise ValueError(f"clean: output_dim must be {n_out}, got {clean.output_dim}")
    if clean.input_dim != model.dim:
        raise ValueError(f"clean: input_dim must be {model.dim}, got {clean.input_dim}")
    h_bump = model.bump_layer_index()
    clean_hidden = clean.depth - 1
    k_pad = max(0, h_bump + 1 - clean.depth)
    e_pad = max(0, clean_hidden - h_bump)
    for _ in range(e_pad):
        hidden_w.append(sp.identity(2 * n, format="csr"))
        hidden_b.append(np.zeros(2 * n))
    c_ws = [sp.csr_matrix(w) for w in clean.weights[:-1]]
    c_bs = list(clean.biases[:-1])
    w_last = sp.csr_matrix(clean.weights[-1])
    b_last = clean.biases[-1]
    if k_pad >= 1:
        c_ws.append(sp.vstack([w_last, -w_last], format="csr"))
        c_bs.append(np.concatenate([b_last, -b_last]))
        for _ in range(k_pad - 1):
            c_ws.append(sp.identity(2 * n_out, format="csr"))
            c_bs.append(np.zeros(2 * n_out))
        eye = sp.identity(n_out, format="csr")
        f_w = sp.hstack([eye, -eye], format="csr")
        f_b = np.zeros(n_out)
    else:
        f_w, f_b = w_last, b_last
    assert len(c_ws) == len(hidden_w)
    ws: list[sp.csr_matrix] = [sp.vstack([hidden_w[0], c_ws[0]], format="csr")]
    bs: list[np.ndarray] = [np.concatenate([hidden_b[0], c_bs[0]])]
    for a, b, ca, cb in zip(hidden_w[1:], hidden_b[1:], c_ws[1:], c_bs[1:], strict=True):
        ws.append(sp.block_diag([a, ca], format="csr"))
        bs.append(np.concatenate([b, cb]))
    # gate layer: [class sums (n_s), σ(f − M g) (n_out), σ(−f − M g) (n_out)]
    if out.binary:
        sums = sp.csr_matrix(
            (np.ones(n), (np.where(out.labels == 1, 0, 1), np.arange(n))), shape=(2, n)
        )
    else:
        sums = label_rows
    n_sums = sums.shape[0]
    g_row = model.gate.scale * sp.csr_matrix(np.ones((1, n))) @ h_mat
    g_rows = sp.vstack([g_row] * n_out, format="csr")
    n_clean_units = f_w.shape[1]
    gate_w = sp.vstack(
        [
            sp.hstack([sums @ h_mat, sp.csr_matrix((n_sums, n_clean_units))]),
            sp.hstack([-g_rows, f_w]),
            sp.hstack([-g_rows, -f_w]),
        ],
        format="csr",
    )
    gate_b = np.concatenate([np.zeros(n_sums), f_b, -f_b])
    ws.append(gate_w)
    bs.append(gate_b)
    eye = sp.identity(n_out, format="csr")
    if out.binary:
        sum_out = sp.csr_matrix(np.array([[1.0, -1.0]]))
    else:
        sum_out = eye
    ws.append(sp.hstack([sum_out, eye, -eye], format="csr"))
    bs.append(np.zeros(n_out))
    return ReLUNetwork(ws, bs)


# ---------------------------------------------------------------- building from data


def _encode_labels(
    y: np.ndarray, n_classes: int | None, clean: ReLUNetwork | None
) -> tuple[np.ndarray, int, bool]:
    values = set(np.unique(y).tolist())
    if values <= {-1, 1} and n_classes is None and (clean is None or clean.output_dim == 1):
        return (y == 1).astype(np.int64), 2, True
    if min(values) < 0:
        raise ValueError(
            f"labels: must be ±1 (binary) or class indices >= 0, got values {sorted(values)[:5]}"
        )
    c = int(max(values)) + 1 if n_classes is None else int(n_classes)
    if max(values) >= c:
        raise ValueError(f"labels: class index {max(values)} >= n_classes = {c}")
    if c < 2:
        raise ValueError(f"n_classes: must be >= 2, got {c}")
    return y.astype(np.int64), c, False


def gate_scale_for(
    clean: ReLUNetwork, domain: tuple[float, float] | None, centres: np.ndarray, delta: float
) -> float:
    """M ≥ sup |f_clean| over the domain box (or the balls' bounding box), by float64 IBP.

    Plain float64 IBP (a few ulps may be missing; the certifier does not assume M ≥ sup|f|:
    it bounds the gate's slack on each ball rigorously), so that exact scales stay exact.
    """
    if domain is not None:
        lo = np.full(clean.input_dim, float(domain[0]))
        hi = np.full(clean.input_dim, float(domain[1]))
    else:
        lo = centres.min(axis=0) - delta
        hi = centres.max(axis=0) + delta
    f_lo, f_hi = interval_bounds(clean, lo[None, :], hi[None, :], rounding=False)
    bound = float(max(np.abs(f_lo).max(), np.abs(f_hi).max()))
    return max(bound, GATE_SCALE_FLOOR)


def build_construction(
    points: np.ndarray,
    labels: np.ndarray,
    delta: float,
    norm: str = "inf",
    *,
    clean: ReLUNetwork | None = None,
    subset: str = "all",
    n_classes: int | None = None,
    l2_method: str = "inclusion",
    teeth: int | None = None,
    domain: tuple[float, float] | None = UNIT_DOMAIN,
    separation: Separation | None = None,
) -> RobustMemorizer:
    """Build f̂ memorizing the points robustly at radius δ (SPEC T1).

    Statement (notes §3.4; [P1] Thm 3.3; [C22] Thm 2.2): if the classes are λ-separated
    (λ = min_{y_i≠y_j} ‖x_i − x_j‖) and 0 < δ < λ/2, then (a) the prediction of f̂ equals
    y_i on B(x_i, δ) (binary: y_i f̂ ≥ 1; multi-class: f̂_{y_i} ≥ 1 and f̂_c ≤ 0 without
    f_clean) and (b) f̂ = f_clean outside ∪_i B(x_i, β). Checked by :mod:`robmem.theory.certify`.

    Parameters
    ----------
    points : (N, d) array, N ≥ 1, finite (in ``domain`` when one is given)
    labels : (N,) ints: ±1 for one binary output, or class indices 0..C−1
    delta : float, 0 < δ < λ/2 (λ∞/2 for ℓ∞ and ℓ2-inclusion; sawtooth: α < β)
    norm : {"inf", "2"}
    clean : ReLUNetwork, optional
        f_clean (output_dim 1 for binary, C otherwise). Without it f̂ = Σ y_i h_i.
    subset : {"all", "small-margin"}
        "small-margin" memorizes only points f_clean does not classify robustly at δ
        ([P1] §3, S_small; requires ``clean``).
    n_classes : int, optional
        Number of classes C (one output each). Leave None for ±1 labels (one output).
    l2_method : {"inclusion", "sawtooth"}
    teeth : int, optional
        Sawtooth teeth m (default: smallest m using half the squared-distance gap).
    domain : (lo, hi) or None
    separation : Separation, optional
        Precomputed separation of (points, labels) in the norm that sets β (skips the
        O(N² d) pass). It must be the ℓ∞ one for ``norm="inf"`` and ℓ2-inclusion.

    Raises
    ------
    ValueError
        Non-separated data (naming the closest opposite-label pair and its distance),
        δ outside (0, λ/2), NaN/inf, count mismatch, unknown norm/subset/method, N = 0.
    """
    x, y = check_points_labels(points, labels)
    key = check_norm(norm)
    if subset not in SUBSETS:
        raise ValueError(f"subset: must be one of {SUBSETS}, got {subset!r}")
    if l2_method not in L2_METHODS:
        raise ValueError(f"l2_method: must be one of {L2_METHODS}, got {l2_method!r}")
    if not (np.isfinite(delta) and delta > 0):
        raise ValueError(f"delta: must be a finite number > 0, got {delta}")
    if domain is not None:
        lo, hi = float(domain[0]), float(domain[1])
        if not lo < hi:
            raise ValueError(f"domain: need lo < hi, got {domain}")
        if x.min() < lo or x.max() > hi:
            raise ValueError(
                f"points: must lie in the domain [{lo}, {hi}], found values in "
                f"[{x.min():.4g}, {x.max():.4g}]"
            )
    sawtooth = key == "2" and l2_method == "sawtooth"
    if sawtooth and domain is None:
        raise ValueError("domain: the sawtooth ℓ2 construction needs a bounded domain [0, 1]")
    if sawtooth and (domain[0] < 0 or domain[1] > 1):
        raise ValueError(
            f"domain: the sawtooth ℓ2 construction needs domain ⊂ [0, 1], got {domain}"
        )
    y_enc, n_cls, binary = _encode_labels(y, n_classes, clean)
    sep_norm = "2" if sawtooth else "inf"
    if separation is None:
        separation = opposite_label_separation(x, y_enc, sep_norm)
    elif separation.norm != sep_norm:
        raise ValueError(f"separation: must be the ℓ{sep_norm} separation, got ℓ{separation.norm}")
    lam = separation.distance
    if not np.isfinite(lam):
        lam = (SINGLE_CLASS_BETA_FACTOR + 1.0) * delta  # so β = λ − δ = factor·δ > α
    if lam <= 0:
        raise ValueError(
            f"points: not separated: points {separation.i} and {separation.j} have different "
            f"labels but ℓ{sep_norm} distance {lam:.6g}"
        )
    if not sawtooth and not delta < lam / 2:
        extra = ""
        if key == "2":
            extra = " (ℓ2 via inclusion uses the ℓ∞ separation; try l2_method='sawtooth')"
        raise ValueError(
            f"delta: must be < λ/2 = {lam / 2:.6g}, got {delta}; the closest opposite-label "
            f"pair is ({separation.i}, {separation.j}) at ℓ{sep_norm} distance {lam:.6g}{extra}"
        )
    if sawtooth and not delta < lam / 2:
        raise ValueError(
            f"delta: must be < λ₂/2 = {lam / 2:.6g}, got {delta}; the closest opposite-label "
            f"pair is ({separation.i}, {separation.j}) at ℓ2 distance {lam:.6g}"
        )
    scale = None
    if clean is not None:
        expected = 1 if binary else n_cls
        if clean.output_dim != expected:
            raise ValueError(f"clean: output_dim must be {expected}, got {clean.output_dim}")
        if clean.input_dim != x.shape[1]:
            raise ValueError(f"clean: input_dim must be {x.shape[1]}, got {clean.input_dim}")
        scale = gate_scale_for(clean, domain, x, delta)
    if subset == "small-margin":
        if clean is None:
            raise ValueError("clean: subset='small-margin' needs a clean classifier")
        mask = small_margin_mask(clean, x, y_enc, delta, key, binary, domain, scale)
        chosen = np.flatnonzero(mask)
    else:
        chosen = np.arange(x.shape[0])
    centres = x[chosen]
    n_mem = centres.shape[0]
    if sawtooth:
        gap = (lam - delta) ** 2 - delta**2
        m = (
            gadgets.sawtooth_teeth_for_gap(x.shape[1], SAWTOOTH_GAP_FRACTION * gap)
            if teeth is None
            else int(teeth)
        )
        if m < 1:
            raise ValueError(f"teeth: must be >= 1, got {m}")
        a = delta**2 + x.shape[1] * gadgets.sawtooth_error_bound(m)
        b = (lam - delta) ** 2
        if not a < b:
            raise ValueError(
                f"teeth: m = {m} gives α = δ² + d·2^(−2m−2) = {a:.6g} >= β = (λ₂−δ)² = {b:.6g}; "
                "use more teeth"
            )
        dist = DistanceBlock("l2-sawtooth", centres, m)
    else:
        a, b = delta, lam - delta
        dist = DistanceBlock("linf", centres)
    if not b - a >= FLOAT_RAMP_FLOOR * max(1.0, abs(b)):
        raise ValueError(
            f"delta: the bump ramp β − α = {b - a:.3g} (λ = {lam:.17g}, δ = {delta:.17g}) is "
            f"below float64's resolution {FLOAT_RAMP_FLOOR:.3g}·max(1, β): δ is too close to "
            "λ/2 (or too small) for the lowered network to realise the bumps"
        )
    bump = BumpBlock(np.full(n_mem, float(a)), np.full(n_mem, float(b)))
    output = OutputBlock(y_enc[chosen], n_cls, binary)
    gate = None if clean is None else GateBlock(clean, scale)
    logger.info("construction: %d centres, d=%d, λ=%.4g, δ=%.4g", n_mem, x.shape[1], lam, delta)
    return RobustMemorizer(dist, bump, output, gate, float(delta), key, separation, chosen, domain)
