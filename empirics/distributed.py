"""Data-parallel adversarial training with ``torch.distributed`` (DDP, launched by torchrun).

:func:`train_distributed` runs :func:`robmem.empirics.trainers.train` with a :class:`TorchGroup`:
every rank draws the same shuffling, augments the whole global batch (``config.batch_size``)
and keeps its contiguous shard (:func:`shard_bounds`); the attacks draw their random starts
for the whole global batch and keep the shard's rows, so each example gets the start of a
single-process run, on CPU and CUDA, for every method. The local loss is scaled so that DDP's
gradient average is the gradient of the global batch mean. Attacks and evaluation run on the
(compiled, if ``config.compile``) module outside DDP (:class:`_AttackAwareDDP`); only the
training loss goes through DDP's reducer. Rank 0 evaluates (or, with ``--shard-eval``, every
rank evaluates its rows of each batch, with the same metrics), runs callbacks, writes the run
directory and broadcasts its RNG state. Metrics equal a single-process run up to the float
order of the gradient all-reduce. BatchNorm uses per-shard statistics (no SyncBatchNorm).

Launch (one process per GPU, or per CPU slot with gloo)::

    torchrun --standalone --nproc_per_node 4 -m robmem.empirics.distributed \\
        --config run.toml --run-dir runs/ddp
    torchrun --standalone --nproc_per_node 4 -m empirics.distributed --run-dir runs/ddp --resume

A data-parallel run can be resumed by a single process and vice versa.
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from robmem.empirics import runs
from robmem.empirics.config import TrainConfig
from robmem.empirics.methods import TEBank
from robmem.empirics.trainers import Callback, Group, NonFiniteLossError, train

logger = logging.getLogger(__name__)


class _AttackAwareDDP(nn.Module):
    """Route a forward through DDP only when it builds weight gradients.

    Attacks switch every parameter's ``requires_grad`` off (:func:`empirics.attacks.attack_mode`)
    and evaluation runs under ``no_grad``: those forwards go to ``fast`` (the module or its
    compile), so they never touch DDP's reducer or broadcast buffers. The training-loss forward
    goes through DDP (eager).
    """

    def __init__(self, ddp: nn.parallel.DistributedDataParallel, fast: nn.Module | None = None):
        super().__init__()
        self.ddp = ddp
        self.fast = ddp.module if fast is None else fast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        builds_weight_grads = torch.is_grad_enabled() and any(
            p.requires_grad for p in self.ddp.module.parameters()
        )
        if builds_weight_grads:
            return self.ddp(x)
        return self.fast(x)


def shard_bounds(global_n: int, world_size: int) -> list[tuple[int, int]]:
    """Return the ``[start, stop)`` of each rank's contiguous shard of a batch of ``global_n``.

    Sizes differ by at most one (the first ``global_n % world_size`` ranks get one more), as
    :func:`torch.tensor_split`.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if global_n < 0:
        raise ValueError(f"global_n must be >= 0, got {global_n}")
    base, extra = divmod(global_n, world_size)
    bounds, start = [], 0
    for r in range(world_size):
        stop = start + base + (1 if r < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def _init_process_group(backend: str | None, device_type: str) -> tuple[int, int, bool]:
    """Initialise the default process group from torchrun's env vars if needed.

    Returns ``(rank, world_size, created)``.
    """
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise ValueError(
            "torch.distributed is not initialised and RANK/WORLD_SIZE are unset; launch with "
            "`torchrun --nproc_per_node N -m robmem.empirics.distributed ...`"
        )
    if backend is None:
        backend = "nccl" if device_type == "cuda" else "gloo"
    if backend not in ("gloo", "nccl", "mpi"):
        raise ValueError(f"backend must be 'gloo', 'nccl' or 'mpi', got {backend!r}")
    dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), True


def _local_device(config: TrainConfig) -> torch.device:
    if config.device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        if config.device == "auto":
            return torch.device("cpu")
        raise ValueError(f"device={config.device!r} requested but CUDA is not available")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    return torch.device("cuda", local_rank)


def train_distributed(
    config: TrainConfig,
    run_dir: str | pathlib.Path,
    *,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
    backend: str | None = None,
    shard_eval: bool = False,
) -> runs.RunResult:
    """:func:`empirics.trainers.train` data-parallel across the processes of a torchrun launch
    (``config.batch_size`` is the global batch); returns the RunResult on every rank.

    ``backend`` ("gloo", "nccl" or "mpi"; default nccl on CUDA, gloo on CPU) is used when the
    process group is not initialised yet. ValueError when not launched under torchrun; the
    other errors are :func:`~robmem.empirics.trainers.train`'s, raised on every rank.
    """
    config.validate()
    device = _local_device(config)
    if device.type == "cuda":
        # Before the process group: NCCL binds each rank's communicator to the current device.
        torch.cuda.set_device(device)
    rank, world, created = _init_process_group(backend, device.type)
    try:
        return train(
            config, run_dir, resume=resume, progress=progress, callbacks=callbacks,
            group=TorchGroup(rank, world, device), shard_eval=shard_eval,
        )  # fmt: skip
    finally:
        if created:
            dist.destroy_process_group()


class TorchGroup(Group):
    """The ranks of the default ``torch.distributed`` process group (see :class:`Group`)."""

    def __init__(self, rank: int, world: int, device: torch.device) -> None:
        self.rank, self.world, self.device = rank, world, device

    def shard(self, n: int) -> tuple[int, int]:
        return shard_bounds(n, self.world)[self.rank]

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(t)
        return t

    def broadcast(self, obj: Any) -> Any:
        box = [obj]
        dist.broadcast_object_list(
            box, src=0, device=self.device if self.device.type == "cuda" else None
        )
        return box[0]

    def barrier(self) -> None:
        """``dist.barrier`` on this rank's GPU under NCCL (``device_ids`` is NCCL-only)."""
        if self.device.type == "cuda" and dist.get_backend() == "nccl":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def wrap(self, model: nn.Module, step_model: nn.Module) -> nn.Module:
        ids = [self.device.index] if self.device.type == "cuda" else None
        return _AttackAwareDDP(
            nn.parallel.DistributedDataParallel(model, device_ids=ids), step_model
        )

    def sync_rng(self) -> None:
        cuda = self.device.type == "cuda"
        states = self.broadcast(
            {
                "cpu": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(self.device) if cuda else None,
            }
        )
        torch.set_rng_state(states["cpu"])
        if cuda:
            torch.cuda.set_rng_state(states["cuda"], self.device)

    def sync_bank(self, bank: TEBank, idx: torch.Tensor, before: torch.Tensor) -> None:
        """Share the TE-bank rows each rank updated: all end with the global batch's rows."""
        lo, hi = self.shard(len(idx))
        mine = torch.zeros_like(before)
        mine[lo:hi] = bank.bank[idx[lo:hi]]
        mask = torch.zeros(len(idx), 1, dtype=before.dtype, device=before.device)
        mask[lo:hi] = 1.0
        dist.all_reduce(mine)
        dist.all_reduce(mask)
        # Rows nobody updated (TE not active yet) keep their value; a sum with zeros is exact.
        bank.bank[idx] = torch.where(mask > 0, mine, before)


def main(argv: Sequence[str] | None = None) -> int:
    """``torchrun ... -m robmem.empirics.distributed --config C --run-dir D [--resume]``."""
    parser = argparse.ArgumentParser(
        prog="python -m robmem.empirics.distributed",
        description="Data-parallel training (launch with torchrun; one process per device).",
    )
    parser.add_argument("--config", type=pathlib.Path, help="TrainConfig file (.toml or .json)")
    parser.add_argument("--run-dir", type=pathlib.Path, required=True, help="run directory")
    parser.add_argument("--resume", action="store_true", help="continue from last.pt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (rank 0)")
    parser.add_argument("--backend", choices=["gloo", "nccl", "mpi"], default=None)
    parser.add_argument(
        "--shard-eval",
        action="store_true",
        help="split the per-epoch evaluation across processes (same metrics)",
    )
    args = parser.parse_args(argv)
    if args.config is None and not (args.resume and (args.run_dir / runs.CONFIG_JSON).exists()):
        parser.error("--config is required unless --resume finds the run's config.json")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s pid%(process)d: %(message)s")
    try:
        config = TrainConfig.load(args.config or args.run_dir / runs.CONFIG_JSON)
        train_distributed(
            config,
            args.run_dir,
            resume=args.resume,
            progress=not args.no_progress,
            backend=args.backend,
            shard_eval=args.shard_eval,
        )
    except (ValueError, TypeError, FileExistsError, FileNotFoundError) as exc:
        logger.error("%s", exc)
        return 2
    except NonFiniteLossError as exc:
        logger.error("stopped: %s", exc)
        return 3
    return 0


def _exit_without_teardown(code: int) -> None:
    """Flush and leave with ``os._exit``.

    Everything the run writes (metrics, checkpoints, status) is on disk with fsync before
    :func:`main` returns. At interpreter teardown, gloo's static destructors can abort a rank
    ("terminate called without an active exception", SIGABRT) after a successful run, seen
    once in a clean-clone CI run; skipping teardown keeps the exit code honest.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    _exit_without_teardown(main())
