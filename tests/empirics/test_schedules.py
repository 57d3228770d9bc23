"""Schedules against closed forms, numpy interpolation and torch's own schedulers."""

import math

import numpy as np
import pytest
import torch

from robmem.empirics.config import TrainConfig
from robmem.empirics.schedules import (
    Schedule,
    cosine_lr,
    cyclic_lr,
    piecewise_lr,
    schedule_from_config,
)


def _torch_lrs(make_scheduler, n_steps, step_every):
    """Rates a torch scheduler gives to each of n_steps optimiser steps."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = make_scheduler(opt)
    rates = []
    for k in range(n_steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        if (k + 1) % step_every == 0:
            sched.step()
    return rates


def test_multistep_equals_torch_multisteplr_stepped_per_epoch():
    spe, epochs = 3, 12
    ours = Schedule("multistep", 0.1, epochs, milestones=(4, 9), gamma=0.1)
    ref = _torch_lrs(
        lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[4, 9], gamma=0.1),
        spe * epochs,
        spe,
    )
    got = [ours.lr_at(k, spe) for k in range(spe * epochs)]
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    # [P2] train_te.py: 1-based epochs 1..4 at lr, 5..9 at lr/10, then lr/100
    assert got[4 * spe - 1] == pytest.approx(0.1) and got[4 * spe] == pytest.approx(0.01)


def test_cosine_equals_torch_cosine_annealing_per_iteration():
    spe, epochs = 4, 5
    ours = Schedule("cosine", 0.1, epochs)
    ref = _torch_lrs(
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=spe * epochs),
        spe * epochs + 1,
        1,
    )
    # our step k uses the rate torch reaches after k + 1 scheduler steps ([R20] t = (i+1)/n)
    got = [ours.lr_at(k, spe) for k in range(spe * epochs)]
    np.testing.assert_allclose(got, ref[1:], rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("epochs", [10, 200])
def test_piecewise_closed_form(epochs):
    # [R20]: lr for t/E < 1/2, lr/10 for t/E < 3/4, lr/100 after
    for t in np.linspace(0, epochs, 97):
        expected = 0.1 if t < epochs / 2 else 0.01 if t < 3 * epochs / 4 else 0.001
        assert piecewise_lr(t, 0.1, epochs) == pytest.approx(expected)
    s = Schedule("piecewise", 0.1, epochs)
    spe = 7
    # last step of epoch E/2 has t = E/2 exactly and already decays ([R20] convention)
    k = epochs // 2 * spe - 1
    assert s.lr_at(k, spe) == pytest.approx(0.01)
    assert s.lr_at(k - 1, spe) == pytest.approx(0.1)


def test_cyclic_matches_numpy_interp():
    epochs, peak = 15, 0.4
    for t in np.linspace(-1, epochs + 1, 301):
        ref = np.interp(t, [0, peak * epochs, epochs], [0, 0.2, 0])
        assert cyclic_lr(t, 0.2, epochs, peak) == pytest.approx(ref, abs=1e-12)


def test_cosine_closed_form_and_constant():
    assert cosine_lr(0, 0.1, 10) == pytest.approx(0.1)
    assert cosine_lr(5, 0.1, 10) == pytest.approx(0.05)
    assert cosine_lr(10, 0.1, 10) == pytest.approx(0.0, abs=1e-15)
    assert cosine_lr(2.5, 0.1, 10) == pytest.approx(0.05 * (1 + math.cos(math.pi / 4)))
    assert Schedule("constant", 0.3, 4).lr_at(1000, 3) == 0.3


def test_schedule_from_config():
    c = TrainConfig(schedule="multistep", milestones=[2, 3], lr=0.5, lr_gamma=0.5, epochs=4)
    s = schedule_from_config(c)
    assert [s.lr_at(k, 1) for k in range(4)] == [0.5, 0.5, 0.25, 0.125]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "step"}, "name"),
        ({"lr_max": -1.0}, "lr_max"),
        ({"epochs": 0}, "epochs"),
        ({"peak_fraction": 0.0}, "peak_fraction"),
        ({"gamma": 0.0}, "gamma"),
    ],
)
def test_bad_schedule_arguments(kwargs, field):
    base = {"name": "cosine", "lr_max": 0.1, "epochs": 3}
    with pytest.raises(ValueError, match=field):
        Schedule(**{**base, **kwargs})


def test_bad_step_arguments():
    s = Schedule("cosine", 0.1, 3)
    with pytest.raises(ValueError, match="step"):
        s.lr_at(-1, 2)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        s.lr_at(0, 0)


def test_linear_lr_scaling_to_the_batch_size():
    # Goyal et al. 2017: lr 0.1 at batch 128 becomes 0.4 at batch 512 (Bag of Tricks: 256→0.2).
    c = TrainConfig(schedule="constant", lr=0.1, batch_size=512, lr_reference_batch=128)
    assert c.peak_lr == pytest.approx(0.4)
    assert schedule_from_config(c).lr_at(0, 1) == pytest.approx(0.4)
    c = TrainConfig(schedule="constant", lr=0.1, batch_size=256, lr_reference_batch=128)
    assert schedule_from_config(c).lr_at(0, 1) == pytest.approx(0.2)
    assert TrainConfig(lr=0.1, batch_size=512).peak_lr == 0.1  # off by default
    with pytest.raises(ValueError, match="lr_reference_batch must be >= 1"):
        TrainConfig(lr_reference_batch=0)
