"""ReLUNetwork: evaluation against torch (independent oracle), conversions, counts, errors."""

import numpy as np
import pytest
import scipy.sparse as sp

from robmem.theory.network import ReLUNetwork


def _random_net(rng, widths, sparse=False):
    ws, bs = [], []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        w = rng.normal(size=(b, a)) * (rng.random((b, a)) < 0.6)
        ws.append(sp.csr_matrix(w) if sparse else w)
        bs.append(rng.normal(size=b) * (rng.random(b) < 0.7))
    return ReLUNetwork(ws, bs)


@pytest.mark.parametrize("sparse", [False, True])
def test_forward_matches_torch(sparse):
    torch = pytest.importorskip("torch")
    from robmem.empirics.network_torch import to_torch

    rng = np.random.default_rng(0)
    net = _random_net(rng, [5, 7, 6, 3], sparse)
    x = rng.normal(size=(20, 5))
    ours = net.forward(x)
    with torch.no_grad():
        theirs = to_torch(net)(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    # the torch module is ReLU-between-Linear, nothing after the last layer
    kinds = [type(m).__name__ for m in to_torch(net)]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]


def test_from_torch_roundtrip_and_merge():
    torch = pytest.importorskip("torch")
    from robmem.empirics.network_torch import from_torch

    torch.manual_seed(0)
    seq = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(4, 5),
        torch.nn.Linear(5, 3),  # two affine maps in a row: multiplied out
        torch.nn.ReLU(),
        torch.nn.Linear(3, 2),
    ).double()
    net = from_torch(seq)
    assert net.depth == 2
    x = np.random.default_rng(1).normal(size=(9, 4))
    with torch.no_grad():
        ref = seq(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(net.forward(x), ref, rtol=1e-12, atol=1e-12)


def test_from_torch_rejects_unsupported():
    torch = pytest.importorskip("torch")
    from robmem.empirics.network_torch import from_torch

    with pytest.raises(ValueError, match="unsupported layer"):
        from_torch(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh()))
    with pytest.raises(ValueError, match="trailing ReLU"):
        from_torch(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()))


def test_nonzero_count_and_shape_facts():
    w1 = np.array([[1.0, 0.0], [0.0, -2.0], [0.0, 0.0]])
    w2 = sp.csr_matrix(np.array([[0.0, 3.0, 1.0]]))
    net = ReLUNetwork([w1, w2], [np.array([0.0, 1.0, 0.0]), np.array([0.5])])
    assert net.layer_nonzero_counts() == [2 + 1, 2 + 1]
    assert net.nonzero_parameter_count() == 2 + 1 + 2 + 1
    assert net.depth == 2 and net.widths == [2, 3, 1] and net.relu_count == 3
    assert net.input_dim == 2 and net.output_dim == 1
    # explicit stored zeros in a sparse matrix are not counted
    w_explicit = sp.csr_matrix(
        (np.array([0.0, 1.0]), (np.array([0, 0]), np.array([0, 1]))), shape=(1, 2)
    )
    assert ReLUNetwork([w_explicit], [[0.0]]).nonzero_parameter_count() == 1


def test_forward_batches_match_single():
    rng = np.random.default_rng(2)
    net = _random_net(rng, [3, 4, 2])
    x = rng.normal(size=(6, 3))
    rows = np.vstack([net.forward(r) for r in x])
    np.testing.assert_allclose(net.forward(x), rows)


def test_bad_inputs():
    with pytest.raises(ValueError, match="weights"):
        ReLUNetwork([], [])
    with pytest.raises(ValueError, match="finite"):
        ReLUNetwork([np.array([[np.nan]])], [[0.0]])
    with pytest.raises(ValueError, match="biases"):
        ReLUNetwork([np.ones((2, 2))], [np.ones(3)])
    with pytest.raises(ValueError, match="expects 3 inputs"):
        ReLUNetwork([np.ones((2, 2)), np.ones((1, 3))], [np.zeros(2), [0.0]])
    net = ReLUNetwork([np.ones((1, 2))], [[0.0]])
    with pytest.raises(ValueError, match="x: expected 2"):
        net.forward(np.ones((1, 3)))
