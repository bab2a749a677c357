"""Modules built from architecture data."""

from autospace.nn.blocks import InvertedResidualModule, SkipLayer, build_block
from autospace.nn.builder import NetworkModule, build_network
from autospace.nn.cell import CellModule
from autospace.nn.operators import ConvBNAct, SqueezeExcite, make_edge_operator

__all__ = ["InvertedResidualModule", "SkipLayer", "build_block", "NetworkModule", "build_network",
           "CellModule", "ConvBNAct", "SqueezeExcite", "make_edge_operator"]
