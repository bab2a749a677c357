"""Basic modules: conv-BN-activation, squeeze-excite, the open space's edge operators."""

from __future__ import annotations

from torch import nn

from autospace.errors import AutospaceError


def make_activation(name: str | None) -> nn.Module:
    if name is None:
        return nn.Identity()
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "swish":
        return nn.SiLU(inplace=True)
    raise AutospaceError(f"unknown activation {name!r}; allowed: relu6, swish")


def same_padding(kernel: int, dilation: int = 1) -> int:
    return dilation * (kernel - 1) // 2


class ConvBNAct(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> activation (None: no activation)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1,
                 groups: int = 1, activation: str | None = "relu6", dilation: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel, stride, same_padding(kernel, dilation),
                      dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            make_activation(activation),
        )


class SqueezeExcite(nn.Module):
    """MnasNet/EfficientNet SE: pool, 1x1 reduce (bias), activation, 1x1 expand (bias), sigmoid gate."""

    def __init__(self, channels: int, reduced_channels: int, activation: str):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced_channels, 1)
        self.activation = make_activation(activation)
        self.expand = nn.Conv2d(reduced_channels, channels, 1)

    def forward(self, x):
        scale = x.mean((2, 3), keepdim=True)
        scale = self.expand(self.activation(self.reduce(scale)))
        return x * scale.sigmoid()


def squeeze_excite_channels(block_in_channels: int) -> int:
    return max(1, int(block_in_channels * 0.25))


class StridedIdentity(nn.Module):
    """A strided identity edge: 2x2 average pool; ceil mode keeps sizes equal to stride-2 convs."""

    def forward(self, x):
        return nn.functional.avg_pool2d(x, 2, 2, ceil_mode=True)


def make_edge_operator(op: str, channels: int, stride: int) -> nn.Module:
    """An edge of the open-space cell at `channels` (C_mid) channels."""
    if op == "conv1x1":
        return ConvBNAct(channels, channels, 1, stride)
    if op == "conv3x3":
        return ConvBNAct(channels, channels, 3, stride)
    if op == "dwconv3x3":
        return ConvBNAct(channels, channels, 3, stride, groups=channels)
    if op == "identity":
        return nn.Identity() if stride == 1 else StridedIdentity()
    raise AutospaceError(f"no module for edge operator {op!r}; allowed: conv1x1, conv3x3, dwconv3x3, identity")
