"""Independent evaluation of a lowered network, in plain numpy and in exact rationals, for
the certificate tests.

Shares nothing with :mod:`theory.certify` or :meth:`theory.network.ReLUNetwork.forward`:
counterexamples and true minima in ``test_certify_negative`` and ``test_certify_mutants`` are
re-evaluated here, and the float64-rounding tests take their exact oracle from here.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np


def forward(net, pts: np.ndarray) -> np.ndarray:
    """The lowered network by hand: h ← relu(W h + b) for every layer but the last."""
    h = np.atleast_2d(np.asarray(pts, dtype=np.float64))
    for k, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        dense = w.toarray() if hasattr(w, "toarray") else np.asarray(w)
        h = h @ dense.T + np.asarray(b, dtype=np.float64)
        if k < len(net.weights) - 1:
            h = np.maximum(h, 0.0)
    return h


def margin(obj, pts: np.ndarray, label: int) -> np.ndarray:
    """Margin of a network (or of a construction, lowered first) at ``pts``. Binary (one
    output, label ±1): label·f. Multi-class: f_label − max of the others."""
    net = obj.network() if hasattr(obj, "network") else obj
    out = forward(net, pts)
    if out.shape[1] == 1:
        return float(label) * out[:, 0]
    others = np.delete(out, int(label), axis=1)
    return out[:, int(label)] - others.max(axis=1)


def exact_forward(net, point: np.ndarray) -> list[Fraction]:
    """The network in exact rational arithmetic at one float64 input (every float64 is a
    rational, so this is the exact-arithmetic network on float64 weights, with no error)."""
    h = [Fraction(float(v)) for v in point]
    for k, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        dense = w.toarray() if hasattr(w, "toarray") else np.asarray(w)
        out = []
        for j in range(dense.shape[0]):
            s = Fraction(float(b[j]))
            for i in np.flatnonzero(dense[j]):
                s += Fraction(float(dense[j, i])) * h[i]
            out.append(s if k == len(net.weights) - 1 or s > 0 else Fraction(0))
        h = out
    return h
