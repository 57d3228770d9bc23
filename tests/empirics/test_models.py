"""Tests of empirics.models: shapes, parameter counts of the reference nets, the mixed learner."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from empirics.models import MODEL_NAMES, Normalize, build_model

SMALL_KW = {"wrn": {"depth": 10, "widen": 1}, "mlp": {"hidden": (16,)}}


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("in_shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_every_model_maps_images_to_logits(name, in_shape):
    torch.manual_seed(0)
    if name in ("preactresnet18", "resnet18") and in_shape != (3, 32, 32):
        in_shape = (in_shape[0], 8, 8)  # keep the big nets cheap
    model = build_model(name, 7, in_shape, **SMALL_KW.get(name, {}))
    model.eval()
    out = model(torch.rand((3,) + in_shape))
    assert out.shape == (3, 7) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["linear", "mlp", "mixed"])
def test_vector_models(name):
    model = build_model(name, 3, (5,), **SMALL_KW.get(name, {}))
    assert model(torch.rand(4, 5)).shape == (4, 3)


def test_conv_models_need_image_shape():
    with pytest.raises(ValueError, match="in_shape"):
        build_model("lenet5", 10, (64,))


@pytest.mark.parametrize(
    ("name", "kw", "expected"),
    [
        # Reference counts (10 classes, 3×32×32): kuangliu ResNet-18 11,173,962; PreActResNet-18
        # of Rice et al. (kuangliu's 11,171,146 + the final BatchNorm(512)) 11,172,170;
        # WRN-28-10 36.48 M and WRN-34-10 46.16 M (notes/speed-and-library-anchors.md §2.1).
        ("resnet18", {}, 11_173_962),
        ("preactresnet18", {}, 11_172_170),
        ("wrn", {"depth": 28, "widen": 10}, 36_479_194),
    ],
)
def test_reference_parameter_counts(name, kw, expected):
    assert _count(build_model(name, 10, (3, 32, 32), **kw)) == expected


def test_lenet5_on_mnist_is_the_classic_shape():
    model = build_model("lenet5", 10, (1, 28, 28))
    # LeCun et al. 1998 (28×28 padded to 32): conv 6·(25+1), conv 16·(150+1), fc 400·120+120,
    # 120·84+84, 84·10+10 = 61,706 parameters.
    assert _count(model) == 156 + 2416 + 48120 + 10164 + 850


def test_mixed_learner_formula_and_binary_logits():
    """[P1] §5: f(x) = w0ᵀx + Σ_j a_j σ(w_jᵀx − b); binary logits (−f/2, f/2)."""
    torch.manual_seed(0)
    model = build_model("mixed", 2, (6,), width=5, threshold=0.3)
    net = model.net
    x = torch.rand(10, 6)
    w0 = net.linear.weight.detach().numpy()[0]
    wj = net.hidden.weight.detach().numpy()
    a = net.readout.weight.detach().numpy()[0]
    xn = x.numpy()
    f = xn @ w0 + np.maximum(xn @ wj.T - 0.3, 0) @ a
    assert np.allclose(net.score(x).detach().numpy(), f, atol=1e-5)
    logits = model(x)
    assert torch.allclose(logits[:, 1] - logits[:, 0], torch.as_tensor(f).float(), atol=1e-5)
    # Softmax CE on label 1 <-> y = +1 is the logistic loss log(1 + exp(-y f)).
    y = torch.randint(0, 2, (10,))
    ypm = (2 * y - 1).float()
    ce = F.cross_entropy(logits, y, reduction="none")
    assert torch.allclose(ce, F.softplus(-ypm * torch.as_tensor(f).float()), atol=1e-5)
    assert not any(p is net.threshold for p in model.parameters())


def test_normalization_lives_inside_the_model():
    torch.manual_seed(0)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
    model = build_model("lenet5", 10, (3, 32, 32), mean=mean, std=std)
    x = torch.rand(4, 3, 32, 32)
    manual = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(model(x), model.net(manual), atol=1e-6)
    assert torch.equal(build_model("mlp", 10, (4,)).normalize(x), x)


@pytest.mark.parametrize(
    ("args", "kw", "match"),
    [
        (("resnet50", 10, (3, 32, 32)), {}, "name"),
        (("mlp", 1, (4,)), {}, "num_classes"),
        (("mlp", 10, (0,)), {}, "in_shape"),
        (("mlp", 10, (4,)), {"depth": 3}, "unknown options"),
        (("wrn", 10, (3, 32, 32)), {"depth": 27, "widen": 1}, "depth"),
        (("mixed", 2, (4,)), {"width": 0}, "width"),
    ],
)
def test_bad_arguments(args, kw, match):
    with pytest.raises(ValueError, match=match):
        build_model(*args, **kw)


def test_normalize_rejects_bad_stats():
    with pytest.raises(ValueError, match="std"):
        Normalize((0.5,), (0.0,))
    with pytest.raises(ValueError, match="together"):
        Normalize((0.5,), None)
