"""What FGSM, FGSM-RS and the TRADES attack return, checked against hand computation.

Each test pins a documented property of an attack that a plausible one-line bug breaks while
every value-level test of PGD still passes (found by ``benchmarks/mutation_score.py --target
attacks``):

- FGSM returns the one-step iterate ``clip(x + ε·sign(∇))`` even where that step *lowers* the
  loss (a "keep the best iterate" FGSM would return the clean point);
- FGSM-RS takes exactly one step of α = 1.25 ε from a uniform start (Wong et al. 2020): some
  coordinates stay strictly inside the ε-box, and none lands between the two step images;
- the TRADES attack moves: at ``x_adv = x`` the KL gradient is exactly zero, so it must start
  from the 0.001·N(0, I) point (TRADES' trades.py);
- an attack's ``random_start`` attribute tells the truth;
- ``rows=(lo, hi, n)`` (a data-parallel shard) gives rows ``lo:hi`` of the whole batch's
  result, with the whole batch's random draws (uniform, ℓ2, Gaussian, restarts, NHWC);
- a call-time ``loss_fn`` is the constructor's.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from robmem.empirics.attacks import FGSM, FGSMRS, PGD, TradesPGD


class Overshoot(nn.Module):
    """1-D input, two logits ``[0, g(x)]`` with ``g(x) = 1 − 20 (x − 0.6)²``: class 1 wins for
    |x − 0.6| < 0.2236. At x = 0.5 (label 0) the point is misclassified and the loss grows with
    x, but a step of 0.5 to x = 1 overshoots into the correctly classified region."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = 1.0 - 20.0 * (x[:, :1] - 0.6) ** 2
        return torch.cat([torch.zeros_like(g), g], dim=1)


class Linear(nn.Module):
    """Logits ``[0, w·x]``: for label 0 the loss increases along sign(w) everywhere."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1) @ self.w
        return torch.stack([torch.zeros_like(z), z], dim=1)


def test_fgsm_returns_the_step_even_where_it_lowers_the_loss() -> None:
    model, x, y = Overshoot(), torch.tensor([[0.5]]), torch.tensor([0])
    loss = nn.functional.cross_entropy
    # independent arithmetic: g'(0.5) = −40 (0.5 − 0.6) = 4 > 0, so the ε = 0.5 step goes to 1.0
    x_adv = FGSM(0.5)(model, x, y)
    assert x_adv.item() == 1.0
    assert loss(model(x_adv), y) < loss(model(x), y)  # the step lowered the loss here


def test_fgsm_rs_is_one_step_of_1_25_eps_from_a_uniform_start() -> None:
    """Linear model, label 0, x = 0.5 (the [0, 1] box never binds at ε = 0.1): from
    δ₀ ~ U(−ε, ε), one step gives δ = clamp(δ₀ + 1.25 ε s, −ε, ε) with s = sign(w), so
    |δ| ∈ [0.25 ε, ε] with sign s, and |δ| < ε exactly where δ₀·s < −0.25 ε (probability
    3/8). A second step, or no random start, puts every coordinate on the box's face."""
    d, eps = 4000, 0.1
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(d, generator=gen)
    x, y = torch.full((1, d), 0.5), torch.tensor([0])
    torch.manual_seed(1)
    delta = (FGSMRS(eps, 1.25 * eps)(Linear(w), x, y) - x)[0].double()
    s = torch.sign(w).double()
    assert torch.all(torch.sign(delta) == s)
    mag = delta.abs()
    assert mag.min() >= 0.25 * eps - 1e-6 and mag.max() <= eps + 1e-6
    inside = (mag < eps - 1e-6).double().mean().item()
    assert abs(inside - 3 / 8) < 0.05, inside


def test_fgsm_rs_never_lands_between_its_two_step_images() -> None:
    """Overshoot model, ε = 0.5, α = 0.625, x = 0.5 (ball = [0, 1]): from any start x₀ the step
    goes up to min(x₀ + α, 1) ≥ 0.625 when x₀ < 0.6 and down to max(x₀ − α, 0) ≤ 0.375 when
    x₀ > 0.6, so no returned point lies in (0.375, 0.625). Returning the start when it has the
    higher loss (a "keep best" FGSM-RS) lands there for most starts."""
    x = torch.full((2000, 1), 0.5)
    torch.manual_seed(0)
    x_adv = FGSMRS(0.5, 0.625)(Overshoot(), x, torch.zeros(2000, dtype=torch.long))[:, 0]
    assert not torch.any((x_adv > 0.375 + 1e-6) & (x_adv < 0.625 - 1e-6))
    assert torch.all((x_adv >= 0.0) & (x_adv <= 1.0))


def test_trades_attack_moves_off_the_clean_point() -> None:
    """KL(f(x) ‖ f(x_adv)) has zero gradient at x_adv = x: an attack that starts there never
    moves (sign(0) = 0). TRADES starts at x + 0.001·N(0, I) and then takes full α steps."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 16), nn.Tanh(), nn.Linear(16, 3))
    x = torch.rand(8, 20) * 0.5 + 0.25
    y = torch.zeros(8, dtype=torch.long)
    eps, alpha = 0.05, 0.01
    x_adv = TradesPGD(eps, alpha, 5)(model, x, y)
    moved = (x_adv - x).abs()
    assert moved.max() <= eps + 1e-6
    assert moved.amax(dim=1).min() >= 2 * alpha  # every example moved by ≥ 2 steps somewhere


@pytest.mark.parametrize(
    "make",
    [
        lambda: FGSM(0.05),
        lambda: FGSMRS(0.05, 0.0625),
        lambda: PGD(0.05, 0.01, 3, random_start=True),
        lambda: PGD(0.05, 0.01, 3, random_start=False),
        lambda: TradesPGD(0.05, 0.01, 3),
    ],
    ids=["fgsm", "fgsm-rs", "pgd-rs", "pgd", "trades"],
)
def test_random_start_attribute_tells_the_truth(make) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 16), nn.Tanh(), nn.Linear(16, 3))
    x = torch.rand(8, 20) * 0.5 + 0.25
    y = torch.randint(0, 3, (8,))
    attack = make()
    runs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        runs.append(attack(model, x, y))
    draws = not torch.equal(runs[0], runs[1])
    assert attack.random_start is draws


@pytest.mark.parametrize(
    ("make", "shape", "channels_last"),
    [
        (lambda: PGD(0.1, 0.03, 2), (7, 3, 2, 2), False),
        (lambda: PGD(0.1, 0.03, 2), (7, 3, 2, 2), True),
        (lambda: PGD(0.5, 0.2, 2, norm="2", restarts=2), (7, 12), False),
        (lambda: PGD(0.1, 0.03, 1, restarts=3), (7, 12), False),
        (lambda: TradesPGD(0.1, 0.03, 2), (7, 3, 2, 2), True),
        (lambda: FGSMRS(0.1, 0.125), (7, 12), False),
    ],
    ids=["inf", "inf-nhwc", "l2-restarts", "inf-restarts", "trades-nhwc", "fgsm-rs"],
)
def test_rows_give_the_slice_of_the_whole_batch(make, shape, channels_last) -> None:
    torch.manual_seed(0)
    x = torch.rand(shape) * 0.8 + 0.1
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.zeros(shape[0], dtype=torch.long)
    model = Linear(torch.randn(math.prod(shape[1:])))
    torch.manual_seed(1)
    whole = make()(model, x, y)
    state = torch.get_rng_state()
    for lo, hi in [(0, 3), (3, 7), (7, 7), (0, 7)]:
        torch.manual_seed(1)
        part = make()(model, x[lo:hi], y[lo:hi], rows=(lo, hi, 7))
        assert torch.equal(part, whole[lo:hi]), (lo, hi)
        assert torch.equal(torch.get_rng_state(), state), (lo, hi)
    for bad in [(0, 4, 7), (-2, 1, 7), (5, 8, 7)]:  # length, lo < 0, hi > n
        with pytest.raises(ValueError, match="rows"):
            make()(model, x[:3], y[:3], rows=bad)


def test_call_time_loss_fn_is_the_constructor_one() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = torch.rand(6, 12) * 0.5 + 0.25, torch.randint(0, 3, (6,))

    def neg_margin(logits, labels):
        return -logits.gather(1, labels.view(-1, 1)).squeeze(1)

    def kl_to_uniform(logits, probs):
        return -torch.log_softmax(logits, 1).mean(1)

    for build, fn in ((lambda **k: PGD(0.1, 0.03, 3, **k), neg_margin),
                      (lambda **k: TradesPGD(0.1, 0.03, 3, **k), kl_to_uniform)):  # fmt: skip
        torch.manual_seed(1)
        want = build(loss_fn=fn)(model, x, y)
        torch.manual_seed(1)
        got = build()(model, x, y, loss_fn=fn)
        torch.manual_seed(1)
        default = build()(model, x, y)
        assert torch.equal(got, want) and not torch.equal(got, default)


def test_an_empty_batch_or_zero_steps_draws_nothing() -> None:
    """Without ``rows`` an empty batch draws no start (as before); with zero steps no attack
    draws, sharded or not."""
    model = Linear(torch.randn(4))
    x, y = torch.rand(3, 4), torch.zeros(3, dtype=torch.long)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    PGD(0.1, 0.03, 2)(model, x[:0], y[:0])
    PGD(0.1, 0.03, 0)(model, x, y, rows=(2, 5, 7))
    PGD(0.1, 0.03, 0)(model, x[:0], y[:0], rows=(7, 7, 7))
    assert torch.equal(torch.get_rng_state(), state)
