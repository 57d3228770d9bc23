"""Tests of empirics.models: shapes, parameter counts of the reference nets, the mixed learner."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robmem.empirics.models import MODEL_NAMES, Normalize, build_model

SMALL_KW = {"wrn": {"depth": 10, "widen": 1}, "mlp": {"hidden": (16,)}}


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n != "cnn1d"])
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
        (("cnn1d", 10, (1, 8, 8)), {}, "in_shape"),
        (("cnn1d", 10, (1, 40)), {"kernel_size": 4}, "kernel_size"),
        (("cnn1d", 10, (1, 40)), {"channels": ()}, "channels"),
        (("cnn1d", 10, (1, 40)), {"hidden": (3,)}, "unknown options"),
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


def test_batch_norm_flag_must_be_bool():
    with pytest.raises(TypeError, match="batch_norm"):
        build_model("mlp", 10, (40,), batch_norm=1)


# ------------------------------------------------------------------ BN MLP and the 1-D CNN
M1D_SHAPE = (1, 40)  # MNIST-1D inputs (robmem.empirics.data.load_dataset("mnist1d").in_shape)


def test_bn_free_mlp_is_still_a_relu_network():
    from robmem.empirics.network_torch import from_torch

    torch.manual_seed(0)
    model = build_model("mlp", 10, M1D_SHAPE, hidden=(16, 8)).eval()
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())
    net = from_torch(model.net.net)
    x = torch.rand(6, *M1D_SHAPE, dtype=torch.float64)
    want = model.double()(x).detach().numpy()
    np.testing.assert_allclose(net.forward(x.flatten(1).numpy()), want, atol=1e-10)


def test_bn_mlp_structure_and_modes():
    from robmem.empirics.network_torch import from_torch

    torch.manual_seed(0)
    model = build_model("mlp", 10, M1D_SHAPE, hidden=(16, 8), batch_norm=True)
    kinds = [type(m).__name__ for m in model.net.net]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"]
    x = torch.rand(12, *M1D_SHAPE)
    model.train()
    model(x)  # updates the running statistics
    model.eval()
    # Eval mode: a sample's logits do not depend on the rest of the batch (running stats) ...
    assert torch.allclose(model(x)[:3], model(x[:3]), atol=1e-6)
    # ... train mode: they do (batch statistics).
    model.train()
    assert not torch.allclose(model(x)[:3], model(x[:3]), atol=1e-4)
    with pytest.raises(ValueError, match="BatchNorm1d"):
        from_torch(model.net.net)


def test_cnn1d_shapes_and_parameter_count():
    torch.manual_seed(0)
    model = build_model("cnn1d", 10, M1D_SHAPE).eval()
    assert model(torch.rand(3, *M1D_SHAPE)).shape == (3, 10)
    vec = build_model("cnn1d", 10, (40,)).eval()
    assert vec(torch.rand(3, 40)).shape == (3, 10)
    # Closed form: conv weights c_in·c_out·k (no bias with BN), BN 2·c, read-out on 32 × 5.
    length = 40
    for _ in range(3):
        length = (length + 2 * 2 - 5) // 2 + 1
    assert length == 5
    expected = (1 * 32 * 5 + 2 * 32 * 32 * 5) + 3 * 2 * 32 + (32 * length * 10 + 10)
    assert _count(model) == expected
    no_bn = build_model("cnn1d", 10, M1D_SHAPE, batch_norm=False, channels=(4, 6), kernel_size=3)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in no_bn.modules())
    # 40 -> 20 -> 10: (1·4·3 + 4) + (4·6·3 + 6) + (6·10·10 + 10)
    assert _count(no_bn) == (12 + 4) + (72 + 6) + (600 + 10)


@pytest.mark.parametrize(
    ("name", "kw"), [("mlp", {"hidden": (16,), "batch_norm": True}), ("cnn1d", {})]
)
def test_bn_models_with_attacks_and_training_losses(name, kw):
    """PGD and the TRADES attack leave BN buffers and mode alone; method_step trains them."""
    from robmem.empirics.attacks import PGD, TradesPGD
    from robmem.empirics.config import TrainConfig
    from robmem.empirics.trainers import method_step

    torch.manual_seed(0)
    model = build_model(name, 10, M1D_SHAPE, **kw)
    x, y = torch.rand(16, *M1D_SHAPE), torch.randint(0, 10, (16,))
    model.train()
    model(x)
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    for attack in (PGD(0.05, 0.02, 3), TradesPGD(0.05, 0.02, 3)):
        x_adv = attack(model, x, y)
        assert x_adv.shape == x.shape and float((x_adv - x).abs().max()) <= 0.05 + 1e-6
        assert model.training
        for k, v in model.state_dict().items():
            assert torch.equal(v, buffers[k]), k
    for method in ("pgd", "trades"):
        cfg = TrainConfig(dataset="mnist1d", model=name, method=method, attack_steps=2)
        out = method_step(cfg, model, x, y, torch.arange(16), 1, None)
        assert torch.isfinite(out.loss)
        out.loss.backward()
        assert all(p.grad is not None for p in model.parameters())
        model.zero_grad()


def test_mnist1d_training_run_with_cnn1d(tmp_path, monkeypatch):
    """One real epoch: MNIST-1D, BN CNN, PGD-AT, MNIST-1D augmentation, standardization."""
    import robmem.empirics.data
    from robmem.empirics.config import TrainConfig
    from robmem.empirics.data import model_normalization
    from robmem.empirics.trainers import load_model_from_run, train

    cfg = TrainConfig(
        dataset="mnist1d", n_train=64, n_test=32, model="cnn1d",
        model_kwargs={"channels": [8, 8], **model_normalization("mnist1d")},
        method="pgd", epsilon=0.05, attack_steps=2, attack_step_size=0.02, eval_attack_steps=2,
        epochs=1, batch_size=32, augment=True, num_threads=1,
    )  # fmt: skip
    monkeypatch.setattr(robmem.empirics.data, "MNIST1D_DEFAULT_NUM_SAMPLES", 300)  # generate fewer
    result = train(cfg, tmp_path / "run", progress=False)
    row = result.metrics[-1]
    assert 0.0 <= row["train_robust_acc"] <= 1.0 and np.isfinite(row["grad_norm_sq_mean"])
    model, _, _ = load_model_from_run(tmp_path / "run")
    assert torch.allclose(model.normalize.std, torch.tensor([1 / 12]))
