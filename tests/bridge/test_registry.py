"""Tests of robmem.bridge.registry: every SPEC id has a complete entry; bad ids and tiers fail."""

from __future__ import annotations

import pytest

from robmem.bridge.criteria import AMENDMENTS
from robmem.bridge.registry import (
    CLAIM_IDS,
    TIERS,
    ClaimResult,
    all_claims,
    check_tier,
    select_claims,
)
from robmem.bridge.verdicts import MATH_KINDS, REPRODUCED, VERDICTS, VERIFIED


def test_every_spec_id_has_one_complete_entry() -> None:
    claims = all_claims()
    assert [c.id for c in claims] == list(CLAIM_IDS)
    for c in claims:
        assert c.title and c.paper_claim and c.source and c.rule_text(), c.id
        if c.empirical:
            assert c.criteria, c.id
            for crit in (*c.premises, *c.criteria):  # names, units-in-words and sources
                assert crit.name and crit.statistic and crit.source, (c.id, crit)
        else:
            assert c.kind in MATH_KINDS and not c.criteria, c.id
        for tier in TIERS:
            plan = c.plan(tier)
            assert plan.enabled == (plan.reason == ""), (c.id, tier)
            assert plan.runs or plan.reason, f"{c.id} at {tier}: neither runs nor reason"


def test_cpu_tier_runs_the_required_claims() -> None:
    required = {"E1", "E2", "E3", "B1", "B2", "B3"}
    running = {c.id for c in all_claims() if c.plan("cpu").enabled}
    assert required <= running
    for c in all_claims():
        if not c.plan("cpu").enabled:
            assert len(c.plan("cpu").reason) > 40, f"{c.id}: say exactly why it is not run"


def test_select_and_bad_inputs() -> None:
    assert [c.id for c in select_claims(["b1", " E2"])] == ["E2", "B1"]
    with pytest.raises(ValueError, match="unknown claim id"):
        select_claims(["E9"])
    with pytest.raises(ValueError, match="at least one"):
        select_claims([" "])
    with pytest.raises(ValueError, match="tier must be one of"):
        check_tier("laptop")
    with pytest.raises(ValueError, match="verdict must be one of"):
        ClaimResult(verdict="kind of", summary="")
    r = ClaimResult(verdict=VERDICTS[0], summary="", numbers={"x": float("nan")})
    assert r.numbers["x"] is None


def test_verdict_words_follow_the_kind() -> None:
    claims = {c.id: c for c in all_claims()}
    with pytest.raises(ValueError, match="may not return"):
        claims["T1"].check_verdict(REPRODUCED)  # mathematics is verified, never reproduced
    with pytest.raises(ValueError, match="may not return"):
        claims["E1"].check_verdict(VERIFIED)
    assert {c.kind for c in claims.values() if c.id.startswith("T")} <= set(MATH_KINDS)
    assert claims["B2"].kind == "illustration"


def test_amendments_name_claims_and_reasons() -> None:
    ids = set(CLAIM_IDS) | {"all empirical"}
    for a in AMENDMENTS:
        assert a.claim in ids and a.old and a.new and a.reason and a.date
