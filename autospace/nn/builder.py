"""The one builder: network data -> `nn.Module`."""

from __future__ import annotations

from torch import nn

from autospace.arch.network import Network
from autospace.nn.blocks import build_block
from autospace.nn.operators import ConvBNAct


class NetworkModule(nn.Module):
    """Stem -> layers -> head (1x1 conv) -> global pool -> dropout -> linear classifier."""

    def __init__(self, network: Network, layers: nn.ModuleList | None = None):
        super().__init__()
        self.network = network
        self.stem = ConvBNAct(network.in_channels, network.stem_channels, 3, network.stem_stride,
                              activation=network.activation)
        self.layers = layers if layers is not None else nn.ModuleList(
            build_block(layer.block, slot) for layer, slot in zip(network.layers, network.slots())
        )
        last = network.layers[-1].out_channels
        self.head = (ConvBNAct(last, network.head_channels, 1, activation=network.activation)
                     if network.head_channels else nn.Identity())
        self.dropout = nn.Dropout(network.dropout) if network.dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(network.final_channels, network.num_classes)

    def features(self, x):
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)

    def forward(self, x):
        x = self.features(x).mean((2, 3))
        return self.classifier(self.dropout(x))


def build_network(network: Network) -> NetworkModule:
    """The modules of `network`, on the CPU; refused in one line when its weights cannot fit there."""
    from autospace.cost import network_cost
    from autospace.runtime.memory import require_parameters_fit

    require_parameters_fit(network_cost(network).params, "cpu", "the network")
    return NetworkModule(network)
