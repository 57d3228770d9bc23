"""Trainers: TE math by hand and against a literal re-implementation of [P2]'s loss.py
procedure, method losses, gradient norms, evaluation, callbacks, NaN handling (SPEC E3–E6)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robmem.empirics import trainers
from robmem.empirics.attacks import PGD
from robmem.empirics.config import TrainConfig
from robmem.empirics.methods import (
    TEBank,
    _te_attack_loss,
    method_step,
    te_penalty,
    te_rampup,
    te_weight,
)
from robmem.empirics.runs import load_metrics, load_steps
from robmem.empirics.trainers import (
    NonFiniteLossError,
    compiled_step_model,
    evaluate,
    global_grad_norm,
    train,
)

TINY = dict(
    dataset="digits",
    n_train=96,
    n_test=64,
    model="mlp",
    model_kwargs={"hidden": [16]},
    epochs=2,
    batch_size=32,
    attack_steps=2,
    eval_attack_steps=2,
    schedule="constant",
    lr=0.05,
    num_threads=1,
)


# ------------------------------------------------------------------ TE pieces by hand
def test_te_rampup_hand_values():
    assert te_rampup(89, 90, 150) == 0.0
    assert te_rampup(90, 90, 150) == pytest.approx(math.exp(-5.0))
    assert te_rampup(120, 90, 150) == pytest.approx(math.exp(-5.0 * 0.25))
    assert te_rampup(150, 90, 150) == pytest.approx(1.0)
    assert te_rampup(151, 90, 150) == 1.0
    c = TrainConfig(method="pgd-te")
    # w(90) = 300 e^-5 ≈ 2.02 (notes §4.2), w(150) = 300
    assert te_weight(90, c) == pytest.approx(2.0214, abs=1e-4)
    assert te_weight(150, c) == pytest.approx(300.0)
    assert te_weight(150, TrainConfig(method="pgd")) == 0.0
    with pytest.raises(ValueError, match="end"):
        te_rampup(1, 5, 5)


def test_te_bank_ema_and_renormalisation_by_hand():
    bank = TEBank(num_samples=3, num_classes=2, alpha=0.9)
    p1 = torch.tensor([[0.2, 0.8], [0.6, 0.4]])
    t = bank.update(torch.tensor([0, 2]), p1)
    # S = 0.1 p1, renormalised target = p1
    torch.testing.assert_close(bank.bank[[0, 2]], 0.1 * p1)
    torch.testing.assert_close(t, p1)
    assert torch.equal(bank.bank[1], torch.zeros(2))
    p2 = torch.tensor([[0.5, 0.5]])
    t2 = bank.update(torch.tensor([0]), p2)
    s = 0.9 * 0.1 * torch.tensor([0.2, 0.8]) + 0.1 * torch.tensor([0.5, 0.5])
    torch.testing.assert_close(bank.bank[0], s)
    torch.testing.assert_close(t2[0], s / s.sum())
    # hand numbers: S = (0.068, 0.122), t = (0.35789..., 0.64210...)
    assert t2[0, 0].item() == pytest.approx(0.068 / 0.19, rel=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        TEBank(2, 2, alpha=1.0)


def test_te_penalty_batch_mean_is_official_mean_over_batch_and_classes():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(5, 10, generator=g).softmax(1)
    t = torch.rand(5, 10, generator=g).softmax(1)
    assert te_penalty(p, t).mean().item() == pytest.approx(((p - t) ** 2).mean().item())
    assert te_penalty(p, t)[2].item() == pytest.approx(((p[2] - t[2]) ** 2).sum().item() / 10)


# --------------------------------------- literal re-implementation of the official procedure
class _TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.bn = nn.BatchNorm1d(8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(F.relu(self.bn(self.fc1(x))))


def _official_pgd_te(model, x, y, index, epoch, bank, weight, eps, step, steps, es, mom):
    """[P2] PGD_TE.__call__ as described in notes §4.2 (written independently)."""
    model.eval()
    logits = model(x)
    if epoch >= es:
        prob = F.softmax(logits.detach(), dim=1)
        bank[index] = mom * bank[index] + (1 - mom) * prob
        soft = bank[index] / bank[index].sum(1, keepdim=True)
    x_adv = x.detach() + torch.empty_like(x).uniform_(-eps, eps)
    for _ in range(steps):
        x_adv.requires_grad_()
        with torch.enable_grad():
            la = model(x_adv)
            loss = F.cross_entropy(la, y)
            if epoch >= es:
                loss = loss + weight * ((F.softmax(la, dim=1) - soft) ** 2).mean()
        (grad,) = torch.autograd.grad(loss, [x_adv])
        x_adv = x_adv.detach() + step * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    model.train()
    la = model(x_adv)
    loss = F.cross_entropy(la, y)
    if epoch >= es:
        loss = loss + weight * ((F.softmax(la, dim=1) - soft) ** 2).mean()
    return loss


def _official_trades_te(model, x, y, index, epoch, bank, weight, eps, step, steps, es, mom, beta):
    """[P2] TRADES_TE.__call__ as described in notes §4.2 (written independently)."""
    kl = nn.KLDivLoss(reduction="sum")
    model.eval()
    b = len(x)
    logits = model(x)
    if epoch >= es:
        prob = F.softmax(logits.detach(), dim=1)
        bank[index] = mom * bank[index] + (1 - mom) * prob
        soft = bank[index] / bank[index].sum(1, keepdim=True)
    x_adv = x.detach() + 0.001 * torch.randn(x.shape)
    for _ in range(steps):
        x_adv.requires_grad_()
        with torch.enable_grad():
            la = model(x_adv)
            lk = kl(F.log_softmax(la, dim=1), F.softmax(logits, dim=1))
            if epoch >= es:
                loss = (beta / b) * lk + weight * ((F.softmax(la, dim=1) - soft) ** 2).mean()
            else:
                loss = lk
        (grad,) = torch.autograd.grad(loss, [x_adv])
        x_adv = x_adv.detach() + step * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    model.train()
    ln, la = model(x), model(x_adv)
    loss = F.cross_entropy(ln, y) + beta * kl(F.log_softmax(la, dim=1), F.softmax(ln, dim=1)) / b
    if epoch >= es:
        loss = loss + weight * ((F.softmax(ln, dim=1) - soft) ** 2).mean()
    return loss


@pytest.mark.parametrize("method", ["pgd-te", "trades-te"])
@pytest.mark.parametrize("epoch", [3, 5, 9])
def test_te_losses_match_the_official_procedure(method, epoch):
    config = TrainConfig(
        method=method, epsilon=0.05, attack_step_size=0.02, attack_steps=3,
        te_start_epoch=5, te_end_epoch=8, te_weight=300.0, trades_beta=6.0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = _TinyNet()
    x = 0.3 + 0.4 * torch.rand(6, 4)  # interior points: the [0,1] clamps are inactive
    y = torch.randint(0, 3, (6,))
    index = torch.tensor([0, 2, 4, 5, 7, 9])
    init_bank = torch.rand(10, 3) * (epoch > 5)  # a bank from earlier epochs
    ref_model = _TinyNet()
    ref_model.load_state_dict(model.state_dict())
    ours_bank = TEBank(10, 3, alpha=0.9)
    ours_bank.bank.copy_(init_bank)
    ref_bank = init_bank.clone()
    w = te_weight(epoch, config)

    torch.manual_seed(123)
    ours = method_step(config, model, x, y, index, epoch, ours_bank).loss
    torch.manual_seed(123)
    args = (ref_model, x, y, index, epoch, ref_bank, w, 0.05, 0.02, 3, 5, 0.9)
    if method == "pgd-te":
        ref = _official_pgd_te(*args)
    else:
        ref = _official_trades_te(*args, 6.0)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5, abs=1e-6)
    torch.testing.assert_close(ours_bank.bank, ref_bank)
    # BatchNorm statistics were updated by the same train-mode forwards
    torch.testing.assert_close(model.bn.running_mean, ref_model.bn.running_mean)


def test_te_term_is_inside_the_attack(monkeypatch):
    seen = []
    real = PGD.__call__

    def spy(self, *a, **k):
        seen.append(k.get("loss_fn"))
        return real(self, *a, **k)

    monkeypatch.setattr(PGD, "__call__", spy)
    config = TrainConfig(method="pgd-te", te_start_epoch=2, te_end_epoch=3, attack_steps=1)
    torch.manual_seed(0)
    model = _TinyNet()
    x, y = torch.rand(4, 4), torch.randint(0, 3, (4,))
    bank = TEBank(4, 3, 0.9)
    method_step(config, model, x, y, torch.arange(4), 1, bank)
    method_step(config, model, x, y, torch.arange(4), 2, bank)
    assert seen[0] is None and callable(seen[1])


def test_pgd_te_attack_objective_has_the_official_sign_gradient():
    torch.manual_seed(1)
    model = _TinyNet().eval()
    x = torch.rand(5, 4, requires_grad=True)
    y = torch.randint(0, 3, (5,))
    t = torch.rand(5, 3).softmax(1)
    loss_fn = _te_attack_loss(t, 40.0)
    (g_ours,) = torch.autograd.grad(loss_fn(model(x), y).sum(), x)
    logits = model(x)
    official = F.cross_entropy(logits, y) + 40.0 * ((F.softmax(logits, 1) - t) ** 2).mean()
    (g_ref,) = torch.autograd.grad(official, x)
    assert torch.equal(g_ours.sign(), g_ref.sign())


# ------------------------------------------------------------------ other pieces
def test_global_grad_norm_is_the_norm_of_all_gradients_concatenated():
    torch.manual_seed(0)
    model = _TinyNet()
    F.cross_entropy(model(torch.rand(8, 4)), torch.randint(0, 3, (8,))).backward()
    flat = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert global_grad_norm(model).item() == pytest.approx(flat.norm().item(), rel=1e-6)


def test_evaluate_against_a_direct_computation_and_eps_zero():
    torch.manual_seed(0)
    model = _TinyNet()
    model.train()
    x, y = torch.rand(50, 4), torch.randint(0, 3, (50,))
    res = evaluate(model, x, y, PGD(0.0, 0.01, 3), batch_size=7)
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert res["clean_acc"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert res["clean_loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert res["robust_acc"] == res["clean_acc"]  # eps = 0 gives exactly clean accuracy
    strong = evaluate(model, x, y, PGD(0.5, 0.1, 10), batch_size=50)
    assert strong["robust_acc"] <= res["clean_acc"]


# ------------------------------------------------------------------ whole runs
@pytest.mark.parametrize("method", ["standard", "pgd", "fgsm-rs", "trades", "pgd-te", "trades-te"])
def test_every_method_trains_and_logs_all_metrics(method, tmp_path):
    config = TrainConfig(**TINY, method=method, te_start_epoch=2, te_end_epoch=3)
    result = train(config, tmp_path / "run", progress=False)
    rows = load_metrics(tmp_path / "run")
    assert [r["epoch"] for r in rows] == [1, 2] and rows == result.metrics
    for key in (
        "train_clean_acc", "train_robust_acc", "test_clean_acc", "test_robust_acc",
        "train_clean_loss", "train_robust_loss", "test_clean_loss", "test_robust_loss",
        "grad_norm_mean", "lr", "time_train_s",
    ):  # fmt: skip
        assert rows[-1][key] is not None, key
    steps = load_steps(tmp_path / "run")
    assert len(steps) == 2 * 3  # 96 examples / batch 32, two epochs
    assert all(s["grad_norm"] > 0 for s in steps)
    assert rows[-1]["te_weight"] == (300.0 * math.exp(-5.0) if method.endswith("-te") else 0.0)


def test_random_labels_are_saved_and_used(tmp_path):
    config = TrainConfig(**{**TINY, "epochs": 1}, label_noise=1.0, label_noise_seed=3)
    train(config, tmp_path / "run", progress=False)
    labels = torch.load(tmp_path / "run" / "labels.pt", weights_only=True)
    changed = (labels["train_labels"] != labels["original_labels"]).float().mean().item()
    assert 0.6 < changed < 1.0  # about (C-1)/C of random labels differ from the truth
    row = load_metrics(tmp_path / "run")[0]
    assert "train_clean_acc_original" in row


def test_callbacks_add_metrics_and_clashes_are_errors(tmp_path):
    seen = []

    def cb(ctx):
        seen.append((ctx.epoch, ctx.model.training, len(ctx.train_y)))
        return {"my_metric": float(ctx.epoch)} if ctx.epoch == 2 else {}

    train(TrainConfig(**TINY), tmp_path / "a", progress=False, callbacks=[cb])
    rows = load_metrics(tmp_path / "a")
    assert "my_metric" not in rows[0] and rows[1]["my_metric"] == 2.0
    assert [s[0] for s in seen] == [1, 2] and seen[0][2] == 96
    with pytest.raises(ValueError, match="already used"):
        train(TrainConfig(**TINY), tmp_path / "b", progress=False, callbacks=[lambda c: {"lr": 0}])


def test_nan_loss_stops_with_a_clear_message_and_keeps_last_good(tmp_path, monkeypatch):
    real = trainers.method_step

    def poisoned(config, model, x, y, index, epoch, bank, **kw):
        out = real(config, model, x, y, index, epoch, bank, **kw)
        if epoch == 2:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(trainers, "method_step", poisoned)
    with pytest.raises(NonFiniteLossError, match="epoch 2.*Last good checkpoint.*epoch 1"):
        train(TrainConfig(**TINY), tmp_path / "run", progress=False)
    from robmem.empirics.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["epoch"] == 1
    assert [r["epoch"] for r in load_metrics(tmp_path / "run")] == [1]
    status = (tmp_path / "run" / "status.json").read_text()
    assert "failed" in status and "non-finite" in status


def test_best_checkpoint_selection_and_test_label(tmp_path):
    cfg = TrainConfig(**TINY, val_size=16, select_metric="val_robust_acc")
    res = train(cfg, tmp_path / "v", progress=False)
    assert res.best_checkpoint.name == "best.pt" and res.best["selected_on"] == "validation"
    vals = [r["val_robust_acc"] for r in res.metrics]
    assert res.best["value"] == max(vals)
    assert res.best["epoch"] == 1 + vals.index(max(vals))
    cfg = TrainConfig(**TINY, select_metric="test_robust_acc", allow_test_selection=True)
    res = train(cfg, tmp_path / "t", progress=False)
    assert res.best_checkpoint.name == "best-by-test.pt" and res.best["selected_on"] == "test"
    assert res.best_checkpoint.exists()
    with pytest.raises(ValueError, match="select_metric"):
        train(TrainConfig(**TINY, select_metric="nope"), tmp_path / "n", progress=False)


def test_bad_data_inputs(tmp_path, monkeypatch):
    from robmem.empirics import data as data_mod

    real = data_mod.load_dataset

    def shifted(*a, **k):
        split = real(*a, **k)
        split.train_x = split.train_x + 2.0
        return split

    monkeypatch.setattr(data_mod, "load_dataset", shifted)
    with pytest.raises(ValueError, match=r"train_x.*\[0, 1\]"):
        train(TrainConfig(**TINY), tmp_path / "run", progress=False)
    with pytest.raises(TypeError, match="config"):
        train({"epochs": 1}, tmp_path / "x", progress=False)


@pytest.mark.slow
def test_pgd_at_beats_standard_on_robust_training_accuracy(tmp_path):
    """SPEC E1 at the smoke/cpu tier: PGD-AT's robust train accuracy > standard training's."""
    base = dict(
        dataset="digits", model="mlp", epochs=15, batch_size=64, lr=0.05, schedule="cosine",
        epsilon=0.1, attack_steps=5, attack_step_size=0.04, eval_attack_steps=10,
        num_threads=1,
    )  # fmt: skip
    std = train(TrainConfig(**base, method="standard"), tmp_path / "s", progress=False)
    adv = train(TrainConfig(**base, method="pgd"), tmp_path / "p", progress=False)
    s, a = std.metrics[-1], adv.metrics[-1]
    assert s["train_clean_acc"] > 0.9 and a["train_clean_acc"] > 0.9
    assert a["train_robust_acc"] > s["train_robust_acc"] + 0.2


def test_robust_train_accuracy_is_over_the_full_training_set(tmp_path):
    full = train(TrainConfig(**{**TINY, "epochs": 1}), tmp_path / "f", progress=False)
    assert full.metrics[0]["train_eval_n"] == 96
    part = TrainConfig(**{**TINY, "epochs": 1}, eval_train_size=10)
    assert train(part, tmp_path / "p", progress=False).metrics[0]["train_eval_n"] == 10


def test_compiled_training_matches_eager_and_checkpoints_plain_keys(tmp_path):
    from robmem.empirics.checkpoint import load_checkpoint

    cfg = dict(TINY, epochs=1, n_train=64, eval_train_size=32)
    eager = train(TrainConfig(**cfg), tmp_path / "eager", progress=False)
    comp = train(
        TrainConfig(**cfg, compile=True, compile_mode="max-autotune-no-cudagraphs"),
        tmp_path / "compiled",
        progress=False,
    )
    a, b = eager.metrics[-1], comp.metrics[-1]
    # Same math; inductor may fuse/reorder float ops, so equal up to rounding.
    assert b["train_objective"] == pytest.approx(a["train_objective"], rel=1e-4, abs=1e-5)
    assert b["test_clean_acc"] == pytest.approx(a["test_clean_acc"], abs=1 / 64)
    keys = load_checkpoint(comp.last_checkpoint)["model"].keys()
    assert keys and not any(k.startswith("_orig_mod.") for k in keys)


def test_compiled_step_model_is_the_model_itself_without_compile():
    model = torch.nn.Linear(3, 2)
    assert compiled_step_model(model, TrainConfig()) is model


def test_compiled_pgd_step_compiles_once_and_then_reuses_its_graphs():
    # The attack toggles eval mode and requires_grad on every step; after the first steps
    # those graph variants are cached, so later steps must not compile anything new.
    from torch._dynamo.utils import counters

    from robmem.empirics.models import build_model
    from robmem.empirics.trainers import _autocast, training_step

    torch._dynamo.reset()
    counters.clear()
    cfg = TrainConfig(
        method="pgd", epsilon=8 / 255, attack_step_size=2 / 255, attack_steps=2, compile=True,
        model="lenet5", precision="bf16",
        channels_last=True,
    )  # fmt: skip
    model = build_model("lenet5", 10, (3, 32, 32)).to(memory_format=torch.channels_last)
    step_model = compiled_step_model(model, cfg)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.rand(8, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (8,))
    args = (x, y, torch.arange(8), 1, None, _autocast(cfg, x.device), 0.01)
    for _ in range(2):
        training_step(cfg, step_model, model, opt, *args)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs >= 1
    for _ in range(3):
        out, gnorm, _ = training_step(cfg, step_model, model, opt, *args)
        assert gnorm is not None and torch.isfinite(out.loss)
    assert counters["stats"]["unique_graphs"] == graphs


def test_every_config_method_has_a_method_entry():
    from robmem.empirics import config
    from robmem.empirics.methods import METHODS

    assert set(METHODS) == set(config.METHODS)
    assert {name for name, m in METHODS.items() if m.te} == {"pgd-te", "trades-te"}
