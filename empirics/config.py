"""One typed, commented configuration object for every training run (SPEC E1, E3–E6).

Every hyperparameter of a run lives in :class:`TrainConfig`, with its unit in the field
comment (airbench style, ``../shared/STYLE.md``). A config round-trips through JSON and TOML
(:meth:`TrainConfig.to_json`, :meth:`TrainConfig.from_json`, :meth:`TrainConfig.to_toml`,
:meth:`TrainConfig.from_toml`), and is validated on construction: a bad value raises
``ValueError`` naming the field and its allowed range.

Defaults are a small CPU run (digits, MLP, PGD-AT at ε = 0.1). The papers' settings are
spelled out in :data:`PRESETS` with their sources.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import types
import typing
from dataclasses import dataclass, field
from typing import Any

#: Training methods: plain ERM, Madry PGD-AT, Wong FGSM with random start, TRADES, and
#: the two temporal-ensembling (TE) variants of [P2]'s official ``loss.py``.
METHODS: tuple[str, ...] = ("standard", "pgd", "fgsm-rs", "trades", "pgd-te", "trades-te")
#: Data sets of plain vectors, on which ``augment`` is rejected (no augmentation is defined).
VECTOR_DATASETS: tuple[str, ...] = ("synthetic-separated", "linear-separable")
#: Learning-rate schedules, see :mod:`robmem.empirics.schedules`.
SCHEDULES: tuple[str, ...] = ("constant", "piecewise", "multistep", "cosine", "cyclic")
NORMS: tuple[str, ...] = ("inf", "2")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
#: ``torch.compile`` modes; ``"reduce-overhead"`` captures CUDA graphs (CUDA only).
COMPILE_MODES: tuple[str, ...] = (
    "default",
    "reduce-overhead",
    "max-autotune",
    "max-autotune-no-cudagraphs",
)
#: Fields that may differ between a run and its resumption (they change where and how fast a
#: run computes, not what it computes).
RESUME_MUTABLE_FIELDS: frozenset[str] = frozenset(
    {"device", "num_threads", "compile", "compile_mode"}
)


@dataclass
class TrainConfig:
    """All settings of one training run; units are in the comments.

    Epochs are numbered from 1, as in [P2]'s ``train_te.py`` (``range(1, epochs + 1)``), so
    ``te_start_epoch = 90`` means the 90th epoch.
    """

    # --- data -------------------------------------------------------------------------
    dataset: str = "digits"  # a name accepted by robmem.empirics.data.load_dataset
    data_root: str | None = None  # folder for torchvision / idx data; None = library default
    download: bool = False  # let torchvision download missing data
    n_train: int | None = None  # training examples kept (None = all)
    n_test: int | None = None  # test examples kept (None = all)
    data_seed: int = 0  # seed of the dataset split / subsampling
    val_size: int = 0  # examples held out of the training split for model selection
    label_noise: float = 0.0  # symmetric label-noise rate in [0, 1]; 1.0 = random labels (E3)
    label_noise_seed: int = 0  # seed of the label noise ([P2]'s code left it unseeded)
    augment: bool = False  # images: crop (pad augment_padding px) + flip; mnist1d: shift + noise
    augment_padding: int = 4  # pixels of zero padding before the random crop
    # --- model --------------------------------------------------------------------------
    model: str = "mlp"  # a name accepted by robmem.empirics.models.build_model
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # extra build_model kwargs
    # --- method and threat model ---------------------------------------------------------
    method: str = "pgd"  # one of METHODS
    norm: str = "inf"  # threat-model norm, "inf" or "2"
    epsilon: float = 0.1  # attack radius, pixel units ([0,1] scale); 8/255 for CIFAR
    attack_steps: int = 10  # PGD steps during training
    attack_step_size: float = 0.025  # PGD step, pixel units; CIFAR: 2/255
    attack_eval_mode: bool = True  # craft training attacks with BN in eval mode ([P2], [R20])
    fgsm_step_size: float = 0.125  # FGSM-RS step, pixel units; Wong et al. use 1.25·ε
    trades_beta: float = 6.0  # TRADES β (weight of the KL term), dimensionless
    te_alpha: float = 0.9  # TE bank momentum ([P2] te_alpha), dimensionless in [0, 1)
    te_start_epoch: int = 90  # first epoch (1-based) of the TE bank update and penalty
    te_end_epoch: int = 150  # epoch (1-based) at which the TE weight reaches te_weight
    te_weight: float = 300.0  # TE weight on the per-class-mean MSE ([P2] reg_weight)
    # --- optimisation ---------------------------------------------------------------------
    epochs: int = 10  # passes over the training split
    batch_size: int = 128  # examples per optimisation step
    optimizer: str = "sgd"  # one of OPTIMIZERS
    lr: float = 0.1  # peak learning rate at lr_reference_batch (as given if that is None)
    lr_reference_batch: int | None = None  # linear scaling: peak lr = lr·batch_size/this
    momentum: float = 0.9  # SGD momentum (ignored by adam)
    nesterov: bool = False  # Nesterov momentum for SGD
    weight_decay: float = 5e-4  # L2 weight decay coefficient (coupled, as torch.optim.SGD)
    schedule: str = "piecewise"  # one of SCHEDULES
    milestones: list[int] = field(default_factory=lambda: [100, 150])  # multistep, epochs
    lr_gamma: float = 0.1  # multistep decay factor per milestone
    cyclic_peak_fraction: float = 0.4  # cyclic: fraction of epochs at which lr peaks
    grad_clip: float | None = None  # clip the global gradient norm to this (None = off)
    # --- evaluation ----------------------------------------------------------------------
    eval_every: int = 1  # evaluate train/test (clean + robust) every this many epochs
    eval_attack_steps: int = 10  # PGD steps of the per-epoch robust evaluation
    eval_attack_step_size: float | None = None  # pixel units; None = epsilon / 4
    eval_restarts: int = 1  # random restarts of the evaluation PGD (per-sample worst)
    eval_batch_size: int = 512  # examples per evaluation batch
    eval_train_size: int | None = None  # train examples evaluated (None = the full set)
    select_metric: str | None = None  # metric picking best.pt, e.g. "val_robust_acc"
    select_mode: str = "max"  # "max" or "min" for select_metric
    allow_test_selection: bool = False  # must be True to select on a test_* metric
    # --- reproducibility and hardware -------------------------------------------------------
    seed: int = 0  # seed of model init, shuffling, augmentation and attack starts
    device: str = "cpu"  # "cpu", "cuda", "cuda:N" or "auto"
    precision: str = "fp32"  # "fp32" or "bf16" (torch.autocast; meant for CUDA)
    channels_last: bool = False  # NHWC memory format (CUDA speed)
    compile: bool = False  # torch.compile the model (training step and its attack)
    compile_mode: str = "default"  # one of COMPILE_MODES; "reduce-overhead" = CUDA graphs
    num_threads: int | None = None  # torch CPU threads (None = torch default)

    def __post_init__(self) -> None:
        _coerce_types(self)
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field that is out of its allowed range."""
        _choice("method", self.method, METHODS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("norm", self.norm, NORMS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("precision", self.precision, PRECISIONS)
        _choice("compile_mode", self.compile_mode, COMPILE_MODES)
        _choice("select_mode", self.select_mode, ("max", "min"))
        # Names are checked here, before any run directory is created.
        from robmem.empirics.data import DATASET_NAMES
        from robmem.empirics.models import MODEL_NAMES

        _choice("dataset", self.dataset, DATASET_NAMES)
        _choice("model", self.model, MODEL_NAMES)
        for name in ("n_train", "n_test", "eval_train_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be None or an integer >= 1, got {value}")
        _at_least("val_size", self.val_size, 0)
        _in_closed("label_noise", self.label_noise, 0.0, 1.0)
        if self.method in ("trades", "trades-te") and self.norm != "inf":
            raise ValueError(f"norm must be 'inf' for method={self.method!r}, got {self.norm!r}")
        _at_least("augment_padding", self.augment_padding, 0)
        if self.augment and self.dataset in VECTOR_DATASETS:
            raise ValueError(
                f"augment must be False for dataset={self.dataset!r} (vector data has no "
                "crop/flip or shift augmentation); allowed for image data sets and mnist1d"
            )
        _at_least("epsilon", self.epsilon, 0.0)
        _at_least("attack_steps", self.attack_steps, 0)
        _positive("attack_step_size", self.attack_step_size)
        _positive("fgsm_step_size", self.fgsm_step_size)
        _at_least("trades_beta", self.trades_beta, 0.0)
        if not 0.0 <= self.te_alpha < 1.0:
            raise ValueError(f"te_alpha must be in [0, 1), got {self.te_alpha}")
        _at_least("te_start_epoch", self.te_start_epoch, 1)
        if self.te_end_epoch <= self.te_start_epoch:
            raise ValueError(
                f"te_end_epoch must be > te_start_epoch={self.te_start_epoch}, "
                f"got {self.te_end_epoch}"
            )
        _at_least("te_weight", self.te_weight, 0.0)
        _at_least("epochs", self.epochs, 1)
        _at_least("batch_size", self.batch_size, 1)
        _at_least("lr", self.lr, 0.0)
        if self.lr_reference_batch is not None:
            _at_least("lr_reference_batch", self.lr_reference_batch, 1)
        _in_closed("momentum", self.momentum, 0.0, 1.0)
        _at_least("weight_decay", self.weight_decay, 0.0)
        if any(m < 1 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise ValueError(
                f"milestones must be increasing epochs >= 1, got {list(self.milestones)}"
            )
        _positive("lr_gamma", self.lr_gamma)
        if not 0.0 < self.cyclic_peak_fraction < 1.0:
            raise ValueError(
                f"cyclic_peak_fraction must be in (0, 1), got {self.cyclic_peak_fraction}"
            )
        if self.grad_clip is not None:
            _positive("grad_clip", self.grad_clip)
        _at_least("eval_every", self.eval_every, 1)
        _at_least("eval_attack_steps", self.eval_attack_steps, 0)
        if self.eval_attack_step_size is not None:
            _positive("eval_attack_step_size", self.eval_attack_step_size)
        _at_least("eval_restarts", self.eval_restarts, 1)
        _at_least("eval_batch_size", self.eval_batch_size, 1)
        if self.select_metric is not None:
            if self.select_metric.startswith("test_") and not self.allow_test_selection:
                raise ValueError(
                    f"select_metric={self.select_metric!r} selects on the test set; set "
                    "allow_test_selection=True to allow it (the checkpoint is then labelled "
                    "best-by-test)"
                )
            if self.select_metric.startswith("val_") and self.val_size == 0:
                raise ValueError(f"select_metric={self.select_metric!r} needs val_size >= 1, got 0")
        if self.num_threads is not None:
            _at_least("num_threads", self.num_threads, 1)
        if not (self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:")):
            raise ValueError(
                f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {self.device!r}"
            )

    # ------------------------------------------------------------------ derived values
    @property
    def eval_step_size(self) -> float:
        """Step of the evaluation PGD in pixel units (default ε/4, i.e. 2/255 at ε = 8/255)."""
        if self.eval_attack_step_size is not None:
            return self.eval_attack_step_size
        return self.epsilon / 4.0 if self.epsilon > 0 else 1.0

    @property
    def peak_lr(self) -> float:
        """Peak learning rate of the schedule: ``lr``, linearly scaled to the batch size.

        With ``lr_reference_batch = B₀`` the peak is ``lr · batch_size / B₀`` (the linear
        scaling rule of Goyal et al. 2017; Pang et al. 2021 find batch size insignificant
        for PGD-AT under it, ``notes/speed-and-library-anchors.md`` §1.4).
        """
        if self.lr_reference_batch is None:
            return self.lr
        return self.lr * self.batch_size / self.lr_reference_batch

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Return a plain dict (JSON types only) of every field."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build a config from a dict; unknown keys raise ``ValueError`` naming them."""
        if not isinstance(data, dict):
            raise TypeError(f"config data must be a dict, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown config field(s) {unknown}; known: {sorted(names)}")
        return cls(**data)

    def to_json(self) -> str:
        """Return the config as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        """Parse JSON text written by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def to_toml(self) -> str:
        """Return the config as TOML text (``None`` fields are omitted; they are defaults)."""
        lines = []
        for key, value in self.to_dict().items():
            if value is None:
                continue
            lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, text: str) -> TrainConfig:
        """Parse TOML text (as written by :meth:`to_toml`)."""
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        return cls.from_dict(tomllib.loads(text))

    def save(self, path: str | pathlib.Path) -> None:
        """Write the config to ``path``; the suffix (.json or .toml) picks the format."""
        path = pathlib.Path(path)
        if path.suffix == ".toml":
            path.write_text(self.to_toml())
        elif path.suffix == ".json":
            path.write_text(self.to_json())
        else:
            raise ValueError(f"path must end in .json or .toml, got {path.name!r}")

    @classmethod
    def load(cls, path: str | pathlib.Path) -> TrainConfig:
        """Read a config from a .json or .toml file."""
        path = pathlib.Path(path)
        if path.suffix == ".toml":
            return cls.from_toml(path.read_text())
        if path.suffix == ".json":
            return cls.from_json(path.read_text())
        raise ValueError(f"path must end in .json or .toml, got {path.name!r}")

    def replace(self, **changes: Any) -> TrainConfig:
        """Return a validated copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def differences(self, other: TrainConfig, *, ignore: frozenset[str] = frozenset()) -> dict:
        """Return ``{field: (self_value, other_value)}`` for fields that differ."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if k not in ignore and a[k] != b[k]}


#: What every preset shares: CIFAR-10, PGD-10 at 8/255 with step 2/255, batch 128, lr 0.1.
_CIFAR10_PGD10: dict[str, Any] = dict(
    dataset="cifar10", epsilon=8 / 255, attack_steps=10, attack_step_size=2 / 255,
    batch_size=128, lr=0.1,
)  # fmt: skip

#: The papers' settings (documented choices; every key is a TrainConfig field).
PRESETS: dict[str, dict[str, Any]] = {
    # [R20] train_cifar.py defaults: PreActResNet-18, PGD-10 at 8/255 step 2/255, 200 epochs,
    # piecewise lr 0.1 -> 0.01 (epoch 100) -> 0.001 (epoch 150), wd 5e-4, crop+flip.
    "rice-cifar10-pgd": dict(
        **_CIFAR10_PGD10,
        model="preactresnet18",
        method="pgd",
        epochs=200,
        weight_decay=5e-4,
        schedule="piecewise",
        augment=True,
    ),  # fmt: skip
    # [P2] train_te.py defaults: ResNet-18, PGD-10, 200 epochs, MultiStepLR [100, 150],
    # wd 5e-4, crop+flip, TE alpha 0.9, start 90, end 150, weight 300.
    "dong-cifar10-pgd-te": dict(
        **_CIFAR10_PGD10,
        model="resnet18",
        method="pgd-te",
        epochs=200,
        weight_decay=5e-4,
        schedule="multistep",
        milestones=[100, 150],
        augment=True,
        te_alpha=0.9,
        te_start_epoch=90,
        te_end_epoch=150,
        te_weight=300.0,
    ),  # fmt: skip
    # [P2] train.py README command for random labels: WRN-28-10, no augmentation, wd 0,
    # 300 epochs, StepLR(100, 0.1), label noise 1.0.
    "dong-cifar10-random-labels": dict(
        **_CIFAR10_PGD10,
        model="wrn",
        model_kwargs={"depth": 28, "widen": 10},
        method="pgd",
        epochs=300,
        weight_decay=0.0,
        schedule="multistep",
        milestones=[100, 200],
        augment=False,
        label_noise=1.0,
    ),  # fmt: skip
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """Return the named preset of :data:`PRESETS` with ``overrides`` applied."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
    return TrainConfig(**{**PRESETS[name], **overrides})


# ---------------------------------------------------------------------- helpers
def _coerce_types(config: TrainConfig) -> None:
    """Coerce ints to floats for float fields (JSON/TOML write 0 for 0.0) and check types."""
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        hint = hints[f.name]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            allowed = typing.get_args(hint)
        else:
            allowed = (hint,)
        if value is None:
            if type(None) not in allowed:
                raise TypeError(f"{f.name} must not be None")
            continue
        if float in allowed and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
            setattr(config, f.name, value)
        if float in allowed and isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{f.name} must be finite, got {value}")
        origins = tuple(typing.get_origin(a) or a for a in allowed)
        if bool in origins and not isinstance(value, bool):
            raise TypeError(f"{f.name} must be a bool, got {value!r}")
        if int in origins and bool not in origins and isinstance(value, bool):
            raise TypeError(f"{f.name} must be an int, got {value!r}")
        if not isinstance(value, tuple(o for o in origins if o is not type(None))):
            raise TypeError(f"{f.name} must be of type {hint}, got {value!r}")
        if f.name == "milestones":
            if not all(isinstance(m, int) and not isinstance(m, bool) for m in value):
                raise TypeError(f"milestones must be a list of ints, got {value!r}")
            setattr(config, f.name, list(value))


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


def _at_least(name: str, value: float, low: float) -> None:
    if not value >= low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def _in_closed(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")


def _toml_value(value: Any) -> str:
    """Format one JSON-typed value as TOML (strings, numbers, bools, lists, inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    raise TypeError(f"cannot write {value!r} to TOML")


def field_comments() -> dict[str, str]:
    """Return each TrainConfig field's unit-bearing source comment (used as CLI help)."""
    import inspect
    import re

    pattern = re.compile(r"^\s{4}(\w+):[^#]*#\s*(.+)$")
    out: dict[str, str] = {}
    for line in inspect.getsource(TrainConfig).splitlines():
        match = pattern.match(line)
        if match:
            out[match.group(1)] = match.group(2).strip()
    return out
