"""The verdict rules of the claim entries, on hand-made numbers (criteria as written)."""

from __future__ import annotations

from bridge.claims.at_small import combine, e1_verdict, e2_checks
from bridge.claims.construction import b3_verdict
from bridge.registry import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED


def test_e1_rule() -> None:
    assert e1_verdict(robust_gap=54.2, clean_gap=12.7) == REPRODUCED  # [P1] Table 1
    assert e1_verdict(robust_gap=6.0, clean_gap=4.0) == INCONCLUSIVE  # ratio < 2
    assert e1_verdict(robust_gap=3.0, clean_gap=0.0) == INCONCLUSIVE  # below 5 pts
    assert e1_verdict(robust_gap=2.0, clean_gap=2.5) == NOT_REPRODUCED
    assert combine([REPRODUCED, REPRODUCED]) == REPRODUCED
    assert combine([REPRODUCED, NOT_REPRODUCED]) == INCONCLUSIVE


def _landscape(train_first, train_last, train_last_2e, test_last):
    eps = [0.0, 0.1, 0.2]

    def split(g1, g2):
        return {"eps": eps, "grad_norm_mean": [0.0, g1, g2], "loss_change_mean": [0, 0, 0]}

    return {
        "landscape": {
            "5": {"train": split(train_first, 1.0), "test": split(train_first, 1.0)},
            "30": {"train": split(train_last, train_last_2e), "test": split(test_last, 1.0)},
        }
    }


def test_e2_checks() -> None:
    c = e2_checks(_landscape(5.0, 2.0, 4.0, 3.0), 0.1)
    assert c["a_train_falls_over_epochs"] and c["b_rises_after_radius"]
    assert c["c_global_above_local"]
    c = e2_checks(_landscape(1.0, 2.0, 2.5, 1.0), 0.1)
    assert not c["a_train_falls_over_epochs"] and not c["b_rises_after_radius"]
    assert not c["c_global_above_local"]


def test_b3_rule() -> None:
    row = {
        "certified_robust_train_acc": 100.0,
        "agrees_with_fclean_outside_balls": True,
        "clean_test_acc_hat": 97.0,
        "clean_test_acc_fclean": 96.0,
        "robust_test_acc_hat": 40.0,
    }
    assert b3_verdict([row]) == REPRODUCED
    assert b3_verdict([{**row, "robust_test_acc_hat": 90.0}]) == INCONCLUSIVE
    assert b3_verdict([{**row, "certified_robust_train_acc": 99.0}]) == NOT_REPRODUCED
    assert b3_verdict([{**row, "agrees_with_fclean_outside_balls": False}]) == NOT_REPRODUCED
    assert b3_verdict([{**row, "clean_test_acc_hat": 90.0}]) == NOT_REPRODUCED
    assert b3_verdict([row, {**row, "robust_test_acc_hat": 90.0}]) == INCONCLUSIVE


def test_gpu_tier_configs_are_valid_paper_settings() -> None:
    # The gpu tier cannot run in CI; its TrainConfigs must at least validate and carry the
    # papers' threat model (ℓ∞ 8/255, PGD-10 with step 2/255) on CIFAR-10.
    from bridge.claims.at_small import at_config
    from bridge.claims.noise_rates import NOISE_RATES, noise_config
    from bridge.claims.overfitting import e6_config
    from bridge.claims.random_labels import rl_config

    configs = [at_config("gpu"), at_config("gpu", method="standard")]
    configs += [rl_config("gpu", "pgd"), rl_config("gpu", "trades", 1.0)]
    configs += [noise_config("gpu", r) for r in NOISE_RATES]
    configs += [e6_config("gpu", "pgd"), e6_config("gpu", "pgd-te")]
    for cfg in configs:
        assert cfg.dataset == "cifar10"
        assert abs(cfg.epsilon - 8 / 255) < 1e-12 and cfg.attack_steps == 10
        assert abs(cfg.attack_step_size - 2 / 255) < 1e-12
    te = e6_config("gpu", "pgd-te")
    assert (te.te_start_epoch, te.te_end_epoch, te.te_weight, te.epochs) == (90, 150, 300.0, 200)
    assert rl_config("gpu", "pgd").label_noise == 1.0
