"""Analytic params and MAdds of blocks and networks."""

from autospace.cost.analytic import (
    Cost, block_cost, cell_cost, irb_cost, layer_costs, network_cost, network_madds, network_params,
)

__all__ = ["Cost", "block_cost", "cell_cost", "irb_cost", "layer_costs", "network_cost",
           "network_madds", "network_params"]
