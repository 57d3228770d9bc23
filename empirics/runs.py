"""Run directories: resolved config, seeds, per-epoch metrics, per-step log, checkpoints.

Layout of a run directory::

    config.json      the resolved TrainConfig (also config.toml, same content)
    run.json         seeds, versions, device, start time (informational)
    metrics.jsonl    one JSON object per epoch (``pandas.read_json(path, lines=True)``)
    steps.jsonl      one JSON object per optimisation step (loss, grad_norm, lr)
    labels.pt        the training labels used (noisy when label_noise > 0) and the flip mask
    status.json      "running" / "completed" / "failed" with a reason
    checkpoints/last.pt          state after the last completed epoch
    checkpoints/best.pt          best epoch by a validation metric (or best-by-test.pt when
                                 selection on a test metric was explicitly allowed)

Rules: a run directory that already holds files is never overwritten; resuming requires the
same config (up to :data:`robmem.empirics.config.RESUME_MUTABLE_FIELDS`); rows of epochs after the
last checkpoint are dropped on resume, so the files always agree with the checkpoint.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import pathlib
import platform
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from robmem.empirics.checkpoint import atomic_write_bytes
from robmem.empirics.config import RESUME_MUTABLE_FIELDS, TrainConfig

CONFIG_JSON = "config.json"
CONFIG_TOML = "config.toml"
RUN_INFO = "run.json"
METRICS = "metrics.jsonl"
STEPS = "steps.jsonl"
LABELS = "labels.pt"
STATUS = "status.json"
CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"
BEST = "best.pt"
BEST_BY_TEST = "best-by-test.pt"


@dataclass(frozen=True)
class RunPaths:
    """Paths inside one run directory."""

    root: pathlib.Path

    @property
    def config_json(self) -> pathlib.Path:
        return self.root / CONFIG_JSON

    @property
    def config_toml(self) -> pathlib.Path:
        return self.root / CONFIG_TOML

    @property
    def run_info(self) -> pathlib.Path:
        return self.root / RUN_INFO

    @property
    def metrics(self) -> pathlib.Path:
        return self.root / METRICS

    @property
    def steps(self) -> pathlib.Path:
        return self.root / STEPS

    @property
    def labels(self) -> pathlib.Path:
        return self.root / LABELS

    @property
    def status(self) -> pathlib.Path:
        return self.root / STATUS

    @property
    def checkpoints(self) -> pathlib.Path:
        return self.root / CHECKPOINT_DIR

    @property
    def last(self) -> pathlib.Path:
        return self.checkpoints / LAST

    def best(self, config: TrainConfig) -> pathlib.Path:
        """``best.pt``, or ``best-by-test.pt`` when the selection metric is a test metric."""
        on_test = config.select_metric is not None and config.select_metric.startswith("test_")
        return self.checkpoints / (BEST_BY_TEST if on_test else BEST)


@dataclass
class RunResult:
    """What :func:`robmem.empirics.trainers.train` returns.

    Attributes
    ----------
    run_dir : pathlib.Path
    config : TrainConfig
    metrics : list of dict
        One row per completed epoch, as in ``metrics.jsonl``.
    metrics_path, steps_path, last_checkpoint : pathlib.Path
    best_checkpoint : pathlib.Path or None
        ``None`` when no selection metric was configured.
    best : dict
        ``{"metric", "value", "epoch", "selected_on"}`` of the best epoch (empty if none).
    """

    run_dir: pathlib.Path
    config: TrainConfig
    metrics: list[dict[str, Any]]
    metrics_path: pathlib.Path
    steps_path: pathlib.Path
    last_checkpoint: pathlib.Path
    best_checkpoint: pathlib.Path | None = None
    best: dict[str, Any] = field(default_factory=dict)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    # torch tensors (on any device, any float dtype) and numpy scalars/arrays; non-finite
    # numbers become null as in _clean_row (a NaN tensor from a callback must not crash the
    # run at the end of an epoch: json refuses NaN with allow_nan=False).
    if hasattr(value, "tolist"):
        return _finite_or_none(value.tolist())
    raise TypeError(f"metric value {value!r} of type {type(value).__name__} is not JSON-able")


def _clean_row(row: dict[str, Any]) -> dict[str, Any]:
    """Replace non-finite floats, also inside lists (e.g. a metric per radius), by None (JSON
    has no NaN; pandas reads None as NaN)."""
    return {k: _finite_or_none(v) for k, v in row.items()}


def append_jsonl(path: pathlib.Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append rows to a JSON-lines file and fsync it."""
    text = "".join(
        json.dumps(_clean_row(r), default=_json_default, allow_nan=False) + "\n" for r in rows
    )
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Return the rows of a JSON-lines file (a torn last line, from a kill, is skipped)."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def rewrite_jsonl(path: pathlib.Path, keep: Callable[[dict[str, Any]], bool]) -> list[dict]:
    """Atomically keep only the rows for which ``keep(row)`` holds; return them."""
    rows = [r for r in read_jsonl(path) if keep(r)]
    text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows)
    atomic_write_bytes(path, text.encode("utf-8"))
    return rows


def write_json(path: pathlib.Path, data: dict[str, Any]) -> None:
    """Atomically write ``data`` as indented JSON."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, default=_json_default) + "\n").encode())


def set_status(paths: RunPaths, state: str, reason: str = "", **extra: Any) -> None:
    """Record the run's state (``running``, ``completed``, ``failed``) in ``status.json``."""
    write_json(paths.status, {"state": state, "reason": reason, "time_utc": _now(), **extra})


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


#: Name pattern of the temporary files :func:`robmem.empirics.checkpoint.atomic_write_bytes` writes.
TEMP_FILE_GLOB = ".*.tmp-*"


def remove_stale_temp_files(root: pathlib.Path) -> list[pathlib.Path]:
    """Delete temp files left by writes that a kill interrupted; return what was removed.

    Only robmem's own temp names (:data:`TEMP_FILE_GLOB`) in the run folder and its
    ``checkpoints/`` are touched; a run directory is used by one process at a time.
    """
    removed = []
    for folder in (root, root / "checkpoints"):
        if folder.is_dir():
            for path in folder.glob(TEMP_FILE_GLOB):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def _only_creation_leftovers(root: pathlib.Path) -> bool:
    """True if ``root`` holds nothing but what a run killed during its creation leaves."""
    for path in root.iterdir():
        if path.name == "checkpoints" and path.is_dir():
            if any(not p.match(TEMP_FILE_GLOB) for p in path.iterdir()):
                return False
        elif not path.match(TEMP_FILE_GLOB):
            return False
    return True


def create_run_dir(
    run_dir: str | os.PathLike[str], config: TrainConfig, *, resume: bool = False
) -> RunPaths:
    """Create a fresh run directory holding the resolved config.

    With ``resume=True`` a folder holding only the leftovers of a run killed while it was
    being created (an empty ``checkpoints/`` and temp files) is taken over.

    Raises
    ------
    FileExistsError
        If ``run_dir`` exists and is not empty (nothing is ever overwritten silently).
    """
    root = pathlib.Path(run_dir)
    taken_over = resume and root.is_dir() and _only_creation_leftovers(root)
    if taken_over:
        remove_stale_temp_files(root)
    elif root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(
            f"run_dir={str(root)!r} already exists and is not empty; pass resume=True "
            "(robmem train --resume) to continue it, or choose a new run_dir"
        )
    root.mkdir(parents=True, exist_ok=True)
    paths = RunPaths(root)
    paths.checkpoints.mkdir(exist_ok=True)
    atomic_write_bytes(paths.config_json, config.to_json().encode())
    atomic_write_bytes(paths.config_toml, config.to_toml().encode())
    write_json(paths.run_info, run_info(config))
    set_status(paths, "running")
    return paths


def open_run_dir_for_resume(run_dir: str | os.PathLike[str], config: TrainConfig) -> RunPaths:
    """Check that ``run_dir`` holds a run of the same config and return its paths.

    Raises
    ------
    FileNotFoundError
        If ``run_dir`` or its ``config.json`` is missing.
    ValueError
        If the stored config differs from ``config`` in a field outside
        :data:`robmem.empirics.config.RESUME_MUTABLE_FIELDS`; the message names every such field.
    """
    paths = RunPaths(pathlib.Path(run_dir))
    if not paths.config_json.exists():
        raise FileNotFoundError(
            f"run_dir={str(paths.root)!r} has no {CONFIG_JSON}; nothing to resume"
        )
    stored = TrainConfig.from_json(paths.config_json.read_text())
    diff = stored.differences(config, ignore=RESUME_MUTABLE_FIELDS)
    if diff:
        detail = "; ".join(f"{k}: run has {a!r}, given {b!r}" for k, (a, b) in diff.items())
        raise ValueError(
            f"config differs from the run being resumed in run_dir={str(paths.root)!r}: "
            f"{detail}. Resume with the stored config or start a new run_dir."
        )
    paths.checkpoints.mkdir(exist_ok=True)
    remove_stale_temp_files(paths.root)
    set_status(paths, "running", reason="resumed")
    return paths


def run_info(config: TrainConfig) -> dict[str, Any]:
    """Return the informational header of a run: seeds, device (and GPU names when it may use
    CUDA), versions, host, start time."""
    import numpy
    import torch

    gpus = []
    if config.device != "cpu" and torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "seeds": {
            "seed": config.seed,
            "data_seed": config.data_seed,
            "label_noise_seed": config.label_noise_seed,
        },
        "device": config.device,
        "gpus": gpus,
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "started_utc": _now(),
    }


def load_metrics(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Return the per-epoch metric rows of a run directory."""
    return read_jsonl(pathlib.Path(run_dir) / METRICS)


def load_steps(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Return the per-step rows (loss, grad_norm, lr) of a run directory."""
    return read_jsonl(pathlib.Path(run_dir) / STEPS)
