"""Tests of robmem.bridge.cache: reuse only on an identical config; anything else re-runs."""

from __future__ import annotations

import json

import pytest

from robmem.bridge.cache import CONFIG_FILE, RunCache, config_hash


def _counter():
    calls = []

    def fn(folder):
        calls.append(folder)
        (folder / "artifact.txt").write_text("x")
        return {"n": len(calls)}

    return calls, fn


def test_hit_on_same_config_and_rerun_on_changed_config(tmp_path) -> None:
    cache = RunCache(tmp_path)
    calls, fn = _counter()
    assert cache.get_or_run("run", {"lr": 0.1, "epochs": 3}, fn) == {"n": 1}
    # key order does not matter; same config -> cached
    assert cache.get_or_run("run", {"epochs": 3, "lr": 0.1}, fn) == {"n": 1}
    assert len(calls) == 1 and len(cache.hits) == 1
    # a changed config runs again, in another folder
    assert cache.get_or_run("run", {"lr": 0.2, "epochs": 3}, fn) == {"n": 2}
    assert len({str(c) for c in calls}) == 2


def test_tampered_or_partial_entry_is_not_trusted(tmp_path) -> None:
    cache = RunCache(tmp_path)
    calls, fn = _counter()
    cfg = {"a": 1}
    cache.get_or_run("r", cfg, fn)
    folder = cache.run_dir("r", cfg)
    (folder / CONFIG_FILE).write_text(json.dumps({"a": 2}))  # config edited by hand
    assert cache.load("r", cfg) is None
    cache.get_or_run("r", cfg, fn)
    assert len(calls) == 2
    (folder / "result.json").unlink()  # a run that died before writing its result
    cache.get_or_run("r", cfg, fn)
    assert len(calls) == 3


def test_disabled_cache_always_runs(tmp_path) -> None:
    cache = RunCache(tmp_path, enabled=False)
    calls, fn = _counter()
    cache.get_or_run("r", {"a": 1}, fn)
    cache.get_or_run("r", {"a": 1}, fn)
    assert len(calls) == 2


def test_hash_and_bad_inputs(tmp_path) -> None:
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 1.5})
    with pytest.raises(ValueError, match="config"):
        config_hash({"a": float("nan")})
    with pytest.raises(ValueError, match="config"):
        config_hash({"a": object()})
    with pytest.raises(TypeError, match="config"):
        config_hash([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name"):
        RunCache(tmp_path).run_dir("../evil", {"a": 1})


def test_env_default(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ROBMEM_CACHE", str(tmp_path / "c"))
    assert RunCache().root == tmp_path / "c"


def test_fresh_result_equals_the_later_cache_hit_in_value_and_key_order(tmp_path) -> None:
    # A report rendered from fresh runs must equal one re-rendered from the cache: the fresh
    # return value is the stored JSON read back (key order and tuple -> list as on a hit).
    cache = RunCache(tmp_path)
    fresh = cache.get_or_run("m", {"a": 1}, lambda _: {"zeta": (1, 2), "alpha": {"y": 1, "x": 2}})
    hit = cache.get_or_run("m", {"a": 1}, lambda _: pytest.fail("must be a cache hit"))
    assert fresh == hit == {"alpha": {"x": 2, "y": 1}, "zeta": [1, 2]}
    assert json.dumps(fresh) == json.dumps(hit)
    assert list(fresh) == ["alpha", "zeta"] and list(fresh["alpha"]) == ["x", "y"]
