"""The run cache's folder names of every claim's runs and measures, frozen.

The committed reports (``results/``) were trained once and re-rendered from their run cache;
a re-render, or a user's second ``robmem report``, reuses a run only if its cache key is the
same. This test pins the folder name (``<run>-<hash of its key>``) of every training run and
every post-training measure that each tier requests, so that a refactor which changes a key
(a new config default, a renamed family, a changed measure parameter) fails here instead of
silently re-training, or silently serving results the code no longer produces.

After an *intended* change of an experiment, regenerate the fixture and say so in the commit:
``python tests/bridge/test_run_keys_frozen.py``.
"""

from __future__ import annotations

import json
import pathlib
import sys

import pytest

FIXTURE = pathlib.Path(__file__).with_name("run_keys_frozen.json")
TIERS = ("smoke", "cpu", "cpu-full", "gpu-offline", "gpu")


def cache_folders(tier: str) -> list[str]:
    """Sorted cache folder names of every run and measure the tier's enabled claims request."""
    from robmem.bridge.cache import RunCache
    from robmem.bridge.claims.runs import merge_requests
    from robmem.bridge.registry import all_claims

    cache = RunCache(pathlib.Path("/nonexistent"), enabled=False)
    requests = [r for c in all_claims() if c.plan(tier).enabled for r in c.requests(tier)]
    names = []
    for r in merge_requests(requests):
        names.append(cache.run_dir(r.cache_name, r.key()).name)
        for measure, params in r.measures:
            key = {"run": r.key(), "measure": measure, "params": [list(kv) for kv in params]}
            names.append(cache.run_dir(f"{r.cache_name}-{measure}", key).name)
    return sorted(names)


@pytest.mark.parametrize("tier", TIERS)
def test_cache_keys_are_frozen(tier: str) -> None:
    frozen = json.loads(FIXTURE.read_text(encoding="utf-8"))[tier]
    now = cache_folders(tier)
    added, removed = sorted(set(now) - set(frozen)), sorted(set(frozen) - set(now))
    assert not added and not removed, {"new keys": added[:10], "lost keys": removed[:10]}


if __name__ == "__main__":  # regenerate the fixture after an intended change
    FIXTURE.write_text(
        json.dumps({t: cache_folders(t) for t in TIERS}, indent=1) + "\n", encoding="utf-8"
    )
    print(f"wrote {FIXTURE}", file=sys.stderr)
