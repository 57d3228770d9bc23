"""Every empirical claim's criterion produces each of its verdicts from hand-made run records.

No training: :class:`robmem.bridge.records.RunRecord` objects are built here and passed to each
claim's ``evaluate``. A criterion that no input can fail (or pass) would leave one of the four
scenarios of its claim unreachable, and ``test_every_empirical_claim_has_all_scenarios``
requires all four for every empirical claim of the registry.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from robmem.bridge.claims import at_small, construction, noise_rates, overfitting
from robmem.bridge.claims.common import PAIRED_SEEDS, SEEDS
from robmem.bridge.records import EpochRow, FitRecord, LandscapeCurve, Records, RunRecord
from robmem.bridge.registry import ClaimContext, all_claims
from robmem.bridge.verdicts import INCONCLUSIVE, NOT_APPLICABLE, NOT_REPRODUCED, REPRODUCED

TIER = "cpu"
ALL = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_APPLICABLE)


def _config(**kw):
    from robmem.empirics.config import TrainConfig

    return TrainConfig(**kw).to_dict()


def _rec(family, seed, rows, *, config=None, landscape=None, grad_sq=(), measures=None, **kw):
    return RunRecord(
        family=family,
        seed=seed,
        config=config or _config(seed=seed),
        rows=tuple(rows),
        epoch_grad_sq=tuple(grad_sq),
        landscape=landscape or {},
        measures=measures or {},
        **kw,
    )


def _row(epoch=1, rt=0.5, rte=0.5, ct=0.5, cte=0.5, **losses):
    return EpochRow(
        epoch, train_clean_acc=ct, train_robust_acc=rt, test_clean_acc=cte, test_robust_acc=rte,
        **losses,
    )  # fmt: skip


def _evaluate(claim_id: str, records: Records, tmp_path) -> str:
    claim = next(c for c in all_claims() if c.id == claim_id)
    result = claim.evaluate(ClaimContext(TIER, tmp_path, records))
    claim.check_verdict(result.verdict)
    for est in result.estimates.values():  # every number behind a verdict has n and a CI
        assert est.n >= 1 and est.method
    return result.verdict


# ---------------------------------------------------------------- E1
def _e1(rt, rte, ct, cte) -> Records:
    recs = Records()
    for k, s in enumerate(SEEDS[TIER]):
        recs.add(_rec("e1-at-digits", s, [_row(30, rt[k], rte[k], ct[k], cte[k])]))
        recs.add(_rec("e1-std-digits", s, [_row(30, 0.1, 0.05, 1.0, 0.95)]))
    return recs


E1 = {
    REPRODUCED: lambda: _e1([0.95, 0.96, 0.97], [0.60, 0.62, 0.61], [1] * 3, [0.90, 0.91, 0.92]),
    NOT_REPRODUCED: lambda: _e1([0.61, 0.62, 0.60], [0.60, 0.61, 0.60], [1] * 3, [0.9] * 3),
    INCONCLUSIVE: lambda: _e1([0.62, 0.68, 0.74], [0.60] * 3, [1] * 3, [1] * 3),
    NOT_APPLICABLE: lambda: _e1([0.95] * 3, [0.6] * 3, [1] * 3, [0.11, 0.12, 0.13]),
}


# ---------------------------------------------------------------- E2
def _curve(offset: float) -> LandscapeCurve:
    """Loss change max(0, r − offset) on the knee grid: κ is where it reaches half its top."""
    grid = at_small.KNEE_GRID
    lc = tuple(max(0.0, r - offset) for r in grid)
    return LandscapeCurve(grid, tuple(1.0 for _ in grid), lc, 200)


def _e2(at_offset: Callable[[float, int], float], std_offset: Callable[[int], float], rt=0.95):
    recs = Records()
    for s in SEEDS[TIER]:
        for eps in (0.1, *at_small.E2_EXTRA_EPS[TIER]):
            fam = "e1-at-digits" if eps == 0.1 else f"e1-at-digits-eps{eps:g}"
            c = _curve(at_offset(eps, s))
            recs.add(_rec(fam, s, [_row(30, rt=rt)], landscape={30: {"train": c, "test": c}}))
        c = _curve(std_offset(s))
        recs.add(_rec("e1-std-digits", s, [_row(30)], landscape={30: {"train": c, "test": c}}))
    return recs


E2 = {
    # flat up to ε, then rising; standard training rises from 0
    REPRODUCED: lambda: _e2(lambda eps, s: eps, lambda s: 0.0),
    # the knee moves against ε
    NOT_REPRODUCED: lambda: _e2(lambda eps, s: 0.25 - eps, lambda s: 0.0),
    # knees depend on the seed, not on ε, and straddle the standard one
    INCONCLUSIVE: lambda: _e2(lambda eps, s: (0.05, 0.15, 0.1)[s], lambda s: (0.1, 0.05, 0.15)[s]),
    NOT_APPLICABLE: lambda: _e2(lambda eps, s: eps, lambda s: 0.0, rt=0.2),
}


# ---------------------------------------------------------------- E3 / E4
def _rl(pgd_rt, pgd_cte, tr_rt, tr_ct, tr1_rt=None, grad_ratio=None) -> Records:
    recs = Records()
    for k, s in enumerate(PAIRED_SEEDS[TIER]):
        g = [1.0] * 9
        recs.add(_rec("rl-pgd", s, [_row(150, pgd_rt[k], 0.0, 1.0, pgd_cte[k])], grad_sq=g))
        ratio = 1.0 if grad_ratio is None else grad_ratio[k]
        recs.add(
            _rec("rl-trades-b6", s, [_row(150, tr_rt[k], 0.0, tr_ct[k], 0.1)],
                 grad_sq=[ratio] * 9)
        )  # fmt: skip
        if tr1_rt is not None:
            recs.add(_rec("rl-trades-b1", s, [_row(150, tr1_rt[k], 0.0, 1.0, 0.1)], grad_sq=g))
    return recs


_J = [0.0, 0.01, -0.01, 0.02, -0.02]  # per-seed jitter, so that CIs have width


def _j(v: float) -> list[float]:
    return [v + d for d in _J]


E3 = {
    REPRODUCED: lambda: _rl(_j(0.97), _j(0.1), _j(0.1), _j(0.11)),
    NOT_REPRODUCED: lambda: _rl(_j(0.97), _j(0.1), _j(0.8), _j(0.9)),
    INCONCLUSIVE: lambda: _rl(_j(0.97), _j(0.1), [0.05, 0.30, 0.10, 0.25, 0.02], _j(0.11)),
    NOT_APPLICABLE: lambda: _rl(_j(0.12), _j(0.1), _j(0.1), _j(0.11)),
}
E4 = {
    REPRODUCED: lambda: _rl(_j(0.97), _j(0.1), _j(0.1), _j(0.11), _j(0.9), _j(10.0)),
    NOT_REPRODUCED: lambda: _rl(_j(0.97), _j(0.1), _j(0.1), _j(0.11), _j(0.9), _j(0.1)),
    INCONCLUSIVE: lambda: _rl(
        _j(0.97),
        _j(0.1),
        _j(0.1),
        _j(0.11),
        _j(0.9),
        [10**v for v in (-0.5, 0.6, -0.2, 0.4, 0.1)],
    ),  # fmt: skip
    NOT_APPLICABLE: lambda: _rl(_j(0.97), _j(0.1), _j(0.8), _j(0.9), _j(0.9), _j(10.0)),
}


# ---------------------------------------------------------------- E5 / B4 / B1
RATES = noise_rates.NOISE_RATES[TIER]


def _noise(
    gap_of: Callable[[float, int], float],
    *,
    zero_noise_clean_test: float = 0.9,
    measures_of: Callable[[float], dict[str, float]] | None = None,
    flatness: Callable[[float, int], tuple[float, float]] | None = None,
) -> Records:
    """Noise family: robust gap (pts) = gap_of(rate, seed); measures from the gap; landscape
    from ``flatness(gap, i) -> (G_train, G_test)``."""
    recs = Records()
    i = 0
    for rate in RATES:
        for s in SEEDS[TIER]:
            gap = gap_of(rate, s)
            cte = zero_noise_clean_test if rate == 0 else 0.5
            rows = [_row(150, rt=1.0, rte=1.0 - gap / 100.0, ct=1.0, cte=cte,
                         train_robust_loss=0.1, test_robust_loss=0.1 + gap / 20.0,
                         test_clean_loss=0.5 + 0.1 * ((7 * i) % 5))]  # fmt: skip
            measures = {"complexity": (measures_of or _measures_tracking(3))(gap)}
            land = {}
            if flatness is not None:
                g_tr, g_te = flatness(gap, i)
                land = {150: {
                    "train": LandscapeCurve((0.0, 0.1), (g_tr, g_tr), (0.0, 0.05 * g_tr), 200),
                    "test": LandscapeCurve((0.0, 0.1), (g_te, g_te), (0.0, 0.05 * g_te), 200),
                }}  # fmt: skip
            recs.add(_rec(f"noise-{rate:g}", s, rows, landscape=land, measures=measures))
            i += 1
    return recs


def _measures_tracking(n_tracking: int, n_classes: int = 4) -> Callable[[float], dict]:
    """Raw measures whose oriented classes track the gap (τ = 1) for the first
    ``n_tracking`` classes and anti-track it (τ = −1) for the rest. ``margin`` has sign −1."""
    keys = ["param_norm", "path_norm", "log_prod_of_spec", "margin"][:n_classes]

    def f(gap: float) -> dict[str, float]:
        out = {}
        for k, key in enumerate(keys):
            oriented = gap if k < n_tracking else -gap
            out[key] = -oriented if key == "margin" else oriented
        return out

    return f


def _gap_up(rate: float, s: int) -> float:
    return 5.0 + 50.0 * rate + s


E5 = {
    REPRODUCED: lambda: _noise(_gap_up, measures_of=_measures_tracking(1)),
    NOT_REPRODUCED: lambda: _noise(_gap_up, measures_of=_measures_tracking(3)),
    INCONCLUSIVE: lambda: _noise(_gap_up, measures_of=_measures_tracking(2)),
    NOT_APPLICABLE: lambda: _noise(_gap_up, zero_noise_clean_test=0.12),
}
_SCRAMBLE = [3, 11, 7, 16, 0, 9, 14, 5, 1, 12, 17, 8, 2, 15, 6, 10, 4, 13]
B4 = {
    REPRODUCED: lambda: _noise(_gap_up),
    NOT_REPRODUCED: lambda: _noise(lambda rate, s: 60.0 - 50.0 * rate + s),
    INCONCLUSIVE: lambda: _noise(lambda rate, s: float(_SCRAMBLE[RATES.index(rate) * 3 + s])),
    NOT_APPLICABLE: lambda: _noise(_gap_up, zero_noise_clean_test=0.12),
}
B1 = {
    REPRODUCED: lambda: _noise(_gap_up, flatness=lambda gap, i: (0.1, 1.0 + gap)),
    NOT_REPRODUCED: lambda: _noise(_gap_up, flatness=lambda gap, i: (0.1, 100.0 - gap)),
    INCONCLUSIVE: lambda: _noise(_gap_up, flatness=lambda gap, i: (0.1, 1.0 + _SCRAMBLE[i])),
    NOT_APPLICABLE: lambda: _noise(_gap_up, flatness=lambda gap, i: (50.0 + gap, 1.0 + gap)),
}


# ---------------------------------------------------------------- B3
def _b3(fclean_test: float, cons_rob: Sequence[float], at_rob: Sequence[float], cert=100.0):
    recs = Records()
    for k, s in enumerate(SEEDS[TIER]):
        cons = {"clean_test_acc_fclean": fclean_test + k, "certified_robust_train_acc": cert,
                "clean_test_acc_hat": fclean_test, "robust_test_acc_hat": cons_rob[k]}  # fmt: skip
        recs.add(_rec("e1-std-digits", s, [_row(30)], measures={"construction": cons}))
        recs.add(_rec("e1-at-digits", s, [_row(30, 0.95, at_rob[k] / 100.0, 1.0, 0.9)]))
    return recs


B3 = {
    REPRODUCED: lambda: _b3(95.0, [58.0, 59.0, 60.0], [60.0, 61.0, 61.5]),
    NOT_REPRODUCED: lambda: _b3(95.0, [5.0, 6.0, 4.0], [60.0, 61.0, 62.0]),
    INCONCLUSIVE: lambda: _b3(95.0, [65.0, 46.0, 58.0], [60.0, 61.0, 60.0]),
    NOT_APPLICABLE: lambda: _b3(20.0, [58.0, 59.0, 60.0], [60.0, 61.0, 61.5]),
}


# ---------------------------------------------------------------- E6
N_FIT = 40


def _fit(late_flipped: bool, k: int) -> tuple[FitRecord, tuple[bool, ...]]:
    """Per-example fit at epochs 1..4 (first lr decay after epoch 2): 10 examples are fitted
    only from epoch 3 on; they are the 10 flipped labels (``late_flipped``) or 10 others."""
    flipped = tuple(i < 10 for i in range(N_FIT))
    late = sorted(i for i in range(N_FIT) if (i < 10) == late_flipped and i % 4 != k % 4)[:10]
    correct = tuple(tuple(int(i not in late or e >= 3) for i in range(N_FIT)) for e in (1, 2, 3, 4))
    return FitRecord((1, 2, 3, 4), correct), flipped


def _e6(pgd_curves, te_curves, late_flipped=(True,) * 5) -> Records:
    """The cpu tier's E6 cell (label noise 0.2): PGD-AT with its per-example fit, and TE."""
    (noise,) = overfitting.E6_NOISE[TIER]
    recs = Records()
    for k, s in enumerate(PAIRED_SEEDS[TIER]):
        fit, flipped = _fit(late_flipped[k], k)
        for method, curves in (("pgd", pgd_curves), ("pgd-te", te_curves)):
            rows = [_row(e + 1, rt=0.9, rte=v) for e, v in enumerate(curves[k])]
            extra = {"fit": fit, "flipped": flipped} if method == "pgd" else {}
            cfg = _config(seed=s, milestones=[2, 3])
            recs.add(_rec(overfitting._family(method, noise), s, rows, config=cfg, **extra))
    return recs


def _shift(curve: Sequence[float]) -> list[list[float]]:
    return [[v + d for v in curve] for d in _J]


E6 = {
    REPRODUCED: lambda: _e6(_shift([0.3, 0.5, 0.45, 0.4]), _shift([0.3, 0.5, 0.49, 0.48])),
    NOT_REPRODUCED: lambda: _e6(_shift([0.3, 0.4, 0.45, 0.5]), _shift([0.3, 0.4, 0.45, 0.5])),
    # overfitting straddles 2 pts; the mechanism holds
    INCONCLUSIVE: lambda: _e6(
        [[0.3, 0.5, 0.5], [0.3, 0.5, 0.4], [0.3, 0.5, 0.48], [0.3, 0.5, 0.42], [0.3, 0.5, 0.5]],
        [[0.3, 0.5, 0.45], [0.3, 0.5, 0.46], [0.3, 0.5, 0.47], [0.3, 0.5, 0.49], [0.3, 0.5, 0.4]],
    ),
    NOT_APPLICABLE: lambda: _e6(_shift([0.1, 0.12, 0.11, 0.1]), _shift([0.1, 0.12, 0.11, 0.1])),
}


def test_e6_cpu_mechanism_alone_decides(tmp_path) -> None:
    """Overfitting and TE as claimed, but the late-fitted examples are never the flipped ones:
    the cpu cell is not reproduced, by the mechanism criterion alone."""
    recs = _e6(_shift([0.3, 0.5, 0.45, 0.4]), _shift([0.3, 0.5, 0.49, 0.48]), (False,) * 5)
    claim = next(c for c in all_claims() if c.id == "E6")
    res = claim.evaluate(ClaimContext(TIER, tmp_path, recs))
    assert res.estimates["noise0.2:late_flipped_log_odds_ratio"].high < 0
    assert res.estimates["noise0.2:pgd_best_minus_final_pts"].low > 2
    assert res.verdict == NOT_REPRODUCED


SCENARIOS: dict[str, dict[str, Callable[[], Records]]] = {
    "E1": E1, "E2": E2, "E3": E3, "E4": E4, "E5": E5, "E6": E6,
    "B1": B1, "B3": B3, "B4": B4,
}  # fmt: skip


def test_every_empirical_claim_has_all_scenarios() -> None:
    empirical = {c.id for c in all_claims() if c.empirical}
    assert empirical == set(SCENARIOS)
    for cid, scenarios in SCENARIOS.items():
        assert set(scenarios) == set(ALL), cid


@pytest.mark.parametrize(
    ("claim_id", "verdict"), [(c, v) for c in SCENARIOS for v in ALL]
)  # fmt: skip
def test_criterion_reaches_verdict(claim_id, verdict, tmp_path) -> None:
    assert _evaluate(claim_id, SCENARIOS[claim_id][verdict](), tmp_path) == verdict


def test_e1_combines_data_sets(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(at_small.DATASETS, TIER, ("digits", "mnist1d"))
    recs = E1[REPRODUCED]()
    for s in SEEDS[TIER]:  # mnist1d: robust gap 1 pt → not reproduced there
        recs.add(_rec("e1-at-mnist1d", s, [_row(30, 0.61, 0.60, 1.0, 0.9)]))
        recs.add(_rec("e1-std-mnist1d", s, [_row(30)]))
    assert _evaluate("E1", recs, tmp_path) == INCONCLUSIVE


def test_smoke_tier_gives_no_verdict(tmp_path) -> None:
    from robmem.bridge.verdicts import PIPELINE_CHECKED

    claim = next(c for c in all_claims() if c.id == "E3")
    recs = Records()
    for s in PAIRED_SEEDS["smoke"]:
        recs.add(_rec("rl-pgd", s, [_row(4, 0.97, 0.0, 1.0, 0.1)], grad_sq=[1.0]))
        recs.add(_rec("rl-trades-b6", s, [_row(4, 0.1, 0.0, 0.1, 0.1)], grad_sq=[1.0]))
    res = claim.evaluate(ClaimContext("smoke", tmp_path, recs))
    assert res.verdict == PIPELINE_CHECKED


def test_knee_is_the_half_rise_radius() -> None:
    # independent reading: loss change max(0, r − 0.1) on 0..0.3 tops at 0.2; half is 0.1,
    # first reached at r = 0.2
    assert at_small.knee(_curve(0.1)) == pytest.approx(0.2)
    flat = LandscapeCurve((0.0, 0.1, 0.2), (0.0,) * 3, (0.0, 0.0, 0.0), 1)
    assert at_small.knee(flat) == 0.2  # never rises → the largest radius


def test_b2_is_an_illustration_that_can_fail(monkeypatch, tmp_path) -> None:
    from robmem.bridge.verdicts import FAILED, VERIFIED

    recs = Records()
    cfg = _config(dataset="digits", model="mlp", model_kwargs={"hidden": [8]})
    for s in SEEDS[TIER]:
        recs.add(_rec("e1-at-digits", s, [_row(30, 0.9, 0.6, 1.0, 0.95)], config=cfg))
    assert _evaluate("B2", recs, tmp_path) == VERIFIED
    import robmem.theory.bounds.vc as vc

    class Tiny:
        value = 0.5

    monkeypatch.setattr(vc, "vc_generalization_gap", lambda **kw: Tiny())
    assert _evaluate("B2", recs, tmp_path) == FAILED


@pytest.mark.parametrize(
    ("claim_id", "module", "name", "value"),
    [
        ("T1", construction, "T1_CASES", {TIER: [(12, 3, 0.3, 2)]}),
        ("T3", None, "T3_MIN_COSINE", 1.5),
        ("T2", None, "T2_DELTA", 0.2),
    ],
)
def test_theory_claims_can_fail(claim_id, module, name, value, monkeypatch, tmp_path) -> None:
    """Each mathematical claim reports ``failed`` when its check is broken on purpose."""
    from robmem.bridge.claims import theory_checks
    from robmem.bridge.verdicts import FAILED

    target = module or theory_checks
    if claim_id == "T1":
        import robmem.theory.counting as counting

        real = counting.construction_parameter_count
        monkeypatch.setattr(target, name, value)
        monkeypatch.setattr(
            counting, "construction_parameter_count", lambda *a, **k: real(*a, **k) + 1
        )
    elif claim_id == "T2":
        # a calculator that reports a clean size above the construction's breaks the ordering
        import robmem.theory.sizes as sizes

        real = sizes.SizeTable.as_dict
        monkeypatch.setattr(
            sizes.SizeTable, "as_dict", lambda self: {**real(self), "clean_size": math.inf}
        )
    else:
        monkeypatch.setattr(target, name, value)
    claim = next(c for c in all_claims() if c.id == claim_id)
    assert claim.evaluate(ClaimContext(TIER, tmp_path, Records())).verdict == FAILED


def test_t4_fails_on_a_wrong_calculator(monkeypatch, tmp_path) -> None:
    import sympy as sp

    from robmem.bridge.verdicts import FAILED
    from robmem.theory.bounds import REGISTRY

    name = sorted(REGISTRY)[0]
    spec = REGISTRY[name]
    wrong = dataclasses.replace(spec, expr=lambda: sp.Symbol("value") + 1)
    monkeypatch.setitem(REGISTRY, name, wrong)
    claim = next(c for c in all_claims() if c.id == "T4")
    assert claim.evaluate(ClaimContext(TIER, tmp_path, Records())).verdict == FAILED


def test_tier_configs_are_valid_and_seeded() -> None:
    """Every run the claims request at every tier is a valid config; seeds vary the label
    noise draw too; cpu-tier families have ≥ 3 seeds (5 where paired)."""
    for claim in all_claims():
        for tier in ("smoke", "cpu", "cpu-full"):
            if not claim.plan(tier).enabled:
                continue
            reqs = claim.requests(tier)
            fams: dict[str, list[int]] = {}
            for r in reqs:
                assert r.config.label_noise_seed == r.config.seed
                fams.setdefault(r.family, []).append(r.seed)
            if tier != "smoke":
                for fam, seeds in fams.items():
                    assert len(set(seeds)) >= 3, (claim.id, fam)
    assert math.isclose(np.mean(PAIRED_SEEDS[TIER]), 2.0)
    assert len(PAIRED_SEEDS[TIER]) >= 5
