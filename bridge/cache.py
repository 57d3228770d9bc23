"""Runs cached by config hash (SPEC B5): re-running the report reuses finished runs.

A run is identified by the SHA-256 of its configuration written as canonical JSON (sorted keys,
no whitespace). The cache stores, per run, ``config.json`` (the full configuration),
``result.json`` (what the run returned) and any files the run wrote into its folder. A run is
reused only when its stored configuration equals the requested one *and* the result file is
complete; a changed configuration has a different hash and therefore runs again, and a folder
whose stored configuration does not match its hash (edited by hand, or a hash collision) is
never trusted.

The cache folder defaults to ``$ROBMEM_CACHE`` or ``~/.cache/robmem``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger(__name__)

#: Bumped whenever the meaning of cached results changes, so that old caches are not reused.
CACHE_FORMAT_VERSION: int = 1

#: Hex digits of the hash used as folder name (64 bits: collisions are checked anyway).
HASH_PREFIX_LEN: int = 16

CONFIG_FILE = "config.json"
RESULT_FILE = "result.json"


def canonical_json(config: Mapping[str, Any]) -> str:
    """Canonical JSON text of ``config`` (sorted keys, compact); raises on non-JSON values."""
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")
    try:
        return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config must be JSON-serializable with finite numbers: {exc}") from exc


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``config`` plus the cache format version."""
    canonical_json(config)  # type and value checks, with the argument's name in the message
    payload = canonical_json({"config": dict(config), "cache_format": CACHE_FORMAT_VERSION})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def default_cache_dir() -> pathlib.Path:
    """``$ROBMEM_CACHE`` if set, else ``~/.cache/robmem``."""
    env = os.environ.get("ROBMEM_CACHE")
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path.home() / ".cache" / "robmem"


def _atomic_write_text(path: pathlib.Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


class RunCache:
    """A folder of runs keyed by config hash.

    Parameters
    ----------
    root : path-like, optional
        Cache folder (created on first use); default :func:`default_cache_dir`.
    enabled : bool
        With ``False`` every run executes and nothing is reused (results are still stored).
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, *, enabled: bool = True):
        self.root = pathlib.Path(root) if root is not None else default_cache_dir()
        self.enabled = bool(enabled)
        self.hits: list[str] = []
        self.misses: list[str] = []

    def run_dir(self, name: str, config: Mapping[str, Any]) -> pathlib.Path:
        """Folder of the run ``name`` with this config (not created)."""
        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise ValueError(f"name must be non-empty and use only [A-Za-z0-9-_.], got {name!r}")
        return self.root / f"{name}-{config_hash(config)[:HASH_PREFIX_LEN]}"

    def load(self, name: str, config: Mapping[str, Any]) -> dict[str, Any] | None:
        """The stored result of this exact config, or ``None`` if absent, partial or stale."""
        folder = self.run_dir(name, config)
        cfg_path, res_path = folder / CONFIG_FILE, folder / RESULT_FILE
        if not (cfg_path.is_file() and res_path.is_file()):
            return None
        try:
            stored = json.loads(cfg_path.read_text(encoding="utf-8"))
            result = json.loads(res_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            logger.warning("cache entry %s unreadable; re-running", folder)
            return None
        if canonical_json(stored) != canonical_json(config):
            logger.warning("cache entry %s holds a different config; re-running", folder)
            return None
        return result

    def get_or_run(
        self,
        name: str,
        config: Mapping[str, Any],
        fn: Callable[[pathlib.Path], dict[str, Any]],
    ) -> dict[str, Any]:
        """Return the cached result of ``(name, config)`` or run ``fn(run_dir)`` and store it.

        ``fn`` receives the (existing) run folder, may write files there, and returns a
        JSON-serializable dict. The result returned is the stored JSON read back, so a fresh
        run and a later cache hit return equal dicts with the same key order.
        """
        config = dict(config)
        folder = self.run_dir(name, config)
        if self.enabled:
            cached = self.load(name, config)
            if cached is not None:
                self.hits.append(folder.name)
                logger.info("cache hit %s", folder)
                return cached
        self.misses.append(folder.name)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RESULT_FILE).unlink(missing_ok=True)
        _atomic_write_text(folder / CONFIG_FILE, json.dumps(config, sort_keys=True, indent=1))
        text = json.dumps(fn(folder), sort_keys=True, indent=1, allow_nan=True)
        _atomic_write_text(folder / RESULT_FILE, text)
        # What a later cache hit reads back (sorted keys, lists for tuples): a report built from
        # a fresh run then equals one re-rendered from the cache, down to the column order.
        return json.loads(text)
