"""Models for the empirical suite (SPEC E1–E6): all take inputs in [0, 1].

Every model built by :func:`build_model` starts with a :class:`Normalize` layer (identity unless
``mean``/``std`` are given), so attacks always work in pixel space [0, 1] and ε keeps its
meaning (SPEC "Threat model"; ``notes/speed-and-library-anchors.md`` §4.1 item 3).

Architectures:

- ``"linear"``: one affine map of the flattened input.
- ``"mlp"``: fully connected ReLU network (``hidden=(256, 256)`` by default); with
  ``batch_norm=True`` every hidden Linear is followed by BatchNorm1d before its ReLU (the BN
  regime of [P2]'s networks; ``notes/verdict-audit.md`` §4 E3/E4).
- ``"cnn1d"``: a small 1-D CNN with BatchNorm for MNIST-1D (three stride-2 convolutions,
  then a linear read-out); inputs ``(C, L)`` or ``(L,)``.
- ``"mixed"``: the mixed learner of [P1] §5 (Thm 5.2),
  f(x) = w0ᵀx + Σ_j a_j σ(w_jᵀx − b) with σ = ReLU and a fixed threshold b.
- ``"lenet5"``: LeNet-5 (two 5×5 convolutions with max-pooling, then 120-84-C), ReLU.
- ``"preactresnet18"``: PreActResNet-18 as in Rice et al. 2020 / Wong et al. 2020.
- ``"wrn"``: WideResNet(depth, widen) as in the TRADES / [P2] code (28-10, 34-10).
- ``"resnet18"``: the standard (post-activation, kuangliu-style) ResNet-18 that [P2]'s TE code
  (``train_te.py``) uses; ``notes/paper-dong-memorization-at.md`` §6 item 6.

The residual networks end with global average pooling, which equals the original
``avg_pool2d(out, 4)`` (resp. 8 for WRN) at 32×32 inputs and also works on 28×28 or 8×8 images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: Names accepted by :func:`build_model`.
MODEL_NAMES: tuple[str, ...] = (
    "linear",
    "mlp",
    "cnn1d",
    "mixed",
    "lenet5",
    "preactresnet18",
    "wrn",
    "resnet18",
)

#: Default hidden widths of the MLP (a common small-MNIST choice; not from a paper).
DEFAULT_MLP_HIDDEN: tuple[int, ...] = (256, 256)
#: Default channels of the 1-D CNN, one stride-2 convolution each (40 → 20 → 10 → 5 samples on
#: MNIST-1D). Our choice, a little wider than the 25-channel CNN of the MNIST-1D paper.
DEFAULT_CNN1D_CHANNELS: tuple[int, ...] = (32, 32, 32)
#: Kernel width of the 1-D CNN's convolutions (odd, "same" padding before the stride).
DEFAULT_CNN1D_KERNEL = 5
#: Default number of ReLU neurons of the mixed learner ([P1] §5 leaves m free).
DEFAULT_MIXED_WIDTH = 256
#: Default threshold b of φ(t) = σ(t − b) in the mixed learner ([P1] §5 leaves b free).
DEFAULT_MIXED_THRESHOLD = 0.0
#: WideResNet defaults: WRN-34-10, the [P2] TE code's default (train_te.py --depth 34).
DEFAULT_WRN_DEPTH = 34
DEFAULT_WRN_WIDEN = 10


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` inside the model, so attacks stay in pixel space.

    Parameters
    ----------
    mean, std : sequence of float or None
        Per-channel statistics (length = number of channels, or 1). ``None`` means identity.
    """

    def __init__(self, mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__()
        if (mean is None) != (std is None):
            raise ValueError("mean and std must be given together (both or neither)")
        if mean is not None and std is not None:
            mean_t = torch.as_tensor(list(mean), dtype=torch.float32)
            std_t = torch.as_tensor(list(std), dtype=torch.float32)
            if mean_t.shape != std_t.shape or mean_t.ndim != 1:
                raise ValueError("mean and std must be 1-D sequences of equal length")
            if bool((std_t <= 0).any()):
                raise ValueError(f"std must be > 0, got {list(std)}")
            self.register_buffer("mean", mean_t)
            self.register_buffer("std", std_t)
        else:
            self.mean = None
            self.std = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean is None:
            return x
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return (x - self.mean.view(shape)) / self.std.view(shape)


class LinearModel(nn.Module):
    """Affine classifier ``logits = W·flatten(x) + b``."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class MLP(nn.Module):
    """Fully connected ReLU network on the flattened input.

    ``self.net`` is ``Sequential(Linear, ReLU, …, Linear)``; without BatchNorm that is exactly
    what :func:`robmem.empirics.network_torch.from_torch` reads. With ``batch_norm=True`` each
    hidden block is ``Linear, BatchNorm1d, ReLU`` (BN in train mode uses batch statistics, in
    eval mode its running averages — the attacks run it in eval mode).
    """

    def __init__(
        self, in_features: int, num_classes: int, hidden: Sequence[int], batch_norm: bool = False
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            if int(h) < 1:
                raise ValueError(f"hidden widths must be >= 1, got {list(hidden)}")
            layers.append(nn.Linear(width, int(h)))
            if batch_norm:
                layers.append(nn.BatchNorm1d(int(h)))
            layers.append(nn.ReLU())
            width = int(h)
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class CNN1d(nn.Module):
    """Small 1-D CNN for MNIST-1D: ``[Conv1d(k, stride 2) → BN → ReLU] × len(channels) → Linear``.

    Padding ``k // 2`` with stride 2 halves the length per layer (40 → 20 → 10 → 5); the read-out
    is a Linear layer on the flattened features (position-aware, as the MNIST-1D paper's CNN).
    ``batch_norm=False`` drops the BatchNorm layers (the convolutions then have biases).

    Parameters
    ----------
    in_shape : (C, L) or (L,)
    num_classes : int
    channels : sequence of int
        Output channels of each convolution.
    kernel_size : int
        Odd kernel width.
    batch_norm : bool
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = DEFAULT_CNN1D_CHANNELS,
        kernel_size: int = DEFAULT_CNN1D_KERNEL,
        batch_norm: bool = True,
    ):
        super().__init__()
        shape = tuple(int(v) for v in in_shape)
        if len(shape) not in (1, 2):
            raise ValueError(f"in_shape must be (C, L) or (L,) for model 'cnn1d', got {shape}")
        self.in_shape = shape if len(shape) == 2 else (1, shape[0])
        if isinstance(kernel_size, bool) or int(kernel_size) < 1 or int(kernel_size) % 2 == 0:
            raise ValueError(f"kernel_size must be an odd int >= 1, got {kernel_size!r}")
        if not channels or any(int(c) < 1 for c in channels):
            raise ValueError(f"channels must be a non-empty list of ints >= 1, got {channels}")
        k = int(kernel_size)
        layers: list[nn.Module] = []
        width = self.in_shape[0]
        for c in channels:
            layers.append(
                nn.Conv1d(width, int(c), k, stride=2, padding=k // 2, bias=not batch_norm)
            )
            if batch_norm:
                layers.append(nn.BatchNorm1d(int(c)))
            layers.append(nn.ReLU())
            width = int(c)
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.features(torch.zeros((1,) + self.in_shape)).numel()
        self.classifier = nn.Linear(flat, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape((x.shape[0],) + self.in_shape)
        return self.classifier(self.features(x).flatten(1))


class MixedLearner(nn.Module):
    """The mixed learner of [P1] §5: f(x) = w0ᵀx + Σ_j a_j σ(w_jᵀx − b).

    Source: Li & Li, "Towards Understanding Robust Memorization in Adversarial Training",
    §5 (Thm 5.2; SPEC T3). σ is the ReLU and b a fixed (non-trained) threshold; w0, the w_j
    and the a_j are trained. Its limit in Thm 5.2 is w*ᵀx + Σ_{small} y_i φ(ξ_iᵀx).

    For ``num_classes == 2`` the scalar score f is returned as the logits ``(-f/2, f/2)``, so
    softmax cross-entropy on label 1 ↔ y = +1 equals the logistic loss log(1 + exp(−y f)) and
    ``argmax`` equals ``sign f``. For more classes every output has its own w0, a (vector form).

    Parameters
    ----------
    in_features : int
        Input dimension d (the input is flattened).
    num_classes : int
        Number of classes (>= 2).
    width : int
        Number m of ReLU neurons.
    threshold : float
        The threshold b of φ(t) = σ(t − b).
    """

    def __init__(self, in_features: int, num_classes: int, width: int, threshold: float):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        out = 1 if num_classes == 2 else num_classes
        self.num_classes = num_classes
        self.linear = nn.Linear(in_features, out, bias=False)  # w0
        self.hidden = nn.Linear(in_features, width, bias=False)  # w_j
        self.readout = nn.Linear(width, out, bias=False)  # a_j
        self.register_buffer("threshold", torch.tensor(float(threshold)))

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Return f(x): shape (n,) for binary models, (n, C) otherwise."""
        x = x.flatten(1)
        f = self.linear(x) + self.readout(F.relu(self.hidden(x) - self.threshold))
        return f[:, 0] if self.num_classes == 2 else f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.score(x)
        if self.num_classes == 2:
            return torch.stack((-0.5 * f, 0.5 * f), dim=1)
        return f


class LeNet5(nn.Module):
    """LeNet-5 with ReLU and max-pooling (the MNIST model of [P1] §7 / Wong et al. 2020).

    The convolutions use padding 2 when the input is smaller than 28×28 so that 8×8 digits
    still fit; the classifier's input size is found by a dry run.
    """

    def __init__(self, in_shape: Sequence[int], num_classes: int):
        super().__init__()
        channels, height, width = (int(v) for v in in_shape)
        pad2 = 0 if min(height, width) >= 28 else 2
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=pad2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        with torch.no_grad():
            flat = self.features(torch.zeros(1, channels, height, width)).numel()
        self.classifier = nn.Sequential(
            nn.Linear(flat, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


def _resnet18_stages(block: type[nn.Module]) -> list[nn.Sequential]:
    """The four stages of a CIFAR ResNet-18: 64, 128, 256, 512 planes, two ``block`` each."""
    stages, in_planes = [], 64
    for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        stages.append(nn.Sequential(block(in_planes, planes, stride), block(planes, planes, 1)))
        in_planes = planes
    return stages


class _PreActBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    """PreActResNet-18 (He et al. 2016) as in locuslab/robust_overfitting and fast_adversarial."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.layer1, self.layer2, self.layer3, self.layer4 = _resnet18_stages(_PreActBlock)
        self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.relu(self.bn(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


class _BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """Standard CIFAR ResNet-18 (kuangliu/pytorch-cifar), the model of [P2]'s ``train_te.py``."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1, self.layer2, self.layer3, self.layer4 = _resnet18_stages(_BasicBlock)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


class _WideBasic(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.equal_in_out = in_planes == out_planes
        self.shortcut = (
            None
            if self.equal_in_out
            else nn.Conv2d(in_planes, out_planes, 1, stride=stride, padding=0, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        out = self.conv1(o)
        out = F.relu(self.bn2(out))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        out = self.conv2(out)
        return out + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(nn.Module):
    """WideResNet-depth-widen (Zagoruyko & Komodakis 2016) as in the TRADES / [P2] code.

    ``depth`` must satisfy (depth − 4) % 6 == 0 (28 and 34 do); ``widen`` multiplies the
    widths 16-32-64.
    """

    def __init__(
        self, in_channels: int, num_classes: int, depth: int, widen: int, drop_rate: float = 0.0
    ):
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(f"depth must be >= 10 with (depth - 4) % 6 == 0, got {depth}")
        if widen < 1:
            raise ValueError(f"widen must be >= 1, got {widen}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        blocks: list[nn.Module] = []
        in_planes = widths[0]
        for stage, stride in zip(range(1, 4), (1, 2, 2), strict=True):
            for i in range(n):
                blocks.append(
                    _WideBasic(in_planes, widths[stage], stride if i == 0 else 1, drop_rate)
                )
                in_planes = widths[stage]
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2.0 / fan))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()
            elif isinstance(m, nn.Linear):
                m.bias.data.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.conv1(x))
        out = F.relu(self.bn(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


class NormalizedModel(nn.Sequential):
    """``Sequential(Normalize, net)``; ``.net`` is the architecture, ``.normalize`` the layer."""

    def __init__(self, normalize: Normalize, net: nn.Module):
        super().__init__()
        self.normalize = normalize
        self.net = net


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value


def build_model(
    name: str,
    num_classes: int,
    in_shape: Sequence[int],
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **kw: object,
) -> nn.Module:
    """Return a freshly initialised model taking inputs in [0, 1] of shape ``(n, *in_shape)``.

    Parameters
    ----------
    name : str
        One of :data:`MODEL_NAMES`.
    num_classes : int
        Number of output logits (>= 2).
    in_shape : sequence of int
        Shape of one input without the batch dimension: ``(C, H, W)`` for images,
        ``(d,)`` for vectors, ``(C, L)`` for signals (MNIST-1D: ``(1, 40)``). The 2-D
        convolutional models need ``(C, H, W)``; ``cnn1d`` takes ``(C, L)`` or ``(L,)``.
    mean, std : sequence of float, optional
        Per-channel normalisation applied inside the model (identity when omitted).
    **kw
        Architecture options: ``hidden``/``batch_norm`` (mlp; BN off by default),
        ``channels``/``kernel_size``/``batch_norm`` (cnn1d; BN on by default),
        ``width``/``threshold`` (mixed), ``depth``/``widen``/``drop_rate`` (wrn).

    Returns
    -------
    torch.nn.Module
        A :class:`NormalizedModel` whose ``net`` attribute is the architecture.
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"name must be one of {MODEL_NAMES}, got {name!r}")
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    num_classes = int(num_classes)
    shape = tuple(int(v) for v in in_shape)
    if not shape or any(v < 1 for v in shape):
        raise ValueError(f"in_shape must be a non-empty tuple of positive ints, got {in_shape}")
    in_features = math.prod(shape)
    allowed = {
        "mlp": {"hidden", "batch_norm"},
        "cnn1d": {"channels", "kernel_size", "batch_norm"},
        "mixed": {"width", "threshold"},
        "wrn": {"depth", "widen", "drop_rate"},
    }.get(name, set())
    unknown = set(kw) - allowed
    if unknown:
        raise ValueError(
            f"unknown options {sorted(unknown)} for model {name!r}; allowed: {allowed}"
        )
    net: nn.Module
    if name == "linear":
        net = LinearModel(in_features, num_classes)
    elif name == "mlp":
        hidden = kw.get("hidden", DEFAULT_MLP_HIDDEN)
        net = MLP(
            in_features,
            num_classes,
            tuple(int(h) for h in hidden),  # type: ignore[union-attr]
            batch_norm=_flag(kw.get("batch_norm", False), "batch_norm"),
        )
    elif name == "cnn1d":
        net = CNN1d(
            shape,
            num_classes,
            tuple(int(c) for c in kw.get("channels", DEFAULT_CNN1D_CHANNELS)),  # type: ignore[union-attr]
            int(kw.get("kernel_size", DEFAULT_CNN1D_KERNEL)),  # type: ignore[arg-type]
            batch_norm=_flag(kw.get("batch_norm", True), "batch_norm"),
        )
    elif name == "mixed":
        net = MixedLearner(
            in_features,
            num_classes,
            int(kw.get("width", DEFAULT_MIXED_WIDTH)),  # type: ignore[arg-type]
            float(kw.get("threshold", DEFAULT_MIXED_THRESHOLD)),  # type: ignore[arg-type]
        )
    else:
        if len(shape) != 3:
            raise ValueError(f"in_shape must be (C, H, W) for model {name!r}, got {shape}")
        if name == "lenet5":
            net = LeNet5(shape, num_classes)
        elif name == "preactresnet18":
            net = PreActResNet18(shape[0], num_classes)
        elif name == "resnet18":
            net = ResNet18(shape[0], num_classes)
        else:
            net = WideResNet(
                shape[0],
                num_classes,
                int(kw.get("depth", DEFAULT_WRN_DEPTH)),  # type: ignore[arg-type]
                int(kw.get("widen", DEFAULT_WRN_WIDEN)),  # type: ignore[arg-type]
                float(kw.get("drop_rate", 0.0)),  # type: ignore[arg-type]
            )
    return NormalizedModel(Normalize(mean, std), net)
