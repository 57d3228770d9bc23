"""``robmem analyze``: bound-vs-measurement output for a model the user brings (issue 15).

The model comes from

* a run folder of the suite (``config.json`` + ``checkpoints/``): one checkpoint
  (``--epochs last``/``best``) or every saved epoch (``--epochs all``), which draws B1's
  per-epoch curve. The trainer keeps ``last.pt`` and ``best.pt`` only; epochs saved with
  :func:`robmem.bridge.analyze.epoch_checkpoint_callback` are found too. Data, ε, norm and the
  evaluation PGD default to the run's own;
* a TorchScript file (``torch.jit.save``) or a ``torch.export`` archive (``torch.export.save``,
  ``.pt2``);
* a state dict (``torch.save(model.state_dict())`` or a suite checkpoint) plus ``--arch``,
  a built-in model name.

Every checkpoint and state dict is read with ``weights_only=True`` (suite checkpoints after
their checksum check). Data: ``--data NAME`` (built-in; torchvision sets are read from
``--data-root``).

Examples::

    robmem analyze runs/digits-pgd --out analysis/digits
    robmem analyze runs/digits-pgd --epochs all --out analysis/digits-epochs
    robmem analyze model.pt2 --data cifar10 --data-root ~/data --eps 8/255 --out analysis/c10
    robmem analyze weights.pt --arch lenet5 --data mnist10k --eps 0.1 --out analysis/lenet
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import sys
import time
import warnings
import zipfile
from typing import TYPE_CHECKING, Any

from robmem.bridge.cmd_train import list_of, parse_float, parse_int, parse_json_object

if TYPE_CHECKING:
    from torch import nn

EPOCH_CHOICES = ("last", "best", "all")


_int_list = list_of(parse_int, spaces=True)
_float_list = list_of(parse_float, spaces=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``analyze`` sub-command."""
    p = subparsers.add_parser(
        "analyze",
        help="measure your own model: robust gaps, flatness, bounds, complexity",
        description=(
            "Measure a model the way the report measures the suite's runs (SPEC E1, E2, B1, "
            "E5, B2, per-example robust loss) and write HTML/Markdown/JSON/CSV and figures."
        ),
    )
    p.add_argument(
        "source",
        help="run folder, TorchScript file, torch.export archive (.pt2) or state-dict file",
    )
    p.add_argument("--out", required=True, help="output folder (new, empty or a previous one)")
    p.add_argument("--force", action="store_true", help="write into a non-empty foreign folder")
    g = p.add_argument_group("model")
    g.add_argument(
        "--epochs",
        default="last",
        help="run folder: last, best, all (every saved epoch) or epoch numbers 3,5 (default last)",
    )
    g.add_argument(
        "--arch", default=None, help="built-in model name of a state dict (e.g. mlp, lenet5)"
    )
    g.add_argument(
        "--model-kwargs", type=parse_json_object, default=None, help="JSON options of --arch"
    )
    g.add_argument(
        "--init",
        default=None,
        help="state dict of the model at initialization (distance-to-init measures); a run "
        "folder's init is re-created from its seed unless --no-init",
    )
    g.add_argument("--no-init", action="store_true", help="no init model (no distance measures)")
    g.add_argument(
        "--no-check-logits",
        action="store_true",
        help="accept outputs that look like probabilities (rows in [0,1] summing to 1)",
    )
    d = p.add_argument_group("data")
    d.add_argument(
        "--data", default=None, help="built-in data set name (e.g. digits, mnist10k, cifar10)"
    )
    d.add_argument("--data-root", default=None, help="torchvision root / MNIST idx folder")
    d.add_argument("--download", action="store_true", help="let torchvision download --data")
    d.add_argument("--n-train", type=int, default=None, help="analyse this many train examples")
    d.add_argument("--n-test", type=int, default=None, help="analyse this many test examples")
    d.add_argument("--data-seed", type=int, default=None, help="seed of the split and subsets")
    a = p.add_argument_group("attack")
    a.add_argument(
        "--eps", type=parse_float, default=None, help="radius, pixel units (e.g. 0.1 or 8/255)"
    )
    a.add_argument("--norm", choices=("inf", "2"), default=None, help="threat norm")
    a.add_argument("--steps", type=int, default=None, help="PGD steps (default 10 / the run's)")
    a.add_argument(
        "--step-size", type=parse_float, default=None, help="PGD step, pixel units (default ε/4)"
    )
    a.add_argument("--restarts", type=int, default=None, help="PGD restarts per seed")
    a.add_argument(
        "--attack-seeds", type=_int_list, default=[0], help="PGD seeds, e.g. 0,1,2 (default 0)"
    )
    a.add_argument(
        "--autoattack",
        choices=("auto", "on", "off"),
        default="auto",
        help="run AutoAttack too: auto = when installed (default), on = require it, off",
    )
    f = p.add_argument_group("landscape and bounds")
    f.add_argument("--eps-grid", type=_float_list, default=None, help="E2 radii (default 0..3ε)")
    f.add_argument("--landscape-samples", type=int, default=200, help="E2 points per split")
    f.add_argument("--landscape-steps", type=int, default=10, help="E2 ascent steps")
    f.add_argument("--landscape-seed", type=int, default=0, help="E2 subset and start seed")
    f.add_argument("--no-complexity", action="store_true", help="skip the E5 measures")
    f.add_argument("--no-pac-bayes", action="store_true", help="skip the PAC-Bayes σ search")
    f.add_argument("--no-vc", action="store_true", help="skip the B2 VC bound")
    r = p.add_argument_group("resources")
    r.add_argument("--batch-size", type=int, default=256, help="examples per batch")
    r.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    r.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.set_defaults(func=run)


# ============================================================================ model loading
def _file_kind(path: pathlib.Path) -> str:
    """``robmem-checkpoint``, ``export``, ``torchscript`` or ``state-dict``."""
    from robmem.empirics.checkpoint import _TRAILER_TAG

    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(size - 80, 0))
        tail = fh.read()
    if _TRAILER_TAG in tail:
        return "robmem-checkpoint"
    if zipfile.is_zipfile(path):
        names = zipfile.ZipFile(path).namelist()
        if any(n.endswith("/archive_format") for n in names) and any(
            "/models/" in n for n in names
        ):
            return "export"
        if any("/code/" in n for n in names):
            return "torchscript"
    return "state-dict"


def _state_dict_from(payload: Any, path: pathlib.Path) -> dict[str, Any]:
    import torch

    if isinstance(payload, dict) and isinstance(payload.get("model"), dict):
        payload = payload["model"]
    elif isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        payload = payload["state_dict"]
    if not isinstance(payload, dict) or not all(
        isinstance(v, torch.Tensor) for v in payload.values()
    ):
        raise ValueError(f"source={str(path)!r} holds no state dict (name → tensor mapping)")
    return {k.removeprefix("module."): v for k, v in payload.items()}


def load_state_dict_file(path: pathlib.Path) -> dict[str, Any]:
    """A state dict from a suite checkpoint (checksum + weights_only) or a ``torch.save`` file
    (weights_only=True): nothing but tensors and plain containers is ever unpickled."""
    import pickle

    import torch

    from robmem.empirics.checkpoint import CheckpointError, load_checkpoint

    if _file_kind(path) == "robmem-checkpoint":
        try:
            return _state_dict_from(load_checkpoint(path), path)
        except CheckpointError as exc:
            raise ValueError(str(exc)) from exc
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"source={str(path)!r}: refused or unreadable (only tensors and plain containers "
            f"are loaded, weights_only=True): {first}"
        ) from exc
    return _state_dict_from(payload, path)


def load_model_file(
    path: pathlib.Path, *, arch: str | None, model_kwargs: dict[str, Any], data: Any
) -> tuple[nn.Module, str]:
    """The model in ``path`` (TorchScript, torch.export, or a state dict of ``arch``)."""
    import torch

    from robmem.bridge.analyze import ExportedModule

    kind = _file_kind(path)
    if kind == "export":
        program = torch.export.load(str(path)).module()
        return ExportedModule(program), "torch.export program"
    if kind == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated
            model = torch.jit.load(str(path), map_location="cpu")
        return model.eval(), "TorchScript module"
    if arch is None:
        raise ValueError(
            f"source={str(path)!r} is a state dict: pass --arch (one of the built-in model "
            "names) to build the model it belongs to"
        )
    return build_from_state_dict(load_state_dict_file(path), arch, model_kwargs, data), "state dict"


def build_from_state_dict(
    state: dict[str, Any], arch: str, model_kwargs: dict[str, Any], data: Any
) -> nn.Module:
    from robmem.empirics.models import build_model

    model = build_model(arch, data.num_classes, data.in_shape, **model_kwargs)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ValueError(
            f"--arch {arch}: the state dict does not fit this model ({first})"
        ) from exc
    return model.eval()


# ============================================================================ the command
def _epochs_wanted(text: str) -> str | list[int]:
    if text in EPOCH_CHOICES:
        return text
    try:
        return _int_list(text)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(
            f"--epochs must be one of {EPOCH_CHOICES} or epoch numbers, got {text!r}"
        ) from exc


def _select_checkpoints(run_dir: pathlib.Path, config: Any, wanted: str | list[int]) -> list[Any]:
    from robmem.bridge.analyze import RunCheckpoint, run_checkpoints
    from robmem.empirics.checkpoint import load_checkpoint
    from robmem.empirics.runs import RunPaths

    paths = RunPaths(run_dir)
    if wanted in ("last", "best"):
        path = paths.last if wanted == "last" else paths.best(config)
        if not path.exists():
            raise FileNotFoundError(f"run_dir={str(run_dir)!r} has no {path.name}")
        epoch = int(load_checkpoint(path).get("epoch", -1))
        return [RunCheckpoint(epoch, path, (path.name,))]
    saved = run_checkpoints(run_dir)
    if wanted == "all":
        return saved
    by_epoch = {c.epoch: c for c in saved}
    missing = [e for e in wanted if e not in by_epoch]
    if missing:
        raise ValueError(
            f"--epochs: epochs {missing} are not saved in {run_dir}; saved epochs: "
            f"{sorted(by_epoch)}"
        )
    return [by_epoch[e] for e in sorted(set(wanted))]


def _check_positive(args: argparse.Namespace) -> None:
    at_least = {"n_train": 1, "n_test": 1, "batch_size": 1, "threads": 1, "landscape_samples": 1,
                "landscape_steps": 1, "restarts": 1, "steps": 0, "data_seed": 0,
                "landscape_seed": 0}  # fmt: skip
    for name, low in at_least.items():
        v = getattr(args, name)
        if v is not None and v < low:
            raise ValueError(f"--{name.replace('_', '-')} must be an integer >= {low}, got {v}")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``robmem analyze``: progress to stderr, a summary to stdout."""
    import torch

    from robmem.bridge.analyze import analyze, model_from_checkpoint
    from robmem.bridge.analyze_render import check_output_dir, write_analysis
    from robmem.empirics.data import DatasetSplit, load_dataset
    from robmem.empirics.trainers import resolve_device

    _check_positive(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = str(resolve_device(args.device))
    source = pathlib.Path(args.source)
    if not source.exists():
        raise FileNotFoundError(f"source={str(source)!r} does not exist")
    start = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s] {message}", file=sys.stderr, flush=True)

    check_output_dir(args.out, force=args.force)  # refuse a foreign folder before any work
    common: dict[str, Any] = dict(
        attack_seeds=args.attack_seeds, autoattack=args.autoattack, n_train=args.n_train,
        n_test=args.n_test, data_seed=args.data_seed if args.data_seed is not None else 0,
        eps_grid=args.eps_grid, landscape_samples=args.landscape_samples,
        landscape_steps=args.landscape_steps, landscape_seed=args.landscape_seed,
        complexity=not args.no_complexity, pac_bayes=not args.no_pac_bayes,
        vc_bound=not args.no_vc, batch_size=args.batch_size, device=device,
        check_logits=not args.no_check_logits, progress=progress,
    )  # fmt: skip
    init = None
    if source.is_dir():
        from robmem.empirics.complexity import initial_model
        from robmem.empirics.config import TrainConfig
        from robmem.empirics.runs import RunPaths
        from robmem.empirics.trainers import build_eval_attack, prepare_data

        paths = RunPaths(source)
        if not paths.config_json.is_file():
            raise ValueError(f"source={str(source)!r} is a folder without config.json (not a run)")
        if args.data is not None or args.arch is not None:
            raise ValueError("--data and --arch do not apply to a run folder (it names both)")
        config = TrainConfig.from_json(paths.config_json.read_text())
        checkpoints = _select_checkpoints(source, config, _epochs_wanted(args.epochs))
        data = prepare_data(config)
        attack = build_eval_attack(config)
        split = DatasetSplit(
            data.train_x, data.train_y, data.test_x, data.test_y, data.num_classes,
            f"{config.dataset} (training labels of the run, data seed {config.data_seed})",
        )  # fmt: skip
        arch, model_kwargs = config.model, dict(config.model_kwargs)
        if args.init is None and not args.no_init:
            init = initial_model(config)
        defaults = dict(
            eps=config.epsilon,
            norm=config.norm,
            steps=attack.steps,
            step_size=attack.alpha,
            restarts=attack.restarts,
        )
        src_text = f"run folder {source}"
    else:
        if args.data is None:
            raise ValueError("--data is required for a model file (name a built-in data set)")
        if args.eps is None:
            raise ValueError("--eps is required for a model file (radius in pixel units)")
        if args.epochs != "last":
            raise ValueError("--epochs applies to run folders only")
        split = load_dataset(
            args.data, root=args.data_root, download=args.download, n_train=args.n_train,
            n_test=args.n_test, seed=common["data_seed"],
        )  # fmt: skip
        arch, model_kwargs = args.arch, args.model_kwargs or {}
        model, kind = load_model_file(source, arch=arch, model_kwargs=model_kwargs, data=split)
        if args.init is not None and arch is None:
            raise ValueError("--init needs --arch (the init weights are a state dict)")
        common.update(n_train=None, n_test=None)  # already subsampled by load_dataset
        defaults = dict(eps=None, norm="inf", steps=10, step_size=None, restarts=1)
        src_text = f"{kind} {source}"
    if args.init is not None:
        init = build_from_state_dict(
            load_state_dict_file(pathlib.Path(args.init)), arch, model_kwargs, split
        )
    common.update(
        {k: v if getattr(args, k) is None else getattr(args, k) for k, v in defaults.items()}
    )
    common["init_model"] = None if init is None else init.to(device)
    if source.is_dir():
        analyses = []
        for ck in checkpoints:
            progress(f"checkpoint {ck.path.name} (epoch {ck.epoch})")
            model = model_from_checkpoint(config, ck.path, device=device)
            analyses.append(
                analyze(model, split, label=f"epoch {ck.epoch}", epoch=ck.epoch, **common)
            )
    else:
        analyses = [analyze(model.to(device), split, label=source.name, **common)]
    command = "robmem analyze " + " ".join(shlex.quote(a) for a in _argv_of(args))
    files = write_analysis(
        analyses, args.out, command=command, source=src_text,
        wall_s=time.perf_counter() - start, force=args.force,
    )  # fmt: skip
    last = analyses[-1]
    print(f"robmem analyze: {src_text} in {time.perf_counter() - start:.1f} s -> {args.out}")
    for a in analyses:
        print(
            f"  {a.label}: robust train {100 * a.train.robust_acc.mean:.1f} % / test "
            f"{100 * a.test.robust_acc.mean:.1f} %, clean train {100 * a.train.clean_acc.mean:.1f}"
            f" % / test {100 * a.test.clean_acc.mean:.1f} %"
        )
    if last.skipped:
        print("  not measured: " + "; ".join(f"{k}: {v}" for k, v in last.skipped.items()))
    print(f"open {pathlib.Path(args.out) / files[4]}")
    return 0


def _argv_of(args: argparse.Namespace) -> list[str]:
    """The flags that re-create this output (defaults omitted)."""
    out = [str(args.source), "--out", str(args.out)]
    flags = [
        ("epochs", "last"), ("arch", None), ("init", None), ("data", None),
        ("data_root", None), ("n_train", None), ("n_test", None), ("data_seed", None),
        ("eps", None), ("norm", None), ("steps", None), ("step_size", None),
        ("restarts", None), ("autoattack", "auto"), ("landscape_samples", 200),
        ("landscape_steps", 10), ("landscape_seed", 0), ("batch_size", 256), ("device", "cpu"),
        ("threads", None),
    ]  # fmt: skip
    for name, default in flags:
        v = getattr(args, name)
        if v is not None and v != default:
            out += [f"--{name.replace('_', '-')}", str(v)]
    if args.model_kwargs:
        out += ["--model-kwargs", json.dumps(args.model_kwargs)]
    if args.attack_seeds != [0]:
        out += ["--attack-seeds", ",".join(str(s) for s in args.attack_seeds)]
    if args.eps_grid is not None:
        out += ["--eps-grid", ",".join(f"{e:g}" for e in args.eps_grid)]
    for flag in ("no_init", "no_check_logits", "download", "no_complexity", "no_pac_bayes",
                 "no_vc", "force"):  # fmt: skip
        if getattr(args, flag):
            out.append(f"--{flag.replace('_', '-')}")
    return out
