"""Sweeps: a list of training runs (seeds × noise rates × ε × …) built from one base config.

A sweep is a plain list of :class:`SweepRun` (name, :class:`~robmem.empirics.config.TrainConfig`,
run directory) made by :func:`sweep_runs` from a base config and a grid of field values. It
runs through one of three engines (:func:`run_sweep`):

- ``"local"`` with ``jobs=1``: in this process, one run after the other;
- ``"local"`` with ``jobs > 1``: in parallel worker processes on this machine
  (:class:`concurrent.futures.ProcessPoolExecutor`, spawn context); on a machine with several
  GPUs, run ``i`` sees only GPU ``i mod n_gpus`` (``CUDA_VISIBLE_DEVICES``);
- ``"ray"``: each run is a Ray task (``ray.remote``), so a Ray cluster spreads the runs over
  many machines (the optional extra ``pip install 'robmem[ray]'``; run directories must then
  live on a file system every node sees).

Finished runs (``status.json`` says ``completed`` and the stored config equals the requested
one) are skipped; a started but unfinished run is resumed from its last checkpoint
(:func:`robmem.empirics.trainers.train` with ``resume=True``), so re-running an interrupted sweep
only does the missing work. A folder holding a *different* config is never touched: that run
fails with the config difference named, the others go on.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import pathlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from robmem.empirics import runs as run_files
from robmem.empirics.config import TrainConfig

logger = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("local", "ray")
#: Characters allowed in a run name (a folder name on every OS).
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")
#: Sweep outcomes.
COMPLETED, SKIPPED, FAILED = "completed", "skipped", "failed"


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: a name unique in the sweep, its config and its run directory."""

    name: str
    config: TrainConfig
    run_dir: pathlib.Path


@dataclass
class SweepOutcome:
    """What happened to one run: ``completed``, ``skipped`` (already finished) or ``failed``."""

    name: str
    run_dir: str
    status: str
    error: str = ""
    final: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_name(values: Mapping[str, Any]) -> str:
    """Return the folder name of a grid point, e.g. ``seed=1_label_noise=0.2_epsilon=0.1``."""
    if not values:
        return "base"
    text = "_".join(
        f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )
    return _NAME_UNSAFE.sub("-", text)


def sweep_runs(
    base: TrainConfig, grid: Mapping[str, Sequence[Any]], out_dir: str | pathlib.Path
) -> list[SweepRun]:
    """Return one run per point of the Cartesian product of ``grid``, each with its validated
    config in ``out_dir/<name>`` (names from :func:`run_name`).

    Parameters
    ----------
    base : TrainConfig
        Every field not in ``grid`` keeps its value here.
    grid : mapping of field name to a non-empty sequence of values
        E.g. ``{"seed": [0, 1, 2], "label_noise": [0.0, 0.2], "epsilon": [0.1]}``. The order
        of the keys is the nesting order (the last key varies fastest).
    out_dir : path-like

    Raises
    ------
    ValueError
        ``grid`` names an unknown field, has an empty or repeated value list, or a value is out
        of the field's range (the config's own message, naming the field).
    """
    if not isinstance(base, TrainConfig):
        raise TypeError(f"base must be a TrainConfig, got {type(base).__name__}")
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid must be a mapping of field -> values, got {type(grid).__name__}")
    known = set(base.to_dict())
    for key, values in grid.items():
        if key not in known:
            raise ValueError(f"grid: unknown TrainConfig field {key!r}; known: {sorted(known)}")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise TypeError(f"grid[{key!r}] must be a list of values, got {values!r}")
        if len(values) == 0:
            raise ValueError(f"grid[{key!r}] must hold at least one value, got []")
        if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            raise ValueError(f"grid[{key!r}] holds repeated values: {list(values)}")
    out = pathlib.Path(out_dir)
    keys = list(grid)
    result = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, combo, strict=True))
        config = TrainConfig.from_dict({**base.to_dict(), **point})
        name = run_name(point)
        result.append(SweepRun(name=name, config=config, run_dir=out / name))
    names = [r.name for r in result]
    if len(set(names)) != len(names):
        raise ValueError(f"grid values give clashing run names: {names}")
    return result


def run_state(run: SweepRun) -> str:
    """``"completed"``, ``"partial"`` (started, same config), ``"new"`` or ``"conflict"``."""
    paths = run_files.RunPaths(run.run_dir)
    if not run.run_dir.exists() or not any(run.run_dir.iterdir()):
        return "new"
    if not paths.config_json.exists():
        return "conflict"
    try:
        stored = TrainConfig.from_json(paths.config_json.read_text())
    except (ValueError, TypeError):
        return "conflict"
    if stored.differences(run.config, ignore=frozenset(run_files.RESUME_MUTABLE_FIELDS)):
        return "conflict"
    try:
        status = json.loads(paths.status.read_text())
    except (OSError, json.JSONDecodeError):
        return "partial"
    return "completed" if status.get("state") == "completed" else "partial"


def _final_metrics(run_dir: pathlib.Path) -> dict[str, Any]:
    rows = run_files.load_metrics(run_dir)
    if not rows:
        return {}
    keep = ("epoch", "train_clean_acc", "train_robust_acc", "test_clean_acc", "test_robust_acc")
    return {k: rows[-1][k] for k in keep if k in rows[-1]}


def execute_run(
    name: str, config_json: str, run_dir: str, visible_devices: str | None = None
) -> dict[str, Any]:
    """Run (or skip, or resume) one sweep run; return its :class:`SweepOutcome` as a dict.

    Takes only strings so that it pickles cheaply to worker processes and Ray tasks. Errors of
    the run are caught and reported in the outcome (one failing run never stops a sweep).
    ``visible_devices`` sets ``CUDA_VISIBLE_DEVICES`` for the run (local parallel sweeps pin
    each worker to one GPU; Ray sets it itself).
    """
    if visible_devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible_devices
    from robmem.empirics.trainers import train

    run = SweepRun(name, TrainConfig.from_json(config_json), pathlib.Path(run_dir))
    state = run_state(run)
    if state == "completed":
        return SweepOutcome(name, run_dir, SKIPPED, final=_final_metrics(run.run_dir)).to_dict()
    if state == "conflict":
        msg = (
            f"run_dir={run_dir!r} holds files of another run (different or missing config); "
            "choose another sweep folder"
        )
        return SweepOutcome(name, run_dir, FAILED, error=msg).to_dict()
    try:
        train(run.config, run.run_dir, resume=state == "partial", progress=False)
    except Exception as exc:  # noqa: BLE001 - reported per run, the sweep goes on
        logger.exception("sweep run %s failed", name)
        return SweepOutcome(name, run_dir, FAILED, error=f"{type(exc).__name__}: {exc}").to_dict()
    return SweepOutcome(name, run_dir, COMPLETED, final=_final_metrics(run.run_dir)).to_dict()


def run_sweep(
    runs: Sequence[SweepRun],
    *,
    backend: str = "local",
    jobs: int = 1,
    ray_address: str | None = None,
    cpus_per_run: float = 1.0,
    gpus_per_run: float = 0.0,
) -> list[SweepOutcome]:
    """Run every run of a sweep; return the outcomes in the order of ``runs``.

    Parameters
    ----------
    runs : sequence of SweepRun
    backend : {"local", "ray"}
    jobs : int >= 1
        Parallel worker processes of the local backend (1 = in this process, in sequence).
    ray_address : str, optional
        Address of a running Ray cluster (``"auto"`` to join the one started with
        ``ray start``); ``None`` starts a local Ray instance (unless one is initialised).
    cpus_per_run, gpus_per_run : float
        Ray resources requested by each run (``gpus_per_run=1`` = one GPU per run).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    if not cpus_per_run > 0:
        raise ValueError(f"cpus_per_run must be > 0, got {cpus_per_run}")
    if not gpus_per_run >= 0:
        raise ValueError(f"gpus_per_run must be >= 0, got {gpus_per_run}")
    runs = list(runs)
    for run in runs:
        if not isinstance(run, SweepRun):
            raise TypeError(f"runs must hold SweepRun objects, got {type(run).__name__}")
    args = [(r.name, r.config.to_json(), str(r.run_dir)) for r in runs]
    if backend == "ray":
        results = _run_ray(args, ray_address, cpus_per_run, gpus_per_run)
    elif jobs == 1 or len(args) <= 1:
        results = [execute_run(*a) for a in args]
    else:
        import concurrent.futures
        import multiprocessing

        gpus = _local_gpu_count()
        # With several GPUs, run i sees only GPU i mod n ("cuda" then means that GPU).
        devices = [str(i % gpus) if gpus > 1 else None for i in range(len(args))]
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            results = list(pool.map(execute_run, *zip(*args, strict=True), devices))
    return [SweepOutcome(**r) for r in results]


def _local_gpu_count() -> int:
    """CUDA devices visible here (0 without CUDA); used to spread local parallel runs."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _run_ray(
    args: list[tuple[str, str, str]],
    address: str | None,
    cpus_per_run: float,
    gpus_per_run: float,
) -> list[dict[str, Any]]:
    try:
        import ray
    except ImportError as exc:
        raise ValueError(
            "backend='ray' needs Ray: pip install 'robmem[ray]' (or pip install ray)"
        ) from exc
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run)(execute_run)
    return ray.get([task.remote(*a) for a in args])


def write_manifest(out_dir: str | pathlib.Path, runs: Sequence[SweepRun], grid: Mapping) -> None:
    """Write ``sweep.json`` (the grid and every run's name and folder) into ``out_dir``."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "grid": {k: list(v) for k, v in grid.items()},
        "runs": [{"name": r.name, "run_dir": str(r.run_dir)} for r in runs],
    }
    run_files.write_json(out / "sweep.json", data)
