"""Numerical checks of [P1] §5 (SPEC T3): Thm 5.1, the robust max-margin limit, Thm 5.2."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robmem.theory.data_models import linear_separable_data
from robmem.theory.linear import (
    NotRobustlySeparableError,
    robust_max_margin_direction,
    worst_case_perturbation,
)
from robmem.theory.linear_dynamics_torch import (
    adversarial_training_linear,
    steepest_ascent_step,
    train_mixed_learner,
)

torch.set_num_threads(1)

#: Target agreement between the long-run AT direction and the cvxpy optimum (issue 3).
COSINE_TARGET = 0.99


@pytest.mark.parametrize("p", [1.0, 2.0, math.inf, 3.0])
def test_fgsm_step_is_the_exact_linear_worst_case(p) -> None:
    # Oracle: robmem.theory.linear's numpy closed form. For f = w'x the input gradient of the loss
    # is -y w, so the FGSM step must equal -delta y d||w||_q.
    rng = np.random.default_rng(0)
    w, y = rng.normal(size=5), rng.choice([-1.0, 1.0], size=7)
    grad = torch.as_tensor(-y[:, None] * w[None, :])
    step = steepest_ascent_step(grad, 0.3, p).numpy()
    np.testing.assert_allclose(step, worst_case_perturbation(w, y, delta=0.3, p=p), atol=1e-12)


def test_theorem_5_1_cosine_to_w_star_approaches_one() -> None:
    data = linear_separable_data(200, 0, 50, alpha=1.0, beta=0.1, noise_std=0.2, seed=0)
    traj = adversarial_training_linear(
        data.x, data.y, delta=0.3, p=2, n_iter=1000, reference=data.w_star, record_every=100
    )
    cos = traj.cosine_to_reference
    assert cos[-1] > 0.999
    assert np.all(np.diff(cos) >= -1e-6)  # monotone approach on this instance


@pytest.mark.parametrize(
    ("dim", "n", "noise", "delta", "p"),
    [
        (2, 20, 0.5, 0.3, 2.0),
        (2, 20, 0.5, 0.1, math.inf),
        (50, 100, 0.3, 0.3, 2.0),
        (50, 100, 0.3, 0.05, math.inf),
    ],
)
def test_long_run_at_direction_matches_cvxpy_max_margin(dim, n, noise, delta, p) -> None:
    data = linear_separable_data(n, 0, dim, alpha=1.0, beta=0.1, noise_std=noise, seed=1)
    opt = robust_max_margin_direction(data.x, data.y, delta=delta, p=p)
    traj = adversarial_training_linear(
        data.x, data.y, delta=delta, p=p, n_iter=3000, reference=opt.direction, record_every=3000
    )
    assert traj.cosine_to_reference[-1] >= COSINE_TARGET
    assert traj.robust_margins[-1] <= opt.dual_value + 1e-9  # never beats the certificate


def test_mixed_learner_memorizes_small_margin_noise() -> None:
    data = linear_separable_data(400, 20, 30, alpha=1.0, beta=0.1, noise_std=0.3, seed=0)
    delta = 0.3
    # the linear part alone cannot be robust here (LP evidence), so memorization is needed
    with pytest.raises(NotRobustlySeparableError):
        robust_max_margin_direction(data.x, data.y, delta=delta, p=2)
    res = train_mixed_learner(data, delta=delta, bias=0.5, n_iter=300, seed=0)
    assert res.robust_train_error <= 0.02
    assert res.clean_train_error == 0.0
    assert res.alignment.mean() > res.alignment_at_init.mean() + 0.2


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="delta"):
        adversarial_training_linear(np.ones((2, 2)), [1, -1], delta=-1)
    with pytest.raises(ValueError, match="n_iter"):
        adversarial_training_linear(np.ones((2, 2)), [1, -1], delta=0.1, n_iter=0)
    data = linear_separable_data(5, 0, 3, 1.0, 0.1, 0.1)
    with pytest.raises(ValueError, match="n_small"):
        train_mixed_learner(data, delta=0.2)
