"""Tests of the torch complexity measures against independent numpy/power-iteration oracles."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from robmem.empirics.measures import (
    SigmaSearchConfig,
    classification_margins,
    complexity_measures,
    conv_spectral_norm_fft,
    fold_batchnorm,
    path_norm_squared,
    quantile_margin,
)

torch.set_num_threads(1)


def _power_iteration_norm(op, adjoint, shape, iters=500, seed=0) -> float:
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(shape, dtype=torch.float64, generator=gen)
    for _ in range(iters):
        v = adjoint(op(v))
        v = v / v.norm()
    return float(op(v).detach().norm())


@pytest.mark.parametrize("mode", ["circular", "zeros"])
def test_conv_spectral_norm_against_power_iteration(mode: str) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode=mode, bias=False).double()
    shape = (1, 3, 6, 6)
    x = torch.zeros(shape, dtype=torch.float64, requires_grad=True)

    def op(v):
        return conv(v)

    def adjoint(u):
        (g,) = torch.autograd.grad((conv(x) * u).sum(), x)
        return g

    truth = _power_iteration_norm(op, adjoint, shape)
    if mode == "circular":
        fft = conv_spectral_norm_fft(conv.weight, (6, 6))
        assert fft == pytest.approx(truth, rel=1e-6)
    else:  # zero padding: the circular norm on the padded grid is an upper bound
        fft = conv_spectral_norm_fft(conv.weight, (8, 8))
        assert truth <= fft * (1 + 1e-9)


def test_batchnorm_folding_preserves_the_function() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 5 * 5, 4),
        nn.BatchNorm1d(4),
        nn.ReLU(),
        nn.Linear(4, 2),
    )
    x = torch.rand(16, 1, 5, 5)
    model.train()
    for _ in range(3):
        model(x)
    model.eval()
    folded, n = fold_batchnorm(model)
    assert n == 2
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-5)


def test_path_norm_equals_explicit_path_sum() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    w1, b1 = (p.detach().numpy().astype(np.float64) for p in (model[0].weight, model[0].bias))
    w2, b2 = (p.detach().numpy().astype(np.float64) for p in (model[2].weight, model[2].bias))
    # every path input->hidden->output with squared weights, plus bias paths
    total = 0.0
    for o in range(2):
        total += b2[o] ** 2
        for h in range(4):
            total += w2[o, h] ** 2 * (b1[h] ** 2 + sum(w1[h, i] ** 2 for i in range(3)))
    assert path_norm_squared(model, (3,)) == pytest.approx(total, rel=1e-5)


def test_margins_and_quantile_against_numpy() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 1.0, 5.0], [0.0, 0.0, 0.0]])
    y = torch.tensor([0, 2, 2, 1])
    m = classification_margins(logits.double(), y)
    assert m.tolist() == [1.0, -2.0, 4.0, 0.0]
    big = torch.arange(100, dtype=torch.float64)
    assert quantile_margin(big, 0.1) == 9.0  # kthvalue(m // 10), 1-based
    one_col = classification_margins(torch.tensor([[0.5], [-2.0]]).double(), torch.tensor([1, 0]))
    assert one_col.tolist() == [0.5, 2.0]


def _mlp_and_data(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    init = copy.deepcopy(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(60, 4)
    y = model(x).argmax(1)
    y[:6] = (y[:6] + 1) % 3
    return model, init, x, y


def test_norm_measures_and_spectral_bounds_against_numpy() -> None:
    model, init, x, y = _mlp_and_data()
    out = complexity_measures(model, x, y, init_model=init, pac_bayes=False)
    ws = [model[i].weight.detach().double().numpy() for i in (0, 2)]
    w0s = [init[i].weight.detach().double().numpy() for i in (0, 2)]
    spec = [np.linalg.norm(w, 2) for w in ws]
    fro = [np.linalg.norm(w) for w in ws]
    logits = model(x).detach().double().numpy()
    yy = y.numpy()
    correct = logits[np.arange(60), yy]
    other = np.where(np.eye(3)[yy] > 0, -np.inf, logits).max(1)
    gamma = np.sort(correct - other)[5]  # k = 60 // 10 = 6th smallest
    assert out["margin"] == pytest.approx(gamma, rel=1e-5)
    assert out["log_prod_of_spec"] == pytest.approx(sum(2 * math.log(s) for s in spec), rel=1e-6)
    assert out["log_prod_of_fro"] == pytest.approx(sum(2 * math.log(f) for f in fro), rel=1e-6)
    assert out["fro_dist"] == pytest.approx(
        sum(((w - w0) ** 2).sum() for w, w0 in zip(ws, w0s, strict=True))
    )
    m, g = 60, abs(gamma)
    n_params = sum(p.numel() for p in model.parameters())
    bartlett_sum = sum(
        (np.linalg.norm(w - w0, axis=1).sum() / s) ** (2 / 3)
        for w, w0, s in zip(ws, w0s, spec, strict=True)
    )
    bartlett = math.log(m) * math.log(n_params) / math.sqrt(m) * np.prod(spec) / g
    bartlett *= bartlett_sum**1.5
    assert out["bartlett2017_bound"] == pytest.approx(bartlett, rel=1e-5)
    ney_sum = sum(
        w.shape[0] * ((w - w0) ** 2).sum() / s**2 for w, w0, s in zip(ws, w0s, spec, strict=True)
    )
    ney = 2 * np.prod(spec) / g * math.sqrt(ney_sum) / math.sqrt(m)
    assert out["neyshabur2018_bound"] == pytest.approx(ney, rel=1e-5)


def test_adversarial_margins_are_used_when_given() -> None:
    model, init, x, y = _mlp_and_data()
    clean = complexity_measures(model, x, y, pac_bayes=False)
    x_adv = x + 0.3 * torch.randn_like(x)
    adv = complexity_measures(model, x, y, x_margin=x_adv, pac_bayes=False)
    assert adv["margin"] != clean["margin"]
    assert adv["log_prod_of_spec"] == clean["log_prod_of_spec"]


def test_pac_bayes_sigma_search_and_certificate() -> None:
    model, init, x, y = _mlp_and_data()
    cfg = SigmaSearchConfig(search_depth=10, mc_samples=20)
    out = complexity_measures(model, x, y, init_model=init, sigma_search=cfg, seed=0)
    sigma = out["pacbayes_sigma"]
    assert 0 < sigma < 2
    # oracle: re-measure the accuracy drop at the returned sigma with fresh noise
    base = float((model(x).argmax(1) == y).double().mean())
    gen = torch.Generator().manual_seed(123)
    accs = []
    for _ in range(100):
        noisy = copy.deepcopy(model)
        with torch.no_grad():
            for p in noisy.parameters():
                p.add_(sigma * torch.randn(p.shape, generator=gen))
        accs.append(float((noisy(x).argmax(1) == y).double().mean()))
    drop = base - float(np.mean(accs))
    assert abs(drop - cfg.accuracy_displacement) < 0.06
    assert out["pacbayes_flatness"] == pytest.approx(1 / sigma**2)
    assert out["pacbayes_mc_error"] <= out["pacbayes_kl_certificate"] <= 1.0


def test_model_without_layers_is_rejected() -> None:
    with pytest.raises(ValueError, match="zero layers"):
        complexity_measures(
            nn.Sequential(nn.Flatten()), torch.ones(3, 2), torch.zeros(3).long(), pac_bayes=False
        )
    with pytest.raises(ValueError, match="margin_quantile"):
        model, _, x, y = _mlp_and_data()
        complexity_measures(model, x, y, margin_quantile=0.0)


def test_magnitude_aware_sigma_search_reports_its_measures() -> None:
    model, init, x, y = _mlp_and_data()
    cfg = SigmaSearchConfig(search_depth=4, mc_samples=3)
    out = complexity_measures(model, x, y, init_model=init, sigma_search=cfg, magnitude_aware=True)
    for key in ("pacbayes_mag_flatness", "pacbayes_mag_init", "pacbayes_mag_orig"):
        assert math.isfinite(out[key]), key
    # the reference w0 = init is closer to w than 0 is, so the init variant is smaller
    assert out["pacbayes_init"] < out["pacbayes_orig"]


@pytest.mark.parametrize(
    ("mode", "stride", "dilation", "padding"),
    [("circular", 1, 2, 2), ("zeros", 2, 1, 1), ("zeros", 1, 2, "same"), ("zeros", 1, 1, 0)],
)
def test_layer_norms_spectral_is_exact_or_an_upper_bound(mode, stride, dilation, padding) -> None:
    from robmem.empirics.measures import layer_norms

    torch.manual_seed(3)
    conv = nn.Conv2d(
        2, 3, 3, stride=stride, dilation=dilation, padding=padding, padding_mode=mode, bias=False
    ).double()
    shape = (1, 2, 8, 8)
    x = torch.zeros(shape, dtype=torch.float64, requires_grad=True)

    def adjoint(u):
        (g,) = torch.autograd.grad((conv(x) * u).sum(), x)
        return g

    truth = _power_iteration_norm(conv, adjoint, shape)
    (norms,) = layer_norms(nn.Sequential(conv), torch.rand(shape, dtype=torch.float64))
    if norms.spectral_exact:
        assert norms.spectral == pytest.approx(truth, rel=1e-6)
    else:
        assert truth <= norms.spectral * (1 + 1e-9)
    assert norms.spectral_exact == (mode == "circular")
