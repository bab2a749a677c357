"""Built-in skeletons and reference networks.

`imagenet` is the ProxylessNAS mobile skeleton (21 searchable layers).
`cifar` keeps its widths and depths at 32x32, dropping the two early
downsamplings (stem and first stage stride 1; our choice, as in common CIFAR
ports of MobileNetV2). `cifar-small` halves widths and depths for quick CPU runs.
"""

from __future__ import annotations

from dataclasses import replace

from autospace.arch.blocks import InvertedResidual
from autospace.arch.network import Layer, Network, Skeleton, Stage
from autospace.errors import AutospaceError

_PROXYLESS_WIDTHS = (24, 40, 80, 96, 192, 320)
_PROXYLESS_DEPTHS = (4, 4, 4, 4, 4, 1)


def _stages(widths, depths, strides) -> tuple[Stage, ...]:
    return tuple(Stage(w, d, s) for w, d, s in zip(widths, depths, strides))


def imagenet_skeleton() -> Skeleton:
    return Skeleton(
        stages=_stages(_PROXYLESS_WIDTHS, _PROXYLESS_DEPTHS, (2, 2, 2, 1, 2, 1)),
        stem_channels=32, stem_stride=2, first_channels=16, head_channels=1280,
        num_classes=1000, resolution=224,
    )


def cifar_skeleton() -> Skeleton:
    return Skeleton(
        stages=_stages(_PROXYLESS_WIDTHS, _PROXYLESS_DEPTHS, (1, 2, 2, 1, 2, 1)),
        stem_channels=32, stem_stride=1, first_channels=16, head_channels=1280,
        num_classes=10, resolution=32,
    )


def cifar_small_skeleton() -> Skeleton:
    return Skeleton(
        stages=_stages((16, 24, 40, 48, 96, 160), (2, 2, 2, 2, 2, 1), (1, 2, 2, 1, 2, 1)),
        stem_channels=16, stem_stride=1, first_channels=16, head_channels=640,
        num_classes=10, resolution=32,
    )


PRESETS = {"cifar": cifar_skeleton, "cifar-small": cifar_small_skeleton, "imagenet": imagenet_skeleton}


def preset_skeleton(name: str, num_classes: int | None = None, in_channels: int | None = None,
                    resolution: int | None = None) -> Skeleton:
    """A preset skeleton, adapted to a data set's classes, channels and resolution."""
    if name not in PRESETS:
        raise AutospaceError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    skeleton = PRESETS[name]()
    changes = {k: v for k, v in (("num_classes", num_classes), ("in_channels", in_channels),
                                  ("resolution", resolution)) if v is not None}
    return replace(skeleton, **changes) if changes else skeleton


def mobilenetv2(num_classes: int = 1000, resolution: int = 224, width_stride: int = 2,
                kernel: int = 3, expansion: int = 6) -> Network:
    """MobileNetV2 1.0 (Sandler et al. 2018). `width_stride=1` gives the CIFAR variant
    (stem and first stage at stride 1)."""
    settings = ((1, 16, 1, 1), (expansion, 24, 2, width_stride), (expansion, 32, 3, 2),
                (expansion, 64, 4, 2), (expansion, 96, 3, 1), (expansion, 160, 3, 2),
                (expansion, 320, 1, 1))
    layers = []
    for index, (e, channels, repeats, stride) in enumerate(settings):
        for position in range(repeats):
            block = InvertedResidual(kernel=3 if index == 0 else kernel, expansion=e)
            layers.append(Layer(block, channels, stride if position == 0 else 1, searchable=index > 0))
    return Network(layers=tuple(layers), stem_channels=32, stem_stride=width_stride,
                   head_channels=1280, num_classes=num_classes, resolution=resolution)
