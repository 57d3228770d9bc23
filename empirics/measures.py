r"""Norm-, margin- and sharpness-based complexity measures of a torch model (SPEC T4, E5).

Entry point: :func:`complexity_measures`. It folds BatchNorm into the preceding conv/linear
layer first (Jiang et al. 2020 / nitarshan ``_reparam``), then computes, per weight layer W_i
(conv kernels reshaped to (out, −1) for Frobenius and (2,1) norms):

* exact operator (spectral) norms — matrix 2-norm for linear layers, and for convolutions
  the FFT method of Sedghi, Gupta & Long (ICLR 2019), exact for stride-1 circular
  convolutions and a certified upper bound for zero padding and strides;
* Frobenius norms, distances from initialization, the squared ℓ2 path norm;
* their margin-normalized versions at a low quantile (default the 10th percentile) of the
  clean — or, with ``x_margin``, adversarial — margins;
* the Bartlett et al. (2017) and Neyshabur et al. (2018) spectral bounds
  (:mod:`robmem.theory.bounds.spectral`);
* PAC-Bayes sharpness with the σ search of Jiang et al. (2020) (constants in
  :class:`SigmaSearchConfig`) and a kl-inversion certificate for the Gaussian posterior
  (:func:`robmem.theory.bounds.pacbayes.gaussian_posterior_certificate`).

Names follow nitarshan/robust-generalization-measures' ``ComplexityType`` (whose values are
Jiang et al.'s equation numbers, given in :data:`MEASURE_EQUATIONS`); values are the raw
measures, without that code's final sample-size normalization.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from robmem.theory.bounds import spectral as spectral_bounds
from robmem.theory.bounds.pacbayes import gaussian_posterior_certificate

logger = logging.getLogger(__name__)

#: Jiang et al. 2020 ("Fantastic generalization measures") equation numbers of the measures.
MEASURE_EQUATIONS: dict[str, int] = {
    "params": 20,
    "inverse_margin": 22,
    "log_spec_init_main": 29,
    "log_spec_orig_main": 30,
    "log_prod_of_spec_over_margin": 31,
    "log_prod_of_spec": 32,
    "fro_over_spec": 33,
    "log_sum_of_spec_over_margin": 34,
    "log_sum_of_spec": 35,
    "log_prod_of_fro_over_margin": 36,
    "log_prod_of_fro": 37,
    "log_sum_of_fro_over_margin": 38,
    "log_sum_of_fro": 39,
    "fro_dist": 40,
    "dist_spec_init": 41,
    "param_norm": 42,
    "path_norm_over_margin": 43,
    "path_norm": 44,
    "pacbayes_init": 48,
    "pacbayes_orig": 49,
    "pacbayes_flatness": 53,
}

#: Jiang et al. 2020 eq. (48)/(49): additive constant in the PAC-Bayes measures (the bound's
#: log(1/δ)-type term, fixed by the paper; nitarshan measures.py uses the same "+ 10").
PACBAYES_ADDITIVE_CONSTANT = 10.0


@dataclass(frozen=True)
class SigmaSearchConfig:
    """Constants of the PAC-Bayes σ search (Jiang et al. 2020 §C; nitarshan ``_pacbayes_sigma``).

    Attributes
    ----------
    lower, upper : float
        Bisection bracket for σ (Jiang: [0, 2]).
    search_depth : int
        Bisection steps (Jiang: 15). σ then lies on a grid of 2^depth values, which the
        certificate pays for with a union bound.
    mc_samples : int
        Noise draws per σ (Jiang: 10).
    accuracy_displacement : float
        Target drop in training accuracy (Jiang: 0.1).
    displacement_tolerance : float
        Stop when |drop − target| is below this (Jiang: 1e-2).
    """

    lower: float = 0.0
    upper: float = 2.0
    search_depth: int = 15
    mc_samples: int = 10
    accuracy_displacement: float = 0.1
    displacement_tolerance: float = 1e-2


# ---------------------------------------------------------------------------------------------
# BatchNorm folding


def _bn_scale_shift(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    device = bn.weight.device if bn.weight is not None else None
    var = (
        bn.running_var if bn.running_var is not None else torch.ones(bn.num_features, device=device)
    )
    mean = (
        bn.running_mean
        if bn.running_mean is not None
        else torch.zeros(bn.num_features, device=device)
    )
    scale = 1.0 / torch.sqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale.detach(), shift.detach()


def _fold_into(layer: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> None:
    scale, shift = _bn_scale_shift(bn)
    with torch.no_grad():
        shape = (-1,) + (1,) * (layer.weight.dim() - 1)
        layer.weight.mul_(scale.reshape(shape).to(layer.weight.dtype))
        bias = layer.bias.detach() if layer.bias is not None else torch.zeros_like(scale)
        new_bias = shift + scale * bias
        if layer.bias is None:
            layer.bias = nn.Parameter(new_bias.to(layer.weight.dtype))
        else:
            layer.bias.copy_(new_bias)


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """Deep-copy ``model`` and fold every BatchNorm that directly follows a conv/linear layer.

    Folding (Jiang et al. 2020; nitarshan ``_reparam``): with s = γ/√(var + eps),
    W ← s·W and b ← β + s·(b − mean); the BatchNorm becomes the identity. Conv→BN pairs are
    found by tracing the model with ``torch.fx``; if tracing fails, pairs that are adjacent in
    an ``nn.Sequential`` are folded. BatchNorms that follow no conv/linear (pre-activation
    ResNets) stay, in eval mode, and are measured as diagonal layers.

    Returns
    -------
    (model, n_folded)
        The folded copy (eval mode) and the number of BatchNorms folded.
    """
    model = copy.deepcopy(model).eval()
    folded = 0
    foldable = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
    try:
        import torch.fx as fx

        traced = fx.symbolic_trace(model)
        modules = dict(traced.named_modules())
        pairs = []
        for node in traced.graph.nodes:
            if node.op != "call_module":
                continue
            mod = modules[node.target]
            if not isinstance(mod, nn.modules.batchnorm._BatchNorm):
                continue
            prev = node.args[0] if node.args else None
            if (
                isinstance(prev, fx.Node)
                and prev.op == "call_module"
                and isinstance(modules[prev.target], foldable)
                and len(prev.users) == 1
            ):
                pairs.append((prev.target, node.target))
        named = dict(model.named_modules())
        for layer_name, bn_name in pairs:
            _fold_into(named[layer_name], named[bn_name])
            owner, _, child = bn_name.rpartition(".")  # get_submodule("") is the model itself
            setattr(model.get_submodule(owner), child, nn.Identity())
            folded += 1
    except Exception as exc:  # noqa: BLE001 - any tracing failure falls back to Sequential order
        logger.info("fx tracing failed (%s); folding adjacent Sequential pairs only", exc)
        for parent in model.modules():
            if not isinstance(parent, nn.Sequential):
                continue
            children = list(parent.named_children())
            for (_, a), (b_name, b) in zip(children, children[1:], strict=False):
                if isinstance(a, foldable) and isinstance(b, nn.modules.batchnorm._BatchNorm):
                    _fold_into(a, b)
                    setattr(parent, b_name, nn.Identity())
                    folded += 1
    return model, folded


# ---------------------------------------------------------------------------------------------
# Per-layer norms


def conv_spectral_norm_fft(weight: torch.Tensor, input_size: tuple[int, ...]) -> float:
    r"""Operator 2-norm of the circular convolution with ``weight`` on a grid of ``input_size``.

    Sedghi, Gupta & Long (ICLR 2019): the singular values of a multi-channel circular
    convolution are those of the (out × in) matrices K̂(u) = Σ_a k[a] e^{−2πi⟨a,u⟩/n} over all
    frequencies u, so the norm is max_u σ_max(K̂(u)). Exact for stride 1 and circular padding.
    A zero-padded convolution on an n-grid is a crop of the circular one on the (n + 2·pad)
    grid, and a strided one a subsampling, so evaluating at the padded size gives a sound
    upper bound for those (see :func:`layer_norms`).
    """
    spatial = weight.dim() - 2
    if len(input_size) != spatial:
        raise ValueError(f"input_size must have {spatial} entries, got {input_size}")
    if any(n < k for n, k in zip(input_size, weight.shape[2:], strict=True)):
        input_size = tuple(max(n, k) for n, k in zip(input_size, weight.shape[2:], strict=True))
    dims = tuple(range(2, 2 + spatial))
    freq = torch.fft.fftn(weight.detach().to(torch.complex128), s=input_size, dim=dims)
    mats = freq.permute(*range(2, 2 + spatial), 0, 1).reshape(-1, weight.shape[0], weight.shape[1])
    return float(torch.linalg.matrix_norm(mats, ord=2).max())


@dataclass
class LayerNorms:
    """Norms of one weight layer (conv kernels reshaped to (out, −1) where stated)."""

    name: str
    spectral: float
    frobenius: float
    norm_2_1: float
    units: int
    spectral_exact: bool


def _input_sizes(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    sizes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):

            def hook(m, inp, out, name=name):
                sizes[name] = tuple(inp[0].shape[2:])

            hooks.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for h in hooks:
            h.remove()
    return sizes


def layer_norms(model: nn.Module, x: torch.Tensor) -> list[LayerNorms]:
    """Norms of every Linear/Conv layer and every remaining (unfolded) BatchNorm.

    Convolutions: spectral norm by :func:`conv_spectral_norm_fft` at the input size plus
    twice the padding (exact iff stride 1 and circular padding; an upper bound otherwise).
    Unfolded BatchNorms act as diagonal maps x ↦ s·x + t; their spectral norm is max|s|.
    """
    sizes = _input_sizes(model, x)
    out: list[LayerNorms] = []
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            w = mod.weight.detach().to(torch.float64)
            flat = w.reshape(w.shape[0], -1)
            if isinstance(mod, nn.Linear):
                spec, exact = float(torch.linalg.matrix_norm(w, ord=2)), True
            else:
                if mod.groups != 1:
                    raise ValueError(f"grouped convolutions are not supported (layer {name})")
                spatial = w.dim() - 2
                if mod.padding == "same":  # total padding dilation·(k − 1) per dimension
                    total = tuple(
                        d * (k - 1) for d, k in zip(mod.dilation, w.shape[2:], strict=True)
                    )
                elif mod.padding == "valid":
                    total = (0,) * spatial
                else:
                    total = tuple(2 * p for p in mod.padding)
                n = tuple(s + t for s, t in zip(sizes[name], total, strict=True))
                if any(d != 1 for d in mod.dilation):  # the dilated kernel, zeros inserted
                    k_dil = [
                        d * (k - 1) + 1 for d, k in zip(mod.dilation, w.shape[2:], strict=True)
                    ]
                    dilated = w.new_zeros((*w.shape[:2], *k_dil))
                    dilated[
                        (slice(None), slice(None), *(slice(None, None, d) for d in mod.dilation))
                    ] = w
                    w = dilated
                circular = mod.padding_mode == "circular"
                spec = conv_spectral_norm_fft(w, sizes[name] if circular else n)
                # exact only when the layer *is* the circular convolution on its input grid
                exact = (
                    circular
                    and all(s == 1 for s in mod.stride)
                    and total == tuple(k - 1 for k in w.shape[2:])
                )
            out.append(
                LayerNorms(
                    name=name,
                    spectral=spec,
                    frobenius=float(torch.linalg.vector_norm(flat)),
                    norm_2_1=float(torch.linalg.vector_norm(flat, dim=1).sum()),
                    units=int(w.shape[0]),
                    spectral_exact=exact,
                )
            )
        elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
            scale, _ = _bn_scale_shift(mod)
            scale = scale.to(torch.float64)
            out.append(
                LayerNorms(
                    name=name,
                    spectral=float(scale.abs().max()),
                    frobenius=float(torch.linalg.vector_norm(scale)),
                    norm_2_1=float(scale.abs().sum()),
                    units=int(scale.numel()),
                    spectral_exact=True,
                )
            )
    if not out:
        raise ValueError("model must contain at least one Linear/Conv layer (found zero layers)")
    return out


def _weight_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: mod.weight.detach().to(torch.float64)
        for name, mod in model.named_modules()
        if isinstance(mod, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))
    }


# ---------------------------------------------------------------------------------------------
# Margins, path norm, sharpness


def _logits(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    outs = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            outs.append(model(x[i : i + batch_size]).detach().to(torch.float64))
    return torch.cat(outs)


def classification_margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """f_y(x) − max_{j≠y} f_j(x); for one output column, y·f with y ∈ {±1} (or 2y − 1 for {0,1})."""
    y = y.reshape(-1).long()
    if logits.dim() == 1 or logits.shape[1] == 1:
        f = logits.reshape(-1)
        sign = torch.where(y > 0, 1.0, -1.0).to(f.dtype)
        return sign * f
    correct = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.clone()
    others.scatter_(1, y[:, None], -math.inf)
    return correct - others.max(dim=1).values


def quantile_margin(margins: torch.Tensor, quantile: float) -> float:
    """The k-th smallest margin with k = max(1, ⌊quantile·m⌋) (Jiang: ``kthvalue(m//10)``)."""
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile must lie in (0, 1], got {quantile!r}")
    m = margins.numel()
    if m == 0:
        raise ValueError("margins must hold at least one value")
    k = max(1, int(math.floor(quantile * m)))
    return float(margins.kthvalue(k).values)


def path_norm_squared(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Squared ℓ2 path norm: square every parameter, feed an all-ones input, sum the outputs.

    Jiang et al. 2020 eq. (44) / nitarshan ``PATH_NORM``. Unfolded BatchNorms are first
    turned into their diagonal map s·x + t, whose coefficients are then squared too.
    """
    sq = copy.deepcopy(model).eval()
    with torch.no_grad():
        for mod in sq.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                scale, shift = _bn_scale_shift(mod)
                mod.running_mean.zero_()
                mod.running_var.fill_(1.0 - mod.eps)
                if mod.weight is None or mod.bias is None:
                    raise ValueError("BatchNorm without affine parameters is not supported")
                mod.weight.copy_(scale)
                mod.bias.copy_(shift)
        for p in sq.parameters():
            p.pow_(2)
        first = next(sq.parameters())
        ones = torch.ones((1, *input_shape), dtype=first.dtype, device=first.device)
        return float(sq(ones).sum())


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    return float((classification_margins(_logits(model, x, batch_size), y) > 0).double().mean())


def pacbayes_sigma(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    config: SigmaSearchConfig,
    generator: torch.Generator,
    batch_size: int = 512,
    magnitude_eps: float | None = None,
) -> tuple[float, float, int]:
    r"""Bisection for the σ at which Gaussian weight noise drops training accuracy by the target.

    Jiang et al. 2020 §C / nitarshan ``_pacbayes_sigma``: noise N(0, σ²) on every parameter
    (or, magnitude-aware, variance σ²w² + ε²), ``mc_samples`` draws per σ.

    Returns
    -------
    (sigma, mc_error_rate, n_params)
        σ, the mean 0-1 training error over the last σ's noise draws, and the number of
        perturbed parameters.
    """
    base_acc = _accuracy(model, x, y, batch_size)
    params = [p for p in model.parameters()]
    originals = [p.detach().clone() for p in params]
    n_params = sum(p.numel() for p in params)
    lower, upper = config.lower, config.upper
    sigma = 0.5 * (lower + upper)
    error = 1.0 - base_acc
    for _ in range(config.search_depth):
        sigma = 0.5 * (lower + upper)
        accs = []
        for _ in range(config.mc_samples):
            with torch.no_grad():
                for p, p0 in zip(params, originals, strict=True):
                    std = (
                        sigma
                        if magnitude_eps is None
                        else torch.sqrt(sigma**2 * p0**2 + magnitude_eps**2)
                    )
                    noise = torch.randn(p0.shape, generator=generator, dtype=p0.dtype).to(p0.device)
                    p.copy_(p0 + std * noise)
            accs.append(_accuracy(model, x, y, batch_size))
        with torch.no_grad():
            for p, p0 in zip(params, originals, strict=True):
                p.copy_(p0)
        mean_acc = float(np.mean(accs))
        error = 1.0 - mean_acc
        displacement = abs(base_acc - mean_acc)
        if abs(displacement - config.accuracy_displacement) < config.displacement_tolerance:
            break
        if displacement > config.accuracy_displacement:
            upper = sigma
        else:
            lower = sigma
    return sigma, error, n_params


# ---------------------------------------------------------------------------------------------
# Entry point


def complexity_measures(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    init_model: nn.Module | None = None,
    *,
    x_margin: torch.Tensor | None = None,
    margin_quantile: float = 0.1,
    pac_bayes: bool = True,
    magnitude_aware: bool = False,
    sigma_search: SigmaSearchConfig | None = None,
    confidence: float = 0.05,
    mc_confidence: float = 0.01,
    seed: int = 0,
    batch_size: int = 512,
) -> dict[str, float]:
    r"""Complexity measures of ``model`` on the training data (x, y) (SPEC T4, E5; [P2]).

    Parameters
    ----------
    model : nn.Module
        The trained classifier (logits; or one output column for ±1 labels). Not modified.
    x : Tensor
        Training inputs (as the model takes them).
    y : Tensor
        Integer labels.
    init_model : nn.Module, optional
        The same architecture at initialization: enables the distance measures and centres
        the PAC-Bayes prior; without it the reference is 0.
    x_margin : Tensor, optional
        Inputs on which margins are measured instead of ``x`` — pass adversarial examples of
        x for robust margins ([P2] normalizes by the robust margin).
    margin_quantile : float
        Quantile of the margins used as γ (Jiang: 10th percentile).
    pac_bayes : bool
        Run the σ search (costs search_depth·mc_samples forward passes over x).
    magnitude_aware : bool
        Also run the magnitude-aware σ search (Jiang eq. 56–61).
    sigma_search : SigmaSearchConfig, optional
        Search constants (default: Jiang's).
    confidence, mc_confidence : float
        Δ and Δ' of the PAC-Bayes certificate.
    seed : int
        Seed of the weight-noise draws.
    batch_size : int
        Forward-pass batch size.

    Returns
    -------
    dict[str, float]
        Keys: ``margin`` (signed γ), ``inverse_margin``, ``params``, ``log_prod_of_spec``,
        ``log_prod_of_spec_over_margin``, ``log_sum_of_spec``, ``log_sum_of_spec_over_margin``,
        ``log_prod_of_fro``, ``log_prod_of_fro_over_margin``, ``log_sum_of_fro``,
        ``log_sum_of_fro_over_margin``, ``fro_over_spec``, ``log_spec_orig_main``,
        ``param_norm``, ``path_norm``, ``path_norm_over_margin``, ``spec_product``,
        ``bartlett2017_bound``, ``neyshabur2018_bound`` (C = 1), ``n_layers``,
        ``n_batchnorm_folded``, ``n_spectral_upper_bounds`` (conv layers whose spectral norm
        is the FFT upper bound rather than exact), and with ``init_model``
        ``fro_dist``, ``dist_spec_init``, ``log_spec_init_main``; with ``pac_bayes``
        ``pacbayes_sigma``, ``pacbayes_init``, ``pacbayes_orig``, ``pacbayes_flatness``,
        ``pacbayes_mc_error``, ``pacbayes_kl_certificate``; with ``magnitude_aware`` the
        ``pacbayes_mag_*`` analogues. Squared norms as in Jiang et al.; γ is |γ| in the
        normalizations (as nitarshan's code), and ``margin_nonpositive`` flags γ ≤ 0.
        Over-margin measures are +inf when γ = 0.
    """
    if not 0.0 < margin_quantile <= 1.0:
        raise ValueError(f"margin_quantile must lie in (0, 1], got {margin_quantile!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one sample (n in [1, inf)), got 0")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have length {x.shape[0]}, got {y.shape[0]}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x must be finite (no NaN or inf entries)")
    search = sigma_search if sigma_search is not None else SigmaSearchConfig()
    folded, n_folded = fold_batchnorm(model)
    folded_init = fold_batchnorm(init_model)[0] if init_model is not None else None
    m = int(x.shape[0])
    first = next(folded.parameters(), None)
    if first is None:
        raise ValueError("model must contain at least one Linear/Conv layer (found zero layers)")
    dtype = first.dtype
    x = x.to(dtype)
    norms = layer_norms(folded, x)
    depth = len(norms)
    spec_sq = np.array([ln.spectral**2 for ln in norms])
    fro_sq = np.array([ln.frobenius**2 for ln in norms])
    n_upper = sum(not ln.spectral_exact for ln in norms)
    if np.any(spec_sq == 0):
        raise ValueError("a layer has zero weights (spectral norm 0); the measures are undefined")

    logits = _logits(folded, (x_margin if x_margin is not None else x).to(dtype), batch_size)
    margins = classification_margins(logits, y.to(logits.device))
    gamma_signed = quantile_margin(margins, margin_quantile)
    gamma = abs(gamma_signed)
    log_gamma_sq = math.log(gamma**2) if gamma > 0 else -math.inf

    def over_margin(log_value: float) -> float:
        return log_value - log_gamma_sq if gamma > 0 else math.inf

    log_prod_spec = float(np.sum(np.log(spec_sq)))
    log_prod_fro = float(np.sum(np.log(fro_sq)))
    fro_over_spec = float(np.sum(fro_sq / spec_sq))
    params = [p.detach().to(torch.float64) for p in folded.parameters()]
    out: dict[str, float] = {
        "margin": gamma_signed,
        "margin_nonpositive": float(gamma_signed <= 0),
        "inverse_margin": 1.0 / gamma**2 if gamma > 0 else math.inf,
        "params": float(sum(p.numel() for p in params)),
        "n_batchnorm_folded": float(n_folded),
        "n_layers": float(depth),
        "n_spectral_upper_bounds": float(n_upper),
        "spec_product": float(math.exp(0.5 * log_prod_spec)),
        "log_prod_of_spec": log_prod_spec,
        "log_prod_of_spec_over_margin": over_margin(log_prod_spec),
        "log_sum_of_spec": math.log(depth) + log_prod_spec / depth,
        "log_sum_of_spec_over_margin": math.log(depth) + over_margin(log_prod_spec) / depth,
        "log_prod_of_fro": log_prod_fro,
        "log_prod_of_fro_over_margin": over_margin(log_prod_fro),
        "log_sum_of_fro": math.log(depth) + log_prod_fro / depth,
        "log_sum_of_fro_over_margin": math.log(depth) + over_margin(log_prod_fro) / depth,
        "fro_over_spec": fro_over_spec,
        "log_spec_orig_main": over_margin(log_prod_spec) + math.log(fro_over_spec),
        "param_norm": float(sum(float((p**2).sum()) for p in params)),
    }
    path = path_norm_squared(folded, tuple(x.shape[1:]))
    out["path_norm"] = path
    out["path_norm_over_margin"] = path / gamma**2 if gamma > 0 else math.inf

    weights = _weight_tensors(folded)
    weights0 = _weight_tensors(folded_init) if folded_init is not None else None
    if weights0 is not None and weights0.keys() != weights.keys():
        raise ValueError("init_model must have the same architecture as model")
    diffs = {k: w - (weights0[k] if weights0 is not None else 0.0) for k, w in weights.items()}
    if weights0 is not None:
        dist_sq = {k: float((d**2).sum()) for k, d in diffs.items()}
        out["fro_dist"] = float(sum(dist_sq.values()))
        out["dist_spec_init"] = float(
            sum(
                float(torch.linalg.matrix_norm(d.reshape(d.shape[0], -1), ord=2)) ** 2
                for d in diffs.values()
            )
        )
        ratio = sum(dist_sq[ln.name] / ln.spectral**2 for ln in norms if ln.name in dist_sq)
        out["log_spec_init_main"] = over_margin(log_prod_spec) + (
            math.log(ratio) if ratio > 0 else -math.inf
        )

    # spectral bounds (Bartlett 2017, Neyshabur 2018); reference matrices W^0 (or 0)
    bartlett_sum = 0.0
    neyshabur_sum = 0.0
    for ln in norms:
        if ln.name in diffs:
            d = diffs[ln.name].reshape(diffs[ln.name].shape[0], -1)
            bartlett_sum += (float(torch.linalg.vector_norm(d, dim=1).sum()) / ln.spectral) ** (
                2.0 / 3.0
            )
            neyshabur_sum += ln.units * float((d**2).sum()) / ln.spectral**2
    if gamma > 0 and m >= spectral_bounds.BARTLETT_MIN_N and out["params"] >= 2:
        out["bartlett2017_bound"] = spectral_bounds.bartlett2017_spectral_bound(
            n=m,
            n_params=out["params"],
            spec_product=out["spec_product"],
            margin=gamma,
            bartlett_sum=bartlett_sum,
        ).value
    else:
        out["bartlett2017_bound"] = math.inf
    out["neyshabur2018_bound"] = (
        spectral_bounds.neyshabur2018_spectral_bound(
            n=m,
            depth=depth,
            spec_product=out["spec_product"],
            margin=gamma,
            neyshabur_sum=neyshabur_sum,
        ).value
        if gamma > 0
        else math.inf
    )

    if pac_bayes:
        gen = torch.Generator().manual_seed(seed)
        sigma, mc_error, n_params = pacbayes_sigma(
            folded, x, y, config=search, generator=gen, batch_size=batch_size
        )
        all0 = (
            [p.detach().to(torch.float64) for p in folded_init.parameters()]
            if folded_init is not None
            else [torch.zeros_like(p) for p in params]
        )
        d_init = float(sum(float(((p - q) ** 2).sum()) for p, q in zip(params, all0, strict=True)))
        d_orig = out["param_norm"]
        log_term = math.log(m / sigma) + PACBAYES_ADDITIVE_CONSTANT
        out["pacbayes_sigma"] = sigma
        out["pacbayes_init"] = d_init / (4 * sigma**2) + log_term
        out["pacbayes_orig"] = d_orig / (4 * sigma**2) + log_term
        out["pacbayes_flatness"] = 1.0 / sigma**2
        out["pacbayes_mc_error"] = mc_error
        out["pacbayes_kl_certificate"] = gaussian_posterior_certificate(
            n=m,
            mc_error_rate=mc_error,
            mc_samples=search.mc_samples,
            dist_sq=d_init,
            sigma=sigma,
            n_params=n_params,
            confidence=confidence,
            mc_confidence=mc_confidence,
            n_sigma_candidates=2**search.search_depth,
        ).value
        if magnitude_aware:
            mag_eps = MAGNITUDE_EPS
            sigma_m, _, _ = pacbayes_sigma(
                folded,
                x,
                y,
                config=search,
                generator=gen,
                batch_size=batch_size,
                magnitude_eps=mag_eps,
            )
            omega = float(n_params)
            out["pacbayes_mag_flatness"] = 1.0 / sigma_m**2

            def mag(ref: list[torch.Tensor]) -> float:
                total = 0.0
                for p, r, p0 in zip(params, ref, all0, strict=True):
                    num = mag_eps**2 + (sigma_m**2 + 1) * float((r**2).sum()) / omega
                    den = mag_eps**2 + sigma_m**2 * (p - p0) ** 2
                    total += float(torch.log(num / den).sum())
                return 0.25 * total + math.log(m / sigma_m) + PACBAYES_ADDITIVE_CONSTANT

            out["pacbayes_mag_init"] = mag(all0)
            out["pacbayes_mag_orig"] = mag([torch.zeros_like(p) for p in params])
    return out


#: Jiang et al. 2020 eq. (56)–(61) / nitarshan: ε in the magnitude-aware noise variance
#: σ²w² + ε².
MAGNITUDE_EPS = 1e-3
