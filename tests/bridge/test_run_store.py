"""The report's run store: deduplicated requests, separately cached measures, typed records."""

from __future__ import annotations

import dataclasses
import json

import pytest

from robmem.bridge.cache import RunCache
from robmem.bridge.claims.runs import (
    LandscapeSpec,
    RunRequest,
    measure,
    merge_requests,
    requests_for,
    run_requests,
    seeds_for,
)
from robmem.bridge.records import record_from_json


def _base(**kw):
    from robmem.empirics.config import TrainConfig

    return TrainConfig(
        dataset="digits", n_train=40, n_test=30, model="mlp", model_kwargs={"hidden": [16]},
        method="pgd", epsilon=0.1, attack_step_size=0.025, attack_steps=2, eval_attack_steps=2,
        epochs=2, batch_size=20, num_threads=1, **kw,
    )  # fmt: skip


def test_seeds_vary_init_order_attack_and_label_noise() -> None:
    cfgs = seeds_for(_base(label_noise=0.5), [3, 4])
    assert [(c.seed, c.label_noise_seed, c.data_seed) for c in cfgs] == [(3, 3, 0), (4, 4, 0)]


def test_merge_unites_measures_and_refuses_clashes() -> None:
    base = _base()
    a = RunRequest("fam", base)
    b = RunRequest("fam", base, measures=(measure("complexity", margin_steps=2),))
    (merged,) = merge_requests([a, b, a])
    assert merged.measures == b.measures
    with pytest.raises(ValueError, match="two different runs"):
        merge_requests([a, RunRequest("fam", dataclasses.replace(base, epochs=3))])
    with pytest.raises(ValueError, match="measurement must be one of"):
        measure("astrology")


def test_records_round_trip_and_measures_are_cached_apart(tmp_path) -> None:
    cache = RunCache(tmp_path / "cache")
    land = LandscapeSpec(eps_grid=(0.0, 0.1), epochs=(2,), n_samples=10, steps=2)
    reqs = requests_for("fam", _base(label_noise=0.5), [0, 1], landscape=land)
    records = run_requests(reqs, cache)
    r0 = records.family("fam", [0])[0]
    assert [row.epoch for row in r0.rows] == [1, 2] and r0.final.test_robust_acc is not None
    assert set(r0.landscape[2]) == {"train", "test"} and r0.landscape[2]["train"].eps == (0.0, 0.1)
    assert r0.flipped is not None and any(r0.flipped)  # the label-noise draw is recorded
    assert len(r0.epoch_grad_sq) == 2 and all(v > 0 for v in r0.epoch_grad_sq)
    assert record_from_json(json.loads(json.dumps(r0.to_json()))) == r0
    # a second request of the same runs with a measure reuses the training, adds the measure
    with_measure = [
        RunRequest(
            r.family, r.config, r.landscape, measures=(measure("complexity", margin_steps=2),)
        )
        for r in reqs
    ]
    cache2 = RunCache(tmp_path / "cache")
    records2 = run_requests(with_measure, cache2)
    assert all(name.startswith("fam-s") and "complexity" in name for name in cache2.misses)
    assert len(cache2.hits) == 2  # the two trainings
    m = records2.family("fam", [0])[0].measures["complexity"]
    assert "param_norm" in m and "fro_dist" in m  # distance-to-init: the run's init is passed
    with pytest.raises(KeyError, match="lacks seeds"):
        records2.family("fam", [0, 7])
    with pytest.raises(ValueError, match="jobs"):
        run_requests(reqs, cache, jobs=0)
