"""A tiny exact ReLU-network representation (SPEC T1, issue 2 item 1).

A :class:`ReLUNetwork` is an ordered list of affine layers ``x -> W x + b`` with ReLU
between consecutive layers and no activation after the last one. Weights are float64
numpy arrays or :mod:`scipy.sparse` matrices (the robust-memorization construction on
10,000 MNIST points has about ``2 N d`` first-layer units and cannot be dense).
Evaluation is float64; :mod:`robmem.empirics.network_torch` converts to and from torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

Matrix = np.ndarray | sp.spmatrix | sp.sparray

#: Activations held at once by :meth:`ReLUNetwork.forward` (2**25 float64 = 256 MiB);
#: larger inputs are evaluated in row batches.
MAX_ACTIVATION_ENTRIES = 2**25


def _as_matrix(w: Any, name: str) -> Matrix:
    if sp.issparse(w):
        m = sp.csr_matrix(w, dtype=np.float64)
        data = m.data
    else:
        m = np.asarray(w, dtype=np.float64)
        if m.ndim != 2:
            raise ValueError(f"{name}: weight must be 2-D (out, in), got shape {m.shape}")
        data = m
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{name}: weights must be finite (no NaN/inf)")
    return m


class ReLUNetwork:
    """Affine layers with ReLU between them: ``f(x) = A_L(σ(A_{L-1}(… σ(A_1 x))))``.

    Parameters
    ----------
    weights : sequence of (out, in) arrays or scipy.sparse matrices
        ``weights[l]`` maps layer ``l``'s input to its output; shapes must chain.
    biases : sequence of (out,) arrays
        One bias vector per layer.

    Raises
    ------
    ValueError
        If the lists are empty, lengths differ, shapes do not chain, or entries are not finite.
    """

    def __init__(self, weights: Sequence[Any], biases: Sequence[Any]) -> None:
        if len(weights) == 0:
            raise ValueError("weights: need at least one affine layer, got 0")
        if len(weights) != len(biases):
            raise ValueError(
                f"biases: need one bias per layer, got {len(biases)} for {len(weights)} layers"
            )
        ws: list[Matrix] = []
        bs: list[np.ndarray] = []
        for index, (w, b) in enumerate(zip(weights, biases, strict=True)):
            m = _as_matrix(w, f"weights[{index}]")
            v = np.asarray(b, dtype=np.float64).reshape(-1)
            if v.shape[0] != m.shape[0]:
                raise ValueError(
                    f"biases[{index}]: length {v.shape[0]} does not match {m.shape[0]} outputs"
                )
            if not np.all(np.isfinite(v)):
                raise ValueError(f"biases[{index}]: must be finite (no NaN/inf)")
            if ws and ws[-1].shape[0] != m.shape[1]:
                raise ValueError(
                    f"weights[{index}]: expects {m.shape[1]} inputs, previous layer gives "
                    f"{ws[-1].shape[0]}"
                )
            ws.append(m)
            bs.append(v)
        self.weights: list[Matrix] = ws
        self.biases: list[np.ndarray] = bs

    # ------------------------------------------------------------------ shape facts
    @property
    def depth(self) -> int:
        """Number of affine layers (hidden layers + 1)."""
        return len(self.weights)

    @property
    def widths(self) -> list[int]:
        """``[input_dim, hidden widths…, output_dim]``."""
        return [self.input_dim] + [int(w.shape[0]) for w in self.weights]

    @property
    def input_dim(self) -> int:
        """Dimension of the input."""
        return int(self.weights[0].shape[1])

    @property
    def output_dim(self) -> int:
        """Dimension of the output."""
        return int(self.weights[-1].shape[0])

    @property
    def relu_count(self) -> int:
        """Number of ReLU units (sum of the hidden widths)."""
        return int(sum(w.shape[0] for w in self.weights[:-1]))

    def layer_nonzero_counts(self) -> list[int]:
        """Non-zero weights and biases of each affine layer (stored sparse zeros not counted)."""
        return [
            int(np.count_nonzero(w.data if sp.issparse(w) else w) + np.count_nonzero(b))
            for w, b in zip(self.weights, self.biases, strict=True)
        ]

    def nonzero_parameter_count(self) -> int:
        """Exact number of non-zero weights and biases ("size" in [C22] §1.3)."""
        return sum(self.layer_nonzero_counts())

    # ------------------------------------------------------------------ evaluation
    @staticmethod
    def _affine(w: Matrix, b: np.ndarray, h: np.ndarray) -> np.ndarray:
        if sp.issparse(w):
            out = np.asarray((w @ h.T).T)
        else:
            out = h @ w.T
        return out + b

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Evaluate the network in float64.

        Parameters
        ----------
        x : ndarray, shape (n, input_dim) or (input_dim,)

        Returns
        -------
        ndarray, shape (n, output_dim) (or (output_dim,) for a single input)
        """
        h = np.asarray(x, dtype=np.float64)
        single = h.ndim == 1
        h = np.atleast_2d(h)
        if h.shape[1] != self.input_dim:
            raise ValueError(f"x: expected {self.input_dim} features, got {h.shape[1]}")
        batch = max(1, MAX_ACTIVATION_ENTRIES // max(self.widths))
        if h.shape[0] > batch:
            out = np.vstack([self.forward(h[k : k + batch]) for k in range(0, h.shape[0], batch)])
            return out[0] if single else out
        for index, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = self._affine(w, b, h)
            if index < self.depth - 1:
                np.maximum(h, 0.0, out=h)
        return h[0] if single else h

    __call__ = forward

    # ------------------------------------------------------------------ conversions
    def dense_weights(self) -> list[np.ndarray]:
        """Weights as dense arrays (copies for sparse layers)."""
        return [w.toarray() if sp.issparse(w) else np.array(w) for w in self.weights]

    def __repr__(self) -> str:
        return (
            f"ReLUNetwork(widths={self.widths}, nonzero_parameters="
            f"{self.nonzero_parameter_count()})"
        )
